"""Genuine deliveries and vectors no one on this project wrote, read from ../shared/vectors at run time.

PayPal: deliveries signed by PayPal itself (its SDKs' test suites, its Webhook
Simulator), with the certificates that signed them. KNET: outputs of KNET's own
PHP kit and two public plugins on synthetic keys, and the manual's response
samples. Provenance and licences: ``shared/vectors/SOURCES.md``. Nothing here is
copied into the repository.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import respx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from paykit import EventKind, Money, PaymentStatus, WebhookVerificationError
from paykit.providers._base import CreatePaymentRequest
from paykit.providers._knet_crypto import decrypt_trandata, encrypt_trandata
from paykit.providers._paypal_verify import check_certificate
from paykit.providers.knet import KnetProvider
from paykit.providers.paypal import PayPalProvider

from .._shared import shared_path

PAYPAL = shared_path("vectors", "paypal")
KNET = json.loads(shared_path("vectors", "knet", "php_vectors.json").read_text())
API = "https://api-m.sandbox.paypal.com"
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


# -- PayPal ---------------------------------------------------------------------


def _certificates() -> dict[x509.Name, x509.Certificate]:
    return {
        certificate.subject: certificate
        for pem in PAYPAL.glob("*.pem")
        for certificate in x509.load_pem_x509_certificates(pem.read_bytes())
    }


@dataclass(frozen=True)
class Delivery:
    """One genuine PayPal delivery: what PayPal sent, and the certificate chain it named."""

    name: str
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    chain_pem: bytes

    @property
    def sent_at(self) -> datetime:
        return datetime.fromisoformat(self.headers["paypal-transmission-time"])

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @classmethod
    def load(cls, path: Path) -> Delivery:
        vector = json.loads(path.read_text())
        headers = {name.lower(): value for name, value in vector["headers"].items()}
        # The Python SDK's test passes the algorithm as an argument, not as a header.
        headers.setdefault("paypal-auth-algo", "SHA256withRSA")
        leaf = x509.load_pem_x509_certificate((PAYPAL / vector["cert_file"]).read_bytes())
        chain, by_subject = [leaf], _certificates()
        while chain[-1].issuer in by_subject and chain[-1].issuer != chain[-1].subject:
            chain.append(by_subject[chain[-1].issuer])
        pem = b"".join(c.public_bytes(Encoding.PEM) for c in chain)
        return cls(path.stem, vector["webhook_id"], headers, base64.b64decode(vector["body_b64"]), pem)


DELIVERIES = [Delivery.load(path) for path in sorted(PAYPAL.glob("*.json"))]
IDS = [delivery.name for delivery in DELIVERIES]


class PayPalAtHome:
    """PayPal's side for one delivery: its certificate, a token, and the resource the event names."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if str(request.url) == self.delivery.headers["paypal-cert-url"]:
            return httpx.Response(200, content=self.delivery.chain_pem)
        if request.url.path == "/v1/oauth2/token":
            return httpx.Response(200, json={"access_token": "A21AA-genuine", "expires_in": 32400})
        resource = self.delivery.event["resource"]
        if request.url.path == f"/v2/payments/captures/{resource.get('id')}":
            return httpx.Response(200, json=resource)
        return httpx.Response(404, json={"name": "RESOURCE_NOT_FOUND"})


def paypal_for(
    delivery: Delivery, *, now: datetime | None = None, webhook_id: str | None = None, **kwargs: Any
) -> PayPalProvider:
    at: Callable[[], datetime] = lambda: now or delivery.sent_at  # noqa: E731 - a pinned clock
    http = httpx.Client(transport=httpx.MockTransport(PayPalAtHome(delivery)))
    return PayPalProvider(
        "genuine-client", "genuine-secret", webhook_id or delivery.webhook_id, http_client=http, clock=at, **kwargs
    )


def other_char(char: str, alphabet: str) -> str:
    return next(c for c in alphabet if c != char)


def test_the_samples_are_there() -> None:
    assert 4 <= len(DELIVERIES)
    assert any(d.event["event_type"] == "PAYMENT.CAPTURE.COMPLETED" for d in DELIVERIES)


