"""The sync core: the cycle (pull, apply, plan, push, read back), echo-safe pushing, the
planner and its rules, revision budgets, the one retry policy and client-side rate limits,
deferred calls, and the events it emits for observers. Uses the ledger; never a channel
library (connectors are reached through ``channelsync.connector``)."""
