"""Async test suites: the sources of ``tests/_sync``'s generated twins, and their hand-written fixtures."""
