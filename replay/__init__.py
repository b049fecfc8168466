"""Reading recorded sessions: state at any point, order timelines, stepping, verify, re-publishing over
ZeroMQ, and the DuckDB archive with its SQL views (docs/replay.md)."""
