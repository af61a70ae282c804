"""Rules: from available stock to what a listing should show on its channel.

target = clamp(floor(available x percent / 100) - buffer, 0, max_quantity), unless
``sync = false``. Layers, later wins field by field: ``[rules]`` defaults, the
channel's ``[channel.rules]``, a ``[[rule]]`` for the SKU on every channel, a
``[[rule]]`` for the SKU on that channel.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from channelsync.config import Config, RuleFields

DEFAULT_PERCENT = 100.0
DEFAULT_BUFFER = 0


@dataclass(frozen=True)
class Rule:
    percent: float = DEFAULT_PERCENT
    buffer: int = DEFAULT_BUFFER
    max_quantity: int | None = None
    sync: bool = True
    sources: tuple[str, ...] = ()  # which layers set something, for the trace

    def target(self, available: int) -> tuple[int, str]:
        """The quantity to show, and how it was reached (for plan and explain)."""
        scaled = math.floor(available * self.percent / 100 + 1e-9)
        steps = [f"available {available}"]
        if self.percent != DEFAULT_PERCENT:
            steps.append(f"x {self.percent:g}% = {scaled}")
        value = scaled - self.buffer
        if self.buffer:
            steps.append(f"- buffer {self.buffer} = {value}")
        if value < 0:
            value = 0
            steps.append("floored at 0")
        if self.max_quantity is not None and value > self.max_quantity:
            value = self.max_quantity
            steps.append(f"capped at max {self.max_quantity}")
        trace = " ".join(steps) + f" -> {value}"
        if self.sources:
            trace += f" (rules: {', '.join(self.sources)})"
        return value, trace


def _layer(rule: Rule, fields: RuleFields, source: str) -> Rule:
    values = fields.model_dump(exclude_none=True, exclude={"sku", "channel"})
    if not values:
        return rule
    merged = {**rule.__dict__, **values, "sources": (*rule.sources, source)}
    return Rule(**merged)


def resolve(config: Config, channel: str, sku: str) -> Rule:
    rule = _layer(Rule(), config.rules, "[rules]")
    rule = _layer(rule, config.channel(channel).rules, f"[channel.rules] {channel}")
    for sku_rule in config.sku_rules:
        if sku_rule.sku == sku and sku_rule.channel is None:
            rule = _layer(rule, sku_rule, f"[[rule]] {sku}")
    for sku_rule in config.sku_rules:
        if sku_rule.sku == sku and sku_rule.channel == channel:
            rule = _layer(rule, sku_rule, f"[[rule]] {sku} on {channel}")
    return rule


def rules_hash(config: Config, channel: str) -> str:
    """Changes when anything that shapes this channel's targets changes (rules, kits, map)."""
    chan = config.channel(channel)
    payload = {
        "rules": config.rules.model_dump(),
        "channel": chan.rules.model_dump(),
        "sku_map": chan.sku_map,
        "sku_rules": [r.model_dump() for r in config.sku_rules if r.channel in (None, channel)],
        "kits": [k.model_dump() for k in config.kits],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
