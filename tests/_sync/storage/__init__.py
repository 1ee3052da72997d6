# Generated from tests/_async/storage/__init__.py by scripts/unasync.py: do not edit.
"""Storage suites written once, as async source: ``tests/_sync/storage`` is generated from here."""
