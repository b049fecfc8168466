"""The shell around the pure core: the pipeline (journal, fold, publish), ROUTER handlers, the PUB
publisher, intake and risk checks, configuration and CURVE. The command line composes it with adapters."""
