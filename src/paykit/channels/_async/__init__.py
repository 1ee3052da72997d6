# Source of the generated sync twin (scripts/unasync.py): edit here.
"""The asyncio channels (the sync ones are generated from them)."""
