"""Benchmarks: run by hand (`python -m bench`) or by CI in a short mode, as a report, never as a gate."""
