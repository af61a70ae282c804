"""``python -m channelsync.sandbox.simulation``: one run, one line of figures (exit 1 when a
check failed, each failure listed below the line)."""

from __future__ import annotations

import argparse
import logging
import sys

from channelsync.sandbox.simulation import Plan, simulate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simulate", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--replicas", type=int, default=0,
                        help="daemon processes (0: channelsync in this process)")
    parser.add_argument("--kills", type=int, default=0,
                        help="SIGKILLs of a daemon during the run (needs --replicas)")
    parser.add_argument("--database", default="",
                        help="ledger URL (PostgreSQL for several replicas; default SQLite)")
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--skew", type=float, default=45.0,
                        help="seconds one channel's clock is off (0: none)")
    args = parser.parse_args(argv)
    if args.kills and not args.replicas:
        parser.error("--kills needs --replicas (daemon processes to kill)")
    if args.replicas > 1 and not args.database.startswith("postgres"):
        parser.error("several replicas share one PostgreSQL ledger: give --database")
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    for handler in logging.getLogger().handlers:  # the run lowers the root's level to read
        handler.setLevel(logging.ERROR)  # every line for secrets; the terminal gets errors
    seconds = args.minutes * 60 if args.minutes is not None else args.seconds
    figures = simulate(Plan(seed=args.seed, seconds=seconds, processes=args.replicas,
                            kills=args.kills, database_url=args.database,
                            faults=not args.no_faults, skew=args.skew))
    print(f"seed {args.seed}: {figures.line()}")
    for problem in figures.problems():
        print(f"  {problem}")
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
