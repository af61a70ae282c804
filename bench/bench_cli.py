"""How fast the command line starts: ``channelsync --help``, ``status`` and ``stock list``.

    python bench/bench_cli.py [--runs N]

Runs the installed ``channelsync`` entry point (the one beside this Python, else
``python -m channelsync``) as a seller would, in fresh processes, and prints the median wall
time of each command beside the target. ``status`` and ``stock list --json`` run on a small
config (one WooCommerce channel; nothing contacts it) over a SQLite ledger in a temp dir,
after one warm-up run that creates the schema. It never fails on a time (machines are
noisy); a command that exits non-zero is an error. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 1.0
RUNS = 7
CONFIG = """\
[database]
url = "sqlite:///{db}"
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "ck_bench"
consumer_secret = "cs_bench"
"""


def command() -> list[str]:
    script = Path(sys.executable).with_name("channelsync")
    return [str(script)] if script.exists() else [sys.executable, "-m", "channelsync"]


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs per command ({RUNS})")
    args = parser.parse_args()
    base = command()
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:
        config = Path(tmp) / "channels.toml"
        config.write_text(CONFIG.format(db=Path(tmp) / "ledger.db"))
        env = {k: v for k, v in os.environ.items() if k != "CHANNELSYNC_CONFIG"}
        with_config = [*base, "--config", str(config)]
        timed([*with_config, "status"], env)  # warm-up: creates the schema
        cases = {
            "channelsync --help": [*base, "--help"],
            "channelsync status": [*with_config, "status"],
            "channelsync stock list --json": [*with_config, "stock", "list", "--json"],
        }
        print(f"{' '.join(base)}; median of {args.runs} runs, target < {TARGET_S:.1f} s")
        for name, argv in cases.items():
            median = statistics.median(timed(argv, env) for _ in range(args.runs))
            verdict = "ok" if median < TARGET_S else "ABOVE"
            print(f"  {name:<32} {median * 1000:7.0f} ms  {verdict}")


if __name__ == "__main__":
    main()
