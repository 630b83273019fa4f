"""Real processes for tests and benchmarks, as django.test is for Django apps.

Launchers for ``tidings app`` and ``tidings push`` (processes.py), a private
``redis-server`` (redis.py), haproxy in front of either tier (haproxy.py), a
fresh PostgreSQL database (database.py), bounded waits (waiting.py), a throwaway
Redis Cluster with a stack on it (cluster.py), and the fault-injection topology
and runner (topology.py, faults/). Nothing here is imported by the app or the
push server; it runs with the ``test`` extra installed (``tidings[test]``: the
app's and the push server's dependencies) and never imports pytest.
"""
