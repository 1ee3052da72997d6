"""handle_webhook under hostile input: it never raises, never answers 5xx unless storage is down, never writes."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paykit import Money, Payment, PaymentService, PaymentStatus, StorageError
from paykit.providers._knet_crypto import encrypt_trandata
from paykit.storage import MemoryStorage
from paykit.testing import FakeProvider, ManualClock
from paykit.testing._fake_values import SIGNATURE_HEADER
from paykit.testing._stripe import sign_stripe_webhook
from paykit.webhooks import WebhookResponse, handle_webhook

from . import Shop

LIMIT = 1024
_READS = ("get_", "find_", "list_", "ping", "payment_stats")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class SpyStorage(MemoryStorage):
    """MemoryStorage that records the name of every write it is asked to do."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name.startswith("_") or name.startswith(_READS) or not callable(attribute):
            return attribute
        super().__getattribute__("writes").append(name)
        return attribute


class FlakyStorage(MemoryStorage):
    """A storage that answers reads but fails the next ``failures`` writes, as a MongoDB failover would."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name.startswith("_") or name.startswith(_READS) or not callable(attribute) or self.failures <= 0:
            return attribute

        def fail(*args: object, **kwargs: object) -> Any:
            self.failures -= 1
            raise StorageError("primary stepped down")

        return fail


@dataclass
class SpyShop(Shop):
    """A shop with one PROCESSING payment whose storage reports every write from here on."""

    spy: SpyStorage = field(default_factory=SpyStorage)
    payment: Payment = field(init=False)

    def __post_init__(self) -> None:
        self.storage = self.spy
        super().__post_init__()
        self.payment = self.processing_payment()
        self.spy.writes.clear()

    def snapshot(self) -> tuple[Any, ...]:
        payment = self.service.get_payment(self.payment.id)
        return payment, self.service.audit_trail(payment.id), self.service.metrics().as_dict()


@pytest.fixture
def shop() -> Iterator[SpyShop]:
    shop = SpyShop()
    yield shop
    shop.close()


def assert_harmless(shop: SpyShop, call: Callable[[], WebhookResponse], allowed: set[int]) -> None:
    """The call answers one of ``allowed`` statuses and leaves storage exactly as it was."""
    before = shop.snapshot()
    response = call()
    assert response.status_code in allowed, response
    assert [] == shop.spy.writes
    assert before == shop.snapshot()


header_names = st.sampled_from([SIGNATURE_HEADER, SIGNATURE_HEADER.upper(), "content-type", "x-other"]) | st.text(
    max_size=20
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
header_maps = st.dictionaries(header_names, st.text(max_size=120), max_size=5)


class TestRandomInput:
    """Random bytes and headers are refused with 400 or 413 and write nothing."""

    @FUZZ
    @given(body=st.binary(max_size=2 * LIMIT), headers=header_maps)
    def test_random_bytes_and_headers(self, shop: SpyShop, body: bytes, headers: dict[str, str]) -> None:
        assert_harmless(
            shop, lambda: handle_webhook(shop.service, "fake", body, headers, max_body_bytes=LIMIT), {400, 413}
        )

    @FUZZ
    @given(body=st.binary(max_size=256), pairs=st.lists(st.tuples(header_names, st.text(max_size=60)), max_size=6))
    def test_headers_as_pairs(self, shop: SpyShop, body: bytes, pairs: list[tuple[str, str]]) -> None:
        assert_harmless(shop, lambda: handle_webhook(shop.service, "fake", body, pairs), {400})

    @FUZZ
    @given(provider=st.text(max_size=30).filter(lambda name: name != "fake"), body=st.binary(max_size=64))
    def test_unknown_provider(self, shop: SpyShop, provider: str, body: bytes) -> None:
        assert_harmless(shop, lambda: handle_webhook(shop.service, provider, body, {}), {404})

    @FUZZ
    @given(size=st.integers(min_value=LIMIT + 1, max_value=4 * LIMIT))
    def test_oversized_bodies_are_refused_before_verification(self, shop: SpyShop, size: int) -> None:
        hook = shop.succeeded(shop.payment)
        body = hook.body + b" " * (size - len(hook.body))
        signed = shop.fake.sign(body)
        assert_harmless(shop, lambda: handle_webhook(shop.service, "fake", body, signed, max_body_bytes=LIMIT), {413})


class TestDamagedWebhooks:
    """Truncated, tampered or re-signed garbage never gets past verification and parsing."""

    @FUZZ
    @given(data=st.data())
    def test_truncated_body_with_its_original_signature(self, shop: SpyShop, data: st.DataObject) -> None:
        hook = shop.succeeded(shop.payment)
        cut = data.draw(st.integers(min_value=0, max_value=len(hook.body) - 1))
        assert_harmless(shop, lambda: handle_webhook(shop.service, "fake", hook.body[:cut], hook.headers), {400})

    @FUZZ
    @given(data=st.data())
    def test_truncated_body_signed_again(self, shop: SpyShop, data: st.DataObject) -> None:
        hook = shop.succeeded(shop.payment)
        body = hook.body[: data.draw(st.integers(min_value=0, max_value=len(hook.body) - 1))]
        signed = shop.fake.sign(body)
        assert_harmless(shop, lambda: handle_webhook(shop.service, "fake", body, signed), {400})

    @FUZZ
    @given(data=st.data())
    def test_one_flipped_byte(self, shop: SpyShop, data: st.DataObject) -> None:
        hook = shop.succeeded(shop.payment)
        at = data.draw(st.integers(min_value=0, max_value=len(hook.body) - 1))
        flip = data.draw(st.integers(min_value=1, max_value=255))
        body = hook.body[:at] + bytes([hook.body[at] ^ flip]) + hook.body[at + 1 :]
        assert_harmless(shop, lambda: handle_webhook(shop.service, "fake", body, hook.headers), {400})

    @FUZZ
    @given(event=json_values)
    def test_signed_json_that_is_no_event(self, shop: SpyShop, event: Any) -> None:
        body = json.dumps(event).encode()
        signed = shop.fake.sign(body)
        assert_harmless(shop, lambda: handle_webhook(shop.service, "fake", body, signed), {400})

    def test_signed_event_with_another_amount(self, shop: SpyShop) -> None:
        hook = shop.fake.webhook(shop.payment, PaymentStatus.SUCCEEDED, amount=Money.of("0.01", "USD"))
        assert_harmless(shop, lambda: handle_webhook(shop.service, "fake", hook.body, hook.headers), {400})

    def test_expired_signature(self, shop: SpyShop) -> None:
        hook = shop.succeeded(shop.payment)
        shop.clock.advance(minutes=6)
        assert_harmless(shop, lambda: handle_webhook(shop.service, "fake", hook.body, hook.headers), {400})


class TestHeaderCase:
    """Header names match in any case."""

    @FUZZ
    @given(flips=st.lists(st.booleans(), min_size=len(SIGNATURE_HEADER), max_size=len(SIGNATURE_HEADER)))
    def test_signature_header_in_any_case(self, flips: list[bool]) -> None:
        shop = Shop()
        payment = shop.processing_payment()
        hook = shop.succeeded(payment)
        name = "".join(c.upper() if up else c for c, up in zip(SIGNATURE_HEADER, flips, strict=True))

        response = handle_webhook(shop.service, "fake", hook.body, {name: hook.headers[SIGNATURE_HEADER]})
        shop.close()

        assert (200, "applied") == (response.status_code, response.outcome)


class TestStorageOutage:
    """Only a storage outage answers 5xx: 503 with retry-after, and the provider's retry then lands once."""

    def test_write_failure_is_503_and_the_retry_applies_once(self) -> None:
        clock = ManualClock()
        storage = FlakyStorage()
        fake = FakeProvider(clock=clock.unix)
        with PaymentService(storage=storage, providers=[fake], clock=clock) as service:
            fake.behavior = "processing"
            payment = service.initialize_payment(user_id="u1", amount=Money.of("5.00", "EUR"), provider="fake")
            payment = service.confirm_payment(payment.id, payment_method="pm_card_visa")
            hook = fake.webhook(payment, PaymentStatus.SUCCEEDED)
            storage.failures = 1

            outage = handle_webhook(service, "fake", hook.body, hook.headers)
            retry = handle_webhook(service, "fake", hook.body, hook.headers)
            again = handle_webhook(service, "fake", hook.body, hook.headers)

            assert (503, "30") == (outage.status_code, outage.headers["retry-after"])
            assert [(200, "applied"), (200, "duplicate")] == [(r.status_code, r.outcome) for r in (retry, again)]
            assert PaymentStatus.SUCCEEDED == service.get_payment(payment.id).status

    @FUZZ
    @given(body=st.binary(max_size=256), headers=header_maps)
    def test_bad_input_during_an_outage_is_still_400(self, body: bytes, headers: dict[str, str]) -> None:
        storage = FlakyStorage()
        storage.failures = 10**6
        with PaymentService(storage=storage, providers=[FakeProvider()]) as service:
            response = handle_webhook(service, "fake", body, headers)

        assert 400 == response.status_code


