"""Alerts: rules decide what is worth telling, messages say it, the outbox delivers it."""
