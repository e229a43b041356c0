"""The engine: submission, control and queries of sessions, the life of a step run (claim,
outcome, failure path), routing, recovery, and the one function that wires them to a store
and a dispatcher (``wiring.build_engine``)."""
