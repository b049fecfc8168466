"""Subcommands of the `oms` command line, one module per owner (see oms/cli.py)."""
