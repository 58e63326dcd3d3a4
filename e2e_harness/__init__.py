"""Backup Repository release harness: pins, sources, backends and the pytest plugin."""
