# Generated from src/paykit/providers/_async/__init__.py by scripts/unasync.py: do not edit.
"""Provider adapters' async source; ``_sync`` holds the generated twin."""
