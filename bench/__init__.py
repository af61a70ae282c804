"""Benchmarks of the ledger and the sync cycle; run ``python bench/bench_ledger.py``."""
