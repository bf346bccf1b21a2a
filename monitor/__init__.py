"""1688 Monitor: watch 1688.com wholesale offers and report what changes."""

__version__ = "0.1.0"
