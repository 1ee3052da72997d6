"""KnetFake: the real KNET adapters against a stateful KNET Tranportal (payment page, response POST, tranPipe)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qsl

import httpx
import pytest

from paykit import AsyncPaymentService, Money, PaykitError, PaymentService, PaymentStatus, RefundStatus
from paykit.providers._knet_crypto import decrypt_trandata
from paykit.storage import AsyncMemoryStorage, MemoryStorage
from paykit.testing import Fault, KnetFake, assert_consistent
from paykit.webhooks import ahandle_webhook, handle_webhook

KWD = "KWD"


def make_service(fake: KnetFake) -> PaymentService:
    return PaymentService(storage=MemoryStorage(), providers=[fake.provider()], clock=fake.clock)


def checkout(service: PaymentService, fake: KnetFake, amount: str = "12.500", key: str = "o1") -> tuple[str, str]:
    payment = service.initialize_payment(
        user_id="u1", amount=Money.of(amount, KWD), provider="knet", idempotency_key=key
    )
    return payment.id, fake.open(payment.redirect_url or "")


def deliver(service: PaymentService, fake: KnetFake) -> list[httpx.Response]:
    return [handle_webhook(service, "knet", *fake.signed(d)) for d in fake.take_deliveries()]


def test_the_gateway_decrypts_the_payment_request_with_the_resource_key() -> None:
    fake = KnetFake()
    service = make_service(fake)
    payment_id, track_id = checkout(service, fake)

    request = fake.initialized[track_id]
    assert (request["action"], request["amt"], request["currencycode"]) == ("1", "12.500", "414")
    assert request["responseURL"] == "https://shop.example/knet/response"
    assert service.get_payment(payment_id).provider_ref == track_id


def test_a_request_of_another_terminal_is_refused() -> None:
    fake = KnetFake()
    other = KnetFake(resource_key="ANOTHERKEY000016")
    payment = make_service(other).initialize_payment(
        user_id="u1", amount=Money.of("1.000", KWD), provider="knet", idempotency_key="o1"
    )
    wrong_password = KnetFake(tranportal_password="other")
    payment_2 = make_service(wrong_password).initialize_payment(
        user_id="u1", amount=Money.of("1.000", KWD), provider="knet", idempotency_key="o1"
    )
    wrong_password.tranportal_password = "paykit-fake"

    with pytest.raises(ValueError, match="decrypt"):
        fake.open(payment.redirect_url or "")
    with pytest.raises(ValueError, match="refuse"):
        wrong_password.open(payment_2.redirect_url or "")
    assert fake.initialized == {}


def test_the_browser_opening_the_payment_page_is_served_too() -> None:
    fake = KnetFake()
    payment = make_service(fake).initialize_payment(
        user_id="u1", amount=Money.of("2.000", KWD), provider="knet", idempotency_key="o1"
    )

    page = httpx.Client(transport=fake.transport).get(payment.redirect_url or "")

    assert page.status_code == 200
    assert list(fake.initialized) == [payment.provider_ref]


def test_a_captured_payment_is_posted_encrypted_and_confirmed_by_inquiry() -> None:
    fake = KnetFake()
    service = make_service(fake)
    payment_id, track_id = checkout(service, fake)

    txn = fake.pay(track_id)
    (delivery,) = fake.take_deliveries()
    form = dict(parse_qsl(delivery.body.decode()))
    decrypted = dict(
        pair.partition("=")[::2] for pair in decrypt_trandata(form["trandata"], fake.resource_key).split("&")
    )
    answer = handle_webhook(service, "knet", *fake.signed(delivery))

    assert (form["paymentid"], form["trackid"]) == (txn.paymentid, track_id)
    assert (decrypted["result"], decrypted["amt"], decrypted["trackid"]) == ("CAPTURED", "12.500", track_id)
    assert answer.status_code == 200
    assert answer.body.startswith(b"REDIRECT=https://shop.example/knet/receipt?")
    assert [(r["action"], r["transid"]) for r in fake.requests] == [("8", txn.paymentid)]
    payment = service.get_payment(payment_id)
    assert (payment.status, payment.captured_minor) == (PaymentStatus.SUCCEEDED, 12500)
    assert assert_consistent(service, fake) == 1


@pytest.mark.parametrize(("result", "status"), [("NOT CAPTURED", PaymentStatus.FAILED), ("CANCELED", None)])
def test_a_payment_that_failed_at_the_gateway_fails_here(result: str, status: PaymentStatus | None) -> None:
    fake = KnetFake()
    service = make_service(fake)
    payment_id, track_id = checkout(service, fake)

    fake.pay(track_id, result)
    (answer,) = deliver(service, fake)

    assert answer.status_code == 200
    payment = service.get_payment(payment_id)
    assert payment.status in ({status} if status else {PaymentStatus.CANCELED, PaymentStatus.FAILED})
    assert payment.captured_minor == 0
    assert assert_consistent(service, fake) == 1


def test_refunds_are_made_until_the_capture_is_used_up_never_above() -> None:
    fake = KnetFake()
    service = make_service(fake)
    payment_id, track_id = checkout(service, fake, "10.000")
    fake.pay(track_id)
    deliver(service, fake)

    first = service.refund_payment(payment_id, amount=Money.of("4.000", KWD))
    second = service.refund_payment(payment_id, amount=Money.of("6.000", KWD))
    over = httpx.Client(transport=fake.transport).post(
        "https://www.kpaytest.com.kw/kpg/tranPipe.htm?param=tranInit",
        content=(
            f"<id>{fake.tranportal_id}</id><password>{fake.tranportal_password}</password><action>2</action>"
            f"<amt>0.001</amt><transid>{fake.transaction_of(track_id).paymentid}</transid>"  # type: ignore[union-attr]
            f"<trackid>{track_id}</trackid><udf5>PaymentID</udf5>"
        ).encode(),
    )

    assert (first.status, second.status) == (RefundStatus.SUCCEEDED, RefundStatus.SUCCEEDED)
    assert first.provider_ref == fake.refunds[0].tranid
    assert [r.fils for r in fake.refunds] == [4000, 6000]
    assert over.text.startswith("<result>FAILURE")
    assert [r["action"] for r in fake.requests][-3:] == ["2", "2", "2"]
    assert service.get_payment(payment_id).status is PaymentStatus.REFUNDED
    assert assert_consistent(service, fake) == 1


def test_a_payment_not_captured_cannot_be_refunded() -> None:
    fake = KnetFake()
    service = make_service(fake)
    payment_id, track_id = checkout(service, fake)
    fake.pay(track_id, "NOT CAPTURED")
    deliver(service, fake)

    with pytest.raises(PaykitError):
        service.refund_payment(payment_id, amount=Money.of("1.000", KWD))
    assert fake.refunds == []


def test_a_track_id_is_captured_once() -> None:
    fake = KnetFake()
    service = make_service(fake)
    _, track_id = checkout(service, fake)
    fake.pay(track_id, "NOT CAPTURED")
    fake.pay(track_id)

    with pytest.raises(ValueError, match="already captured"):
        fake.pay(track_id)
    with pytest.raises(KeyError):
        fake.pay("NEVEROPENED")


def test_a_lost_response_post_is_made_up_for_by_reconcile() -> None:
    fake = KnetFake()
    service = make_service(fake)
    payment_id, track_id = checkout(service, fake)
    fake.pay(track_id)
    fake.take_deliveries()  # the customer closed the browser: the merchant never hears

    fake.clock.advance(minutes=5)
    service.reconcile(older_than=timedelta(minutes=1))

    assert service.get_payment(payment_id).status is PaymentStatus.SUCCEEDED
    assert [(r["action"], r["udf5"]) for r in fake.requests] == [("8", "TrackID")]


def test_an_inquiry_knet_cannot_answer_makes_the_delivery_retried() -> None:
    fake = KnetFake()
    service = make_service(fake)
    payment_id, track_id = checkout(service, fake)
    fake.pay(track_id)
    (delivery,) = fake.take_deliveries()
    fake.inject(Fault.UNAVAILABLE_503, on="retrieve")

    refused = handle_webhook(service, "knet", *fake.signed(delivery))
    accepted = handle_webhook(service, "knet", *fake.signed(delivery))

    assert refused.status_code >= 500
    assert accepted.status_code == 200
    assert service.get_payment(payment_id).status is PaymentStatus.SUCCEEDED


def test_a_forged_response_is_refused() -> None:
    fake = KnetFake()
    service = make_service(fake)
    payment_id, track_id = checkout(service, fake)
    fake.pay(track_id, "NOT CAPTURED")
    (delivery,) = fake.take_deliveries()

    assert handle_webhook(service, "knet", *fake.forged(delivery)).status_code == 400
    assert service.get_payment(payment_id).status is PaymentStatus.REQUIRES_ACTION


@pytest.mark.anyio
async def test_the_async_adapter_runs_against_the_same_fake() -> None:
    fake = KnetFake()
    service = AsyncPaymentService(storage=AsyncMemoryStorage(), providers=[fake.async_provider()], clock=fake.clock)
    payment = await service.initialize_payment(
        user_id="u1", amount=Money.of("3.250", KWD), provider="knet", idempotency_key="o1"
    )
    fake.pay(fake.open(payment.redirect_url or ""))

    answers = [(await ahandle_webhook(service, "knet", *fake.signed(d))).status_code for d in fake.take_deliveries()]
    refund = await service.refund_payment(payment.id, amount=Money.of("1.000", KWD))

    assert answers == [200]
    assert refund.status is RefundStatus.SUCCEEDED
    payment = await service.get_payment(payment.id)
    assert (payment.status, payment.captured_minor, payment.refunded_minor) == (
        PaymentStatus.PARTIALLY_REFUNDED,
        3250,
        1000,
    )
    assert [r["action"] for r in fake.requests] == ["8", "2"]
