"""paykit's benchmarks: what paykit costs per operation, against references measured in the same run.

    python3 scripts/dev.py bench            # the full run, a few minutes on 2 cores
    .venv/bin/python benchmarks/run.py      # the same
    .venv/bin/python benchmarks/run.py --quick        # seconds: proves the script still works
    .venv/bin/python benchmarks/run.py --no-mongo     # skip the SecantusDB benchmarks

Every figure is a median over repeated runs; each ratio's two sides are
measured in the same run, their repeats interleaved. Speed targets live here,
in the printed table, never in the test suite. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests._mongo_server starts SecantusDB

import pymongo  # noqa: E402
from _common import Report, quiet_logging  # noqa: E402
from _cpu import (  # noqa: E402
    Sizes,
    bench_bytes_per_payment,
    bench_handle_webhook,
    bench_lifecycle,
    bench_memory_growth,
    bench_parse_webhook,
)
from _mongo import CommandCounter, bench_mongo_growth, bench_round_trips  # noqa: E402
from tests._mongo_server import SecantusServer  # noqa: E402

from _concurrency import bench_concurrency  # noqa: E402

FULL = Sizes(
    repeats=7,
    webhook_calls=2000,
    lifecycles=1600,
    threads=8,
    users=100,
    growth_small=10_000,
    growth_large=100_000,
    growth_calls=2000,
    memory_payments=10_000,
    mongo_small=10_000,
    mongo_large=100_000,
    mongo_list_calls=50,
    mongo_slow_calls=2,
    mongo_repeats=3,
)
QUICK = Sizes(
    repeats=3,
    webhook_calls=50,
    lifecycles=40,
    threads=8,
    users=10,
    growth_small=1_000,
    growth_large=2_000,
    growth_calls=50,
    memory_payments=500,
    mongo_small=1_000,
    mongo_large=2_000,
    mongo_list_calls=5,
    mongo_slow_calls=2,
    mongo_repeats=2,
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    model = _cpu_model()
    return (
        f"{platform.system()} {platform.release()} {platform.machine()}, {model or cpu}, "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()} ({platform.python_implementation()})"
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def versions() -> str:
    import pydantic  # noqa: PLC0415
    import stripe  # noqa: PLC0415

    import paykit  # noqa: PLC0415

    return (
        f"paykit {getattr(paykit, '__version__', '?')}, pydantic {pydantic.VERSION}, stripe {stripe.VERSION}, "
        f"pymongo {pymongo.version}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: runs in seconds, figures are noise")
    parser.add_argument("--no-mongo", action="store_true", help="skip the MongoDB (SecantusDB) benchmarks")
    parser.add_argument("--repeats", type=int, help="override the number of repeats")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.repeats:
        sizes = Sizes(**{**sizes.__dict__, "repeats": args.repeats})
    quiet_logging()

    started = time.perf_counter()
    report = Report()
    print(f"machine: {machine()}")
    print(f"versions: {versions()}")
    print(
        f"mode: {'quick' if args.quick else 'full'}; repeats {sizes.repeats} (medians); "
        f"{sizes.webhook_calls} webhooks, {sizes.lifecycles} lifecycles per repeat; "
        f"growth {sizes.growth_small:,} -> {sizes.growth_large:,} (memory), "
        f"{sizes.mongo_small:,} -> {sizes.mongo_large:,} (MongoDB), {sizes.users} users",
        flush=True,
    )

    print("\n[1] Stripe webhook verification + parsing", flush=True)
    bench_parse_webhook(report, sizes)
    print("[2] handle_webhook on MemoryStorage", flush=True)
    bench_handle_webhook(report, sizes)
    print("[3] lifecycles", flush=True)
    bench_lifecycle(report, sizes)
    if not args.no_mongo:
        with SecantusServer() as server:
            counter = CommandCounter()
            client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
                server.uri, tz_aware=True, serverSelectionTimeoutMS=10_000, event_listeners=[counter]
            )
            try:
                print("[4] MongoDB round trips (SecantusDB)", flush=True)
                bench_round_trips(report, client, counter)
                print("[5] growth on MongoDB (SecantusDB)", flush=True)
                bench_mongo_growth(report, client, counter, sizes)
            finally:
                client.close()
    print("[5] growth on MemoryStorage", flush=True)
    bench_memory_growth(report, sizes)
    print("[6] memory", flush=True)
    bench_bytes_per_payment(report, sizes)
    print("[7] the async service, and concurrency that waits on providers", flush=True)
    bench_concurrency(
        report,
        lifecycles=sizes.lifecycles,
        sequential=5 if args.quick else 40,
        concurrent=50 if args.quick else 1000,
        repeats=1 if args.quick else 3,
    )

    report.rows.sort(key=lambda row: row.section)
    print()
    print(report.table())
    print()
    for line in report.details:
        print(f"- {line}")
    misses = sum(1 for row in report.rows if row.passed is False)
    print(f"\n{len(report.rows)} rows, {misses} MISS; finished in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
