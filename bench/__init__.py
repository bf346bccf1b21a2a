"""Benchmarks of the monitor against the simulated TMAPI: ``python -m bench``."""
