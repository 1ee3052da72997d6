# Generated from tests/_async/storage/__init__.py by scripts/unasync.py: do not edit.
"""Storage suites' async source; ``tests/_sync/storage`` holds the generated twin."""