@pytest.mark.parametrize("delivery", DELIVERIES, ids=IDS)
class TestGenuinePayPalDeliveries:
    """Every genuine delivery verifies offline at its transmission time, and no one-byte change does."""

    def test_verifies_at_its_transmission_time(self, delivery: Delivery) -> None:
        event = paypal_for(delivery).parse_webhook(delivery.body, delivery.headers)

        assert (delivery.event["id"], delivery.event["event_type"]) == (event.event_id, event.type)
        assert delivery.headers["paypal-transmission-id"] == event.delivery_id

    def test_every_one_byte_change_of_the_body_fails(self, delivery: Delivery) -> None:
        adapter = paypal_for(delivery)
        adapter.parse_webhook(delivery.body, delivery.headers)  # the certificate is cached from here on
        passed = []
        for at in range(len(delivery.body)):
            changed = bytearray(delivery.body)
            changed[at] ^= 0x01
            try:
                adapter.parse_webhook(bytes(changed), delivery.headers)
            except WebhookVerificationError:
                continue
            passed.append(at)

        assert [] == passed

    @pytest.mark.parametrize(
        ("header", "alphabet"),
        [
            ("paypal-transmission-sig", _B64),
            ("paypal-transmission-id", "0123456789abcdef-"),
            ("paypal-transmission-time", "0123456789-:TZ"),
        ],
    )
    def test_every_one_character_change_of_a_signed_header_fails(
        self, delivery: Delivery, header: str, alphabet: str
    ) -> None:
        adapter = paypal_for(delivery)
        value = delivery.headers[header]
        passed = []
        for at in range(len(value)):
            changed = value[:at] + other_char(value[at], alphabet) + value[at + 1 :]
            try:
                adapter.parse_webhook(delivery.body, {**delivery.headers, header: changed})
            except WebhookVerificationError:
                continue
            passed.append(at)

        assert [] == passed

    def test_every_one_character_change_of_the_webhook_id_fails(self, delivery: Delivery) -> None:
        passed = []
        for at in range(len(delivery.webhook_id)):
            webhook_id = (
                delivery.webhook_id[:at]
                + other_char(delivery.webhook_id[at], "0123456789ABCDEFGHIJ")
                + (delivery.webhook_id[at + 1 :])
            )
            try:
                paypal_for(delivery, webhook_id=webhook_id).parse_webhook(delivery.body, delivery.headers)
            except WebhookVerificationError:
                continue
            passed.append(at)

        assert [] == passed

    def test_its_expired_certificate_is_refused_today(self, delivery: Delivery) -> None:
        today = datetime.now(UTC)
        chain = x509.load_pem_x509_certificates(delivery.chain_pem)
        adapter = paypal_for(delivery, now=today, webhook_tolerance=timedelta(days=365 * 30))

        with pytest.raises(WebhookVerificationError, match="expired"):
            check_certificate(chain, now=today)
        with pytest.raises(WebhookVerificationError, match="expired"):
            adapter.parse_webhook(delivery.body, delivery.headers)

    def test_is_stale_today(self, delivery: Delivery) -> None:
        with pytest.raises(WebhookVerificationError, match="tolerance"):
            paypal_for(delivery, now=datetime.now(UTC)).parse_webhook(delivery.body, delivery.headers)

    def test_api_mode_sends_paypal_the_event_exactly_as_parsed(self, delivery: Delivery) -> None:
        with respx.mock(assert_all_called=False) as router:
            router.post(f"{API}/v1/oauth2/token").respond(200, json={"access_token": "A21AA", "expires_in": 32400})
            verify = router.post(f"{API}/v1/notifications/verify-webhook-signature").respond(
                200, json={"verification_status": "SUCCESS"}
            )
            resource = delivery.event["resource"]
            router.get(f"{API}/v2/payments/captures/{resource.get('id')}").respond(200, json=resource)
            at = delivery.sent_at
            adapter = PayPalProvider(
                "c", "s", delivery.webhook_id, http_client=httpx.Client(), clock=lambda: at, webhook_verification="api"
            )

            adapter.parse_webhook(delivery.body, delivery.headers)

        sent = json.loads(verify.calls[0].request.content)
        assert delivery.event == sent["webhook_event"]
        assert delivery.headers["paypal-transmission-sig"] == sent["transmission_sig"]


def test_the_simulator_capture_is_confirmed_and_normalized() -> None:
    delivery = next(d for d in DELIVERIES if d.event["event_type"] == "PAYMENT.CAPTURE.COMPLETED")
    home = PayPalAtHome(delivery)
    at = delivery.sent_at
    adapter = PayPalProvider(
        "c", "s", delivery.webhook_id, http_client=httpx.Client(transport=httpx.MockTransport(home)), clock=lambda: at
    )

    event = adapter.parse_webhook(delivery.body, delivery.headers)

    assert (EventKind.PAYMENT, PaymentStatus.SUCCEEDED, "1AB234567A1234567", Money.of("30", "USD")) == (
        event.kind,
        event.status,
        event.provider_ref,
        event.amount_captured,
    )
    assert "/v2/payments/captures/12A34567BC123456S" in [r.url.path for r in home.requests]


