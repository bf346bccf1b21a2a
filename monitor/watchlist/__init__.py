"""The watchlist: its typed model, the field checks, the loader and the summary."""
