# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Storage suites' async source; ``tests/_sync/storage`` holds the generated twin."""
