"""``tidings sim``: a discrete-event simulation of a fleet of clients, push servers and an app.

The client sync controllers and the push hubs are the real sans-I/O classes; the
clock, the network, the app, Redis and the transports are simulated. See
docs/SIMULATION.md.
"""
