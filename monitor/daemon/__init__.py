"""The long-running service behind ``monitor run``."""
