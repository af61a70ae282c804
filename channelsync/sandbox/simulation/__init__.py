"""A deterministic simulation of channelsync at work: every channel type on its emulator,
seeded buyers and a seller, a seeded fault plan (429s, 5xx, hung connections, answers lost
after a write was applied, duplicated, shuffled and stale pages, a channel's clock off by
45 s), optionally daemon processes killed with SIGKILL at chosen moments, and after the
channels settle, the ledger's invariants checked against the channels' own records.

``python -m channelsync.sandbox.simulation --seconds 60 --seed 3`` (``scripts/simulate.sh``)
prints one line of figures; tests run short ones.
"""

from channelsync.sandbox.simulation.checks import Figures
from channelsync.sandbox.simulation.runner import Plan, simulate

__all__ = ["Figures", "Plan", "simulate"]
