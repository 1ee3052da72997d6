# Generated from src/paykit/_async/__init__.py by scripts/unasync.py: do not edit.
"""The service's I/O paths: the engine and the parts ``PaymentService`` is composed of."""
