# Generated from src/paykit/testing/_async/__init__.py by scripts/unasync.py: do not edit.
"""Test doubles' async source; ``_sync`` holds the generated twin."""
