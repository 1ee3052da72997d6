"""PayPal under attack: strict parsing, confirmation before money moves, replayed deliveries, ids in URLs."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from paykit import (
    EventKind,
    InvalidRequestError,
    Money,
    PaymentService,
    PaymentStatus,
    ProviderUnavailableError,
    Refund,
    RefundStatus,
    WebhookVerificationError,
)
from paykit.providers.paypal import PayPalProvider
from paykit.storage import MemoryStorage
from paykit.testing._paypal import PayPalWebhookSigner
from paykit.webhooks import handle_webhook

from .test_paypal import (
    API,
    CLIENT_ID,
    CLIENT_SECRET,
    NOW,
    TOKEN,
    WEBHOOK_ID,
    Clock,
    assert_schema,
    make_payment,
    paypal_capture,
    paypal_order,
    paypal_refund,
)

CAPTURE_ID = "3C679366HH908993F"
ORDER_ID = "5O190127TN364715T"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signer() -> PayPalWebhookSigner:
    return PayPalWebhookSigner(WEBHOOK_ID, clock=lambda: NOW)


@pytest.fixture
def paypal(signer: PayPalWebhookSigner) -> Iterator[respx.MockRouter]:
    """PayPal's API: a token, the signer's certificate, and whatever each test adds; nothing else."""
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{API}/v1/oauth2/token").respond(200, json={"access_token": TOKEN, "expires_in": 32400})
        router.get(signer.cert_url).mock(side_effect=signer.handler)
        yield router


def provider(clock: Clock, **kwargs: Any) -> PayPalProvider:
    return PayPalProvider(CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID, http_client=httpx.Client(), clock=clock, **kwargs)


def capture_event(signer: PayPalWebhookSigner, **changes: Any) -> bytes:
    return signer.event_body("PAYMENT.CAPTURE.COMPLETED", paypal_capture(**changes), event_id="WH-CAPTURE-1")


def serve_capture(router: respx.MockRouter, **changes: Any) -> respx.Route:
    capture = paypal_capture(**changes)
    return router.get(f"{API}/v2/payments/captures/{capture['id']}").respond(200, json=capture)


def forge_same_crc32(body: bytes, template: bytes) -> bytes:
    """``template`` with 48 letters of its ``FORGE`` slot chosen so that its CRC32 equals ``body``'s.

    CRC32 is affine over GF(2): flipping a byte changes the CRC by a fixed vector,
    whatever the other bytes are. Each slot letter is 'a' or 'c' (one bit apart),
    and Gaussian elimination picks the letters to flip; the result stays valid JSON.
    """
    slot = template.index(b"a" * 48)
    base = zlib.crc32(template)
    deltas = []
    for i in range(48):
        flipped = bytearray(template)
        flipped[slot + i] ^= 0x02
        deltas.append((zlib.crc32(bytes(flipped)) ^ base, 1 << i))
    want = base ^ zlib.crc32(body)
    rows: list[tuple[int, int]] = []
    for delta, bit in deltas:
        vector, mask = delta, bit
        for row_vector, row_mask in rows:
            if vector ^ row_vector < vector:
                vector, mask = vector ^ row_vector, mask ^ row_mask
        if vector:
            rows.append((vector, mask))
    chosen = 0
    for row_vector, row_mask in rows:
        if want ^ row_vector < want:
            want, chosen = want ^ row_vector, chosen ^ row_mask
    assert want == 0, "the slot does not span CRC32's 32 bits"
    forged = bytearray(template)
    for i in range(48):
        if chosen >> i & 1:
            forged[slot + i] ^= 0x02
    assert zlib.crc32(bytes(forged)) == zlib.crc32(body)
    return bytes(forged)


class TestCertificateUrl:
    """A certificate URL is parsed strictly and refused before any HTTP call."""

    @pytest.mark.parametrize(
        "cert_url",
        [
            "https://api.pay\tpal.com/v1/notifications/certs/CERT-1",
            "https://api.paypal.com\t/v1/notifications/certs/CERT-1",
            "https://api.paypal.com /v1/notifications/certs/CERT-1",
            "https://api.paypal.com\x00.evil.example/certs/CERT-1",
            "https://api.paypal.com\x7f/certs/CERT-1",
            "https://user:pass@api.paypal.com/v1/notifications/certs/CERT-1",
            "https://evil.example\\@api.paypal.com/certs/CERT-1",
            "https://api.paypal.com:80/v1/notifications/certs/CERT-1",
            "https://api.paypal.com:443:8443/certs/CERT-1",
            "https://api.paypal.com:/certs/CERT-1",
            "https://api.paypal.com.:443/certs/CERT-1",
            "https://paypal.com/v1/notifications/certs/CERT-1",
            "https://api.p\u0430ypal.com/certs/CERT-1",
            "https://api.paypal.com/certs/CERT-1?next=https://evil.example",
            "https://api.paypal.com/certs/CERT-1#x",
            "HTTPS://api.paypal.com/certs/CERT-1",
            "//api.paypal.com/certs/CERT-1",
        ],
    )
    def test_refused_before_any_request(self, clock: Clock, cert_url: str) -> None:
        signer = PayPalWebhookSigner(WEBHOOK_ID, clock=lambda: NOW)
        body = capture_event(signer)
        headers = signer.sign(body)
        headers["PAYPAL-CERT-URL"] = cert_url
        requests: list[httpx.Request] = []
        http = httpx.Client(transport=httpx.MockTransport(lambda r: requests.append(r) or httpx.Response(500)))
        adapter = PayPalProvider(CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID, http_client=http, clock=clock)

        with pytest.raises(WebhookVerificationError):
            adapter.parse_webhook(body, headers)

        assert [] == requests

    @pytest.mark.parametrize(
        "cert_url",
        [
            "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-b0d12406",
            "https://api.sandbox.paypal.com:443/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
        ],
    )
    def test_paypals_own_urls_pass(self, cert_url: str) -> None:
        from paykit.providers._paypal_verify import check_cert_url

        assert cert_url == check_cert_url(cert_url)


HOSTILE_BODIES = [
    pytest.param(b"[" * 50_000 + b"]" * 50_000, id="deep-array"),
    pytest.param(b'{"a":' * 200 + b"{}" + b"}" * 200, id="deep-object"),
    pytest.param(b'{"id": "WH-1", "event_type": "X", "resource": {}, "n": 1e999999}', id="1e999999"),
    pytest.param(b'{"id": "WH-1", "event_type": "X", "resource": {}, "n": -1e400}', id="-1e400"),
    pytest.param(b'{"id": "WH-1", "event_type": "X", "resource": {}, "n": ' + b"9" * 5000 + b"}", id="5000-digits"),
    pytest.param(b'{"id": "WH-1", "event_type": "X", "resource": {}, "n": NaN}', id="NaN"),
    pytest.param(b'{"id": "WH-\\ud800", "event_type": "X", "resource": {}}', id="lone-surrogate"),
    pytest.param(b'{"id": "WH-1", "event_type": "X", "resource": {"\\udfff": 1}}', id="lone-surrogate-key"),
    pytest.param(b'{"id": "WH-1", "event_type": "X", "resource": {}, "s": "\xc3\x28"}', id="invalid-utf8"),
    pytest.param(b'\xef\xbb\xbf{"id": "WH-1", "event_type": "X", "resource": {}}', id="bom"),
    pytest.param('{"id": "WH-1", "event_type": "X", "resource": {}}'.encode("utf-16"), id="utf16"),
    pytest.param(b'{"id": "WH-1", "id": "WH-2", "event_type": "X", "resource": {}}', id="duplicate-key"),
    pytest.param(b'["WH-1"]', id="array"),
    pytest.param(b'"WH-1"', id="string"),
    pytest.param(b"", id="empty"),
]


class TestApiModeParsing:
    """API mode parses the raw body strictly and never re-encodes what it could not parse."""

    @pytest.mark.parametrize("body", HOSTILE_BODIES)
    def test_hostile_bodies_are_refused_before_the_verify_call(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock, body: bytes
    ) -> None:
        verify = paypal.post(f"{API}/v1/notifications/verify-webhook-signature").respond(
            200, json={"verification_status": "SUCCESS"}
        )

        with pytest.raises(WebhookVerificationError):
            provider(clock, webhook_verification="api").parse_webhook(body, signer.sign(body))

        assert 0 == verify.call_count

    @pytest.mark.parametrize("body", HOSTILE_BODIES)
    def test_hostile_bodies_are_refused_offline_too(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock, body: bytes
    ) -> None:
        with pytest.raises(WebhookVerificationError):
            provider(clock).parse_webhook(body, signer.sign(body))

    def test_paypal_is_sent_the_event_as_parsed_from_the_original_bytes(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock
    ) -> None:
        verify = paypal.post(f"{API}/v1/notifications/verify-webhook-signature").respond(
            200, json={"verification_status": "SUCCESS"}
        )
        serve_capture(paypal)
        event = json.loads(capture_event(signer))
        event["summary"] = 'Pay\u00e9 \U0001f4b8 \\ "quoted"'
        event["resource"]["seller_receivable_breakdown"] = {"exchange_rate": {"value": 1.10}}
        body = json.dumps(event, indent=3, ensure_ascii=True).encode()

        provider(clock, webhook_verification="api").parse_webhook(body, signer.sign(body))

        sent = json.loads(verify.calls[0].request.content)["webhook_event"]
        assert json.loads(body) == sent


class TestConfirmation:
    """Events that move money are rebuilt from PayPal's answer about their resource."""

    @pytest.mark.parametrize("mode", ["offline", "api"])
    def test_a_capture_event_takes_paypals_status_amount_and_ids(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock, mode: str
    ) -> None:
        paypal.post(f"{API}/v1/notifications/verify-webhook-signature").respond(
            200, json={"verification_status": "SUCCESS"}
        )
        serve_capture(paypal, status="PENDING", custom_id="pay_real", order_id="ORDERREAL1")
        body = capture_event(signer, custom_id="pay_victim", order_id="ORDERVICTIM")

        event = provider(clock, webhook_verification=mode).parse_webhook(body, signer.sign(body))

        assert (PaymentStatus.PROCESSING, "pay_real", "ORDERREAL1", None, {"capture_id": CAPTURE_ID}) == (
            event.status,
            event.payment_id,
            event.provider_ref,
            event.amount_captured,
            event.provider_data,
        )
        assert ("WH-CAPTURE-1", "PAYMENT.CAPTURE.COMPLETED") == (event.event_id, event.type)

    def test_a_completed_capture_keeps_its_amount(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock
    ) -> None:
        serve_capture(paypal, amount={"currency_code": "USD", "value": "12.50"})
        body = capture_event(signer, amount={"currency_code": "USD", "value": "9999.00"})

        event = provider(clock).parse_webhook(body, signer.sign(body))

        assert (PaymentStatus.SUCCEEDED, Money.of("12.50", "USD")) == (event.status, event.amount_captured)

    def test_an_order_completed_event_reads_the_order(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock
    ) -> None:
        order = paypal_order(status="COMPLETED", captures=[paypal_capture(status="DECLINED")])
        paypal.get(f"{API}/v2/checkout/orders/{ORDER_ID}").respond(200, json=order)
        claimed = paypal_order(status="COMPLETED", captures=[paypal_capture()])
        body = signer.event_body("CHECKOUT.ORDER.COMPLETED", claimed)

        event = provider(clock).parse_webhook(body, signer.sign(body))

        assert PaymentStatus.FAILED == event.status

    def test_an_authorization_event_reads_the_authorization(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock
    ) -> None:
        from .test_paypal import paypal_authorization

        paypal.get(f"{API}/v2/payments/authorizations/0VF52814937998046").respond(
            200, json=paypal_authorization(status="VOIDED")
        )
        body = signer.event_body("PAYMENT.AUTHORIZATION.CREATED", paypal_authorization())

        event = provider(clock).parse_webhook(body, signer.sign(body))

        assert (PaymentStatus.CANCELED, None) == (event.status, event.amount)

    def test_an_unknown_resource_is_a_forgery(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock
    ) -> None:
        paypal.get(f"{API}/v2/payments/captures/{CAPTURE_ID}").respond(
            404, json={"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does not exist."}
        )
        body = capture_event(signer)

        with pytest.raises(WebhookVerificationError, match="does not confirm"):
            provider(clock).parse_webhook(body, signer.sign(body))

    def test_an_answer_about_another_capture_is_refused(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock
    ) -> None:
        paypal.get(f"{API}/v2/payments/captures/{CAPTURE_ID}").respond(200, json=paypal_capture("9X999999XX999999X"))
        body = capture_event(signer)

        with pytest.raises(WebhookVerificationError, match="another capture"):
            provider(clock).parse_webhook(body, signer.sign(body))

    def test_an_unreachable_api_is_503_and_writes_nothing(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock
    ) -> None:
        paypal.get(f"{API}/v2/payments/captures/{CAPTURE_ID}").mock(side_effect=httpx.ConnectError("down"))
        body = capture_event(signer)
        storage = MemoryStorage()
        with PaymentService(storage=storage, providers=[provider(clock)], clock=clock) as service:
            with pytest.raises(ProviderUnavailableError):
                service.provider("paypal").parse_webhook(body, signer.sign(body))
            response = handle_webhook(service, "paypal", body, signer.sign(body))

        assert (503, "30") == (response.status_code, response.headers["retry-after"])
        assert [] == list(storage._events)

    def test_approvals_and_ignored_events_need_no_call(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock
    ) -> None:
        for body in (
            signer.event_body("CHECKOUT.ORDER.APPROVED", paypal_order(status="APPROVED")),
            signer.event_body("BILLING.PLAN.CREATED", {"id": "P-2U911356NH683973BEDIWKUY"}),
        ):
            provider(clock).parse_webhook(body, signer.sign(body))

        assert {"/v1/notifications/certs/CERT-360caa42-paykit-test"} == {call.request.url.path for call in paypal.calls}