def _no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"bad input made a network call: {request.method} {request.url}")


@pytest.fixture
def real_providers() -> Iterator[PaymentService]:
    """Stripe and PayPal adapters whose HTTP client fails the test on any request."""
    from paykit.providers import PayPalProvider, Provider, StripeProvider

    http = httpx.Client(transport=httpx.MockTransport(_no_network))
    providers: list[Provider] = [
        StripeProvider("sk_test_fuzz", webhook_secrets=["whsec_fuzz"], http_client=http),
        PayPalProvider("client", "secret", "WH-FUZZ", http_client=http),
    ]
    with PaymentService(storage=SpyStorage(), providers=providers) as service:
        yield service
    http.close()


class TestRealProviders:
    """Random bytes and headers sent to the Stripe and PayPal routes are refused offline and write nothing."""

    @FUZZ
    @given(
        provider=st.sampled_from(["stripe", "paypal"]),
        body=st.binary(max_size=512) | json_values.map(lambda value: json.dumps(value).encode()),
        headers=st.dictionaries(
            st.sampled_from(["stripe-signature", "paypal-transmission-id", "paypal-transmission-sig",
                             "paypal-cert-url", "paypal-auth-algo", "paypal-transmission-time"]) | st.text(max_size=10),
            st.text(max_size=80),
            max_size=6,
        ),
    )  # fmt: skip
    def test_random_requests(
        self, real_providers: PaymentService, provider: str, body: bytes, headers: dict[str, str]
    ) -> None:
        response = handle_webhook(real_providers, provider, body, headers)

        assert 400 == response.status_code
        storage = real_providers.storage
        assert isinstance(storage, SpyStorage)
        assert [] == storage.writes


