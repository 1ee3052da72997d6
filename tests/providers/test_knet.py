"""The KNET adapter, spoken in KNET's own wire formats."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from paykit import Money, PaymentService, PaymentStatus
from paykit._errors import (
    ConfigurationError,
    InvalidRequestError,
    InvalidStateError,
    ProviderError,
    ProviderUnavailableError,
    WebhookVerificationError,
)
from paykit._models import EventKind, Payment, Refund, RefundStatus
from paykit.providers import Provider
from paykit.providers._base import CreatePaymentRequest
from paykit.providers._knet_crypto import decrypt_trandata, encrypt_trandata
from paykit.providers._knet_wire import (
    derive_trackid,
    parse_tranpipe_reply,
    parse_xml_fields,
    receipt_redirect_line,
)
from paykit.providers.knet import KnetProvider
from paykit.storage import MemoryStorage
from paykit.testing import capture_logs
from paykit.testing._knet import FakeKnet, knet_error_body, knet_payment_request, knet_response_body
from paykit.webhooks import handle_webhook

KEY = "ABCDEFGHIJKLMNOP"
KEY_HEX = KEY.encode().hex()
TRANPORTAL_ID = "123456"
PASSWORD = "s3cretPW99"
TRANPIPE = "https://www.kpaytest.com.kw/kpg/tranPipe.htm?param=tranInit"
RESPONSE_URL = "https://shop.example/knet/response"
ERROR_URL = "https://shop.example/knet/error"
RECEIPT_URL = "https://shop.example/knet/receipt"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded"

# Computed with the openssl command line, independently of paykit:
#   printf %s "<plain>" | openssl enc -aes-128-cbc -K 4142434445464748494a4b4c4d4e4f50 \
#       -iv 4142434445464748494a4b4c4d4e4f50 | xxd -p | tr -d '\n'
OPENSSL_VECTORS = [
    ("id=12345&password=pw&action=1", "df51b94af10c4b7fc3332c4a382d36a28e962a90991ebce4bf1897afbd10c27c"),
    ("0123456789abcdef", "1c4ef560b49eac3d5f8a2ce0fa05c9e1e04675cbb25f7b4bc91e12eba6e42495"),
    (
        "paymentid=100&result=NOT CAPTURED&amt=12.500",
        "4dc7ac75bd7749bef11bd877089f1bbf6b998a1c09f41c27b0cb58d496398d367aa065c91042c69ee0c68213fc5c2eb4",
    ),
]


def make_provider(**overrides: Any) -> KnetProvider:
    kwargs: dict[str, Any] = {
        "response_url": RESPONSE_URL,
        "error_url": ERROR_URL,
        "receipt_url": RECEIPT_URL,
    }
    kwargs.update(overrides)
    return KnetProvider(TRANPORTAL_ID, PASSWORD, kwargs.pop("resource_key", KEY), **kwargs)


@pytest.fixture
def knet() -> FakeKnet:
    return FakeKnet(KEY, tranportal_id=TRANPORTAL_ID, tranportal_password=PASSWORD)


@pytest.fixture
def provider(knet: FakeKnet) -> Iterator[KnetProvider]:
    client = httpx.Client(transport=knet.transport())
    yield make_provider(http_client=client)
    client.close()


@pytest.fixture
def mocked() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def request_for(payment_id: str = "pay_0123456789abcdef01234567", **overrides: Any) -> CreatePaymentRequest:
    fields: dict[str, Any] = {
        "payment_id": payment_id,
        "user_id": "u1",
        "amount": Money.of("12.500", "KWD"),
        "capture_method": "automatic",
        "idempotency_key": f"init:{payment_id}",
    }
    fields.update(overrides)
    return CreatePaymentRequest(**fields)


def stored_payment(**overrides: Any) -> Payment:
    fields: dict[str, Any] = {
        "id": "pay_1",
        "user_id": "u1",
        "provider": "knet",
        "amount": Money.of("12.500", "KWD"),
        "status": PaymentStatus.SUCCEEDED,
        "provider_ref": "TRACK1",
        "captured_minor": 12500,
        "provider_data": {"paymentid": "100000000000001", "tranid": "200000000000002"},
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(overrides)
    return Payment(**fields)


def refund_of(amount: str, refund_id: str = "ref_1") -> Refund:
    return Refund(
        id=refund_id,
        payment_id="pay_1",
        user_id="u1",
        provider="knet",
        amount=Money.of(amount, "KWD"),
        created_at=NOW,
        updated_at=NOW,
    )


def xml_reply(**fields: str) -> httpx.Response:
    return httpx.Response(200, text="".join(f"<{k}>{v}</{k}>" for k, v in fields.items()))


def inquiry_reply(result: str = "CAPTURED", amt: str = "12.500", **extra: str) -> httpx.Response:
    fields = {
        "result": result,
        "auth": "B12345",
        "ref": "412345678901",
        "postdate": "0101",
        "tranid": "202412345678901",
        "payid": "100202412345678901",
        "trackid": "TRACK1",
        "amt": amt,
    }
    fields.update(extra)
    return xml_reply(**fields)


class TestEncryption:
    """trandata is AES-128-CBC, key = IV = resource key, PKCS#7, lowercase hex."""

    @pytest.mark.parametrize(("plain", "expected"), OPENSSL_VECTORS)
    def test_matches_frozen_openssl_vectors(self, plain: str, expected: str) -> None:
        assert expected == encrypt_trandata(plain, KEY)

    @pytest.mark.skipif(shutil.which("openssl") is None, reason="the frozen vectors cover machines without openssl")
    @pytest.mark.parametrize("plain", ["id=1&password=p&action=1&amt=0.100", "x" * 33, "udf1=طلب"])
    def test_matches_the_openssl_command_line(self, plain: str) -> None:
        openssl = subprocess.run(
            ["openssl", "enc", "-aes-128-cbc", "-K", KEY_HEX, "-iv", KEY_HEX],
            input=plain.encode(),
            capture_output=True,
            check=True,
        )
        assert openssl.stdout.hex() == encrypt_trandata(plain, KEY)
        back = subprocess.run(
            ["openssl", "enc", "-d", "-aes-128-cbc", "-K", KEY_HEX, "-iv", KEY_HEX],
            input=bytes.fromhex(encrypt_trandata(plain, KEY)),
            capture_output=True,
            check=True,
        )
        assert plain == back.stdout.decode()

    @settings(max_examples=50, deadline=None)
    @given(st.text(max_size=300))
    def test_round_trips(self, plain: str) -> None:
        assert plain == decrypt_trandata(encrypt_trandata(plain, KEY), KEY)

    def test_decrypt_accepts_uppercase_and_whitespace(self) -> None:
        plain, cipher = OPENSSL_VECTORS[0]
        assert plain == decrypt_trandata(f"  {cipher.upper()}\n", KEY)

    @pytest.mark.parametrize(
        "trandata",
        ["", "zz", "abc", "00" * 15, "00" * 17, OPENSSL_VECTORS[0][1][:-2], OPENSSL_VECTORS[0][1][:-2] + "00"],
    )
    def test_garbage_is_rejected(self, trandata: str) -> None:
        with pytest.raises(WebhookVerificationError):
            decrypt_trandata(trandata, KEY)

    def test_another_key_is_rejected(self) -> None:
        cipher = encrypt_trandata("paymentid=1&result=CAPTURED&trackid=T&amt=1.000", KEY)
        with pytest.raises(WebhookVerificationError):
            decrypt_trandata(cipher, "PONMLKJIHGFEDCBA")


