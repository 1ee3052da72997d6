"""paykit's benchmarks: what paykit costs per operation, against references measured in the same run.

    python3 scripts/dev.py bench            # the full run, a few minutes on 2 cores
    .venv/bin/python benchmarks/run.py      # the same
    .venv/bin/python benchmarks/run.py --quick        # seconds: proves the script still works
    .venv/bin/python benchmarks/run.py --no-mongo     # skip the SecantusDB benchmarks
    .venv/bin/python benchmarks/run.py --save run.json              # keep this run's figures
    .venv/bin/python benchmarks/run.py --compare run.json           # each figure against a saved run
    .venv/bin/python benchmarks/run.py --quick --no-mongo --profile # where handle_webhook's time goes, by stage

Every figure is a median over repeated runs; each ratio's two sides are
measured in the same run, their repeats interleaved. Speed targets live here,
in the printed table, never in the test suite. Logging is left as a process
that configured none has it (paykit's default). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests._mongo_server starts SecantusDB

import pymongo  # noqa: E402
from _common import FIXTURES, Report, fixture_payment_intent, load_figures, logging_unconfigured  # noqa: E402
from _cpu import (  # noqa: E402
    Sizes,
    bench_bytes_per_payment,
    bench_handle_webhook,
    bench_lifecycle,
    bench_memory_growth,
    bench_parse_webhook,
    bytecodes_handle_webhook,
    profile_handle_webhook,
    webhook_stages,
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
    parser.add_argument("--save", type=Path, metavar="FILE", help="write this run's figures to FILE (JSON)")
    parser.add_argument("--compare", type=Path, metavar="FILE", help="print each figure against a run saved in FILE")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.10,
        help="--compare marks a figure REGRESSION when it got worse by more than this fraction (default 0.10)",
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile of handle_webhook first")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.repeats:
        sizes = Sizes(**{**sizes.__dict__, "repeats": args.repeats})
    previous = load_figures(args.compare) if args.compare else None  # a bad file fails now, not after the run

    started = time.perf_counter()
    report = Report()
    header = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "versions": versions(),
        "mode": "quick" if args.quick else "full",
        "repeats": sizes.repeats,
    }
    print(f"date: {header['date']}")
    print(f"machine: {machine()}")
    print(f"versions: {versions()}")
    print(
        "logging: "
        + (
            "none configured (paykit's default: no handler, structlog unconfigured)"
            if logging_unconfigured()
            else "configured by the environment"
        )
    )
    print(
        "webhook event: "
        + (
            f"Stripe's full example PaymentIntent ({FIXTURES.name}) as payment_intent.succeeded"
            if fixture_payment_intent() is not None
            else f"{FIXTURES} is absent: a built-in PaymentIntent of the same shape"
        )
    )
    print(
        f"mode: {'quick' if args.quick else 'full'}; repeats {sizes.repeats} (medians); "
        f"{sizes.webhook_calls} webhooks, {sizes.lifecycles} lifecycles per repeat; "
        f"growth {sizes.growth_small:,} -> {sizes.growth_large:,} (memory), "
        f"{sizes.mongo_small:,} -> {sizes.mongo_large:,} (MongoDB), {sizes.users} users",
        flush=True,
    )
    if args.profile:
        print("\nhandle_webhook by stage (thread CPU time per call, medians; each stage alone):", flush=True)
        stages = webhook_stages(sizes.webhook_calls, sizes.repeats)
        floor = stages[0][1]
        for name, seconds in stages:
            print(f"  {seconds * 1e6:8.1f} µs  {seconds / floor:5.2f}x floor  {name}")
        print("\nhandle_webhook by stage, Python bytecodes and calls of one event (load-independent):")
        counted = bytecodes_handle_webhook()
        for stage, opcodes, calls in counted:
            print(f"  {opcodes:6,} bytecodes  {calls:4} calls  {stage}")
        total_ops = sum(row[1] for row in counted)
        total_calls = sum(row[2] for row in counted)
        print(f"  {total_ops:6,} bytecodes  {total_calls:4} calls  whole: handle_webhook", flush=True)
        print("\nhandle_webhook profile (cProfile, own time first):", flush=True)
        print(profile_handle_webhook(sizes.webhook_calls * 2), flush=True)

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
    header["seconds"] = round(time.perf_counter() - started)
    if args.save:
        args.save.write_text(json.dumps(report.figures(header), indent=1) + "\n")
        print(f"\nfigures saved to {args.save}")
    if previous is not None:
        table, regressions = report.compare(previous, args.tolerance)
        print(
            f"\ncompared with {args.compare} ({previous.get('date', '?')}, {previous.get('mode', '?')} mode; "
            f"REGRESSION = worse by more than {args.tolerance:.0%}):"
        )
        print(table)
        print(f"{regressions} REGRESSION")
    print(f"\n{len(report.rows)} rows, {misses} MISS; finished in {header['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
