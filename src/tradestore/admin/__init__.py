"""Operator tools a bot never imports at runtime: inventory, maintenance, backup and transfer."""