class TestConfiguration:
    """Bad configuration fails at construction, with ConfigurationError."""

    @pytest.mark.parametrize("key", ["short", "A" * 17, "ABCDEFGHIJKLMNO\u00e9"])
    def test_resource_key_must_be_16_ascii_characters(self, key: str) -> None:
        with pytest.raises(ConfigurationError, match="16"):
            make_provider(resource_key=key)

    def test_production_requires_https(self) -> None:
        with pytest.raises(ConfigurationError, match="https"):
            make_provider(environment="production", response_url="http://shop.example/knet/response")

    @pytest.mark.parametrize("url", ["https://shop.example/r?x=1", "https://shop.example/r#top", "/relative"])
    def test_response_url_must_be_plain_and_absolute(self, url: str) -> None:
        with pytest.raises(ConfigurationError):
            make_provider(response_url=url)

    def test_receipt_url_may_carry_a_query(self) -> None:
        make_provider(receipt_url="https://shop.example/receipt?lang=en")

    @pytest.mark.parametrize("password", ["", "a&b", "a=b", "a<b", "a b"])
    def test_credentials_must_fit_knets_raw_formats(self, password: str) -> None:
        with pytest.raises(ConfigurationError):
            KnetProvider(
                TRANPORTAL_ID, password, KEY, response_url=RESPONSE_URL, error_url=ERROR_URL, receipt_url=RECEIPT_URL
            )

    @pytest.mark.parametrize(("name", "value"), [("environment", "staging"), ("language", "FR")])
    def test_environment_and_language_are_checked(self, name: str, value: str) -> None:
        with pytest.raises(ConfigurationError):
            make_provider(**{name: value})

    def test_http_client_must_be_sync_httpx(self) -> None:
        with pytest.raises(ConfigurationError):
            make_provider(http_client=object())

    def test_repr_shows_no_secret(self) -> None:
        text = repr(make_provider())
        assert PASSWORD not in text
        assert KEY not in text
        assert "KnetProvider(environment='test', langid='USA')" == text


class TestCapabilities:
    """KNET: KWD only, automatic capture, full and partial refunds."""

    def test_capabilities(self) -> None:
        caps = make_provider().capabilities
        expected = (frozenset({"KWD"}), False, True, True, False, False)
        actual = (
            caps.currencies,
            caps.manual_capture,
            caps.refunds,
            caps.partial_refunds,
            caps.saved_payment_methods,
            caps.server_side_confirm,
        )
        assert expected == actual

    def test_is_a_provider(self) -> None:
        provider = make_provider()
        assert isinstance(provider, Provider)
        assert "knet" == provider.name


class TestTrackid:
    """trackid: at most 40 alphanumerics, derived deterministically from the payment id."""

    def test_short_alphanumeric_id_is_kept(self) -> None:
        assert "ORDER42" == derive_trackid("ORDER42")

    def test_paykit_id_becomes_40_alphanumerics(self) -> None:
        trackid = derive_trackid("pay_0123456789abcdef01234567")
        assert 40 == len(trackid)
        assert trackid.isalnum()
        assert trackid.startswith("pay0123456789")

    def test_ids_differing_in_punctuation_get_different_trackids(self) -> None:
        assert derive_trackid("pay_1") != derive_trackid("pay1")
        assert derive_trackid("pay_1") != derive_trackid("pay-1")

    def test_empty_id_is_refused(self) -> None:
        with pytest.raises(InvalidRequestError):
            derive_trackid("")

    @given(st.text(min_size=1, max_size=120))
    def test_always_fits_knet(self, paykit_id: str) -> None:
        trackid = derive_trackid(paykit_id)
        assert 1 <= len(trackid) <= 40
        assert trackid.isascii()
        assert trackid.isalnum()
        assert trackid == derive_trackid(paykit_id)


