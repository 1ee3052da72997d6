# Generated from tests/_async/providers/test_knet.py by scripts/unasync.py: do not edit.
"""The KNET adapter on KNET's own wire formats, written once for both twins.

The async source awaits the async adapter; ``scripts/unasync.py`` generates
the same tests for the sync adapter under ``tests/_sync``. KNET is played by
``FakeKnet`` (trandata encrypted with the resource key, tranPipe XML) or by
respx; the fuller sync-only suite is ``tests/providers/test_knet.py``, whose
helpers these tests reuse.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from paykit import Money, PaymentStatus
from paykit._errors import (
    ConfigurationError,
    InvalidStateError,
    ProviderError,
    ProviderUnavailableError,
    WebhookVerificationError,
)
from paykit._models import EventKind, RefundStatus
from paykit.providers import KnetProvider, Provider
from paykit.testing._knet import FakeKnet, knet_error_body, knet_response_body
from tests.providers.test_knet import (
    KEY,
    PASSWORD,
    RECEIPT_URL,
    TRANPIPE,
    TRANPORTAL_ID,
    inquiry_reply,
    refund_of,
    request_for,
    stored_payment,
    xml_reply,
)


def make_provider(**overrides: Any) -> KnetProvider:
    kwargs: dict[str, Any] = {
        "response_url": "https://shop.example/knet/response",
        "error_url": "https://shop.example/knet/error",
        "receipt_url": RECEIPT_URL,
    }
    kwargs.update(overrides)
    return KnetProvider(TRANPORTAL_ID, PASSWORD, KEY, **kwargs)


@pytest.fixture
def knet() -> FakeKnet:
    return FakeKnet(KEY, tranportal_id=TRANPORTAL_ID, tranportal_password=PASSWORD)


@pytest.fixture
def provider(knet: FakeKnet) -> Iterator[KnetProvider]:
    with httpx.Client(transport=knet.transport()) as client:
        yield make_provider(http_client=client)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock_router:
        yield mock_router


@pytest.fixture
def mocked(router: respx.MockRouter) -> Iterator[KnetProvider]:
    """A provider on its own client, with KNET played by ``router``."""
    p = make_provider()
    yield p
    p.close()


class TestClient:
    """The adapter takes only the matching httpx client, and closes only its own."""

    def test_is_a_provider(self, provider: KnetProvider) -> None:
        """The adapter satisfies the provider protocol of its twin."""
        assert isinstance(provider, Provider)

    def test_http_client_must_match_the_twin(self) -> None:
        """A client of the other kind is refused at construction."""
        with pytest.raises(ConfigurationError, match="http_client"):
            make_provider(http_client=object())

    def test_owned_client_is_closed_and_injected_one_is_not(self, knet: FakeKnet) -> None:
        """close closes the client the adapter made, never the caller's."""
        owned = make_provider()
        client = owned._http
        owned.close()
        with httpx.Client(transport=knet.transport()) as injected:
            make_provider(http_client=injected).close()
            assert not injected.is_closed
        assert client.is_closed


