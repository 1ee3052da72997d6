"""Start and stop a local SecantusDB (a MongoDB-wire server) for tests and benchmarks.

SecantusDB ships with the test dependencies (``secantusdb``), so the suite
needs no internet and no ``mongod``. The server binds 127.0.0.1 on a free port
and prints ``secantus listening on 127.0.0.1:PORT``; this helper reads that
line and hands out the URI.

    with SecantusServer() as server:               # in memory, gone when stopped
        client = pymongo.MongoClient(server.uri)

    with SecantusServer(storage_path=tmp_path):    # on disk: survives a restart
        ...
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["SecantusServer", "secantusd_executable"]

_LISTENING = re.compile(r"secantus listening on 127\.0\.0\.1:(\d+)")


def secantusd_executable() -> str:
    """The ``secantusd-py`` launcher installed next to this Python."""
    candidate = Path(sys.executable).with_name("secantusd-py")
    if candidate.exists():
        return str(candidate)
    return "secantusd-py"


class SecantusServer:
    """One SecantusDB process on 127.0.0.1, started on :meth:`start`.

    Args:
        storage_path: A directory keeps the data across restarts; ``None``
            uses ``:memory:`` (an ephemeral directory removed on shutdown).
        start_timeout: Seconds to wait for the listening line.

    Raises:
        RuntimeError: From :meth:`start`, when the server exits or does not
            listen in time; the message carries its output.
    """

    def __init__(self, storage_path: str | os.PathLike[str] | None = None, *, start_timeout: float = 30.0) -> None:
        self.storage_path = ":memory:" if storage_path is None else os.fspath(storage_path)
        self.start_timeout = start_timeout
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def uri(self) -> str:
        """``mongodb://127.0.0.1:PORT`` of the running server."""
        if self.port is None:
            raise RuntimeError("the server is not running")
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, port: int = 0) -> SecantusServer:
        """Start the server and wait until it listens (on ``port``, or a free one)."""
        if self._process is not None:
            raise RuntimeError("the server is already running")
        # A file, not a pipe: the server keeps logging and nobody drains a pipe.
        self._log = tempfile.NamedTemporaryFile(prefix="secantusd-", suffix=".log")  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                secantusd_executable(),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                self.storage_path,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            output = self.output()
            match = _LISTENING.search(output)
            if match:
                self.port = int(match.group(1))
                return self
            returncode = self._process.poll()
            if returncode is not None:
                self.stop()
                raise RuntimeError(f"secantusd exited with {returncode}:\n{output}")
            time.sleep(0.02)
        output = self.output()
        self.stop()
        raise RuntimeError(f"secantusd did not listen within {self.start_timeout} s:\n{output}")

    def output(self) -> str:
        """What the server printed so far."""
        if self._log is None:
            return ""
        return Path(self._log.name).read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server (gracefully, then by force) and wait for it to exit."""
        process, self._process = self._process, None
        self.port = None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> SecantusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