class TestCreatePayment:
    """Initialization builds the encrypted request and the payment page URL."""

    def test_plain_text_is_exactly_knets_format(self) -> None:
        result = make_provider().create_payment(
            request_for("ORDER42", amount=Money.of("12.5", "KWD"), metadata={"udf1": "order 42", "udf3": "x"})
        )
        query = dict(parse_qsl(urlsplit(result.redirect_url or "").query))
        expected = (
            f"id={TRANPORTAL_ID}&password={PASSWORD}&action=1&langid=USA&currencycode=414&amt=12.500"
            f"&responseURL={RESPONSE_URL}&errorURL={ERROR_URL}&trackid=ORDER42"
            "&udf1=order 42&udf2=&udf3=x&udf4=&udf5="
        )
        assert expected == decrypt_trandata(query["trandata"], KEY)

    def test_redirect_url_and_result(self) -> None:
        result = make_provider().create_payment(request_for("ORDER42"))
        parts = urlsplit(result.redirect_url or "")
        query = dict(parse_qsl(parts.query))
        assert "https://kpaytest.com.kw/kpg/PaymentHTTP.htm" == f"{parts.scheme}://{parts.netloc}{parts.path}"
        assert ["param", "trandata", "tranportalId", "responseURL", "errorURL"] == list(query)
        assert ("paymentInit", TRANPORTAL_ID, RESPONSE_URL, ERROR_URL) == (
            query["param"],
            query["tranportalId"],
            query["responseURL"],
            query["errorURL"],
        )
        assert query["trandata"] == query["trandata"].lower()
        assert ("ORDER42", PaymentStatus.REQUIRES_ACTION) == (result.provider_ref, result.status)

    def test_production_arabic(self) -> None:
        result = make_provider(environment="production", language="AR").create_payment(request_for("ORDER42"))
        fields = knet_payment_request(result.redirect_url or "", KEY)
        assert (result.redirect_url or "").startswith("https://www.kpay.com.kw/kpg/PaymentHTTP.htm?")
        assert "AR" == fields["langid"]

    def test_same_request_same_url(self) -> None:
        provider = make_provider()
        assert (
            provider.create_payment(request_for()).redirect_url == provider.create_payment(request_for()).redirect_url
        )

    @pytest.mark.parametrize(("amount", "expected"), [("0.100", "0.100"), ("1", "1.000"), ("1234.567", "1234.567")])
    def test_amount_has_three_decimals(self, amount: str, expected: str) -> None:
        result = make_provider().create_payment(request_for(amount=Money.of(amount, "KWD")))
        assert expected == knet_payment_request(result.redirect_url or "", KEY)["amt"]

    def test_only_kwd(self, mocked: respx.MockRouter) -> None:
        with pytest.raises(InvalidRequestError, match="KWD"):
            make_provider().create_payment(request_for(amount=Money.of("12.50", "USD")))
        assert 0 == len(mocked.calls)

    def test_manual_capture_is_refused(self) -> None:
        with pytest.raises(InvalidRequestError):
            make_provider().create_payment(request_for(capture_method="manual"))

    @pytest.mark.parametrize("value", ["a@b", "a/b", "a&amt=0.001", "a=b", "x" * 256, "line\nbreak"])
    def test_invalid_udf_is_refused(self, value: str) -> None:
        with pytest.raises(InvalidRequestError, match="udf2"):
            make_provider().create_payment(request_for(metadata={"udf2": value}))

    def test_longest_udf_and_arabic_pass(self) -> None:
        result = make_provider().create_payment(request_for(metadata={"udf1": "x" * 255, "udf2": "طلب رقم 42"}))
        fields = knet_payment_request(result.redirect_url or "", KEY)
        assert ("x" * 255, "طلب رقم 42") == (fields["udf1"], fields["udf2"])


