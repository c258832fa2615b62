"""``python -m tradestore``: the same as the ``tradestore`` command."""

from tradestore.cli import main

raise SystemExit(main())
