"""Benchmarks: tradestore against the raw drivers and the SQLAlchemy ORM, side by side in one run.

Run from the repository root (see ``python -m benchmarks --help`` and the README's
"Performance" section)::

    .venv/bin/python -m benchmarks
"""
