"""handle_webhook under hostile input: it never raises, never answers 5xx unless storage is down, never writes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paykit import Money, Payment, PaymentService, PaymentStatus, StorageError
from paykit.storage import MemoryStorage
from paykit.testing import FakeProvider, ManualClock
from paykit.testing._fake import SIGNATURE_HEADER
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
