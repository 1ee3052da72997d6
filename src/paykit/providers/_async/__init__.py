# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Provider adapters' async source; ``_sync`` holds the generated twin."""