class TestResponseLeg:
    """The response POST is decrypted, confirmed by an inquiry, and answered with REDIRECT=."""

    def paid(self, provider: KnetProvider, knet: FakeKnet, result: str = "CAPTURED") -> bytes:
        init = provider.create_payment(request_for("ORDER42"))
        assert init.status is PaymentStatus.REQUIRES_ACTION
        return knet.complete_payment(init.redirect_url or "", result=result)

    def test_captured_becomes_succeeded(self, provider: KnetProvider, knet: FakeKnet) -> None:
        """A CAPTURED response KNET's inquiry confirms is a success, answered with the receipt line."""
        event = provider.parse_webhook(self.paid(provider, knet), {})

        txn = next(iter(knet.transactions.values()))
        assert (EventKind.PAYMENT, PaymentStatus.SUCCEEDED) == (event.kind, event.status)
        assert ("ORDER42", f"{txn.paymentid}:CAPTURED") == (event.provider_ref, event.event_id)
        assert Money.of("12.500", "KWD") == event.amount == event.amount_captured
        assert f"REDIRECT={RECEIPT_URL}?paymentid={txn.paymentid}&trackid=ORDER42" == event.reply_body

    def test_declined_is_failed(self, provider: KnetProvider, knet: FakeKnet) -> None:
        """A NOT CAPTURED response is a failed payment carrying KNET's result."""
        event = provider.parse_webhook(self.paid(provider, knet, "NOT CAPTURED"), {})

        assert (PaymentStatus.FAILED, "NOT CAPTURED", None) == (
            event.status,
            event.failure_code,
            event.amount_captured,
        )

    def test_inquiry_request_xml(self, router: respx.MockRouter, mocked: KnetProvider) -> None:
        """The confirming inquiry is action 8 on tranPipe, naming the payment id."""
        route = router.post(TRANPIPE).mock(return_value=inquiry_reply())

        mocked.parse_webhook(knet_response_body(KEY, trackid="TRACK1", paymentid="100202412345678901"), {})

        assert (
            f"<id>{TRANPORTAL_ID}</id><password>{PASSWORD}</password><action>8</action>"
            "<currencycode>414</currencycode><amt>12.500</amt><transid>100202412345678901</transid>"
            "<trackid>TRACK1</trackid><udf5>PaymentID</udf5>"
        ) == route.calls.last.request.content.decode()

    @pytest.mark.parametrize(("claimed", "knet_says"), [("CAPTURED", "NOT CAPTURED"), ("NOT CAPTURED", "CAPTURED")])
    def test_inquiry_must_agree(
        self, router: respx.MockRouter, mocked: KnetProvider, claimed: str, knet_says: str
    ) -> None:
        """A response the inquiry contradicts is refused."""
        router.post(TRANPIPE).mock(return_value=inquiry_reply(knet_says))

        with pytest.raises(WebhookVerificationError):
            mocked.parse_webhook(knet_response_body(KEY, trackid="TRACK1", result=claimed), {})

    def test_another_key_is_rejected(self, router: respx.MockRouter, mocked: KnetProvider) -> None:
        """trandata encrypted with another resource key is a forgery; KNET is not asked."""
        route = router.post(TRANPIPE)

        with pytest.raises(WebhookVerificationError):
            mocked.parse_webhook(knet_response_body("PONMLKJIHGFEDCBA", trackid="TRACK1"), {})

        assert route.call_count == 0

    def test_error_post_is_an_unverified_hint(self, router: respx.MockRouter, mocked: KnetProvider) -> None:
        """A plain Error POST calls no one and is answered with the receipt line."""
        route = router.post(TRANPIPE)

        event = mocked.parse_webhook(knet_error_body(trackid="TRACK1"), {})

        assert (EventKind.UNVERIFIED, "TRACK1", 0) == (event.kind, event.provider_ref, route.call_count)
        assert (event.reply_body or "").startswith(f"REDIRECT={RECEIPT_URL}")

    @pytest.mark.parametrize("failure", [httpx.ReadTimeout("slow"), httpx.ConnectError("refused")])
    def test_unreachable_knet_is_retryable(
        self, router: respx.MockRouter, mocked: KnetProvider, failure: httpx.HTTPError
    ) -> None:
        """A timeout or refused connection on the inquiry is a retryable ProviderUnavailableError."""
        router.post(TRANPIPE).mock(side_effect=failure)

        with pytest.raises(ProviderUnavailableError) as info:
            mocked.parse_webhook(knet_response_body(KEY, trackid="TRACK1"), {})

        assert (True, "knet") == (info.value.should_retry, info.value.provider)
        assert info.value.__cause__ is failure


class TestRetrievePayment:
    """An inquiry reports the payment's state for reconcile()."""

    def test_by_payment_id(self, router: respx.MockRouter, mocked: KnetProvider) -> None:
        """A captured inquiry is a success with KNET's ids."""
        router.post(TRANPIPE).mock(return_value=inquiry_reply(payid="100000000000001"))

        result = mocked.retrieve_payment(stored_payment(status=PaymentStatus.PROCESSING))

        assert (PaymentStatus.SUCCEEDED, Money.of("12.500", "KWD")) == (result.status, result.amount_captured)

    def test_server_errors_are_retryable_for_inquiries(self, router: respx.MockRouter, mocked: KnetProvider) -> None:
        """A 5xx on an inquiry may be asked again."""
        router.post(TRANPIPE).mock(return_value=httpx.Response(503))

        with pytest.raises(ProviderUnavailableError) as info:
            mocked.retrieve_payment(stored_payment())

        assert (503, True) == (info.value.http_status, info.value.should_retry)