# -- KNET -----------------------------------------------------------------------

IMPLEMENTATIONS = ("srku14", "asciisd", "alnazer")


@pytest.mark.parametrize("vector", KNET["encrypt"], ids=lambda v: f"{v['name']}-{v['key']}")
def test_knet_trandata_encryption_matches_the_kit_and_plugins(vector: dict[str, str]) -> None:
    ours = encrypt_trandata(vector["plain"], vector["key"])

    assert [ours] * 3 == [vector[name] for name in IMPLEMENTATIONS]


@pytest.mark.parametrize("vector", KNET["decrypt"], ids=lambda v: f"{v['key']}-{v['hex'][:12]}")
def test_knet_trandata_decryption_matches_the_kit_and_plugins(vector: dict[str, str]) -> None:
    ours = decrypt_trandata(vector["hex"], vector["key"])

    assert [ours] * 3 == [vector[name] for name in IMPLEMENTATIONS]


def _knet_vector(name: str) -> dict[str, str]:
    return next(v for v in KNET["encrypt"] if v["name"] == name)


def test_knet_payment_request_is_the_kits_byte_for_byte() -> None:
    vector = _knet_vector("kit_request")
    plain = dict(pair.split("=", 1) for pair in vector["plain"].split("&"))
    provider = KnetProvider(
        plain["id"],
        plain["password"],
        vector["key"],
        response_url=plain["responseURL"],
        error_url=plain["errorURL"],
        receipt_url="https://shop.example/knet/receipt",
    )

    created = provider.create_payment(
        CreatePaymentRequest(
            payment_id=plain["trackid"],
            user_id="u1",
            amount=Money.of(plain["amt"], "KWD"),
            capture_method="automatic",
            idempotency_key="k",
            metadata={"udf1": plain["udf1"]},
        )
    )

    query = dict(parse_qsl(urlsplit(created.redirect_url or "").query))
    assert vector["srku14"] == query["trandata"]
    assert vector["plain"] == decrypt_trandata(query["trandata"], vector["key"])


KNET_RESPONSES = [
    ("k064_captured", "CAPTURED", PaymentStatus.SUCCEEDED),
    ("k064_captured", "SUCCESS", PaymentStatus.SUCCEEDED),
    ("alnazer_real_captured", "CAPTURED", PaymentStatus.SUCCEEDED),
    ("k064_not_captured", "NOT CAPTURED", PaymentStatus.FAILED),
    ("k064_host_timeout", "CAPTURED", PaymentStatus.SUCCEEDED),
    ("k064_host_timeout", "FAILURE", PaymentStatus.FAILED),
    ("k064_canceled", "CANCELED", PaymentStatus.CANCELED),
]


@pytest.fixture
def tranpipe() -> Iterator[respx.MockRouter]:
    with respx.mock() as router:
        yield router


@pytest.mark.parametrize(("name", "inquiry", "status"), KNET_RESPONSES)
def test_knet_manual_responses_are_read(
    tranpipe: respx.MockRouter, name: str, inquiry: str, status: PaymentStatus
) -> None:
    vector = _knet_vector(name)
    fields = dict(parse_qsl(vector["plain"], keep_blank_values=True))
    reply = {"result": inquiry, "payid": fields["paymentid"], "trackid": fields["trackid"], "amt": fields["amt"]}
    route = tranpipe.post("https://www.kpaytest.com.kw/kpg/tranPipe.htm?param=tranInit").respond(
        200, text="".join(f"<{k}>{v}</{k}>" for k, v in reply.items())
    )
    provider = KnetProvider(
        "123456",
        "123456pg",
        vector["key"],
        response_url="https://shop.example/knet/response",
        error_url="https://shop.example/knet/error",
        receipt_url="https://shop.example/knet/receipt",
    )
    body = f"paymentid={fields['paymentid']}&trackid={fields['trackid']}&trandata={vector['srku14']}".encode()

    event = provider.parse_webhook(body, {})

    assert (status, fields["trackid"]) == (event.status, event.provider_ref)
    assert 1 == route.call_count
    assert event.reply_body == (
        f"REDIRECT=https://shop.example/knet/receipt?paymentid={fields['paymentid']}&trackid={fields['trackid']}"
    )
