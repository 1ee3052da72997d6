# Generated from tests/_async/__init__.py by scripts/unasync.py: do not edit.
"""Test sources written once as async code; ``tests/_sync`` holds their generated sync twins."""