class TestResponseLeg:
    """The response POST is decrypted, confirmed by an inquiry, and answered with REDIRECT=."""

    def paid(self, provider: KnetProvider, knet: FakeKnet, result: str = "CAPTURED") -> bytes:
        init = provider.create_payment(request_for("ORDER42"))
        return knet.complete_payment(init.redirect_url or "", result=result)

    def test_captured_becomes_succeeded(self, provider: KnetProvider, knet: FakeKnet) -> None:
        event = provider.parse_webhook(self.paid(provider, knet), {})
        txn = next(iter(knet.transactions.values()))
        assert (EventKind.PAYMENT, PaymentStatus.SUCCEEDED) == (event.kind, event.status)
        assert ("ORDER42", f"{txn.paymentid}:CAPTURED") == (event.provider_ref, event.event_id)
        assert Money.of("12.500", "KWD") == event.amount == event.amount_captured
        assert {
            "paymentid": txn.paymentid,
            "tranid": txn.tranid,
            "ref": txn.ref,
            "auth": txn.auth,
            "postdate": txn.postdate,
        } == event.provider_data
        assert f"REDIRECT={RECEIPT_URL}?paymentid={txn.paymentid}&trackid=ORDER42" == event.reply_body
        assert "text/plain" == event.reply_content_type

    def test_inquiry_request_xml(self, mocked: respx.MockRouter) -> None:
        route = mocked.post(TRANPIPE).mock(return_value=inquiry_reply())
        body = knet_response_body(KEY, trackid="TRACK1", paymentid="100202412345678901")
        make_provider().parse_webhook(body, {})
        sent = route.calls.last.request
        expected = (
            f"<id>{TRANPORTAL_ID}</id><password>{PASSWORD}</password><action>8</action>"
            "<currencycode>414</currencycode><amt>12.500</amt><transid>100202412345678901</transid>"
            "<trackid>TRACK1</trackid><udf5>PaymentID</udf5>"
        )
        assert expected == sent.content.decode()
        assert "application/xml" == sent.headers["content-type"]

    @pytest.mark.parametrize(
        ("result", "status"), [("NOT CAPTURED", PaymentStatus.FAILED), ("CANCELED", PaymentStatus.CANCELED)]
    )
    def test_failures(self, provider: KnetProvider, knet: FakeKnet, result: str, status: PaymentStatus) -> None:
        event = provider.parse_webhook(self.paid(provider, knet, result), {})
        assert (status, result, None) == (event.status, event.failure_code, event.amount_captured)
        assert event.event_id.endswith(f":{result}")

    @pytest.mark.parametrize(
        ("knet_says", "status"), [("CAPTURED", PaymentStatus.SUCCEEDED), ("NOT CAPTURED", PaymentStatus.FAILED)]
    )
    def test_host_timeout_is_decided_by_inquiry(
        self, mocked: respx.MockRouter, knet_says: str, status: PaymentStatus
    ) -> None:
        mocked.post(TRANPIPE).mock(return_value=inquiry_reply(knet_says))
        body = knet_response_body(KEY, trackid="TRACK1", result="HOST TIMEOUT")
        event = make_provider().parse_webhook(body, {})
        assert (status, f"100202412345678901:{knet_says}") == (event.status, event.event_id)

    @pytest.mark.parametrize(
        ("claimed", "knet_says"), [("CAPTURED", "NOT CAPTURED"), ("NOT CAPTURED", "CAPTURED"), ("CAPTURED", "WHAT")]
    )
    def test_inquiry_must_agree(self, mocked: respx.MockRouter, claimed: str, knet_says: str) -> None:
        mocked.post(TRANPIPE).mock(return_value=inquiry_reply(knet_says))
        with pytest.raises(WebhookVerificationError):
            make_provider().parse_webhook(knet_response_body(KEY, trackid="TRACK1", result=claimed), {})

    @pytest.mark.parametrize(
        "reply",
        [
            {"amt": "1.000"},
            {"trackid": "OTHER"},
            {"payid": "999"},
        ],
    )
    def test_inquiry_mismatch_is_rejected(self, mocked: respx.MockRouter, reply: dict[str, str]) -> None:
        mocked.post(TRANPIPE).mock(return_value=inquiry_reply(**reply))
        with pytest.raises(WebhookVerificationError):
            make_provider().parse_webhook(knet_response_body(KEY, trackid="TRACK1"), {})

    @pytest.mark.parametrize(
        ("claimed", "accepted"),
        [("CANCELED", True), ("NOT CAPTURED", True), ("CAPTURED", False), ("HOST TIMEOUT", False)],
    )
    def test_failure_unknown_to_inquiry(self, mocked: respx.MockRouter, claimed: str, accepted: bool) -> None:
        mocked.post(TRANPIPE).mock(return_value=httpx.Response(200, text="!ERROR!-IPAY0100263-Transaction not found"))
        body = knet_response_body(KEY, trackid="TRACK1", result=claimed)
        if accepted:
            event = make_provider().parse_webhook(body, {})
            assert (claimed, "TRACK1") == (event.failure_code, event.provider_ref)
        else:
            with pytest.raises(ProviderError, match="IPAY0100263"):
                make_provider().parse_webhook(body, {})

    def test_every_tampered_byte_is_rejected(self, provider: KnetProvider, knet: FakeKnet) -> None:
        form = dict(parse_qsl(self.paid(provider, knet).decode()))
        cipher = bytes.fromhex(form["trandata"])
        accepted = []
        for position in range(len(cipher)):
            tampered = bytearray(cipher)
            tampered[position] ^= 0x01
            try:
                provider.parse_webhook(f"trandata={tampered.hex()}".encode(), {})
            except WebhookVerificationError:
                continue
            accepted.append(position)
        assert [] == accepted

    @pytest.mark.parametrize(
        "body",
        [
            b"",
            b"trandata=",
            b"trandata=zz",
            b"trandata=abcd",
            b"\xff\xfe",
            b"paymentid=1&trackid=T",
            b"trandata=a&trandata=b",
        ],
    )
    def test_garbage_is_rejected(self, mocked: respx.MockRouter, body: bytes) -> None:
        with pytest.raises(WebhookVerificationError):
            make_provider().parse_webhook(body, {})
        assert 0 == len(mocked.calls)

    def test_another_key_is_rejected(self, mocked: respx.MockRouter) -> None:
        body = knet_response_body("PONMLKJIHGFEDCBA", trackid="TRACK1")
        with pytest.raises(WebhookVerificationError):
            make_provider().parse_webhook(body, {})
        assert 0 == len(mocked.calls)

    def test_plain_ids_must_match_the_encrypted_ones(self, mocked: respx.MockRouter) -> None:
        body = knet_response_body(KEY, trackid="TRACK1", plain_ids=False) + b"&trackid=OTHER"
        with pytest.raises(WebhookVerificationError, match="trackid"):
            make_provider().parse_webhook(body, {})

    def test_missing_fields_are_rejected(self, mocked: respx.MockRouter) -> None:
        body = f"trandata={encrypt_trandata('result=CAPTURED&amt=1.000', KEY)}".encode()
        with pytest.raises(WebhookVerificationError, match="paymentid"):
            make_provider().parse_webhook(body, {})

    def test_unreachable_knet_is_retryable(self, mocked: respx.MockRouter) -> None:
        mocked.post(TRANPIPE).mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(ProviderUnavailableError) as info:
            make_provider().parse_webhook(knet_response_body(KEY, trackid="TRACK1"), {})
        assert (True, "knet") == (info.value.should_retry, info.value.provider)
        assert isinstance(info.value.__cause__, httpx.ReadTimeout)


class TestErrorLeg:
    """An unencrypted Error POST is never trusted: the adapter calls no one and believes nothing."""

    def test_an_error_post_is_an_unverified_hint(self, provider: KnetProvider, knet: FakeKnet) -> None:
        knet.add_transaction(trackid="TRACK1", amt="12.500")
        event = provider.parse_webhook(knet_error_body(trackid="TRACK1", error="IPAY0100055"), {})
        assert (EventKind.UNVERIFIED, None, "TRACK1", "IPAY0100055") == (
            event.kind,
            event.status,
            event.provider_ref,
            event.failure_code,
        )
        assert [] == knet.requests
        assert f"REDIRECT={RECEIPT_URL}?trackid=TRACK1" == event.reply_body

    def test_without_trackid(self, provider: KnetProvider, knet: FakeKnet) -> None:
        body = knet_error_body(trackid=None)
        event = provider.parse_webhook(body, {})
        assert (EventKind.UNVERIFIED, None, []) == (event.kind, event.provider_ref, knet.requests)
        assert event.event_id == provider.parse_webhook(body, {}).event_id

    def test_odd_trackid_is_dropped(self, provider: KnetProvider, knet: FakeKnet) -> None:
        event = provider.parse_webhook(knet_error_body(trackid="<x>&y"), {})
        assert (EventKind.UNVERIFIED, None, []) == (event.kind, event.provider_ref, knet.requests)
        assert f"REDIRECT={RECEIPT_URL}" == event.reply_body


