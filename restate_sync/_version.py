"""The package version, read by setup.cfg and sent in ``x-restate-server``."""

__version__ = "0.1.0"
