"""Distributed mode: API replicas enqueue on Redis Streams, workers score (see worker.py)."""