# -- volume: 100,000 hostile requests over Stripe, PayPal and KNET --------------
#
# Seeded random.Random, not hypothesis: volume, not shrinking. Every request goes
# to a service holding the three real adapters, directly through handle_webhook
# and through the Flask, Starlette and Django integrations, each driven at its
# WSGI or ASGI entry point so that headers with CR/LF or non-ASCII bytes arrive as
# a server would pass them. Each answer must be < 500, a refusal must write
# nothing, and no request may take a second.

VOLUME = {"direct": 55_000, "flask": 15_000, "django": 15_000, "starlette": 15_000}
"""Requests per channel; 100,000 in all."""
VOLUME_LIMIT = 2048
STRIPE_SECRET = "whsec_fuzz_volume"
KNET_KEY = "FUZZKEY123456789"
KNET_TRANPIPE = "https://www.kpaytest.com.kw/kpg/tranPipe.htm?param=tranInit"
_UNICODE = "é\u00b9\u00b2\u0661\u0662\uff11\u200b\u202e\ufeff\U0001f4b8\x00\x7f\t"


@dataclass
class Figures:
    """What the volume run measured, per channel."""

    requests: int = 0
    refused: int = 0
    max_seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)


class Hostile:
    """Hostile webhook requests for stripe, paypal and knet, from a seeded generator."""

    def __init__(self, rng: Any, signer: Any) -> None:
        self.rng = rng
        self.signer = signer

    # -- bodies ----------------------------------------------------------------

    def _event_json(self) -> bytes:
        rng = self.rng
        event = {
            "id": rng.choice(["evt_1", "WH-1", "", 5, None, "x" * rng.randint(0, 300)]),
            "type": rng.choice(["payment_intent.succeeded", "charge.refunded", "x", 0]),
            "event_type": rng.choice(
                ["PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.REFUNDED", "CHECKOUT.ORDER.COMPLETED"]
            ),
            "created": rng.choice([1, -1, 2**70, 10**18, "1", 1.5]),
            "resource": {"id": rng.choice(["3C679366HH908993F", "../v1/oauth2/token?x=", "é", ""]), "links": []},
            "data": {"object": {"id": "pi_1", "status": rng.choice(["succeeded", "??", None]), "amount": 1250}},
        }
        return json.dumps(event).encode()

    def body(self) -> bytes:
        rng = self.rng
        kind = rng.randrange(10)
        if kind == 0:
            return rng.randbytes(rng.randint(0, 400))
        if kind == 1:
            size = VOLUME_LIMIT + rng.randint(-3, 3)
            return (self._event_json() + b" " * size)[:size] if rng.random() < 0.5 else rng.randbytes(size)
        if kind == 2:
            body = bytearray(self._event_json())
            at = rng.randrange(len(body))
            body[at:at] = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80"])
            return bytes(body)
        if kind == 3:
            depth = rng.randint(20, 1000)
            return rng.choice([b"[" * depth + b"]" * depth, b'{"a":' * (depth // 5) + b"1" + b"}" * (depth // 5)])
        if kind == 4:
            number = rng.choice(
                [b"1e999999", b"-1e400", b"9" * rng.randint(300, 1900), b"NaN", b"Infinity", b"1e-99999"]
            )
            return b'{"id": "evt_1", "type": "payment_intent.succeeded", "amount": ' + number + b"}"
        if kind == 5:
            return rng.choice([b'{"id": "\\ud800"}', b'{"\\udfff": 1}', b'{"id": "a", "id": "b"}', b'"\\ud83d"'])
        if kind == 6:
            body = bytearray(self._event_json())
            for _ in range(rng.randint(1, 4)):
                body[rng.randrange(len(body))] = rng.randrange(256)
            return bytes(body)
        if kind == 7:
            return "".join(rng.choice(_UNICODE + '{}[]":,0a') for _ in range(rng.randint(0, 200))).encode(
                "utf-8", "surrogatepass"
            )
        if kind == 8:
            return self._event_json()
        return b""

    # -- headers ---------------------------------------------------------------

    def _text(self, limit: int = 60) -> str:
        rng = self.rng
        return "".join(rng.choice(_UNICODE + "\r\n ,=;:/@abcXYZ019") for _ in range(rng.randint(0, limit)))

    def _noise(self, headers: dict[str, str]) -> dict[str, str]:
        rng = self.rng
        for _ in range(rng.randint(0, 2)):
            name = rng.choice(["x-fuzz", "content-type", "X-\u00e9", "x-a\r\nx-b", "x" * 200])
            headers[name] = self._text(rng.choice([10, 300]))
        return headers

    def stripe(self, body: bytes) -> dict[str, str]:
        rng = self.rng
        now = int(time.time())
        header = rng.choice(
            [
                f"t={now},v1={'0' * 64}",
                f"t={now},v1=\u00e9{'0' * 63}",
                "t=\u00b9\u00b2\u00b3,v1=" + "0" * 64,
                "t=" + "9" * rng.choice([19, 4300, 5000]) + ",v1=" + "0" * 64,
                f"t={now}\r\nv1=" + "0" * 64,
                f"t={now},v1=\ud800",
                self._text(),
                "",
            ]
        )
        if rng.random() < 0.3:
            header = sign_stripe_webhook(body, STRIPE_SECRET)["stripe-signature"]
        return self._noise({rng.choice(["stripe-signature", "Stripe-Signature", "STRIPE-SIGNATURE"]): header})

    def paypal(self, body: bytes) -> dict[str, str]:
        rng = self.rng
        if rng.random() < 0.3:
            headers = dict(self.signer.sign(body))
        else:
            headers = {
                "PAYPAL-AUTH-ALGO": rng.choice(["SHA256withRSA", "SHA1withRSA", self._text(10)]),
                "PAYPAL-CERT-URL": rng.choice(
                    [
                        "https://api.pay\tpal.com/v1/notifications/certs/CERT-1",
                        "https://user@api.paypal.com/certs/CERT-1",
                        "https://api.paypal.com:8443/certs/CERT-1",
                        "https://api.paypal.com\x00/certs/CERT-1",
                        "https://api.p\u0430ypal.com/certs/CERT-1",
                        "https://api.paypal.com/v1/notifications/certs/CERT-unknown",
                        self._text(),
                    ]
                ),
                "PAYPAL-TRANSMISSION-ID": rng.choice([str(rng.getrandbits(64)), self._text(40)]),
                "PAYPAL-TRANSMISSION-TIME": rng.choice(
                    [
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "\u0662\u0660\u0662\u0665-01-01T00:00:00Z",
                        "99999-01-01T00:00:00Z",
                        self._text(30),
                    ]
                ),
                "PAYPAL-TRANSMISSION-SIG": rng.choice(["c2ln", "not base64!", self._text(400)]),
            }
        if rng.random() < 0.2:
            name = rng.choice(list(headers))
            headers[name] = headers[name] + rng.choice(["\r\n", "\u00e9", " ", "\t", "\x00"])
        return self._noise(headers)

    def knet(self, body: bytes) -> tuple[bytes, dict[str, str]]:
        rng = self.rng
        kind = rng.randrange(6)
        if kind == 0:
            trandata = rng.randbytes(rng.randint(0, 300)).hex() + rng.choice(["", "0", "g", "\u00e9"])
            body = ("trandata=" + trandata).encode()
        elif kind == 1:
            plain = rng.choice(
                [
                    body.decode("latin-1"),
                    "paymentid=1<2&result=CAPTURED&trackid=T1&amt=12.500",
                    f"paymentid=100&result={rng.choice(['CAPTURED', 'WHAT', 'HOST TIMEOUT'])}&trackid=T1&amt="
                    + rng.choice(["1<2", "9" * 900, "\u0661.000", "12.500"]),
                    "paymentid=100&paymentid=101&result=CAPTURED&trackid=T1",
                ]
            )
            body = b"trandata=" + encrypt_trandata(plain, KNET_KEY).encode()
        elif kind == 2:
            body = b"trandata=" + encrypt_trandata("x", "ANOTHERKEY123456").encode() + b"&paymentid=1&trackid=T1"
        elif kind == 3:
            body = rng.choice([b"=&=&&", b"%" * 300, b"trandata", b"trandata=a&trandata=b", b"Error=&ErrorText="])
        return body, self._noise({"content-type": "application/x-www-form-urlencoded"})

    def request(self) -> tuple[str, bytes, dict[str, str]]:
        provider = self.rng.choice(["stripe", "paypal", "knet"])
        body = self.body()
        if provider == "stripe":
            return provider, body, self.stripe(body)
        if provider == "paypal":
            return provider, body, self.paypal(body)
        body, headers = self.knet(body)
        return provider, body, headers


def _wire_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Header names and values as bytes on the wire (UTF-8, as a client would send non-ASCII)."""
    return [(name.encode("utf-8", "surrogatepass").lower(), value.encode("utf-8", "surrogatepass"))
            for name, value in headers.items()]  # fmt: skip


def _wsgi_environ(path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/octet-stream",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in _wire_headers(headers):
        key = name.decode("latin-1").upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value.decode("latin-1")
        else:
            environ["HTTP_" + key] = value.decode("latin-1")
    return environ


def _call_wsgi(app: Any, environ: dict[str, Any]) -> int:
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(line)
        return lambda data: None

    result = app(environ, start_response)
    try:
        b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return int(status[0].split()[0])


async def _call_asgi(app: Any, path: str, body: bytes, headers: dict[str, str]) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-length", str(len(body)).encode()), *_wire_headers(headers)],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    sent = False
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


@pytest.fixture(scope="module")
def volume_setup() -> Iterator[tuple[PaymentService, SpyStorage, Any]]:
    """One service with the real Stripe, PayPal and KNET adapters on a write-spying storage."""
    from paykit.providers import KnetProvider, PayPalProvider, StripeProvider
    from paykit.testing import PayPalWebhookSigner

    signer = PayPalWebhookSigner("WH-FUZZ")

    def network(request: httpx.Request) -> httpx.Response:
        if str(request.url) == KNET_TRANPIPE:
            return httpx.Response(200, text="!ERROR!-IPAY0100263-Transaction not found")
        if request.url.host in {"api.paypal.com", "api-m.sandbox.paypal.com"}:
            return signer.handler(request)
        raise AssertionError(f"unexpected request {request.method} {request.url}")

    http = httpx.Client(transport=httpx.MockTransport(network))
    storage = SpyStorage()
    providers = [
        StripeProvider("sk_test_fuzz", webhook_secrets=[STRIPE_SECRET], http_client=http),
        PayPalProvider("client", "secret", "WH-FUZZ", http_client=http),
        KnetProvider(
            "123456", "pw123456", KNET_KEY,
            response_url="https://shop.example/knet/response", error_url="https://shop.example/knet/error",
            receipt_url="https://shop.example/knet/receipt", http_client=http,
        ),
    ]  # fmt: skip
    with PaymentService(storage=storage, providers=providers) as service:
        yield service, storage, signer
    http.close()


def _quiet_logs() -> None:
    """Drop log output for the volume run (the suite's autouse fixture restores the configuration)."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def _run_volume(
    channel: str,
    setup: tuple[PaymentService, SpyStorage, Any],
    send: Callable[[str, bytes, dict[str, str]], int],
) -> Figures:
    import random

    _, storage, signer = setup
    hostile = Hostile(random.Random(f"paykit-fuzz-{channel}"), signer)
    figures = Figures()
    for _ in range(VOLUME[channel]):
        provider, body, headers = hostile.request()
        writes = len(storage.writes)
        started = time.perf_counter()
        status = send(provider, body, headers)
        elapsed = time.perf_counter() - started
        figures.requests += 1
        figures.max_seconds = max(figures.max_seconds, elapsed)
        figures.statuses[status] = figures.statuses.get(status, 0) + 1
        assert status < 500, (channel, provider, body[:200], headers)
        if status != 200:
            figures.refused += 1
            assert writes == len(storage.writes), (channel, provider, storage.writes[writes:], body[:200], headers)
    print(f"\nfuzz {channel}: {figures}")  # the run's figures, shown with -s
    assert VOLUME[channel] == figures.requests
    # A guard against a request that hangs (a regex gone quadratic, a lock never released), not a speed target:
    # the speed figures live in benchmarks/, and a busy 2-core CI machine can stall any one request for a second.
    assert figures.max_seconds < 10.0, figures
    assert set(figures.statuses) <= {200, 400, 404, 413}, figures
    return figures


class TestHundredThousandHostileRequests:
    """100,000 hostile requests over all three providers, directly and through every integration."""

    def test_directly_through_handle_webhook(self, volume_setup: tuple[PaymentService, SpyStorage, Any]) -> None:
        _quiet_logs()
        service = volume_setup[0]

        def send(provider: str, body: bytes, headers: dict[str, str]) -> int:
            return handle_webhook(service, provider, body, headers, max_body_bytes=VOLUME_LIMIT).status_code

        _run_volume("direct", volume_setup, send)

    def test_through_flask(self, volume_setup: tuple[PaymentService, SpyStorage, Any]) -> None:
        import flask

        from paykit.integrations.flask import paykit_blueprint

        _quiet_logs()
        app = flask.Flask("paykit_fuzz")
        app.register_blueprint(
            paykit_blueprint(volume_setup[0], authorize=lambda request: False, max_body_bytes=VOLUME_LIMIT),
            url_prefix="/paykit",
        )

        def send(provider: str, body: bytes, headers: dict[str, str]) -> int:
            return _call_wsgi(app.wsgi_app, _wsgi_environ(f"/paykit/webhook/{provider}", body, headers))

        _run_volume("flask", volume_setup, send)

    def test_through_django(self, volume_setup: tuple[PaymentService, SpyStorage, Any]) -> None:
        from django.core.handlers.wsgi import WSGIHandler

        from .test_django import project

        _quiet_logs()
        with project(volume_setup[0]):
            app = WSGIHandler()

            def send(provider: str, body: bytes, headers: dict[str, str]) -> int:
                return _call_wsgi(app, _wsgi_environ(f"/paykit/webhook/{provider}", body, headers))

            _run_volume("django", volume_setup, send)

    def test_through_starlette(self, volume_setup: tuple[PaymentService, SpyStorage, Any]) -> None:
        from anyio.from_thread import start_blocking_portal
        from starlette.applications import Starlette
        from starlette.routing import Mount

        from paykit.integrations.starlette import paykit_routes

        _quiet_logs()
        routes = paykit_routes(volume_setup[0], authorize=lambda request: False, max_body_bytes=VOLUME_LIMIT)
        app = Starlette(routes=[Mount("/paykit", routes=routes)])

        # One event loop for the whole run; each request enters the ASGI app as a server sends it.
        with start_blocking_portal() as portal:

            def send(provider: str, body: bytes, headers: dict[str, str]) -> int:
                return portal.call(_call_asgi, app, f"/paykit/webhook/{provider}", body, headers)

            _run_volume("starlette", volume_setup, send)
