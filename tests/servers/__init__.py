"""Local fake servers for tests: each listens on 127.0.0.1 only, on a free port, in a background thread."""
