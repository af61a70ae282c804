"""The order book: every channel's orders as wholes, their stages and what happened to them.

Built on the ledger (stock lives there, per order line); the sync engine records what
each pull brings, and the seller's own steps (picked, packed) are set here.
"""
