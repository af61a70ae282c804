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
        scaled, buffered, value = self._steps(available)
        steps = [f"available {available}"]
        if self.percent != DEFAULT_PERCENT:
            steps.append(f"x {self.percent:g}% = {scaled}")
        if self.buffer:
            steps.append(f"- buffer {self.buffer} = {buffered}")
        if buffered < 0:
            steps.append("floored at 0")
        if self.max_quantity is not None and max(buffered, 0) > self.max_quantity:
            steps.append(f"capped at max {self.max_quantity}")
        trace = " ".join(steps) + f" -> {value}"
        if self.sources:
            trace += f" (rules: {', '.join(self.sources)})"
        return value, trace

    def quantity(self, available: int) -> int:
        """The quantity to show (``target`` without the trace: a plan needs no trace)."""
        return self._steps(available)[2]

    def _steps(self, available: int) -> tuple[int, int, int]:
        """Scaled by percent, less the buffer, and then floored at 0 and capped."""
        scaled = math.floor(available * self.percent / 100 + 1e-9)
        buffered = scaled - self.buffer
        value = max(buffered, 0)
        if self.max_quantity is not None and value > self.max_quantity:
            value = self.max_quantity
        return scaled, buffered, value


def _layer(rule: Rule, fields: RuleFields, source: str) -> Rule:
    values = fields.model_dump(exclude_none=True, exclude={"sku", "channel"})
    if not values:
        return rule
    merged = {**rule.__dict__, **values, "sources": (*rule.sources, source)}
    return Rule(**merged)


def resolve(config: Config, channel: str, sku: str) -> Rule:
    return _for_sku(config, _for_channel(config, channel), channel, sku)


class Resolver:
    """``resolve`` for many listings: a channel's layers are merged once, not per listing."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._skus = {r.sku for r in config.sku_rules}
        self._channels: dict[str, Rule] = {}

    def __call__(self, channel: str, sku: str) -> Rule:
        rule = self._channels.get(channel)
        if rule is None:
            rule = self._channels[channel] = _for_channel(self._config, channel)
        return _for_sku(self._config, rule, channel, sku) if sku in self._skus else rule


def _for_channel(config: Config, channel: str) -> Rule:
    rule = _layer(Rule(), config.rules, "[rules]")
    return _layer(rule, config.channel(channel).rules, f"[channel.rules] {channel}")


def _for_sku(config: Config, rule: Rule, channel: str, sku: str) -> Rule:
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
