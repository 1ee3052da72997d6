# Generated from src/paykit/testing/_async/incident.py by scripts/unasync.py: do not edit.
"""Incident replay: one payment's redacted history out of a running system, and back into a test against the fakes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..._errors import PaykitError
from ..._models import AuditAction, Payment
from ..._money import Money
from .._stripe_fake import AUTHENTICATION_CARDS, DECLINING_CARDS, StripeFake

if TYPE_CHECKING:
    from ..._sync.service import PaymentService

__all__ = ["export_incident", "replay_incident"]

INCIDENT_FORMAT = "paykit-incident/1"
_CALLS = {
    AuditAction.PAYMENT_INIT.value,
    AuditAction.PAYMENT_CONFIRM.value,
    AuditAction.PAYMENT_CAPTURE.value,
    AuditAction.PAYMENT_CANCEL.value,
    AuditAction.PAYMENT_REFUND.value,
}


def export_incident(service: PaymentService, payment_id: str) -> dict[str, Any]:
    """One payment's history as a JSON-ready dict, redacted, to turn into a test with :func:`replay_incident`.

    It holds the payment's terms (amount, capture method) and outcome (status,
    failure code, captured and refunded amounts), its refunds, the calls the
    app made (from the audit trail, in order), the provider events as they were
    received (type and outcome, in order), and the redacted audit trail itself.
    No client secret, card data, user id or metadata is kept.

    Raises:
        NotFoundError: No such payment.
    """
    explanation = service.explain(payment_id)
    payment = explanation.payment
    calls = [
        {"action": e.action.value, "status_before": e.status_before, "status_after": e.status_after}
        for e in sorted(explanation.audit, key=_version)
        if e.subject_type == "payment"
        and e.action.value in _CALLS
        and not e.actor.startswith(("webhook:", "reconcile"))
    ]
    return {
        "format": INCIDENT_FORMAT,
        "payment": {
            "provider": payment.provider,
            "amount": payment.amount.to_decimal_string(),
            "currency": payment.amount.currency,
            "capture_method": payment.capture_method,
            "status": payment.status.value,
            "failure_code": payment.failure_code,
            "captured_minor": payment.captured_minor,
            "refunded_minor": payment.refunded_minor,
        },
        "refunds": [{"amount_minor": r.amount.minor_units, "status": r.status.value} for r in explanation.refunds],
        "calls": calls,
        "events": [
            {"type": e.type, "outcome": e.outcome, "received_at": e.received_at.isoformat()}
            for e in sorted(explanation.webhook_events, key=lambda e: e.received_at)
        ],
        "audit": [
            {
                "at": e.at.isoformat(),
                "action": e.action.value,
                "actor": e.actor,
                "status_before": e.status_before,
                "status_after": e.status_after,
                "payload": e.payload,
            }
            for e in explanation.audit
        ],
    }


def replay_incident(
    incident: Mapping[str, Any],
    service: PaymentService,
    fake: StripeFake,
    deliver: Callable[[bytes, Mapping[str, str]], Any],
) -> Payment:
    """Replay an exported incident against ``fake``: the same calls, and the same events received.

    The app's calls are made again in order (a confirmation with the test card
    that ends as the incident did: declined with its code, needing 3-D Secure, or
    paid; a capture of what was captured; the refunds' amounts). After each
    call, the fake's events are delivered through ``deliver`` (your webhook
    route, or ``handle_webhook``; an async one for the async twin) when the incident received an event of that
    type, in the incident's order; the others are lost, as they were. Provider
    errors are swallowed, as the app did. Then check with
    :func:`assert_consistent` and your own invariants.

    Returns:
        The replayed payment as it stands after the replay (before any ``reconcile()``).

    Raises:
        ValueError: ``incident`` is not an export of :func:`export_incident`, or not a Stripe one.
    """
    if incident.get("format") != INCIDENT_FORMAT or incident["payment"]["provider"] != "stripe":
        raise ValueError(f"not a Stripe {INCIDENT_FORMAT} export")
    terms = incident["payment"]
    received = [event["type"] for event in incident["events"]]
    refunds = [
        Money.from_minor(r["amount_minor"], terms["currency"])
        for r in incident["refunds"]
        if r["status"] in {"succeeded", "pending"}  # a refund that ended without money moved none
    ]
    payment = service.initialize_payment(
        user_id="incident",
        amount=Money.of(terms["amount"], terms["currency"]),
        provider="stripe",
        idempotency_key=f"incident-{fake.clock.unix():.0f}-{len(fake.intents)}",
        capture_method=terms["capture_method"],
    )
    _deliver(fake, deliver, received)
    for action, call in _steps(terms, incident["calls"], refunds):
        try:
            if action == AuditAction.PAYMENT_CONFIRM.value:
                service.confirm_payment(payment.id, payment_method=_card_for(terms, call))
                intent = fake.intents.get(service.get_payment(payment.id).provider_ref or "")
                if intent is not None and intent["status"] == "requires_action" and _paid(terms):
                    fake.complete_action(intent["id"])
            elif action == AuditAction.PAYMENT_CAPTURE.value:
                amount = Money.from_minor(terms["captured_minor"], terms["currency"])
                service.capture_payment(payment.id, amount=amount)
            elif action == AuditAction.PAYMENT_CANCEL.value:
                service.cancel_payment(payment.id)
            elif action == AuditAction.PAYMENT_REFUND.value and refunds:
                service.refund_payment(payment.id, amount=refunds.pop(0))
        except PaykitError:
            pass  # the app saw the same error and carried on
        _deliver(fake, deliver, received)
    return service.get_payment(payment.id)


def _deliver(fake: StripeFake, deliver: Callable[[bytes, Mapping[str, str]], Any], received: list[str]) -> None:
    for delivery in fake.take_deliveries():
        if delivery.type not in received:
            continue  # the incident never received it: lost
        received.remove(delivery.type)
        deliver(*fake.signed(delivery))


def _steps(
    terms: Mapping[str, Any], calls: list[dict[str, Any]], refunds: list[Money]
) -> list[tuple[str, Mapping[str, Any]]]:
    """The calls to make: the audited ones, plus those a timeout kept out of the audit trail.

    A call whose answer was lost (a timeout after success) leaves no audit entry of
    its own: ``reconcile()`` or a webhook moved the payment instead. The outcome
    says it was made.
    """
    steps: list[tuple[str, Mapping[str, Any]]] = [(c["action"], c) for c in calls if c["action"] != "PAYMENT_INIT"]
    made = {action for action, _ in steps}
    status = terms["status"]
    # An automatic payment canceled before confirmation was never confirmed.
    never_confirmed = status == "pending" or (status == "canceled" and terms["capture_method"] == "automatic")
    if AuditAction.PAYMENT_CONFIRM.value not in made and not never_confirmed:
        steps.insert(0, (AuditAction.PAYMENT_CONFIRM.value, {}))
    manual = terms["capture_method"] == "manual"
    if manual and terms["captured_minor"] and AuditAction.PAYMENT_CAPTURE.value not in made:
        steps.append((AuditAction.PAYMENT_CAPTURE.value, {}))
    if status == "canceled" and AuditAction.PAYMENT_CANCEL.value not in made:
        steps.append((AuditAction.PAYMENT_CANCEL.value, {}))
    audited = sum(1 for action, _ in steps if action == AuditAction.PAYMENT_REFUND.value)
    steps.extend((AuditAction.PAYMENT_REFUND.value, {}) for _ in range(len(refunds) - audited))
    return steps


def _paid(terms: Mapping[str, Any]) -> bool:
    return bool(terms["status"] in {"succeeded", "partially_refunded", "refunded"} or terms["captured_minor"])


def _card_for(terms: Mapping[str, Any], call: Mapping[str, Any]) -> str:
    """The Stripe test card that ends the confirmation as the incident's did."""
    if terms["status"] == "failed":
        code = terms.get("failure_code")
        for card, (error_code, decline_code, _) in DECLINING_CARDS.items():
            if code in {error_code, decline_code}:
                return card
        return "pm_card_chargeDeclined"
    if call.get("status_after") == "requires_action":
        return sorted(AUTHENTICATION_CARDS)[0]
    return "pm_card_visa"


def _version(entry: Any) -> tuple[int, str]:
    """An audit entry's payment version (its id reads ``<payment>:v<version>:<action>``), then its time."""
    for part in str(entry.id).split(":"):
        if part.startswith("v") and part[1:].isdigit():
            return int(part[1:]), entry.at.isoformat()
    return 0, entry.at.isoformat()
