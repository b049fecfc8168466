"""The order management service: state and fold, commands and risk checks, service loop, ZeroMQ."""

__version__ = "0.1.0"
