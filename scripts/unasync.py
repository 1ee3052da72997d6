"""Generate paykit's sync code from its async source, or check that the two agree.

    python scripts/unasync.py           # write every generated file
    python scripts/unasync.py --check   # fail on any drift, or on a rule that never fires

The I/O paths are written once, as async code, in the source folders below; the
sync twin of each file is made line for line by the rule table, the way
encode/httpcore's ``scripts/unasync.py`` and pymongo's ``tools/synchro.py`` do,
then tidied with ruff (imports sorted, formatted). A source file's first line says it is the source; a
generated file's first line says where it comes from. Only what cannot be
renamed (a thread and a task, their locks) is written twice, by hand, outside
these folders.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PAIRS: list[tuple[str, str]] = [
    ("src/paykit/_async", "src/paykit/_sync"),
    ("src/paykit/storage/_async", "src/paykit/storage/_sync"),
    ("src/paykit/providers/_async", "src/paykit/providers/_sync"),
    ("src/paykit/testing/_async", "src/paykit/testing/_sync"),
    ("src/paykit/channels/_async", "src/paykit/channels/_sync"),
    ("tests/_async", "tests/_sync"),
]
"""(source folder, generated folder), from the repository root: every ``*.py`` of a source folder is generated."""

SOURCE_HEADER = "# Source of the generated sync twin (scripts/unasync.py): edit here."
HAND_WRITTEN_HEADER = "# Written by hand for this API: scripts/unasync.py leaves it alone."
"""The first line of a module that must differ between the APIs (which backends a suite runs on, say)."""
GENERATED_HEADER = "# Generated from {source} by scripts/unasync.py: do not edit."

RULES: list[tuple[str, str]] = [
    (r"\basync def\b", "def"),
    (r"(?<![\w)\]])\(await ([\w.]+\((?:[^()]|\([^()]*\))*\))\)", r"\1"),
    (r"\bawait ", ""),
    (r"\basync with\b", "with"),
    (r"\bAsyncIterator\b", "Iterator"),
    # A line the rules empty is dropped: the async tests' marker means nothing to the sync twin.
    (r"^pytestmark = pytest\.mark\.anyio$", ""),
    (r"^from asyncio import sleep$", "from time import sleep"),
    (r"^from collections\.abc import Awaitable, ", "from collections.abc import "),
    (r"\bAwaitable\[(\w+)\]", r"\1"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\baclose\b", "close"),
    (r"\bAsyncPaymentService\b", "PaymentService"),
    (r"\bahandle_webhook\b", "handle_webhook"),
    (r"\bAsyncNotificationDispatcher\b", "NotificationDispatcher"),
    (r"\bAsync(Notifier|AuditHook) \| ", ""),
    (r"\bAsync(Notifier|AuditHook), ", ""),
    (r"\b_AsyncHookRunner\b", "_HookRunner"),
    (r"\b_async\b", "_sync"),
    (r"\bAsyncStorage\b", "Storage"),
    (r"\bAsyncMemoryStorage\b", "MemoryStorage"),
    (r"\bAsyncProvider\b", "Provider"),
    (r"\bAsyncBaseProvider\b", "BaseProvider"),
    (r"\bAsyncDisputeProvider\b", "DisputeProvider"),
    (r"\bAsyncFakeProvider\b", "FakeProvider"),
    (r"\bAsyncMongoStorage\b", "MongoStorage"),
    # pymongo's async API: same names without "Async", modules without ".asynchronous".
    (r"\bAsyncMongoClient\b", "MongoClient"),
    (r"\bAsyncCollection\b", "Collection"),
    (r"\bAsyncDatabase\b", "Database"),
    (r"\bpymongo\.asynchronous\.", "pymongo."),
    (r"\basync for\b", "for"),
    (r"\bCoroutine\[Any, Any, (\w+)\]", r"\1"),
    (r"\bAsync(Stripe|PayPal|Knet)Provider\b", r"\1Provider"),
    (r"\bhttpx\.AsyncClient\b", "httpx.Client"),
    (r"\.(\w+)_async\(", r".\1("),
    (r"\bAsyncHttpxTransport\b", "HttpxTransport"),
    (r"^import asyncio$", "import threading"),
    (r"\basyncio\.Lock\b", "threading.Lock"),
    # Notification channels: the async e-mail channel runs smtplib on a worker thread; the sync one calls it.
    (r"^from asyncio import to_thread$", ""),
    (r"\bto_thread\(([\w.]+), ", r"\1("),
    (r"\b(_?)Async(Channel|EmailChannel|HttpChannel|TwilioSms|TwilioWhatsApp|FcmPush)\b", r"\1\2"),
    (r"\bAsync(ContactResolver|AccessTokenProvider)\b", r"\1"),
]
"""(pattern, replacement) applied in order to every line of every source file.

A source line that the rules leave blank is dropped from the twin; imports the
rules left unused (``Coroutine`` once ``Coroutine[Any, Any, T]`` became ``T``) or
out of order (``AsyncStorage`` renamed ``Storage``) are fixed before formatting.
"""


def generated_text(source: Path, fired: set[str]) -> str:
    """The sync twin of ``source``, formatted; the patterns that changed a line go into ``fired``."""
    lines = source.read_text().splitlines()
    if not lines or lines[0] != SOURCE_HEADER:
        sys.exit(f"{source.relative_to(ROOT)}: the first line must be {SOURCE_HEADER!r}")
    out = [GENERATED_HEADER.format(source=source.relative_to(ROOT).as_posix())]
    for line in lines[1:]:
        text = line
        for pattern, replacement in RULES:
            changed = re.sub(pattern, replacement, text)
            if changed != text:
                fired.add(pattern)
                text = changed
        if text.strip() or not line.strip():
            out.append(text)
    imports_fixed = _ruff(["check", "--fix-only", "--select", "F401,I001"], "\n".join(out) + "\n", source)
    return _ruff(["format"], imports_fixed, source)


def _ruff(command: list[str], text: str, source: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "--stdin-filename", str(source), "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if result.returncode:
        sys.exit(f"ruff {command[0]} failed on the twin of {source.relative_to(ROOT)}:\n{result.stderr}")
    return result.stdout


def _hand_written(path: Path) -> bool:
    with path.open() as file:
        return file.readline().rstrip("\n") == HAND_WRITTEN_HEADER


def plan() -> tuple[dict[Path, str], set[str]]:
    """Every generated file's path and text, and the rules that fired."""
    fired: set[str] = set()
    files: dict[Path, str] = {}
    for source_dir, target_dir in PAIRS:
        for source in sorted((ROOT / source_dir).rglob("*.py")):
            if _hand_written(source):
                continue
            target = ROOT / target_dir / source.relative_to(ROOT / source_dir)
            files[target] = generated_text(source, fired)
    return files, fired


def main() -> int:
    """Generate, or with ``--check`` compare; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if a generated file differs or a rule never fires")
    args = parser.parse_args()
    files, fired = plan()
    problems: list[str] = []
    unused = [pattern for pattern, _ in RULES if pattern not in fired]
    if unused:
        problems.append("rules that never fire (remove them): " + ", ".join(unused))
    for target_dir in {t for _, t in PAIRS}:
        for existing in sorted((ROOT / target_dir).rglob("*.py")):
            if existing not in files and not _hand_written(existing):
                problems.append(f"{existing.relative_to(ROOT)} has no async source (delete it or add one)")
    for target, text in files.items():
        current = target.read_text() if target.exists() else None
        if current == text:
            continue
        if args.check:
            problems.append(f"{target.relative_to(ROOT)} differs from what its source makes: run scripts/unasync.py")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