class TestRetrievePayment:
    """retrieve_payment is an inquiry (used by reconcile)."""

    def test_by_payment_id_when_known(self, mocked: respx.MockRouter) -> None:
        route = mocked.post(TRANPIPE).mock(return_value=inquiry_reply(payid="100000000000001"))
        result = make_provider().retrieve_payment(stored_payment(status=PaymentStatus.REQUIRES_ACTION))
        assert (PaymentStatus.SUCCEEDED, Money.of("12.500", "KWD")) == (result.status, result.amount_captured)
        assert "100000000000001" == result.provider_data["paymentid"]
        sent = parse_xml_fields(route.calls.last.request.content.decode())
        assert ("8", "100000000000001", "PaymentID", "12.500") == (
            sent["action"],
            sent["transid"],
            sent["udf5"],
            sent["amt"],
        )

    def test_by_trackid_before_knet_answered(self, mocked: respx.MockRouter) -> None:
        route = mocked.post(TRANPIPE).mock(return_value=inquiry_reply("NOT CAPTURED"))
        result = make_provider().retrieve_payment(stored_payment(provider_data={}))
        assert (PaymentStatus.FAILED, "NOT CAPTURED", None) == (
            result.status,
            result.failure_code,
            result.amount_captured,
        )
        sent = parse_xml_fields(route.calls.last.request.content.decode())
        assert ("TRACK1", "TrackID") == (sent["transid"], sent["udf5"])

    def test_unknown_result_is_a_provider_error(self, mocked: respx.MockRouter) -> None:
        mocked.post(TRANPIPE).mock(return_value=inquiry_reply("SOMETHING NEW", payid="100000000000001"))
        with pytest.raises(ProviderError) as info:
            make_provider().retrieve_payment(stored_payment())
        assert "SOMETHING NEW" == info.value.code

    def test_another_transaction_is_a_provider_error(self, mocked: respx.MockRouter) -> None:
        mocked.post(TRANPIPE).mock(return_value=inquiry_reply(trackid="OTHER", payid="100000000000001"))
        with pytest.raises(ProviderError, match="another transaction"):
            make_provider().retrieve_payment(stored_payment())

    def test_knet_error_line(self, mocked: respx.MockRouter) -> None:
        mocked.post(TRANPIPE).mock(return_value=httpx.Response(200, text="!ERROR!-IPAY0100263-Transaction not found"))
        with pytest.raises(ProviderError) as info:
            make_provider().retrieve_payment(stored_payment())
        assert ("IPAY0100263", "KNET error IPAY0100263: Transaction not found") == (info.value.code, info.value.message)
        assert not isinstance(info.value, ProviderUnavailableError)

    @pytest.mark.parametrize("status", [500, 502, 503, 429])
    def test_server_errors_are_retryable_for_inquiries(self, mocked: respx.MockRouter, status: int) -> None:
        mocked.post(TRANPIPE).mock(return_value=httpx.Response(status, text="down"))
        with pytest.raises(ProviderUnavailableError) as info:
            make_provider().retrieve_payment(stored_payment())
        assert (status, True) == (info.value.http_status, info.value.should_retry)


class TestRefund:
    """Refunds (action 2), full and partial, over the tranPipe XML endpoint."""

    @pytest.mark.parametrize("amount", ["12.500", "2.000"])
    def test_request_xml(self, mocked: respx.MockRouter, amount: str) -> None:
        route = mocked.post(TRANPIPE).mock(
            return_value=xml_reply(result="CAPTURED", tranid="300000000000009", payid="100000000000001")
        )
        result = make_provider().refund_payment(stored_payment(), refund_of(amount), idempotency_key="r1")
        expected = (
            f"<id>{TRANPORTAL_ID}</id><password>{PASSWORD}</password><action>2</action>"
            f"<currencycode>414</currencycode><amt>{amount}</amt><transid>200000000000002</transid>"
            "<trackid>TRACK1</trackid><udf5>TransID</udf5>"
        )
        sent = route.calls.last.request.content.decode()
        assert expected == sent
        assert ("300000000000009", RefundStatus.SUCCEEDED) == (result.provider_ref, result.status)

    def test_falls_back_to_payment_id(self, mocked: respx.MockRouter) -> None:
        route = mocked.post(TRANPIPE).mock(return_value=xml_reply(result="CAPTURED"))
        payment = stored_payment(provider_data={"paymentid": "100000000000001"})
        result = make_provider().refund_payment(payment, refund_of("1.000"), idempotency_key="r1")
        sent = parse_xml_fields(route.calls.last.request.content.decode())
        assert ("100000000000001", "PaymentID") == (sent["transid"], sent["udf5"])
        assert RefundStatus.SUCCEEDED == result.status

    def test_without_knet_ids(self, mocked: respx.MockRouter) -> None:
        with pytest.raises(InvalidStateError):
            make_provider().refund_payment(stored_payment(provider_data={}), refund_of("1.000"), idempotency_key="r")
        assert 0 == len(mocked.calls)

    def test_only_kwd(self, mocked: respx.MockRouter) -> None:
        refund = refund_of("1.000").model_copy(update={"amount": Money.of("1.00", "USD")})
        with pytest.raises(InvalidRequestError):
            make_provider().refund_payment(stored_payment(), refund, idempotency_key="r")
        assert 0 == len(mocked.calls)

    @pytest.mark.parametrize(
        ("text", "code"),
        [
            ("!ERROR!-IPAY0100160-Original transaction not captured", "IPAY0100160"),
            ("<result>FAILURE(REFUND AMOUNT EXCEEDS)</result>", "FAILURE(REFUND AMOUNT EXCEEDS)"),
            ("<result>NOT CAPTURED</result>", "NOT CAPTURED"),
            # K-064 v1.4 §3.7.3: a refund succeeded only if its result is CAPTURED.
            ("<result>SUCCESS</result>", "SUCCESS"),
            ("<result>APPROVED</result>", "APPROVED"),
            ("<result>FAILURE</result>", "FAILURE"),
            ("<result>SUSPECTED</result>", "SUSPECTED"),
            ("<html>oops</html>", None),
        ],
    )
    def test_refusals_are_provider_errors(self, mocked: respx.MockRouter, text: str, code: str | None) -> None:
        mocked.post(TRANPIPE).mock(return_value=httpx.Response(200, text=text))
        with pytest.raises(ProviderError) as info:
            make_provider().refund_payment(stored_payment(), refund_of("1.000"), idempotency_key="r")
        assert (code, False) == (info.value.code, info.value.should_retry)
        assert not isinstance(info.value, ProviderUnavailableError)

    @pytest.mark.parametrize(
        ("failure", "retry"),
        [
            (httpx.ConnectError("refused"), True),
            (httpx.ReadTimeout("slow"), False),
            (httpx.RemoteProtocolError("eof"), False),
            (httpx.Response(502), False),
        ],
    )
    def test_ambiguous_failures_are_not_retryable(
        self, mocked: respx.MockRouter, failure: Exception | httpx.Response, retry: bool
    ) -> None:
        route = mocked.post(TRANPIPE)
        if isinstance(failure, httpx.Response):
            route.mock(return_value=failure)
        else:
            route.mock(side_effect=failure)
        with pytest.raises(ProviderUnavailableError) as info:
            make_provider().refund_payment(stored_payment(), refund_of("1.000"), idempotency_key="r")
        assert retry == info.value.should_retry

    def test_http_4xx_is_a_provider_error(self, mocked: respx.MockRouter) -> None:
        mocked.post(TRANPIPE).mock(return_value=httpx.Response(403, text="forbidden"))
        with pytest.raises(ProviderError) as info:
            make_provider().refund_payment(stored_payment(), refund_of("1.000"), idempotency_key="r")
        assert (403, False) == (info.value.http_status, isinstance(info.value, ProviderUnavailableError))

    def test_partial_refunds_then_over_refund(self, provider: KnetProvider, knet: FakeKnet) -> None:
        txn = knet.add_transaction(trackid="TRACK1", amt="12.500")
        payment = stored_payment(provider_data={"paymentid": txn.paymentid, "tranid": txn.tranid})
        provider.refund_payment(payment, refund_of("10.000", "ref_a"), idempotency_key="a")
        provider.refund_payment(payment, refund_of("2.500", "ref_b"), idempotency_key="b")
        with pytest.raises(ProviderError, match="FAILURE"):
            provider.refund_payment(payment, refund_of("0.001", "ref_c"), idempotency_key="c")
        assert 12500 == txn.refunded_fils


