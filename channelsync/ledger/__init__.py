"""The ledger: the schema (SKUs, kits, order lines, reservations, movements, listings,
outbox, conflicts), applying order snapshots as desired states, stock counts, conflicts.

It knows nothing of channels' APIs or of scheduling; ``channelsync.sync`` drives it.
"""
