"""Shared fixtures."""

# Real servers on loopback (our API and chat) and the shared embedding model.
pytest_plugins = ["tests.server_fixtures"]
