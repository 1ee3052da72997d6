# Generated from tests/_async/__init__.py by scripts/unasync.py: do not edit.
"""Service tests written once, as async source: ``tests/_sync`` is generated from here."""
