"""The ``tradestore`` command line (also ``python -m tradestore``); see :func:`main`."""

from tradestore.cli.main import main

__all__ = ["main"]
