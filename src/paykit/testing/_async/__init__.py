# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Test doubles' async source; ``_sync`` holds the generated twin."""
