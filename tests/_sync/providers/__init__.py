# Generated from tests/_async/providers/__init__.py by scripts/unasync.py: do not edit.
"""Provider adapter tests, run against both twins of each adapter."""
