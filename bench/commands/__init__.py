"""Subcommands of the ``liteseg-bench`` CLI; each module exposes ``register(subparsers)``."""
