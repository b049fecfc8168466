"""The Interactive Brokers adapter: TWS API events in, the service's commands out."""
