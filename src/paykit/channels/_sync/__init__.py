# Generated from src/paykit/channels/_async/__init__.py by scripts/unasync.py: do not edit.
"""The asyncio channels (the sync ones are generated from them)."""
