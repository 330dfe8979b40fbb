"""Judge backends behind the scheduler: a protocol, a registry and the implementations."""
