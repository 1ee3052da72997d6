"""Run localstripe (a fake Stripe API server) on 127.0.0.1 for integration tests.

Run as a script, this module starts localstripe on a free port of 127.0.0.1 with
its state in memory only (localstripe's own ``start()`` binds every interface
on 8420 and pickles its store to /tmp/localstripe.pickle, shared by every run),
then prints ``PORT <n>`` on stdout. The fixtures below start it once per module,
and a tiny HTTP receiver that records the webhooks localstripe delivers.
"""

from __future__ import annotations

import contextlib
import http.server
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

STARTUP_TIMEOUT = 20.0


@dataclass
class LocalStripe:
    """A running localstripe: its API address."""

    api_base: str

    def register_webhook(self, webhook_id: str, url: str, secret: str, events: list[str]) -> None:
        """Ask localstripe to deliver ``events`` to ``url`` signed with ``secret``."""
        response = httpx.post(
            f"{self.api_base}/_config/webhooks/{webhook_id}",
            json={"url": url, "secret": secret, "events": events},
            timeout=5,
        )
        response.raise_for_status()


@dataclass
class Delivery:
    """One webhook request as received: raw body and lower-cased headers."""

    body: bytes
    headers: dict[str, str]


@dataclass
class WebhookReceiver:
    """An HTTP endpoint on 127.0.0.1 that records every POST it receives."""

    url: str
    deliveries: queue.Queue[Delivery] = field(default_factory=queue.Queue)

    def wait_for(self, event_type: str, object_id: str, timeout: float = 10.0) -> Delivery:
        """The first ``event_type`` delivery about ``object_id``; others are dropped."""
        deadline = time.monotonic() + timeout
        needles = (f'"type": "{event_type}"'.encode(), f'"id": "{object_id}"'.encode())
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                delivery = self.deliveries.get(timeout=remaining)
            except queue.Empty:
                break
            if all(needle in delivery.body for needle in needles):
                return delivery
        raise AssertionError(f"localstripe delivered no {event_type} webhook for {object_id} within {timeout} s")


def _serve() -> None:
    from aiohttp import web
    from localstripe import resources, server

    # Memory only: no shared pickle file read at start or written on each change.
    resources.Store.dump_to_disk = lambda self: None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    web.run_app(server.app, sock=sock, print=None, access_log=None)


@contextlib.contextmanager
def run_localstripe() -> Iterator[LocalStripe]:
    """Start localstripe in a subprocess; stop it on exit. Fails loudly if it does not start."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            port = _read_port(process)
            _wait_for_port(port)
            yield LocalStripe(api_base=f"http://127.0.0.1:{port}")
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-4000:])
            raise
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            if process.stdout is not None:
                process.stdout.close()


def _read_port(process: subprocess.Popen[str]) -> int:
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=STARTUP_TIMEOUT)
    except queue.Empty:
        raise RuntimeError("localstripe did not report its port") from None
    if not line.startswith("PORT "):
        raise RuntimeError(f"localstripe failed to start (exit code {process.poll()})")
    return int(line.split()[1])


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"localstripe is not accepting connections on 127.0.0.1:{port}")


@contextlib.contextmanager
def run_webhook_receiver() -> Iterator[WebhookReceiver]:
    """Serve a recording webhook endpoint on 127.0.0.1 in a thread."""
    deliveries: queue.Queue[Delivery] = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            deliveries.put(Delivery(body, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        port = httpd.server_address[1]
        yield WebhookReceiver(url=f"http://127.0.0.1:{port}/webhooks/stripe", deliveries=deliveries)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


if __name__ == "__main__":
    _serve()
