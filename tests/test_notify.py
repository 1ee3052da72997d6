"""Notifications: persisted per user, delivered once per notifier, retried with backoff, never blocking a payment."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from paykit import (
    CallbackNotifier,
    ConfigurationError,
    LoggingNotifier,
    Money,
    NotFoundError,
    Notification,
    NotificationKind,
    Notifier,
    PaymentDeclinedError,
    PaymentService,
    PaymentStatus,
)
from paykit.notify import NotificationDispatcher
from paykit.storage import MemoryStorage
from paykit.testing import FakeProvider, ManualClock, capture_logs


class Recorder:
    """A notifier that records what it got and can fail or hang on demand."""

    def __init__(self, name: str, *, failures_per_notification: int = 0, before: Callable[[], Any] | None = None):
        self.name = name
        self.failures = failures_per_notification
        self.before = before
        self.calls: Counter[str] = Counter()
        self.delivered: list[str] = []
        self._lock = threading.Lock()

    def notify(self, notification: Notification) -> None:
        with self._lock:
            self.calls[notification.id] += 1
            attempt = self.calls[notification.id]
        if self.before is not None:
            self.before()
        if attempt <= self.failures:
            raise RuntimeError("notifier is down")
        with self._lock:
            self.delivered.append(notification.id)


def make_service(
    clock: ManualClock, fake: FakeProvider, notifiers: list[Notifier], *, timeout: float = 2.0
) -> PaymentService:
    return PaymentService(
        storage=MemoryStorage(), providers=[fake], notifiers=notifiers, clock=clock, notifier_timeout=timeout
    )


def pay(service: PaymentService, user_id: str = "u1", amount: str = "10.00") -> str:
    """A succeeded payment: two notifications (status changed, payment succeeded)."""
    payment = service.initialize_payment(user_id=user_id, amount=Money.of(amount, "USD"), provider="fake")
    assert PaymentStatus.SUCCEEDED == service.confirm_payment(payment.id).status
    return payment.id


class TestPersisted:
    """Notifications are stored per user, read or unread."""

    def test_per_user_kinds(self, service: PaymentService, fake: FakeProvider) -> None:
        """A success and a decline notify their own users with the right kinds."""
        paid = pay(service, "alice")
        declined = service.initialize_payment(user_id="bob", amount=Money.of("5", "USD"), provider="fake")
        fake.behavior = "decline"
        with pytest.raises(PaymentDeclinedError):
            service.confirm_payment(declined.id)
        alice = service.list_notifications("alice")
        bob = service.list_notifications("bob")
        assert {NotificationKind.STATUS_CHANGED, NotificationKind.PAYMENT_SUCCEEDED} == {n.kind for n in alice}
        assert {NotificationKind.STATUS_CHANGED, NotificationKind.PAYMENT_FAILED} == {n.kind for n in bob}
        assert {paid} == {n.subject_id for n in alice}
        assert {declined.id} == {n.subject_id for n in bob}
        assert [] == service.list_notifications("carol")

    def test_payload_is_json_ready_and_exact(self, service: PaymentService) -> None:
        """The payload names the payment and its exact amount as text."""
        payment_id = pay(service, amount="12.34")
        succeeded = [n for n in service.list_notifications("u1") if n.kind == NotificationKind.PAYMENT_SUCCEEDED]
        assert 1 == len(succeeded)
        assert payment_id == succeeded[0].payload["payment_id"]
        assert "12.34 USD" == succeeded[0].payload["amount"]
        assert "succeeded" == succeeded[0].payload["status"]

    def test_read_and_unread(self, service: PaymentService) -> None:
        """Marking one read removes it from the unread list only, and survives delivery."""
        pay(service)
        first, second = service.list_notifications("u1")
        service.mark_notification_read(first.id)
        assert [second.id] == [n.id for n in service.list_notifications("u1", unread_only=True)]
        assert 2 == len(service.list_notifications("u1"))
        service.dispatch_notifications()
        assert [second.id] == [n.id for n in service.list_notifications("u1", unread_only=True)]

    def test_unknown_notification(self, service: PaymentService) -> None:
        """Marking an unknown notification raises NotFoundError."""
        with pytest.raises(NotFoundError):
            service.mark_notification_read("nope")


class TestDispatch:
    """The dispatcher hands each notification to each notifier exactly once."""

    def test_each_once_per_notifier(self, clock: ManualClock, fake: FakeProvider) -> None:
        """Two notifiers each get every notification once, however often dispatch runs."""
        a, b = Recorder("a"), Recorder("b")
        with make_service(clock, fake, [a, b]) as service:
            pay(service)
            report = service.dispatch_notifications()
            assert (2, 0, 0) == (report.delivered, report.retrying, report.dead)
            clock.advance(hours=2)
            assert (0, 0, 0) == vars_of(service.dispatch_notifications())
            ids = {n.id for n in service.list_notifications("u1")}
            assert ids == set(a.delivered) == set(b.delivered)
            assert {1} == set(a.calls.values()) == set(b.calls.values())
            assert {"delivered"} == {n.delivery for n in service.list_notifications("u1")}

    def test_callback_notifier(self, clock: ManualClock, fake: FakeProvider) -> None:
        """CallbackNotifier passes each notification to the function."""
        got: list[Notification] = []
        with make_service(clock, fake, [CallbackNotifier(got.append)]) as service:
            payment_id = pay(service)
            service.dispatch_notifications()
        assert {payment_id} == {n.subject_id for n in got}
        assert 2 == len(got)

    def test_concurrent_dispatchers_deliver_once(self, clock: ManualClock, fake: FakeProvider) -> None:
        """Two dispatch passes racing never deliver a notification twice."""
        slow = Recorder("slow", before=lambda: time.sleep(0.02))
        with make_service(clock, fake, [slow]) as service:
            for n in range(5):
                pay(service, amount=f"{n + 1}.00")
            threads = [threading.Thread(target=service.dispatch_notifications) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert 10 == len(slow.delivered)
        assert {1} == set(slow.calls.values())


def vars_of(report: Any) -> tuple[int, int, int]:
    return (report.delivered, report.retrying, report.dead)


class TestFailingNotifier:
    """A notifier that raises never fails a payment and is retried with backoff."""

    def test_retried_with_exponential_backoff(self, clock: ManualClock, fake: FakeProvider) -> None:
        """Failures are retried after 2 s, then 4 s more; a healthy notifier is not called again."""
        flaky, ok = Recorder("flaky", failures_per_notification=2), Recorder("ok")
        with make_service(clock, fake, [flaky, ok]) as service:
            pay(service)
            assert (0, 2, 0) == vars_of(service.dispatch_notifications())
            assert (0, 0, 0) == vars_of(service.dispatch_notifications())
            clock.advance(seconds=1)
            assert (0, 0, 0) == vars_of(service.dispatch_notifications())
            clock.advance(seconds=1)
            assert (0, 2, 0) == vars_of(service.dispatch_notifications())
            clock.advance(seconds=3)
            assert (0, 0, 0) == vars_of(service.dispatch_notifications())
            clock.advance(seconds=1)
            assert (2, 0, 0) == vars_of(service.dispatch_notifications())
            stored = service.list_notifications("u1")
        assert {3} == set(flaky.calls.values())
        assert {1} == set(ok.calls.values())
        assert {("delivered", 3, None)} == {(n.delivery, n.attempts, n.last_error) for n in stored}

    def test_payment_unaffected(self, clock: ManualClock, fake: FakeProvider) -> None:
        """With a notifier that always raises, payments succeed and dispatch does not raise."""
        broken = Recorder("broken", failures_per_notification=10**6)
        with make_service(clock, fake, [broken]) as service:
            payment_id = pay(service)
            report = service.dispatch_notifications()
            assert PaymentStatus.SUCCEEDED == service.get_payment(payment_id).status
        assert 2 == report.retrying
        errors = {n.last_error for n in service.list_notifications("u1")}
        assert {"broken: RuntimeError"} == errors

    def test_gives_up_after_max_attempts(self, clock: ManualClock) -> None:
        """After max_attempts failures a notification is dead and never claimed again."""
        storage = MemoryStorage()
        clock_now = clock()
        storage.insert_notifications(
            [
                Notification(
                    id="n1",
                    user_id="u1",
                    kind=NotificationKind.STATUS_CHANGED,
                    subject_id="pay_1",
                    created_at=clock_now,
                    next_attempt_at=clock_now,
                )
            ]
        )
        broken = Recorder("broken", failures_per_notification=10**6)
        dispatcher = NotificationDispatcher(
            storage, [broken], clock=clock, timeout=1.0, max_attempts=3, base_backoff=timedelta(seconds=1)
        )
        try:
            reports = []
            for _ in range(3):
                reports.append(vars_of(dispatcher.dispatch()))
                clock.advance(minutes=1)
            clock.advance(days=1)
            reports.append(vars_of(dispatcher.dispatch()))
        finally:
            dispatcher.close()
        assert [(0, 1, 0), (0, 1, 0), (0, 0, 1), (0, 0, 0)] == reports
        assert 3 == broken.calls["n1"]
        (stored,) = storage.list_notifications("u1", unread_only=False, limit=10)
        assert ("dead", 3) == (stored.delivery, stored.attempts)

    def test_backoff_is_capped_at_an_hour(self, clock: ManualClock) -> None:
        """Retries never wait more than an hour, however many attempts failed."""
        storage = MemoryStorage()
        now = clock()
        storage.insert_notifications(
            [
                Notification(
                    id="n1",
                    user_id="u1",
                    kind=NotificationKind.STATUS_CHANGED,
                    subject_id="pay_1",
                    created_at=now,
                    next_attempt_at=now,
                    attempts=20,
                )
            ]
        )
        dispatcher = NotificationDispatcher(
            storage, [Recorder("broken", failures_per_notification=10**6)], clock=clock, max_attempts=100
        )
        try:
            dispatcher.dispatch()
        finally:
            dispatcher.close()
        (stored,) = storage.list_notifications("u1", unread_only=False, limit=10)
        assert now + timedelta(hours=1) == stored.next_attempt_at


class TestHangingNotifier:
    """A notifier that hangs times out and never holds up payments."""

    def test_times_out_and_is_retried(self, clock: ManualClock, fake: FakeProvider) -> None:
        """A hung call counts as failed after the timeout; the other notifier still delivers."""
        release = threading.Event()
        hung, ok = Recorder("hung", before=release.wait), Recorder("ok")
        service = make_service(clock, fake, [hung, ok], timeout=0.1)
        try:
            pay(service)
            started = time.monotonic()
            report = service.dispatch_notifications()
            elapsed = time.monotonic() - started
            assert (0, 2, 0) == vars_of(report)
            assert elapsed < 2.0
            assert 2 == len(ok.delivered)
            # The first call hangs; the second notification finds the notifier still busy and does not
            # stack another thread on it.
            assert ["hung: still busy with an earlier call that timed out", "hung: timed out after 0.1s"] == sorted(
                str(n.last_error) for n in service.list_notifications("u1")
            )
        finally:
            release.set()
            service.close()

    def test_many_hung_calls_do_not_starve_healthy_notifiers(self, clock: ManualClock, fake: FakeProvider) -> None:
        """However many calls of one notifier hang, a healthy notifier gets every notification, once."""
        release = threading.Event()
        hung, ok = Recorder("hung", before=release.wait), Recorder("ok")
        service = make_service(clock, fake, [hung, ok], timeout=0.05)
        try:
            for n in range(4):
                pay(service, amount=f"{n + 1}.00")
            service.dispatch_notifications()
            assert 8 == len(ok.delivered)
        finally:
            release.set()
            service.close()
        assert {1} == set(ok.calls.values())

    def test_payment_proceeds_while_a_notifier_hangs(self, clock: ManualClock, fake: FakeProvider) -> None:
        """While a dispatch pass is stuck in a notifier, payments are confirmed as usual."""
        entered, release = threading.Event(), threading.Event()

        def hang() -> None:
            entered.set()
            release.wait(5)

        service = make_service(clock, fake, [Recorder("hung", before=hang)], timeout=5.0)
        try:
            pay(service, "u1")
            dispatcher = threading.Thread(target=service.dispatch_notifications)
            dispatcher.start()
            assert entered.wait(5)
            payment_id = pay(service, "u2")
            assert dispatcher.is_alive()
            assert PaymentStatus.SUCCEEDED == service.get_payment(payment_id).status
        finally:
            release.set()
            dispatcher.join()
            service.close()


class TestBackgroundDispatcher:
    """start_dispatcher delivers from a daemon thread until the service closes."""

    def test_delivers_in_background(self, clock: ManualClock, fake: FakeProvider) -> None:
        """Notifications arrive without calling dispatch_notifications, once each."""
        recorder = Recorder("bg")
        service = make_service(clock, fake, [recorder])
        try:
            service.start_dispatcher(interval=0.01)
            service.start_dispatcher(interval=0.01)
            pay(service)
            deadline = time.monotonic() + 5
            while len(recorder.delivered) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.05)
        finally:
            service.close()
        assert 2 == len(recorder.delivered)
        assert {1} == set(recorder.calls.values())
        assert not [t for t in threading.enumerate() if t.name == "paykit-dispatcher"]


class TestLoggingNotifier:
    """LoggingNotifier logs to the `paykit.notify` logger, redacted."""

    def test_logs_redacted_payload(self) -> None:
        """Secrets and card numbers in a payload never reach the log."""
        notification = Notification(
            id="n1",
            user_id="u1",
            kind=NotificationKind.PAYMENT_SUCCEEDED,
            subject_id="pay_1",
            payload={
                "client_secret": "pi_123_secret_abc",
                "note": "paid with 4242 4242 4242 4242",
                "nested": {"api_key": "sk_test_123"},
                "amount": "10.00 USD",
            },
            created_at=ManualClock()(),
            next_attempt_at=ManualClock()(),
        )
        with capture_logs() as logs:
            LoggingNotifier().notify(notification)
        assert 1 == len(logs)
        text = repr(logs)
        for secret in ("pi_123_secret_abc", "4242 4242 4242 4242", "sk_test_123"):
            assert secret not in text
        assert "10.00 USD" == logs[0]["payload"]["amount"]
        assert ("info", "n1", "payment_succeeded") == (
            logs[0]["level"],
            logs[0]["notification_id"],
            logs[0]["kind"],
        )

    def test_service_logs_no_client_secret(self, clock: ManualClock, fake: FakeProvider) -> None:
        """Dispatching to a LoggingNotifier logs each notification and no client secret."""
        with make_service(clock, fake, [LoggingNotifier()]) as service:
            payment = service.initialize_payment(user_id="u1", amount=Money.of("1", "USD"), provider="fake")
            secret = payment.client_secret.get_secret_value() if payment.client_secret else ""
            with capture_logs() as logs:
                service.confirm_payment(payment.id)
                service.dispatch_notifications()
        assert secret
        assert secret not in repr(logs)
        assert 2 == len([e for e in logs if e["event"] == "paykit notification"])


class TestLateDelivery:
    """A call that finishes after its timeout counts as delivered: the notifier is not called twice."""

    def test_late_success_is_not_redelivered(self, clock: ManualClock, fake: FakeProvider) -> None:
        """The slow call settles its own notification; the one skipped meanwhile is delivered next pass."""
        release = threading.Event()
        slow = Recorder("slow", before=release.wait)
        service = make_service(clock, fake, [slow], timeout=0.05)
        try:
            pay(service)
            assert (0, 2, 0) == vars_of(service.dispatch_notifications())
            release.set()
            wait_until(lambda: 1 == deliveries(service)["delivered"])
            clock.advance(minutes=5)
            report = service.dispatch_notifications()

            assert (1, 0) == (report.delivered, report.retrying)
            assert 2 == len(slow.delivered)
            assert {1} == set(slow.calls.values())
            assert {("delivered", 1)} == {(n.delivery, n.attempts) for n in service.list_notifications("u1")}
        finally:
            release.set()
            service.close()

    def test_a_busy_notifier_is_skipped_without_an_attempt(self, clock: ManualClock) -> None:
        """While a timed-out call runs, other notifications wait for that notifier with no attempt counted."""
        storage = MemoryStorage()
        storage.insert_notifications([due("n1", clock), due("n2", clock)])
        release = threading.Event()
        slow, ok = Recorder("slow", before=release.wait), Recorder("ok")
        dispatcher = NotificationDispatcher(storage, [slow, ok], clock=clock, timeout=0.05, max_attempts=1)
        try:
            dispatcher.dispatch()
            for _ in range(5):
                clock.advance(seconds=2)
                dispatcher.dispatch()
            n1, n2 = sorted(storage.list_notifications("u1", unread_only=False, limit=10), key=lambda n: n.id)
        finally:
            release.set()
        assert ("pending", 0, ("ok",), "slow: timed out after 0.05s") == (
            n1.delivery,
            n1.attempts,
            n1.delivered_to,
            n1.last_error,
        )
        assert ("pending", 0, ("ok",), "slow: still busy with an earlier call that timed out") == (
            n2.delivery,
            n2.attempts,
            n2.delivered_to,
            n2.last_error,
        )
        assert {"n1": 1, "n2": 1} == dict(ok.calls)
        assert {"n1": 1} == dict(slow.calls)

    def test_a_late_failure_counts_as_an_attempt(self, clock: ManualClock) -> None:
        """A timed-out call that then raises is retried with backoff, like any failure."""
        storage = MemoryStorage()
        storage.insert_notifications([due("n1", clock)])
        release = threading.Event()
        slow = Recorder("slow", failures_per_notification=1, before=release.wait)
        dispatcher = NotificationDispatcher(storage, [slow], clock=clock, timeout=0.05)
        dispatcher.dispatch()
        release.set()
        wait_until(lambda: storage.list_notifications("u1", unread_only=False, limit=1)[0].attempts == 1)

        (stored,) = storage.list_notifications("u1", unread_only=False, limit=1)
        assert ("pending", "slow: RuntimeError", clock() + timedelta(seconds=2), None) == (
            stored.delivery,
            stored.last_error,
            stored.next_attempt_at,
            stored.claim_token,
        )
        clock.advance(seconds=2)
        assert (1, 0, 0) == vars_of(dispatcher.dispatch())
        assert {"n1": 2} == dict(slow.calls)

    def test_a_late_success_after_the_claim_was_taken_over_is_saved_once(self, clock: ManualClock) -> None:
        """Re-claimed while the slow call ran: the new claim waits for that call, which then saves its success."""
        storage = MemoryStorage()
        storage.insert_notifications([due("n1", clock)])
        release = threading.Event()
        slow = Recorder("slow", before=release.wait)
        dispatcher = NotificationDispatcher(storage, [slow], clock=clock, timeout=0.05, lease=timedelta(seconds=10))
        try:
            assert (0, 1, 0) == vars_of(dispatcher.dispatch())
            clock.advance(seconds=11)
            assert (0, 1, 0) == vars_of(dispatcher.dispatch())  # re-claimed: it waits for the running call
            (held,) = storage.list_notifications("u1", unread_only=False, limit=1)
        finally:
            release.set()
        wait_until(lambda: not [t for t in threading.enumerate() if t.name == "paykit-notify-slow"])
        (settled,) = storage.list_notifications("u1", unread_only=False, limit=1)
        clock.advance(seconds=2)

        assert (0, 0, 0) == vars_of(dispatcher.dispatch())
        assert ("pending", 0, True) == (held.delivery, held.attempts, held.claim_token is not None)
        assert ("delivered", 1, None) == (settled.delivery, settled.attempts, settled.claim_token)
        assert {"n1": 1} == dict(slow.calls)


class CrashOnFinalSave(MemoryStorage):
    """Dies (raises) on the first save that releases a claim, as a process killed mid-delivery."""

    crashed = False

    def save_notification_delivery(self, notification: Notification, *, claim_token: str) -> bool:
        if notification.claim_token is None and not self.crashed:
            self.crashed = True
            raise SimulatedCrash
        return super().save_notification_delivery(notification, claim_token=claim_token)


class SimulatedCrash(Exception):
    """Stands for the dispatcher's process dying."""


