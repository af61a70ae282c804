"""Ledger throughput and the cost of a no-op sync cycle, on SQLite and PostgreSQL.

    python bench/bench_ledger.py [--pg-url URL] [--orders N] [--skus N] [--repeat N]

Prints figures beside their targets; it never fails on a time (machines are noisy). The
SQLite passes and the floor are each the best of ``--repeat`` runs: other work on the
machine only ever slows a run down (single runs gave ratios from 0.18 to 0.41).
PostgreSQL runs when ``--pg-url`` or ``CHANNELSYNC_BENCH_PG_URL`` names a server; each
measurement gets a database of its own, dropped afterwards. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repo root holds channelsync and bench
    sys.path.insert(0, str(ROOT))

from bench import apply, floor, noop, pgtemp  # noqa: E402
from bench.workload import PAGE_ORDERS, Workload, make_workload  # noqa: E402
from channelsync.ledger.migrate import open_ledger_engine  # noqa: E402

PG_ENV = "CHANNELSYNC_BENCH_PG_URL"
TARGET_LINES_PER_S = 10_000
TARGET_FLOOR_SHARE = 0.25
CYCLE_SIZES = (1_000, 100_000)
CYCLE_RUNS = 7
REPEAT = 3  # SQLite apply runs and floors timed; the best of each is reported
Levels = dict[str, tuple[int, int]]


@contextmanager
def ledger_url(backend: str, pg_server: str | None, purpose: str) -> Iterator[str]:
    if backend == "postgresql":
        assert pg_server is not None
        with pgtemp.temp_database(pg_server, purpose) as url:
            yield url
    else:
        with tempfile.TemporaryDirectory(prefix=f"bench_{purpose}_") as tmp:
            yield f"sqlite:///{tmp}/ledger.db"


def run_apply(url: str, workload: Workload) -> tuple[apply.Pass, apply.Pass, Levels]:
    engine = open_ledger_engine(url)
    try:
        apply.seed_stock(engine, workload)
        first = apply.apply_all(engine, workload)
        again = apply.apply_all(engine, workload)
        return first, again, apply.stock_levels(engine)
    finally:
        engine.dispose()


def best_apply(
    backend: str, pg_server: str | None, workload: Workload, runs: int
) -> tuple[apply.Pass, apply.Pass, Levels]:
    """The fastest first pass and replay of ``runs``, each on a ledger of its own."""
    results = []
    for _ in range(runs):
        with ledger_url(backend, pg_server, "apply") as url:
            results.append(run_apply(url, workload))
    assert all(levels == results[0][2] for _, _, levels in results)
    return (max((r[0] for r in results), key=lambda p: p.rate),
            max((r[1] for r in results), key=lambda p: p.rate), results[0][2])


def best_floor(workload: Workload, runs: int) -> floor.Floor:
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench_floor_") as tmp:
            results.append(floor.run_floor(workload, Path(tmp) / "floor.db"))
    return max(results, key=lambda f: f.rate)


def verdict(ok: bool) -> str:
    return "ok" if ok else "BELOW TARGET"


def report_apply(backend: str, first: apply.Pass, again: apply.Pass, runs: int) -> None:
    r1, r2 = first.result, again.result
    target = f"target >= {TARGET_LINES_PER_S:,}/s"
    ok = backend != "sqlite" or first.rate >= TARGET_LINES_PER_S
    best = f", best of {runs}" if runs > 1 else ""
    print(f"  {backend:<10} first pass  {first.rate:>10,.0f} lines/s  {first.seconds:7.2f} s"
          f"  ({r1.applied:,} applied, {r1.unchanged:,} unchanged{best})"
          + (f"  [{target}: {verdict(ok)}]" if backend == "sqlite" else ""))
    print(f"  {backend:<10} replay      {again.rate:>10,.0f} lines/s  {again.seconds:7.2f} s"
          f"  ({r2.applied:,} applied, {r2.unchanged:,} unchanged)")


def report_floor(
    ledger: apply.Pass, result: floor.Floor, same_end_state: bool, runs: int
) -> None:
    share = ledger.rate / result.rate
    best = f", best of {runs}" if runs > 1 else ""
    print(f"  floor      one txn     {result.rate:>10,.0f} lines/s  {result.seconds:7.2f} s"
          f"  ({result.rows:,} rows via sqlite3 executemany{best})")
    print(f"  ledger/floor = {share:.3f}  [target >= {TARGET_FLOOR_SHARE}: "
          f"{verdict(share >= TARGET_FLOOR_SHARE)}]"
          f"  end state equals the ledger's: {'yes' if same_end_state else 'NO'}")


def report_cycles(backend: str, results: list[noop.Cycles]) -> None:
    for c in results:
        print(f"  {backend:<10} {c.skus:>7,} SKUs  median {c.median_ms:8.1f} ms"
              f"  (min {min(c.runs_ms):.1f}, max {max(c.runs_ms):.1f}; first cycle"
              f" {c.first_ms:.0f} ms; seeded in {c.seed_seconds:.1f} s; outbox {c.outbox},"
              f" pushed {c.pushed})")
    small, big = results[0], results[-1]
    print(f"  {backend:<10} ratio {big.skus:,}/{small.skus:,} SKUs ="
          f" {big.median_ms / small.median_ms:.1f}x  [target: flat, about 1x]")


def profile_apply(workload: Workload, top: int) -> None:
    with ledger_url("sqlite", None, "profile") as url:
        engine = open_ledger_engine(url)
        try:
            apply.seed_stock(engine, workload)
            profiler = cProfile.Profile()
            profiler.runcall(apply.apply_all, engine, workload)
        finally:
            engine.dispose()
    for key in ("tottime", "cumulative"):
        print(f"\n  cProfile of the first pass on SQLite, top {top} by {key}:")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats(key).print_stats(top)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get(PG_ENV),
                        help=f"PostgreSQL server to measure too (default: ${PG_ENV})")
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--skus", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=CYCLE_RUNS, help="no-op cycles timed")
    parser.add_argument("--cycle-skus", type=int, nargs="+", default=list(CYCLE_SIZES),
                        help="catalog sizes for the no-op cycle")
    parser.add_argument("--repeat", type=int, default=REPEAT,
                        help="SQLite apply runs and floors timed; the best of each is kept")
    parser.add_argument("--profile", type=int, default=0, metavar="TOP",
                        help="also print the TOP functions of a cProfile of the apply loop")
    return parser.parse_args(argv)


def apply_section(args: argparse.Namespace, backends: list[str]) -> None:
    workload = make_workload(args.orders, args.skus)
    print(f"apply_page: {args.orders:,} orders ({workload.lines:,} lines) over {args.skus:,}"
          f" SKUs, {len(workload.pages)} pages of {PAGE_ORDERS} orders, one transaction each")
    sqlite_run: tuple[apply.Pass, Levels] | None = None
    for backend in backends:
        runs = args.repeat if backend == "sqlite" else 1  # PostgreSQL has no target
        first, again, levels = best_apply(backend, args.pg_url, workload, runs)
        report_apply(backend, first, again, runs)
        if backend == "sqlite":
            sqlite_run = first, levels
    assert sqlite_run is not None
    result = best_floor(workload, args.repeat)
    report_floor(sqlite_run[0], result, result.levels == sqlite_run[1], args.repeat)
    if args.profile:
        profile_apply(workload, args.profile)


def cycle_section(args: argparse.Namespace, backends: list[str]) -> None:
    print(f"\nno-op sync cycle (SyncEngine.sync(read_back=False), nothing changed),"
          f" median of {args.runs}")
    with noop.registered():
        for backend in backends:
            cycles = []
            for size in args.cycle_skus:
                with ledger_url(backend, args.pg_url, "cycle") as url:
                    engine = open_ledger_engine(url)
                    try:
                        cycles.append(noop.time_cycles(engine, size, args.runs))
                    finally:
                        engine.dispose()
            report_cycles(backend, cycles)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    backends = ["sqlite"] + (["postgresql"] if args.pg_url else [])
    apply_section(args, backends)
    cycle_section(args, backends)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"\npeak RSS {peak:,.0f} MiB; total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
