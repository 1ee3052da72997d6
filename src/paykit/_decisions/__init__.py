"""Every rule the service applies, as pure functions: no storage, provider, thread or task.

One module per orchestration part: ``common`` (ids, argument checks), ``effects``
(audit entries, notifications), ``change`` (what a write is), ``payments``,
``refunds``, ``events`` and ``invoices``. ``tests/test_architecture.py`` keeps them pure.
"""
