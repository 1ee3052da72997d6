# Source of the generated sync twin (scripts/unasync.py): edit here.
"""The service's I/O paths: the engine and the parts ``PaymentService`` is composed of."""