class TestWireHelpers:
    """Reading tranPipe answers and writing the REDIRECT= line."""

    def test_wrapped_and_escaped_reply(self) -> None:
        reply = parse_tranpipe_reply(
            "<response><result> CAPTURED </result><udf1>a &amp; b</udf1></response>", http_status=200
        )
        assert ("CAPTURED", "a & b") == (reply.result, reply.fields["udf1"])

    @pytest.mark.parametrize(
        ("text", "code", "message"),
        [
            ("!ERROR!-IPAY0100263-Transaction not found", "IPAY0100263", "Transaction not found"),
            ("  !ERROR!-IPAY0100124-Problem occurred while validating tranportal id\n", "IPAY0100124", None),
            ("!ERROR!", None, "no message"),
        ],
    )
    def test_error_lines(self, text: str, code: str | None, message: str | None) -> None:
        with pytest.raises(ProviderError) as info:
            parse_tranpipe_reply(text, http_status=200)
        assert (code, "knet", text.strip()) == (info.value.code, info.value.provider, info.value.body)
        if message is not None:
            assert info.value.message.endswith(message)

    @pytest.mark.parametrize(
        ("receipt", "expected"),
        [
            ("https://s.example/r", "REDIRECT=https://s.example/r?paymentid=1&trackid=T"),
            ("https://s.example/r?lang=ar", "REDIRECT=https://s.example/r?lang=ar&paymentid=1&trackid=T"),
        ],
    )
    def test_redirect_line(self, receipt: str, expected: str) -> None:
        assert expected == receipt_redirect_line(receipt, paymentid="1", trackid="T")


class TestSecrets:
    """The password and resource key reach neither logs nor errors."""

    def test_nothing_secret_is_logged_or_raised(self, mocked: respx.MockRouter) -> None:
        provider = make_provider()
        mocked.post(TRANPIPE).mock(side_effect=[inquiry_reply(), httpx.Response(500, text="down")])
        with capture_logs() as logs:
            provider.create_payment(request_for())
            provider.parse_webhook(knet_response_body(KEY, trackid="TRACK1"), {})
            with pytest.raises(ProviderUnavailableError) as info:
                provider.refund_payment(stored_payment(), refund_of("1.000"), idempotency_key="r")
        text = repr(logs) + repr(info.value) + str(info.value) + repr(info.value.body)
        assert len(logs) >= 3
        for secret in (PASSWORD, KEY):
            assert secret not in text


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def service(provider: KnetProvider) -> PaymentService:
    return PaymentService(storage=MemoryStorage(), providers=[provider], clock=Clock())


