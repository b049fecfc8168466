"""Logging for the long-running commands (`oms run`, `oms mirror`, `oms web`)."""

import logging
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool = False) -> None:
    """Log lines on stderr, INFO with --verbose, else WARNING: the same for every long-running command."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format=LOG_FORMAT, stream=sys.stderr
    )
