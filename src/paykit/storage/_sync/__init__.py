# Generated from src/paykit/storage/_async/__init__.py by scripts/unasync.py: do not edit.
"""Storage backends' async source; ``_sync`` holds the generated twin."""