class TestCrashMidDelivery:
    """Each notifier's success is saved as it happens: after a crash, only the unfinished ones are called."""

    def test_a_new_claim_skips_notifiers_already_done(self, clock: ManualClock) -> None:
        """Crash after both calls but before the final save: the first notifier is not called again."""
        storage = CrashOnFinalSave()
        storage.insert_notifications([due("n1", clock)])
        first, second = Recorder("first"), Recorder("second")
        crashed = NotificationDispatcher(storage, [first, second], clock=clock, timeout=1.0)
        with pytest.raises(SimulatedCrash):
            crashed.dispatch()

        clock.advance(minutes=1)  # the lease (2 x 1 s x 2 notifiers + 30 s) ran out
        restarted = NotificationDispatcher(storage, [first, second], clock=clock, timeout=1.0)

        assert (1, 0, 0) == vars_of(restarted.dispatch())
        assert ({"n1": 1}, {"n1": 2}) == (dict(first.calls), dict(second.calls))


def due(notification_id: str, clock: ManualClock) -> Notification:
    now = clock()
    return Notification(
        id=notification_id,
        user_id="u1",
        kind=NotificationKind.STATUS_CHANGED,
        subject_id="pay_1",
        created_at=now,
        next_attempt_at=now,
    )


def deliveries(service: PaymentService) -> Counter[str]:
    return Counter(n.delivery for n in service.list_notifications("u1"))