@pytest.fixture
def shop(paypal: respx.MockRouter, clock: Clock) -> Iterator[tuple[PaymentService, MemoryStorage]]:
    """A service with one PayPal payment whose order ORDER1 is approved, not yet captured."""
    paypal.post(f"{API}/v2/checkout/orders").mock(
        side_effect=lambda request: httpx.Response(
            200, json=paypal_order("ORDER1", custom_id=json.loads(request.content)["purchase_units"][0]["custom_id"])
        )
    )
    storage = MemoryStorage()
    with PaymentService(storage=storage, providers=[provider(clock)], clock=clock) as service:
        yield service, storage


def new_payment(service: PaymentService) -> str:
    return service.initialize_payment(user_id="u1", amount=Money.of("12.50", "USD"), provider="paypal").id


class TestCrc32Forgery:
    """A body with a captured delivery's CRC32, sent under its headers, moves no money."""

    def forged_pair(self, signer: PayPalWebhookSigner, payment_id: str) -> tuple[bytes, bytes, dict[str, str]]:
        genuine = signer.event_body(
            "PAYMENT.CAPTURE.PENDING",
            paypal_capture(status="PENDING", order_id="ORDER1", custom_id=payment_id),
            event_id="WH-GENUINE",
        )
        headers = signer.sign(genuine)
        template = signer.event_body(
            "PAYMENT.CAPTURE.COMPLETED",
            {**paypal_capture(order_id="ORDER1", custom_id=payment_id), "note": "a" * 48},
            event_id="WH-FORGED",
        )
        forged = forge_same_crc32(genuine, template)
        assert json.loads(forged)["event_type"] == "PAYMENT.CAPTURE.COMPLETED"
        return genuine, forged, headers

    def test_the_forged_body_verifies_offline_but_paypal_does_not_confirm_it(
        self,
        paypal: respx.MockRouter,
        shop: tuple[PaymentService, MemoryStorage],
        signer: PayPalWebhookSigner,
        clock: Clock,
    ) -> None:
        service, _ = shop
        payment_id = new_payment(service)
        serve_capture(paypal, status="PENDING", order_id="ORDER1", custom_id=payment_id)
        _, forged, headers = self.forged_pair(signer, payment_id)

        response = handle_webhook(service, "paypal", forged, headers)

        assert 200 == response.status_code
        assert PaymentStatus.PROCESSING == service.get_payment(payment_id).status

    def test_after_the_genuine_delivery_the_forged_body_is_refused(
        self,
        paypal: respx.MockRouter,
        shop: tuple[PaymentService, MemoryStorage],
        signer: PayPalWebhookSigner,
        clock: Clock,
    ) -> None:
        service, storage = shop
        payment_id = new_payment(service)
        serve_capture(paypal, status="PENDING", order_id="ORDER1", custom_id=payment_id)
        genuine, forged, headers = self.forged_pair(signer, payment_id)

        first = handle_webhook(service, "paypal", genuine, headers)
        records = dict(storage._events)
        forgery = handle_webhook(service, "paypal", forged, headers)

        assert (200, 400, "rejected") == (first.status_code, forgery.status_code, forgery.outcome)
        assert records == storage._events
        assert PaymentStatus.PROCESSING == service.get_payment(payment_id).status


