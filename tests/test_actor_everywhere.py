"""Every public operation that takes ``actor=`` takes an :class:`~paykit.Actor` (with roles), not only an id."""

from __future__ import annotations

import inspect
import typing

import pytest

from paykit import Actor, AsyncPaymentService, PaymentService


def _actor_methods(cls: type) -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and "actor" in inspect.signature(member).parameters
    )


@pytest.mark.parametrize("cls", [PaymentService, AsyncPaymentService])
def test_every_actor_parameter_accepts_an_actor(cls: type) -> None:
    names = _actor_methods(cls)
    assert {"refund_payment", "cancel_subscription", "record_dispute", "set_notification_preferences"} <= set(names)
    hints = {name: typing.get_type_hints(getattr(cls, name))["actor"] for name in names}
    narrow = [name for name, hint in hints.items() if Actor not in typing.get_args(hint)]
    assert narrow == []