class TestThroughTheService:
    """The whole redirect flow: initialize, KNET's POST through handle_webhook, refunds, reconcile."""

    def initialize(self, service: PaymentService, amount: str = "12.500") -> Payment:
        return service.initialize_payment(
            user_id="u1", amount=Money.of(amount, "KWD"), provider="knet", metadata={"udf1": "order42"}
        )

    def test_paid_refunded(self, service: PaymentService, knet: FakeKnet) -> None:
        payment = self.initialize(service)
        assert PaymentStatus.REQUIRES_ACTION == payment.status
        body = knet.complete_payment(payment.redirect_url or "")
        response = handle_webhook(service, "knet", body=body, headers={"Content-Type": FORM})
        txn = next(iter(knet.transactions.values()))
        expected_line = f"REDIRECT={RECEIPT_URL}?paymentid={txn.paymentid}&trackid={payment.provider_ref}"
        assert (200, expected_line, "applied") == (response.status_code, response.text, response.outcome)
        paid = service.get_payment(payment.id)
        assert (PaymentStatus.SUCCEEDED, 12500) == (paid.status, paid.captured_minor)
        assert txn.tranid == paid.provider_data["tranid"]

        again = handle_webhook(service, "knet", body=body, headers={})
        assert (200, expected_line, "duplicate") == (again.status_code, again.text, again.outcome)

        service.refund_payment(payment.id, amount=Money.of("2.000", "KWD"))
        service.refund_payment(payment.id)
        refunded = service.get_payment(payment.id)
        assert (PaymentStatus.REFUNDED, 12500, 12500) == (
            refunded.status,
            refunded.refunded_minor,
            txn.refunded_fils,
        )
        # The redelivery is verified (one more inquiry) before it is found to be a duplicate.
        assert ["8", "8", "2", "2"] == [request["action"] for request in knet.requests]

    def test_declined(self, service: PaymentService, knet: FakeKnet) -> None:
        payment = self.initialize(service)
        body = knet.complete_payment(payment.redirect_url or "", result="NOT CAPTURED")
        response = handle_webhook(service, "knet", body=body, headers={})
        assert (200, True) == (response.status_code, response.text.startswith("REDIRECT="))
        assert PaymentStatus.FAILED == service.get_payment(payment.id).status

    def test_amount_mismatch_is_refused(self, service: PaymentService, knet: FakeKnet) -> None:
        payment = self.initialize(service)
        txn = knet.add_transaction(trackid=payment.provider_ref or "", amt="1.000")
        body = knet_response_body(KEY, trackid=txn.trackid, amt="1.000", paymentid=txn.paymentid, tranid=txn.tranid)
        response = handle_webhook(service, "knet", body=body, headers={})
        assert (400, "rejected") == (response.status_code, response.outcome)
        assert PaymentStatus.REQUIRES_ACTION == service.get_payment(payment.id).status

    def test_forged_error_changes_nothing(self, service: PaymentService, knet: FakeKnet) -> None:
        payment = self.initialize(service)
        response = handle_webhook(service, "knet", body=knet_error_body(trackid=payment.provider_ref), headers={})
        assert (200, "ignored") == (response.status_code, response.outcome)
        assert response.text.startswith(f"REDIRECT={RECEIPT_URL}?")
        assert PaymentStatus.REQUIRES_ACTION == service.get_payment(payment.id).status

    def test_error_posts_for_unknown_payments_write_and_ask_nothing(
        self, service: PaymentService, knet: FakeKnet
    ) -> None:
        storage = service.storage
        assert isinstance(storage, MemoryStorage)
        answers = {
            handle_webhook(
                service, "knet", body=knet_error_body(trackid=f"TRACK{i}", error="IPAY0100055"), headers={}
            ).text.split("?")[0]
            for i in range(200)
        }
        assert {f"REDIRECT={RECEIPT_URL}"} == answers
        assert ([], {}, []) == (knet.requests, storage._events, service.list_payments().items)

    def test_error_posts_for_a_pending_payment_ask_knet_once_a_minute(
        self, provider: KnetProvider, knet: FakeKnet
    ) -> None:
        clock = Clock()
        service = PaymentService(storage=MemoryStorage(), providers=[provider], clock=clock)
        payment = self.initialize(service)
        knet.add_transaction(trackid=payment.provider_ref or "", amt="12.500", result="NOT CAPTURED")
        before = len(knet.requests)
        body = knet_error_body(trackid=payment.provider_ref, error="IPAY0100055")

        first = [handle_webhook(service, "knet", body=body, headers={}).status_code for _ in range(100)]
        asked = len(knet.requests) - before

        assert ({200}, 1) == (set(first), asked)
        assert PaymentStatus.FAILED == service.get_payment(payment.id).status
        clock.now += timedelta(minutes=5)
        handle_webhook(service, "knet", body=body, headers={})
        assert 1 == len(knet.requests) - before, "a settled payment is never checked again"

    def test_an_error_post_can_reveal_a_captured_payment(self, provider: KnetProvider, knet: FakeKnet) -> None:
        """KNET's own word (the inquiry) decides: a captured payment becomes SUCCEEDED whatever the POST said."""
        clock = Clock()
        service = PaymentService(storage=MemoryStorage(), providers=[provider], clock=clock)
        payment = self.initialize(service)
        knet.add_transaction(trackid=payment.provider_ref or "", amt="12.500")

        response = handle_webhook(service, "knet", body=knet_error_body(trackid=payment.provider_ref), headers={})

        assert (200, "applied") == (response.status_code, response.outcome)
        assert PaymentStatus.SUCCEEDED == service.get_payment(payment.id).status

    def test_tampered_response_is_rejected(self, service: PaymentService, knet: FakeKnet) -> None:
        payment = self.initialize(service)
        body = knet.complete_payment(payment.redirect_url or "").replace(b"trandata=", b"trandata=00")
        response = handle_webhook(service, "knet", body=body, headers={})
        assert (400, "rejected") == (response.status_code, response.outcome)

    def test_knet_down_asks_for_a_retry(self, service: PaymentService, knet: FakeKnet) -> None:
        payment = self.initialize(service)
        body = knet.complete_payment(payment.redirect_url or "")
        with respx.mock() as router:
            router.post(TRANPIPE).mock(side_effect=httpx.ConnectError("down"))
            broken = KnetProvider(
                TRANPORTAL_ID, PASSWORD, KEY, response_url=RESPONSE_URL, error_url=ERROR_URL, receipt_url=RECEIPT_URL
            )
            other = PaymentService(storage=service.storage, providers=[broken])
            response = handle_webhook(other, "knet", body=body, headers={})
        assert (503, "unavailable") == (response.status_code, response.outcome)
        assert PaymentStatus.REQUIRES_ACTION == service.get_payment(payment.id).status

    def test_reconcile_finds_a_payment_whose_response_was_lost(self, provider: KnetProvider, knet: FakeKnet) -> None:
        clock = Clock()
        service = PaymentService(storage=MemoryStorage(), providers=[provider], clock=clock)
        payment = self.initialize(service)
        knet.complete_payment(payment.redirect_url or "")
        clock.now = NOW + timedelta(minutes=5)
        report = service.reconcile()
        assert (1, 1, {}) == (report.checked, report.updated, report.errors)
        assert PaymentStatus.SUCCEEDED == service.get_payment(payment.id).status


