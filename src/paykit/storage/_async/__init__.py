# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Storage backends' async source; ``_sync`` holds the generated twin."""
