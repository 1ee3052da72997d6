"""The service's I/O paths: the engine and the parts ``PaymentService`` is composed of."""