class TestReplay:
    """A transmission id is remembered with its body's digest."""

    def test_the_same_delivery_again_is_a_duplicate(
        self,
        paypal: respx.MockRouter,
        shop: tuple[PaymentService, MemoryStorage],
        signer: PayPalWebhookSigner,
    ) -> None:
        service, storage = shop
        payment_id = new_payment(service)
        serve_capture(paypal, order_id="ORDER1", custom_id=payment_id)
        body = capture_event(signer, order_id="ORDER1", custom_id=payment_id)
        headers = signer.sign(body, transmission_id="69cd13f0-d67a-11e5-baa3-778b53f4ae55")

        answers = [handle_webhook(service, "paypal", body, headers).outcome for _ in range(2)]

        assert ["applied", "duplicate"] == answers
        record = storage.get_webhook_event("paypal", "delivery:69cd13f0-d67a-11e5-baa3-778b53f4ae55")
        assert record is not None
        assert ("delivery", 64) == (record.outcome, len(record.type))

    def test_the_same_transmission_id_with_another_body_is_refused(
        self,
        paypal: respx.MockRouter,
        shop: tuple[PaymentService, MemoryStorage],
        signer: PayPalWebhookSigner,
    ) -> None:
        service, _ = shop
        payment_id = new_payment(service)
        serve_capture(paypal, status="PENDING", order_id="ORDER1", custom_id=payment_id)
        first = capture_event(signer, status="PENDING", order_id="ORDER1", custom_id=payment_id)
        second = signer.event_body("CHECKOUT.ORDER.APPROVED", paypal_order("ORDER1", status="APPROVED"))
        tid = "69cd13f0-d67a-11e5-baa3-778b53f4ae55"

        answers = [
            handle_webhook(service, "paypal", body, signer.sign(body, transmission_id=tid)).status_code
            for body in (first, second)
        ]

        assert [200, 400] == answers

    def test_the_event_carries_delivery_id_and_digest(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock
    ) -> None:
        import hashlib

        serve_capture(paypal)
        body = capture_event(signer)

        event = provider(clock).parse_webhook(body, signer.sign(body, transmission_id="tid-1"))

        assert ("tid-1", hashlib.sha256(body).hexdigest()) == (event.delivery_id, event.delivery_digest)


