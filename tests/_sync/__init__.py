"""Sync twins generated from ``tests/_async``, and their hand-written fixtures."""
