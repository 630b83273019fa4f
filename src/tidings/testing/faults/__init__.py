"""Fault injection: every fault of the scenario, injected into a real topology
(run.py, cluster.py), the client processes that watch it (crowd.py), the proxy
that loses or stalls traffic (proxy.py), and the verdicts (observe.py).
"""