def refund_resource(refund_id: str = "1JU08902781691411", value: str = "5.00") -> dict[str, Any]:
    """A refund as PayPal's webhooks carry it: no custom_id, no order id, only the capture link."""
    refund = paypal_refund(refund_id, value=value)
    del refund["custom_id"]
    assert_schema("payments", "refund", refund)
    return refund


class TestRefundsAndReversals:
    """Refund and reversal events find their payment through the capture PayPal links them to."""

    def captured(self, service: PaymentService, paypal: respx.MockRouter, payment_id: str) -> None:
        paypal.post(f"{API}/v2/checkout/orders/ORDER1/capture").respond(
            201,
            json=paypal_order(
                "ORDER1", status="COMPLETED", custom_id=payment_id, captures=[paypal_capture(custom_id=payment_id)]
            ),
        )
        assert PaymentStatus.SUCCEEDED == service.confirm_payment(payment_id).status

    def test_a_dashboard_refund_is_recorded(
        self,
        paypal: respx.MockRouter,
        shop: tuple[PaymentService, MemoryStorage],
        signer: PayPalWebhookSigner,
        clock: Clock,
    ) -> None:
        service, _ = shop
        payment_id = new_payment(service)
        self.captured(service, paypal, payment_id)
        paypal.get(f"{API}/v2/payments/refunds/1JU08902781691411").respond(200, json=refund_resource())
        serve_capture(paypal, status="PARTIALLY_REFUNDED", order_id="ORDER1", custom_id=payment_id)
        body = signer.event_body("PAYMENT.CAPTURE.REFUNDED", refund_resource(value="99.00"), resource_type="refund")

        event = provider(clock).parse_webhook(body, signer.sign(body))
        response = handle_webhook(service, "paypal", body, signer.sign(body))

        assert (payment_id, "ORDER1", Money.of("5", "USD"), {"capture_id": CAPTURE_ID}) == (
            event.payment_id,
            event.provider_ref,
            event.amount_refunded,
            event.provider_data,
        )
        assert "applied" == response.outcome
        payment = service.get_payment(payment_id)
        assert (PaymentStatus.PARTIALLY_REFUNDED, 500) == (payment.status, payment.refunded_minor)

    def test_a_refund_paykit_made_is_settled_not_doubled(
        self,
        paypal: respx.MockRouter,
        shop: tuple[PaymentService, MemoryStorage],
        signer: PayPalWebhookSigner,
    ) -> None:
        service, _ = shop
        payment_id = new_payment(service)
        self.captured(service, paypal, payment_id)
        paypal.post(f"{API}/v2/payments/captures/{CAPTURE_ID}/refund").respond(
            201, json=paypal_refund(status="PENDING")
        )
        refund = service.refund_payment(payment_id, amount=Money.of("5", "USD"))
        paypal.get(f"{API}/v2/payments/refunds/1JU08902781691411").respond(200, json=refund_resource())
        serve_capture(paypal, status="PARTIALLY_REFUNDED", order_id="ORDER1", custom_id=payment_id)
        body = signer.event_body("PAYMENT.CAPTURE.REFUNDED", refund_resource(), resource_type="refund")

        response = handle_webhook(service, "paypal", body, signer.sign(body))

        assert "applied" == response.outcome
        assert RefundStatus.SUCCEEDED == service.get_refund(refund.id).status
        assert 500 == service.get_payment(payment_id).refunded_minor

    def test_a_reversal_is_recorded_once_as_a_refund(
        self,
        paypal: respx.MockRouter,
        shop: tuple[PaymentService, MemoryStorage],
        signer: PayPalWebhookSigner,
        clock: Clock,
    ) -> None:
        service, _ = shop
        payment_id = new_payment(service)
        self.captured(service, paypal, payment_id)
        reversed_capture = paypal_capture(status="REFUNDED", order_id="ORDER1", custom_id=payment_id)
        paypal.get(f"{API}/v2/payments/captures/{CAPTURE_ID}").respond(200, json=reversed_capture)
        body = signer.event_body(
            "PAYMENT.CAPTURE.REVERSED", refund_resource("8MC585209K746392H", "12.50"), resource_type="refund"
        )

        event = provider(clock).parse_webhook(body, signer.sign(body))
        answers = [handle_webhook(service, "paypal", body, signer.sign(body)).outcome for _ in range(2)]

        assert (
            EventKind.REFUND,
            f"reversal:{CAPTURE_ID}",
            RefundStatus.SUCCEEDED,
            Money.of("12.50", "USD"),
            {"origin": "reversal", "capture_id": CAPTURE_ID},
            payment_id,
        ) == (
            event.kind,
            event.refund_ref,
            event.refund_status,
            event.amount_refunded,
            event.provider_data,
            event.payment_id,
        )
        assert ["applied", "duplicate"] == answers
        payment = service.get_payment(payment_id)
        assert (PaymentStatus.REFUNDED, 1250) == (payment.status, payment.refunded_minor)

    def test_a_reversal_paypal_does_not_show_is_refused(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock
    ) -> None:
        serve_capture(paypal, status="COMPLETED")
        body = signer.event_body("PAYMENT.CAPTURE.REVERSED", refund_resource(), resource_type="refund")

        with pytest.raises(WebhookVerificationError, match="reversed"):
            provider(clock).parse_webhook(body, signer.sign(body))

    def test_a_reversal_never_takes_more_than_the_capture(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock
    ) -> None:
        serve_capture(paypal, status="COMPLETED", reason="CHARGEBACK")
        body = signer.event_body("PAYMENT.CAPTURE.REVERSED", refund_resource(value="500.00"), resource_type="refund")

        event = provider(clock).parse_webhook(body, signer.sign(body))

        assert Money.of("12.50", "USD") == event.amount_refunded


