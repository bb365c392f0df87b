"""Kith: a federated knowledge commons for communities."""

__version__ = "0.1.0"
