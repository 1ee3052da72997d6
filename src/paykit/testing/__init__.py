"""Helpers for testing code that uses paykit (temporary while the core lands)."""