ATTACKS = ["../v1/oauth2/token?x=", "../../v1/oauth2/token?x=", "3C679366HH908993F/../x", "a b", "%2e%2e", "", "é" * 3]


class TestIdsInUrls:
    """Provider ids are checked against PayPal's alphabet and escaped before they reach a URL path."""

    @pytest.mark.parametrize("capture_id", ATTACKS)
    def test_a_stored_capture_id_never_reaches_the_token_endpoint(
        self, paypal: respx.MockRouter, clock: Clock, capture_id: str
    ) -> None:
        payment = make_payment(provider_data={"capture_id": capture_id}, captured=1250)
        refund = Refund(
            id="re_1", payment_id="pay_1", user_id="u1", provider="paypal", amount=Money.of("5", "USD"),
            created_at=NOW, updated_at=NOW,
        )  # fmt: skip

        with pytest.raises(InvalidRequestError, match="capture id"):
            provider(clock).refund_payment(payment, refund, idempotency_key="k1")

        assert [] == [call.request.url.path for call in paypal.calls if "/v2/" in call.request.url.path]

    @pytest.mark.parametrize("order_id", ATTACKS[:-2])
    def test_a_stored_order_id_is_refused(self, paypal: respx.MockRouter, clock: Clock, order_id: str) -> None:
        with pytest.raises(InvalidRequestError, match="order id"):
            provider(clock).retrieve_payment(make_payment(provider_ref=order_id))
        with pytest.raises(InvalidRequestError, match="order id"):
            provider(clock).confirm_payment(make_payment(provider_ref=order_id), payment_method_ref=None,
                                            idempotency_key="k")  # fmt: skip

        assert 0 == len([call for call in paypal.calls if "/v2/" in call.request.url.path])

    @pytest.mark.parametrize("authorization_id", ATTACKS[:3])
    def test_a_stored_authorization_id_is_refused(
        self, paypal: respx.MockRouter, clock: Clock, authorization_id: str
    ) -> None:
        payment = make_payment(capture_method="manual", provider_data={"authorization_id": authorization_id})

        with pytest.raises(InvalidRequestError, match="authorization id"):
            provider(clock).capture_payment(payment, amount=None, idempotency_key="k")
        with pytest.raises(InvalidRequestError, match="authorization id"):
            provider(clock).cancel_payment(payment, idempotency_key="k")

    def test_the_token_endpoint_attack_from_a_webhook(
        self, paypal: respx.MockRouter, signer: PayPalWebhookSigner, clock: Clock
    ) -> None:
        refund = refund_resource()
        refund["links"][1]["href"] = f"{API}/v2/v1/oauth2/token?x=/refund"
        paypal.get(f"{API}/v2/payments/refunds/1JU08902781691411").respond(200, json=refund)
        capture = signer.event_body("PAYMENT.CAPTURE.COMPLETED", {**paypal_capture(), "id": "../v1/oauth2/token?x="})
        reversal = signer.event_body("PAYMENT.CAPTURE.REVERSED", refund, resource_type="refund")
        refunded = signer.event_body("PAYMENT.CAPTURE.REFUNDED", refund_resource(), resource_type="refund")

        for body in (capture, reversal, refunded):
            with pytest.raises(WebhookVerificationError, match="id PayPal does not issue"):
                provider(clock).parse_webhook(body, signer.sign(body))

        assert 1 == len([call for call in paypal.calls if call.request.method == "POST"])
        assert all("oauth2" not in call.request.url.path for call in paypal.calls if call.request.method == "GET")