class TestManualK064:
    """Inquiry and refund results as KNET's Tranportal manual K-064 v1.4 defines them."""

    @pytest.mark.parametrize("knet_says", ["SUCCESS", "CAPTURED", "success"])
    def test_an_inquiry_success_is_a_capture_in_the_response_leg(
        self, mocked: respx.MockRouter, knet_says: str
    ) -> None:
        """§3.5.5: "SUCCESS or CAPTURED: payment was captured"; the receipt line is answered."""
        mocked.post(TRANPIPE).mock(return_value=inquiry_reply(knet_says))

        event = make_provider().parse_webhook(knet_response_body(KEY, trackid="TRACK1"), {})

        assert (PaymentStatus.SUCCEEDED, Money.of("12.500", "KWD")) == (event.status, event.amount_captured)
        assert event.reply_body is not None
        assert event.reply_body.startswith(f"REDIRECT={RECEIPT_URL}?")

    @pytest.mark.parametrize("knet_says", ["SUCCESS", "CAPTURED"])
    def test_an_inquiry_success_is_a_capture_in_reconcile(self, mocked: respx.MockRouter, knet_says: str) -> None:
        mocked.post(TRANPIPE).mock(return_value=inquiry_reply(knet_says, payid="100000000000001"))

        result = make_provider().retrieve_payment(stored_payment(status=PaymentStatus.REQUIRES_ACTION))

        assert (PaymentStatus.SUCCEEDED, Money.of("12.500", "KWD")) == (result.status, result.amount_captured)

    @pytest.mark.parametrize("knet_says", ["FAILURE", "SUSPECTED", "NOT CAPTURED", "FAILURE(DENIED)"])
    def test_an_inquiry_failure_is_a_failed_payment_not_an_error(
        self, mocked: respx.MockRouter, knet_says: str
    ) -> None:
        """§3.5.5: FAILURE or SUSPECTED mean the payment failed."""
        mocked.post(TRANPIPE).mock(return_value=inquiry_reply(knet_says, payid="100000000000001"))

        result = make_provider().retrieve_payment(stored_payment(status=PaymentStatus.REQUIRES_ACTION))

        assert (PaymentStatus.FAILED, knet_says, None) == (result.status, result.failure_code, result.amount_captured)

    def test_an_inquiry_canceled_is_a_canceled_payment(self, mocked: respx.MockRouter) -> None:
        mocked.post(TRANPIPE).mock(return_value=inquiry_reply("CANCELED", payid="100000000000001"))

        result = make_provider().retrieve_payment(stored_payment(status=PaymentStatus.REQUIRES_ACTION))

        assert (PaymentStatus.CANCELED, None) == (result.status, result.amount_captured)

    @pytest.mark.parametrize("knet_says", ["FAILURE", "SUSPECTED"])
    def test_a_host_timeout_settled_by_a_failed_inquiry(self, mocked: respx.MockRouter, knet_says: str) -> None:
        mocked.post(TRANPIPE).mock(return_value=inquiry_reply(knet_says))

        event = make_provider().parse_webhook(knet_response_body(KEY, trackid="TRACK1", result="HOST TIMEOUT"), {})

        assert (PaymentStatus.FAILED, knet_says) == (event.status, event.failure_code)

    @pytest.mark.parametrize("knet_says", ["FAILURE", "SUSPECTED"])
    def test_a_captured_claim_a_failed_inquiry_contradicts_is_refused(
        self, mocked: respx.MockRouter, knet_says: str
    ) -> None:
        mocked.post(TRANPIPE).mock(return_value=inquiry_reply(knet_says))

        with pytest.raises(WebhookVerificationError):
            make_provider().parse_webhook(knet_response_body(KEY, trackid="TRACK1"), {})

    def test_a_refund_carries_the_original_track_id(self, provider: KnetProvider, knet: FakeKnet) -> None:
        """§3.5.3: the track id of a refund is the original transaction's."""
        txn = knet.add_transaction(trackid="TRACK1", amt="12.500")
        payment = stored_payment(provider_data={"paymentid": txn.paymentid, "tranid": txn.tranid})

        provider.refund_payment(payment, refund_of("1.000", "re_0123456789abcdef"), idempotency_key="a")
        provider.retrieve_payment(payment)

        assert [("2", "TRACK1"), ("8", "TRACK1")] == [(r["action"], r["trackid"]) for r in knet.requests]

    def test_through_the_service_a_success_inquiry_pays(self, service: PaymentService, knet: FakeKnet) -> None:
        payment = service.initialize_payment(user_id="u1", amount=Money.of("1.000", "KWD"), provider="knet")
        body = knet.complete_payment(payment.redirect_url or "")
        txn = next(iter(knet.transactions.values()))
        txn.result = "SUCCESS"

        response = handle_webhook(service, "knet", body=body, headers={})

        assert (200, "applied") == (response.status_code, response.outcome)
        assert response.text.startswith("REDIRECT=")
        assert PaymentStatus.SUCCEEDED == service.get_payment(payment.id).status


class TestMalformedPosts:
    """Any malformed form or trandata is a WebhookVerificationError (a 400), never another exception."""

    @pytest.mark.parametrize(
        "fields",
        [
            "paymentid=1<2&result=CAPTURED&trackid=TRACK1&amt=12.500",
            "paymentid=100&result=CAPTURED&trackid=TR ACK&amt=12.500",
            "paymentid=100&result=CAPTURED&trackid=" + "T" * 41 + "&amt=12.500",
            "paymentid=100&result=CAPTURED&trackid=TRACK1&amt=1<2",
            "paymentid=100&result=CAPTURED&trackid=TRACK1&amt=" + "9" * 5000,
            "paymentid=100&result=CAPTURED&trackid=TRACK1&amt=\u0661.000",
            "paymentid=\u0661\u0662&result=CAPTURED&trackid=TRACK1&amt=12.500",
            "paymentid=100&result=CAPTURED\x00&trackid=TRACK1&amt=12.500",
            "paymentid=100&paymentid=101&result=CAPTURED&trackid=TRACK1",
        ],
    )
    def test_malformed_decrypted_fields(self, mocked: respx.MockRouter, fields: str) -> None:
        mocked.post(TRANPIPE).mock(return_value=inquiry_reply(payid="100", trackid="TRACK1"))
        body = b"trandata=" + encrypt_trandata(fields, KEY).encode()

        with pytest.raises(WebhookVerificationError):
            make_provider().parse_webhook(body, {})

    @pytest.mark.parametrize(
        "body",
        [
            b"\xff\xfe\x00",
            b"trandata=\xc3\x28",
            b"trandata=%ff%fe",
            b"trandata=%F0%9F%92%B8",
            b"trandata=" + b"0" * 31,
            b"trandata=" + b"g" * 32,
            b"trandata=" + "\u0661".encode() * 32,
            b"trandata=" + b"00" * 100_000,
            b"trandata=a&trandata=b",
            b"=&=&&&==",
            b"%" * 1000,
            b"trandata",
        ],
    )
    def test_malformed_forms(self, mocked: respx.MockRouter, body: bytes) -> None:
        with pytest.raises(WebhookVerificationError):
            make_provider().parse_webhook(body, {})

        assert 0 == len(mocked.calls)
