# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Provider adapter tests, run against both twins of each adapter."""