def wait_until(condition: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


class TestNotifierNames:
    """Delivery is tracked per notifier name, so names are checked when the service is built."""

    def test_two_notifiers_under_one_name_are_refused(self, clock: ManualClock, fake: FakeProvider) -> None:
        """Two CallbackNotifiers left with the default name would share one delivery record.

        When one succeeded and the other failed, the notification counted as delivered and the failing one
        never got it, even after it recovered.
        """
        with pytest.raises(ConfigurationError, match="two notifiers are named 'callback'"):
            make_service(clock, fake, [CallbackNotifier(print), CallbackNotifier(print)])

    def test_named_apart_each_gets_every_notification(self, clock: ManualClock, fake: FakeProvider) -> None:
        """With names of their own, a notifier that failed is retried until it has the notification too."""
        mail: list[Notification] = []
        down = [True]

        def slack(notification: Notification) -> None:
            if down[0]:
                raise RuntimeError("slack is down")
            mail.append(notification)

        inbox: list[Notification] = []
        service = make_service(
            clock, fake, [CallbackNotifier(inbox.append, name="app"), CallbackNotifier(slack, name="slack")]
        )
        pay(service)
        service.dispatch_notifications()
        down[0] = False
        clock.advance(minutes=5)
        service.dispatch_notifications()

        assert (2, sorted(n.id for n in inbox)) == (len(mail), sorted(n.id for n in mail))

    @pytest.mark.parametrize("bad", [object(), type("Nameless", (), {"notify": lambda self, n: None})()])
    def test_a_notifier_without_name_or_notify_is_refused(
        self, clock: ManualClock, fake: FakeProvider, bad: Any
    ) -> None:
        """A notifier missing its name or notify() is a configuration error, not an AttributeError at delivery."""
        with pytest.raises(ConfigurationError, match="notifier"):
            make_service(clock, fake, [bad])
