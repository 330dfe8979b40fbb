"""Batching: a pure policy, a bounded queue and the scheduler loop."""
