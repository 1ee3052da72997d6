# Generated from src/paykit/_async/disputes.py by scripts/unasync.py: do not edit.
"""Disputes: listing them, recording them by hand, and answering them at the provider.

Every change to a dispute is a write of its payment (``engine.transact``): the
dispute, the amount it holds and its audit entry and notifications land
together. The ``disputes`` collection is a copy kept by the ``dispute_sync``
reaction that write carries, applied right away and again by ``reconcile()``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from datetime import datetime

from .. import _telemetry as telemetry
from .._decisions import common as d
from .._decisions import disputes as dd
from .._decisions.change import Change
from .._decisions.policy import Actor
from .._errors import InvalidRequestError, InvalidStateError, NotFoundError, UnsupportedOperationError
from .._log import get_logger
from .._models import Dispute, Payment
from .._money import Money
from .._results import DisputePage
from .._status import DisputeStatus
from ..providers._sync.base import DisputeProvider, Provider
from ..storage._base import PageCursor, Reaction
from ._part import _Part

log = get_logger(__name__)


def _encode_cursor(dispute: Dispute) -> str:
    raw = json.dumps([dispute.created_at.isoformat(), dispute.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class _Disputes(_Part):
    def get_dispute(self, dispute_id: str) -> Dispute:
        """A dispute, as its payment holds it now.

        Raises:
            NotFoundError: No such dispute.

        .. versionadded:: 0.3.0
        """
        _, dispute = self._dispute_and_payment(dispute_id)
        return dispute

    def list_disputes(
        self,
        *,
        status: DisputeStatus | str | None = None,
        payment_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DisputePage:
        """Disputes newest first, ``limit`` per page (1-500), by status and payment.

        Raises:
            InvalidRequestError: A bad limit, status or cursor.

        .. versionadded:: 0.3.0
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
            raise InvalidRequestError("limit must be an int from 1 to 500")
        if payment_id is not None:
            d.check_id(payment_id, "payment_id")
        try:
            wanted = DisputeStatus(status) if status is not None else None
        except ValueError:
            raise InvalidRequestError(f"unknown dispute status {status!r}") from None
        after: PageCursor | None = d.decode_cursor(cursor) if cursor is not None else None
        items = self._engine.storage.list_disputes(status=wanted, payment_id=payment_id, limit=limit + 1, after=after)
        more = len(items) > limit
        items = items[:limit]
        return DisputePage(items=items, next_cursor=_encode_cursor(items[-1]) if more else None)

    @telemetry.operation("record_dispute")
    def record_dispute(
        self,
        payment_id: str,
        amount: Money,
        reason: str | None = None,
        *,
        evidence_due_by: datetime | None = None,
        provider_dispute_id: str | None = None,
        actor: Actor | str | None = None,
    ) -> Dispute:
        """Record a dispute the provider reported outside any API (KNET: the bank's letter).

        Works for any provider. The dispute starts as ``needs_response`` and holds
        ``amount`` on the payment: it is not refundable until the dispute ends.

        Args:
            payment_id: The disputed payment.
            amount: The disputed amount, in the payment's currency.
            reason: Why the payer disputes it, as the bank says.
            evidence_due_by: When the answer is due (timezone-aware).
            provider_dispute_id: The bank's or provider's case number, if any.
            actor: Who records it.

        Raises:
            NotFoundError: No such payment.
            InvalidRequestError: Another currency, a bad amount, reason or due date.
            InvalidStateError: The payment captured nothing, or the amount exceeds
                what is neither refunded nor already disputed.

        .. versionadded:: 0.3.0
        """
        d.check_positive(amount)
        reason = d.check_text(reason, "reason")
        if provider_dispute_id is not None:
            d.check_id(provider_dispute_id, "provider_dispute_id")
        if evidence_due_by is not None and evidence_due_by.tzinfo is None:
            raise InvalidRequestError("evidence_due_by must be timezone-aware")
        payment = self._load(payment_id)
        now = self._engine.now()
        new_id = d.new_id("dsp")
        who = self._actor(actor)
        payment, _ = self._engine.transact(
            payment,
            lambda c: dd.open_by_hand(
                c,
                new_id,
                amount,
                reason=reason,
                evidence_due_by=evidence_due_by,
                provider_dispute_id=provider_dispute_id,
                actor=who,
                now=now,
            ),
            actor=who,
        )
        return payment.disputes[new_id]

    @telemetry.operation("resolve_dispute")
    def resolve_dispute(
        self, dispute_id: str, outcome: DisputeStatus | str, *, actor: Actor | str | None = None
    ) -> Dispute:
        """End a dispute by hand as ``"won"`` (the hold is released) or ``"lost"`` (its amount leaves net revenue).

        For disputes without a provider API (KNET); it works for any provider.
        Resolving again with the same outcome changes nothing.

        Raises:
            NotFoundError: No such dispute.
            InvalidRequestError: ``outcome`` is not won or lost.
            InvalidStateError: The dispute already ended otherwise.

        .. versionadded:: 0.3.0
        """
        try:
            target = DisputeStatus(outcome)
        except ValueError:
            raise InvalidRequestError("a dispute is resolved as 'won' or 'lost'") from None
        who = self._actor(actor)
        return self._change(dispute_id, lambda c, now: dd.resolve(c, dispute_id, target, actor=who, now=now), who)

    @telemetry.operation("accept_dispute")
    def accept_dispute(self, dispute_id: str, *, actor: Actor | str | None = None) -> Dispute:
        """Concede a dispute: the provider is told (Stripe closes it, PayPal accepts the claim) and it is lost.

        A dispute recorded by hand (no provider dispute id) is conceded here only.

        Raises:
            NotFoundError: No such dispute.
            InvalidStateError: The dispute has ended.
            UnsupportedOperationError: The provider has no disputes API paykit drives.
            ProviderError: The provider refused; nothing was recorded.

        .. versionadded:: 0.3.0
        """
        payment, dispute = self._dispute_and_payment(dispute_id)
        if dispute.status == DisputeStatus.LOST:
            return dispute
        if not dispute.is_open:
            raise InvalidStateError(f"dispute {dispute_id} already ended as {dispute.status.value}")
        if dispute.provider_dispute_id is not None:
            adapter = self.provider(payment.provider)
            answering = self._dispute_adapter(adapter)
            self._engine.call_provider(
                adapter, "accept_dispute", lambda: answering.accept_dispute(dispute), payment_id=payment.id
            )
        who = self._actor(actor)
        return self._change(dispute_id, lambda c, now: dd.accepted(c, dispute_id, actor=who, now=now), who)

    @telemetry.operation("submit_dispute_evidence")
    def submit_dispute_evidence(
        self,
        dispute_id: str,
        evidence: Mapping[str, str],
        *,
        submit: bool = True,
        actor: Actor | str | None = None,
    ) -> Dispute:
        """Send text evidence to the provider, by its own field names, and record that it was sent.

        Stripe takes its ``evidence`` text fields (``product_description``,
        ``shipping_tracking_number``, ``uncategorized_text``...); ``submit=False``
        stages them without submitting. PayPal takes ``evidence_type`` -> notes
        (``{"PROOF_OF_FULFILLMENT": "..."}``) and reviews them at once. For a
        dispute recorded by hand, nothing is sent: the record says evidence went
        out your own way. The audit entry keeps the field names, never their text.
        Submitted evidence moves a dispute that needs a response to under review.

        Raises:
            NotFoundError: No such dispute.
            InvalidRequestError: Empty or malformed evidence.
            InvalidStateError: The dispute has ended.
            UnsupportedOperationError: The provider has no disputes API paykit drives.
            ProviderError: The provider refused; nothing was recorded.

        .. versionadded:: 0.3.0
        """
        if not isinstance(evidence, Mapping) or not evidence:
            raise InvalidRequestError("evidence must map at least one field to its text")
        for key, value in evidence.items():
            if not isinstance(key, str) or not isinstance(value, str) or not value.strip():
                raise InvalidRequestError("evidence maps field names to non-empty text")
            if len(value) > 20_000:
                raise InvalidRequestError(f"evidence {key!r} is longer than 20000 characters")
        payment, dispute = self._dispute_and_payment(dispute_id)
        if not dispute.is_open:
            raise InvalidStateError(f"dispute {dispute_id} already ended as {dispute.status.value}")
        if dispute.provider_dispute_id is not None:
            adapter = self.provider(payment.provider)
            answering = self._dispute_adapter(adapter)
            self._engine.call_provider(
                adapter,
                "submit_dispute_evidence",
                lambda: answering.submit_dispute_evidence(dispute, evidence, submit=submit),
                payment_id=payment.id,
            )
        who = self._actor(actor)
        fields = list(evidence)
        return self._change(
            dispute_id,
            lambda c, now: dd.evidence_submitted(c, dispute_id, fields, submitted=submit, actor=who, now=now),
            who,
        )

    # -- helpers -----------------------------------------------------------------

    def _dispute_and_payment(self, dispute_id: str) -> tuple[Payment, Dispute]:
        d.check_id(dispute_id, "dispute_id")
        stored = self._engine.storage.get_dispute(dispute_id)
        if stored is None:
            raise NotFoundError(f"no dispute {dispute_id!r}")
        payment = self._load(stored.payment_id)
        # The payment's copy is the truth; the collection's may lag until its reaction is applied.
        return payment, payment.disputes.get(dispute_id, stored)

    @staticmethod
    def _dispute_adapter(adapter: Provider) -> DisputeProvider:
        if not adapter.capabilities.disputes or not isinstance(adapter, DisputeProvider):
            raise UnsupportedOperationError(f"provider {adapter.name!r} has no disputes API paykit drives")
        return adapter

    def _change(self, dispute_id: str, build: Callable[[Payment, datetime], Change], actor: str) -> Dispute:
        payment, _ = self._dispute_and_payment(dispute_id)
        now = self._engine.now()
        payment, _ = self._engine.transact(payment, lambda c: build(c, now), actor=actor)
        return payment.disputes[dispute_id]

    def _react_dispute_sync(self, reaction: Reaction) -> None:
        """The reactor of ``dispute_sync``: copy the payment's dispute to the ``disputes`` collection."""
        payment = self._engine.storage.get_payment(reaction.payment_id)
        dispute = payment.disputes.get(reaction.target_id) if payment is not None else None
        if dispute is None:
            log.warning("dispute reaction names a missing dispute", payment_id=reaction.payment_id)
            return
        self._engine.storage.save_dispute(dispute)
