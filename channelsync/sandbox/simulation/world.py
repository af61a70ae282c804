"""The simulated world: one emulator of every channel type, a catalog, the fault plan, and
the config a channelsync process uses against it.

Every emulator draws its faults from a seed of its own, derived from the run's seed; the
orders the channels hold (``GET /_sandbox/orders``) are the truth the checks compare the
ledger with.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from channelsync.registry import load_emulator

CATALOG = {f"SKU-{n:02d}": 8 + (n * 7) % 23 for n in range(10)}  # sku -> units at the start
KITS = {"PAIR-01": {"SKU-01": 2}, "SET-03": {"SKU-03": 1, "SKU-04": 1}}
CHANNELS = {  # name -> (type, what it lists)
    "shop": ("woocommerce", [*CATALOG, *KITS]),
    "amazon": ("amazon", [s for n, s in enumerate(CATALOG) if n % 3 != 2] + ["PAIR-01"]),
    "ebay": ("ebay", [s for n, s in enumerate(CATALOG) if n % 2 == 0] + ["SET-03"]),
    "shopify": ("shopify", [*CATALOG, "SET-03"]),
}
LAG = 1.0  # seconds Amazon takes to show an order here (about 120 on the real one)
TIMEOUT = 2.0  # the connectors' request timeout: a hung connection costs this
SECRETS = {"woocommerce": "cs_sim_secret_9f3a", "amazon": "amzn-sim-client-secret-77",
           "ebay": "ebay-sim-token-51c0", "shopify": "shpat_sim_token_2b8e"}


@dataclass(frozen=True)
class FaultPlan:
    """What goes wrong on one channel for the whole run (cleared to settle)."""

    throttle_rate: float = 0.04
    error_rate: float = 0.04
    latency_ms: float = 2.0
    hang_rate: float = 0.01
    hang_seconds: float = TIMEOUT + 1.0
    lost_answer_rate: float = 0.06
    duplicate_rate: float = 0.1
    reorder_rate: float = 0.3
    stale_rate: float = 0.05
    clock_skew: float = 0.0

    def body(self, seed: int) -> dict[str, Any]:
        return {**self.__dict__, "seed": seed, "retry_after": 1}


def fault_plans(seed: int, enabled: bool, skew: float = 45.0) -> dict[str, FaultPlan]:
    """One plan per channel, drawn from the seed; one channel's clock runs ``skew`` seconds
    off (ahead or behind)."""
    if not enabled:
        return {name: FaultPlan(0, 0, 0, 0, 0, 0, 0, 0, 0, 0) for name in CHANNELS}
    rng = random.Random(seed)
    skewed = rng.choice(sorted(CHANNELS))
    return {name: FaultPlan(clock_skew=rng.choice((-skew, skew)) if name == skewed else 0.0)
            for name in CHANNELS}


@dataclass
class World:
    seed: int
    faults: bool = True
    skew: float = 45.0
    emulators: dict[str, Any] = field(default_factory=dict)
    plans: dict[str, FaultPlan] = field(default_factory=dict)
    channels: dict[str, tuple[str, list[str]]] = field(default_factory=lambda: CHANNELS)
    kits: dict[str, dict[str, int]] = field(default_factory=lambda: KITS)
    opening: int = 0  # what every listing shows at the start

    def start(self) -> None:
        for index, (name, (kind, _skus)) in enumerate(self.channels.items()):
            emulator = _emulator(kind, self.seed * 31 + index)
            emulator.start("127.0.0.1", 0)
            self.emulators[name] = emulator
        self.plans = fault_plans(self.seed, self.faults, self.skew)
        for name, skus in ((n, s) for n, (_t, s) in self.channels.items()):
            for sku in skus:
                self.post(name, "/_sandbox/listings", {"sku": sku, "quantity": self.opening})

    def stop(self) -> None:
        for emulator in self.emulators.values():
            emulator.stop()

    def inject(self) -> None:
        for index, (name, plan) in enumerate(self.plans.items()):
            self.post(name, "/_sandbox/faults", plan.body(self.seed * 97 + index))

    def calm(self) -> None:
        """Every transient fault off; a skewed clock stays skewed (it is not a fault that
        passes)."""
        for name, plan in self.plans.items():
            self.post(name, "/_sandbox/faults", {"clock_skew": plan.clock_skew})

    def post(self, channel: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(self.emulators[channel].url + path, json=body, timeout=10)

    def get(self, channel: str, path: str) -> Any:
        answer = httpx.get(self.emulators[channel].url + path, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def shown(self) -> dict[str, dict[str, int]]:
        return {name: {i["sku"]: i["quantity"] for i in self.get(name, "/_sandbox/listings")
                       ["listings"] if i.get("fulfillment", "MFN") != "AFN"}
                for name in self.emulators}

    def orders(self) -> dict[str, list[dict[str, Any]]]:
        return {name: self.get(name, "/_sandbox/orders")["orders"] for name in self.emulators}

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: self.get(name, "/_sandbox/stats") for name in self.emulators}

    def config(self, database_url: str, alert_url: str, *, pull_interval: float = 1.0,
               reconcile_interval: float = 6.0, webhook_listen: str = "",
               webhook_secret: str = "") -> str:
        """The channels.toml a channelsync process runs this world with; with
        ``webhook_listen``, the channels whose emulators send webhooks sign them with
        ``webhook_secret``."""
        kits = "".join(f'[[kit]]\nsku = "{kit}"\ncomponents = {{ '
                       + ", ".join(f'"{c}" = {q}' for c, q in parts.items()) + " }\n"
                       for kit, parts in self.kits.items())
        hooks = f'webhook_listen = "{webhook_listen}"\n' if webhook_listen else ""
        return (f'[database]\nurl = "{database_url}"\n[daemon]\npull_interval = {pull_interval}\n'
                f"reconcile_interval = {reconcile_interval}\nretry_max_wait = 1\n"
                f"retry_attempts = 3\nlookback_days = 1\nshutdown_timeout = 20\n{hooks}"
                f'[alerts]\nurls = ["{alert_url}"]\ncheck_interval = 0.5\n'
                + "".join(self._channel(name, kind, webhook_secret if webhook_listen else "")
                          for name, (kind, _s) in self.channels.items())
                + kits)

    def _channel(self, name: str, kind: str, webhook_secret: str = "") -> str:
        url, secret = self.emulators[name].url, SECRETS[kind]
        head = f'[[channel]]\nname = "{name}"\ntype = "{kind}"\nendpoint = "{url}"\n' \
               f"timeout = {TIMEOUT}\n"
        if webhook_secret and self.emulators[name].webhooks is not None:
            head += f'webhook_secret = "{webhook_secret}"\n'
        return head + {
            "woocommerce": f'consumer_key = "ck_sim"\nconsumer_secret = "{secret}"\n',
            "amazon": ('marketplace = "US"\nseller_id = "A2SIMSELLER"\n'
                       'refresh_token = "Atzr|sim-refresh"\nlwa_app_id = "amzn1.application-'
                       f'oa2-client.sim"\nlwa_client_secret = "{secret}"\norder_lag = {LAG}\n'
                       "feed_wait = 1\nfeed_poll_interval = 0.2\nfeed_threshold = 3\n"),
            "ebay": (f'token = "{secret}"\napp_id = "sim-app"\ndev_id = "sim-dev"\n'
                     f'cert_id = "sim-cert"\norder_lag = {LAG}\n'),
            "shopify": f'access_token = "{secret}"\n',
        }[kind]


def _emulator(kind: str, seed: int) -> Any:
    cls = load_emulator(kind)
    if kind == "woocommerce":
        return cls(consumer_key="ck_sim", consumer_secret=SECRETS[kind], seed=seed)
    if kind == "amazon":
        return cls(rate_limits=False, visibility_lag=LAG, seed=seed)
    if kind == "ebay":
        return cls(token=SECRETS[kind], seed=seed)
    return cls(access_token=SECRETS[kind], seed=seed)
