# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Storage suites written once, as async source: ``tests/_sync/storage`` is generated from here."""
