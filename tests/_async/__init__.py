# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Service tests written once, as async source: ``tests/_sync`` is generated from here."""
