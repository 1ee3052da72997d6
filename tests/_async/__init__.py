# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Test sources written once as async code; ``tests/_sync`` holds their generated sync twins."""
