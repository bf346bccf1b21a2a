"""The simulated TMAPI: a real HTTP server on 127.0.0.1 that serves made-up 1688 items."""