class TestRefund:
    """Refunds (action 2) over the tranPipe XML endpoint."""

    def test_request_xml(self, router: respx.MockRouter, mocked: KnetProvider) -> None:
        """The refund names the original transaction and its track id."""
        route = router.post(TRANPIPE).mock(
            return_value=xml_reply(result="CAPTURED", tranid="300000000000009", payid="100000000000001")
        )

        result = mocked.refund_payment(stored_payment(), refund_of("2.000"), idempotency_key="r1")

        assert (
            f"<id>{TRANPORTAL_ID}</id><password>{PASSWORD}</password><action>2</action>"
            "<currencycode>414</currencycode><amt>2.000</amt><transid>200000000000002</transid>"
            "<trackid>TRACK1</trackid><udf5>TransID</udf5>"
        ) == route.calls.last.request.content.decode()
        assert ("300000000000009", RefundStatus.SUCCEEDED) == (result.provider_ref, result.status)

    @pytest.mark.parametrize(
        ("text", "code"),
        [
            ("!ERROR!-IPAY0100160-Original transaction not captured", "IPAY0100160"),
            ("<result>NOT CAPTURED</result>", "NOT CAPTURED"),
            ("<result>SUCCESS</result>", "SUCCESS"),
        ],
    )
    def test_refusals_are_provider_errors(
        self, router: respx.MockRouter, mocked: KnetProvider, text: str, code: str
    ) -> None:
        """Anything but CAPTURED is a refund refused, never retried."""
        router.post(TRANPIPE).mock(return_value=httpx.Response(200, text=text))

        with pytest.raises(ProviderError) as info:
            mocked.refund_payment(stored_payment(), refund_of("1.000"), idempotency_key="r")

        assert (code, False) == (info.value.code, info.value.should_retry)
        assert not isinstance(info.value, ProviderUnavailableError)

    @pytest.mark.parametrize(
        ("failure", "retry"),
        [(httpx.ConnectError("refused"), True), (httpx.ReadTimeout("slow"), False), (httpx.Response(502), False)],
    )
    def test_ambiguous_failures_are_not_retryable(
        self, router: respx.MockRouter, mocked: KnetProvider, failure: Exception | httpx.Response, retry: bool
    ) -> None:
        """A refund that may have reached KNET is reported unavailable, but must be checked, not resent."""
        route = router.post(TRANPIPE)
        if isinstance(failure, httpx.Response):
            route.mock(return_value=failure)
        else:
            route.mock(side_effect=failure)

        with pytest.raises(ProviderUnavailableError) as info:
            mocked.refund_payment(stored_payment(), refund_of("1.000"), idempotency_key="r")

        assert retry == info.value.should_retry

    def test_without_knet_ids(self, router: respx.MockRouter, mocked: KnetProvider) -> None:
        """A payment KNET never answered about cannot be refunded."""
        with pytest.raises(InvalidStateError):
            mocked.refund_payment(stored_payment(provider_data={}), refund_of("1.000"), idempotency_key="r")

    def test_partial_refunds_then_over_refund(self, provider: KnetProvider, knet: FakeKnet) -> None:
        """Partial refunds add up at KNET; one past the amount is refused."""
        txn = knet.add_transaction(trackid="TRACK1", amt="12.500")
        payment = stored_payment(provider_data={"paymentid": txn.paymentid, "tranid": txn.tranid})

        provider.refund_payment(payment, refund_of("10.000", "ref_a"), idempotency_key="a")
        provider.refund_payment(payment, refund_of("2.500", "ref_b"), idempotency_key="b")
        with pytest.raises(ProviderError, match="FAILURE"):
            provider.refund_payment(payment, refund_of("0.001", "ref_c"), idempotency_key="c")

        assert 12500 == txn.refunded_fils
