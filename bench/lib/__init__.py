"""Shared parts of the system benchmarks (herd, freshness): real processes and lean clients."""
