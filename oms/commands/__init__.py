"""Subcommands of the `oms` command line, one module per owner (see oms/cli.py)."""

import logging
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool = False) -> None:
    """Log lines on stderr, INFO with --verbose, else WARNING: the same for every long-running command."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format=LOG_FORMAT, stream=sys.stderr
    )
