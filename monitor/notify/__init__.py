"""Delivery: outbox rows sent through apprise, with retries, after their poll committed."""
