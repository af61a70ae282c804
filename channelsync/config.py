"""Configuration: TOML read once into typed, frozen models.

Every problem in a file is collected and reported with where it is; ``${ENV}``
references are expanded here and nowhere else; secrets stay ``SecretStr`` so they
never reach a log or ``repr``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from channelsync.errors import ChannelSyncError, ConfigError

DEFAULT_PULL_INTERVAL = 120.0
DEFAULT_RECONCILE_INTERVAL = 6 * 3600.0
DEFAULT_LOOKBACK_DAYS = 30
DEFAULT_DB_FILE = "channelsync.db"
DEFAULT_SESSION_HOURS = 12.0
MIN_SESSION_SECRET = 32  # characters of a configured [web] session_secret
SYSTEM_CONFIG = Path("/etc/channelsync/channels.toml")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuleFields(_Model):
    """Rule fields; None means 'not set here, inherit'."""

    percent: float | None = Field(default=None, ge=0, le=1000)
    buffer: int | None = Field(default=None, ge=0)
    max_quantity: int | None = Field(default=None, ge=0)
    sync: bool | None = None


class SkuRule(RuleFields):
    sku: str
    channel: str | None = None  # None: every channel


class KitConfig(_Model):
    sku: str = Field(min_length=1)
    components: dict[str, int] = Field(min_length=1)
    title: str = ""

    @field_validator("components")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [sku for sku, qty in value.items() if qty <= 0]
        if bad:
            raise ValueError(f"component quantities must be positive: {', '.join(bad)}")
        return value


class DatabaseConfig(_Model):
    url: SecretStr = SecretStr("")  # may hold a password


class DaemonConfig(_Model):
    pull_interval: float = Field(default=DEFAULT_PULL_INTERVAL, gt=0)
    reconcile_interval: float = Field(default=DEFAULT_RECONCILE_INTERVAL, gt=0)
    lookback_days: int = Field(default=DEFAULT_LOOKBACK_DAYS, ge=0, le=365)
    push_attempts: int = Field(default=5, ge=1)  # failed pushes before a conflict is raised
    retry_attempts: int = Field(default=4, ge=1)  # tries of one API call within a cycle
    retry_max_wait: float = Field(default=30.0, ge=0)
    failure_backoff_max: float = Field(default=900.0, gt=0)  # a failing channel's longest pause
    shutdown_timeout: float = Field(default=60.0, gt=0)  # for running cycles on SIGTERM
    metrics_listen: str = ""  # "127.0.0.1:9464": /metrics and /healthz; empty: off
    webhook_listen: str = ""  # "127.0.0.1:8787": /webhooks/<channel>; empty: off
    healthz_max_cursor_age: float = Field(default=1800.0, gt=0)  # /healthz fails past this


class AlertsConfig(_Model):
    urls: list[SecretStr] = []  # apprise URLs; they often carry tokens
    repeat_interval: float = Field(default=6 * 3600.0, gt=0)  # re-alert while still open
    check_interval: float = Field(default=30.0, gt=0)  # seconds between alert runs
    channel_down_after: float = Field(default=900.0, gt=0)  # unreachable this long: alert
    low_stock: int | None = Field(default=None, ge=0)  # alert when available <= this
    low_stock_sku: dict[str, int] = {}  # per-SKU thresholds, overriding low_stock
    ship_within: float = Field(default=2 * 86400.0, gt=0)  # paid, not shipped this long: alert


class WebUser(_Model):
    """A dashboard login. The hash comes from ``channelsync web hash-password``."""

    name: str = Field(pattern=_NAME, max_length=100)
    password_hash: SecretStr  # argon2; a ${ENV} reference or a systemd credential
    role: Literal["admin", "viewer"] = "viewer"  # admin: may change stock and ack conflicts


class WebConfig(_Model):
    """The dashboard. ``listen`` empty: off. No users: loopback only, and everyone is admin."""

    listen: str = ""  # "127.0.0.1:8080"
    users: list[WebUser] = []
    # Signs the session cookies; empty: a random one at each start (sessions end at restart).
    session_secret: SecretStr = SecretStr("")
    # "auto": Secure when the request came over HTTPS (a proxy on loopback says so with
    # X-Forwarded-Proto); true: always (TLS ends on a proxy elsewhere); false: never.
    secure_cookies: bool | Literal["auto"] = "auto"
    session_hours: float = Field(default=DEFAULT_SESSION_HOURS, gt=0, le=24 * 30)

    def user(self, name: str) -> WebUser | None:
        return next((u for u in self.users if u.name == name), None)


_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in "90m", "36h", "14d", "2w", "30s"."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30m, 36h, 14d or 2w")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class TierConfig(_Model):
    """Reached by a buyer whose orders in the window reach ``min_spend`` in one of its
    currencies or ``min_orders`` (either, where both are given)."""

    name: str = Field(pattern=_NAME, max_length=100)
    min_spend: dict[str, float] = {}  # per currency: {EUR = 500, USD = 550}
    min_orders: int | None = Field(default=None, ge=1)
    tag: str = Field(default="", max_length=100)  # shown beside the buyer's orders

    @field_validator("min_spend")
    @classmethod
    def _currencies(cls, value: dict[str, float]) -> dict[str, float]:
        for currency, amount in value.items():
            if not re.fullmatch(r"[A-Z]{3}", currency):
                raise ValueError(f"{currency!r} is not a currency code such as EUR")
            if amount <= 0:
                raise ValueError(f"the amount for {currency} must be above 0")
        return {c.upper(): a for c, a in value.items()}


class LoyaltyConfig(_Model):
    # Buyers are recognised by an HMAC of their normalised email (or channel buyer id)
    # with this salt: a secret (${ENV} or a systemd credential). Empty: nobody is recognised.
    salt: SecretStr = SecretStr("")
    window_days: int = Field(default=365, ge=1, le=3650)
    tiers: list[TierConfig] = []  # lowest first
    # A buyer with no order for this many days is forgotten (as `customers forget` does);
    # None: kept until forgotten by hand.
    forget_after_days: int | None = Field(default=None, ge=1)


class FollowupConfig(_Model):
    """A message due ``after`` an order was delivered (or shipped), sent once per order."""

    name: str = Field(pattern=_NAME, max_length=100)
    after: str  # a duration: "14d"
    since: Literal["delivered", "shipped"] = "delivered"
    channel: str | None = None  # None: every channel that allows contacting buyers
    min_total: float | None = Field(default=None, ge=0)
    only_first_order: bool = False
    subject: str = "Your order {{ order_id }}"  # Jinja2, sandboxed
    template: str = Field(min_length=1)  # Jinja2, sandboxed: the order's fields
    urls: list[SecretStr] = []  # apprise URLs (mailto://, a webhook, Slack, ...)
    outbox: str = ""  # a JSON-lines file for the seller's own mailer

    @property
    def after_seconds(self) -> float:
        return parse_duration(self.after)


def listen_host(listen: str) -> str | None:
    """The host of ``host:port`` or ``[v6]:port``; None when it is not written that way."""
    value = listen.strip()
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
    else:
        host, sep, port = value.rpartition(":")
    return host if sep and host and port.isdigit() else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web_listen_problem(listen: str, users: int) -> str | None:
    """Why the dashboard may not listen there, or None: an address other than loopback
    needs at least one user (without users everyone who reaches it would be admin)."""
    host = listen_host(listen)
    if host is None:
        return f"{listen!r} is not host:port (such as 127.0.0.1:8080, or [::1]:8080)"
    if users or is_loopback(host):
        return None
    return (f"{listen} is not a loopback address, and no [[web.users]] are configured: "
            "without users everyone who reaches the dashboard is admin, so it only listens "
            "on loopback (127.0.0.1, ::1). Add a [[web.users]] entry (its hash from "
            "'channelsync web hash-password') to listen there")


def _web_problems(web: WebConfig) -> list[str]:
    problems = []
    if web.listen:
        problem = web_listen_problem(web.listen, len(web.users))
        if problem:
            problems.append(f"web.listen: {problem}")
    names = [u.name for u in web.users]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"web.users: the name {name!r} is used more than once")
    for i, user in enumerate(web.users):
        value = user.password_hash.get_secret_value()
        if not _ENV_REF.fullmatch(value) and not value.startswith("$argon2"):
            problems.append(f"web.users[{i}] ({user.name}).password_hash: not an argon2 hash "
                            "(make one with 'channelsync web hash-password')")
    secret = web.session_secret.get_secret_value()
    if secret and not _ENV_REF.fullmatch(secret) and len(secret) < MIN_SESSION_SECRET:
        problems.append(f"web.session_secret: shorter than {MIN_SESSION_SECRET} characters "
                        "(make one with: openssl rand -hex 32)")
    return problems


class ChannelConfig(_Model):
    name: str = Field(pattern=_NAME)
    type: str
    enabled: bool = True
    sandbox: bool = False
    endpoint: str = ""
    pull_interval: float | None = Field(default=None, gt=0)
    reconcile_interval: float | None = Field(default=None, gt=0)
    lookback_days: int | None = Field(default=None, ge=0, le=365)
    webhook_secret: SecretStr | None = None  # signs the channel's order webhooks
    ship_within: float | None = Field(default=None, gt=0)  # [alerts] ship_within, here
    # Days after shipping an order counts as delivered where the channel does not say.
    assume_delivered_after: float | None = Field(default=None, gt=0, le=365)
    # Follow-ups to this channel's buyers: None follows the channel's policy (Amazon
    # forbids contacting buyers outside its own messaging); true sends them anyway.
    followups: bool | None = None
    rules: RuleFields = RuleFields()
    sku_map: dict[str, str] = {}
    settings: Any = None  # the connector's own validated settings model

    def master_sku(self, channel_sku: str) -> str:
        return self.sku_map.get(channel_sku, channel_sku)


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig
    daemon: DaemonConfig
    alerts: AlertsConfig
    rules: RuleFields
    channels: tuple[ChannelConfig, ...]
    kits: tuple[KitConfig, ...]
    sku_rules: tuple[SkuRule, ...]
    web: WebConfig = field(default_factory=WebConfig)
    loyalty: LoyaltyConfig = field(default_factory=LoyaltyConfig)
    followups: tuple[FollowupConfig, ...] = ()
    source: str = ""
    warnings: tuple[str, ...] = ()  # e.g. environment variables not set, when not required

    def channel(self, name: str) -> ChannelConfig:
        for channel in self.channels:
            if channel.name == name:
                return channel
        known = ", ".join(c.name for c in self.channels) or "none"
        raise ConfigError([f"no channel named {name!r} (configured: {known})"], self.source)

    @property
    def database_url(self) -> str:
        return self.database.url.get_secret_value()


_COMMON_CHANNEL_KEYS = set(ChannelConfig.model_fields) - {"settings"}


def find_config(explicit: str | Path | None, env: Mapping[str, str]) -> Path:
    """The config's path: --config, else $CHANNELSYNC_CONFIG, else ./channels.toml, else /etc."""
    if explicit:
        return Path(explicit)
    if env.get("CHANNELSYNC_CONFIG"):
        return Path(env["CHANNELSYNC_CONFIG"])
    local = Path("channels.toml")
    return local if local.exists() else SYSTEM_CONFIG


def load_config(
    path: str | Path, env: Mapping[str, str] | None = None, *, require_env: bool = True
) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror or exc}"], str(path)) from exc
    return parse_config(text, source=str(path), env=os.environ if env is None else env,
                        require_env=require_env)


def parse_config(
    text: str, *, source: str = "<config>", env: Mapping[str, str], require_env: bool = True
) -> Config:
    """Parse and validate. ``require_env=False`` turns unset ``${VAR}`` into warnings."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], source) from exc
    problems: list[str] = []
    unset: list[str] = []
    raw = _expand_env(raw, env, "", unset)
    # A disabled channel may wait for its credentials: its unset references only warn.
    waiting = tuple(f"{_item('channel', i, b)}." for i, b in enumerate(raw.get("channel", []))
                    if isinstance(b, dict) and b.get("enabled") is False)
    if require_env:
        problems += [u for u in unset if not u.startswith(waiting)]
    warnings = list(unset)
    config = _build(raw, env, problems, warnings, unset)
    if problems or config is None:
        raise ConfigError(problems, source)
    return replace(config, source=source, warnings=tuple(warnings))


def _expand_env(value: Any, env: Mapping[str, str], where: str, unset: list[str]) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in env:
                return env[name]
            credential = _credential(env, name)
            if credential is not None:
                return credential
            unset.append(f"{where}: environment variable {name} is not set "
                         "(nor a systemd credential of that name)")
            return match.group(0)  # left as written, so nothing else trips over it

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, env, _join(where, k), unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, env, _item(where, i, v), unset) for i, v in enumerate(value)]
    return value


def _credential(env: Mapping[str, str], name: str) -> str | None:
    """A systemd credential (LoadCredential=NAME:...) stands in for an unset variable."""
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / name
    try:
        return path.read_text(encoding="utf-8").rstrip("\n")
    except OSError:
        return None


def _item(where: str, index: int, value: Any) -> str:
    """``channel[0] (shop)``: the index, and the name where the table has one."""
    name = value.get("name") if isinstance(value, dict) else None
    return f"{where}[{index}] ({name})" if isinstance(name, str) else f"{where}[{index}]"


def _join(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def _validate(model: type[_Model], data: Any, where: str, problems: list[str]) -> Any:
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            loc = ".".join(str(p) for p in err["loc"])
            problems.append(f"{_join(where, loc) if loc else where}: {_message(err)}")
        return None


def _message(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return str(err["msg"])


_TOP_KEYS = {"database", "daemon", "alerts", "rules", "web", "channel", "kit", "rule",
             "loyalty", "followup"}


def _build(
    raw: dict[str, Any], env: Mapping[str, str], problems: list[str], warnings: list[str],
    unset: list[str],
) -> Config | None:
    for key in raw:
        if key not in _TOP_KEYS:
            expected = ", ".join(sorted(_TOP_KEYS))
            problems.append(f"{key}: unknown section (expected one of {expected})")
    database = _validate(DatabaseConfig, raw.get("database"), "database", problems)
    if database is not None and not database.url.get_secret_value():
        state_dir = env.get("STATE_DIRECTORY", "").split(":")[0]
        db_file = Path(state_dir) / DEFAULT_DB_FILE if state_dir else Path(DEFAULT_DB_FILE)
        database = DatabaseConfig(url=SecretStr(f"sqlite:///{db_file}"))
    daemon = _validate(DaemonConfig, raw.get("daemon"), "daemon", problems)
    alerts = _validate(AlertsConfig, raw.get("alerts"), "alerts", problems)
    rules = _validate(RuleFields, raw.get("rules"), "rules", problems)
    web = _validate(WebConfig, raw.get("web"), "web", problems)
    if web is not None:
        problems += _web_problems(web)
    blocks = _table_list(raw, "channel", problems)
    channels = _channels(blocks, problems)
    _check_connectors(channels, problems, warnings, unset)
    kits = [_validate(KitConfig, k, f"kit[{i}]", problems) for i, k in enumerate(
        _table_list(raw, "kit", problems))]
    sku_rules = [_validate(SkuRule, r, f"rule[{i}]", problems) for i, r in enumerate(
        _table_list(raw, "rule", problems))]
    names = [b["name"] for b in blocks if isinstance(b, dict) and isinstance(b.get("name"), str)]
    _cross_check(names, [k for k in kits if k], [r for r in sku_rules if r], problems)
    loyalty = _validate(LoyaltyConfig, raw.get("loyalty"), "loyalty", problems)
    followups = [_validate(FollowupConfig, f, _item("followup", i, f), problems)
                 for i, f in enumerate(_table_list(raw, "followup", problems))]
    if loyalty is not None:
        problems += _loyalty_problems(loyalty)
    _followup_checks(followups, channels, loyalty, problems, warnings)
    if problems:
        return None
    return Config(database, daemon, alerts, rules, tuple(channels), tuple(kits), tuple(sku_rules),
                  web, loyalty, tuple(f for f in followups if f))


def _loyalty_problems(loyalty: LoyaltyConfig) -> list[str]:
    names = [t.name for t in loyalty.tiers]
    problems = [f"loyalty.tiers: the name {n!r} is used more than once"
                for n in sorted({n for n in names if names.count(n) > 1})]
    for i, tier in enumerate(loyalty.tiers):
        if not tier.min_spend and tier.min_orders is None:
            problems.append(f"loyalty.tiers[{i}] ({tier.name}): give min_spend or min_orders")
    if loyalty.tiers and not loyalty.salt.get_secret_value():
        problems.append("loyalty.salt: required for tiers: buyers are recognised by a salted "
                        "hash (make one with: openssl rand -hex 32; keep it in ${ENV} or a "
                        "systemd credential)")
    return problems


def _followup_checks(
    followups: list[FollowupConfig | None], channels: list[ChannelConfig],
    loyalty: LoyaltyConfig | None, problems: list[str], warnings: list[str],
) -> None:
    from channelsync.registry import load_connector

    by_name = {c.name: c for c in channels}
    names = [f.name for f in followups if f]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"followup: the name {name!r} is used more than once")
    for i, rule in enumerate(followups):
        if rule is None:
            continue
        where = f"followup[{i}] ({rule.name})"
        try:
            rule.after_seconds  # noqa: B018 - parses it
        except ValueError as exc:
            problems.append(f"{where}.after: {exc}")
        if rule.channel is not None and rule.channel not in by_name:
            problems.append(f"{where}.channel: no channel named {rule.channel!r}")
        if not rule.urls and not rule.outbox:
            problems.append(f"{where}: give urls (apprise) or outbox (a file), or both")
        if rule.only_first_order and (loyalty is None or not loyalty.salt.get_secret_value()):
            problems.append(f"{where}.only_first_order: needs [loyalty] salt, which "
                            "recognises a buyer's earlier orders")
        for key in ("subject", "template"):
            problem = template_problem(getattr(rule, key))
            if problem:
                problems.append(f"{where}.{key}: {problem}")
        targets = [by_name[rule.channel]] if rule.channel in by_name else channels
        for channel in targets:
            if load_connector(channel.type).capabilities.buyer_contact:
                continue
            policy = (f"{where}: {channel.type} (channel {channel.name!r}) forbids contacting "
                      "buyers outside its own messaging")
            if channel.followups is True:
                warnings.append(f"{policy}; followups = true on the channel sends them anyway")
            elif channel.followups is None:
                warnings.append(f"{policy}: none is sent for its orders (followups = true on "
                                "the channel would send them anyway)")


def template_problem(text: str) -> str | None:
    """Why a follow-up template does not compile (sandboxed Jinja2), or None."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    try:
        SandboxedEnvironment().from_string(text)
    except TemplateSyntaxError as exc:
        return f"not a valid template: {exc.message} (line {exc.lineno})"
    return None


def _table_list(raw: dict[str, Any], key: str, problems: list[str]) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        problems.append(f"{key}: must be an array of tables, written [[{key}]]")
        return []
    return value


def _channels(blocks: list[Any], problems: list[str]) -> list[ChannelConfig]:
    from channelsync.registry import load_connector  # late: the registry imports connectors

    channels: list[ChannelConfig] = []
    for i, block in enumerate(blocks):
        where = _item("channel", i, block)
        if not isinstance(block, dict):
            problems.append(f"{where}: must be a table")
            continue
        common = {k: v for k, v in block.items() if k in _COMMON_CHANNEL_KEYS}
        extra = {k: v for k, v in block.items() if k not in _COMMON_CHANNEL_KEYS}
        channel = _validate(ChannelConfig, common, where, problems)
        factory = None
        if isinstance(block.get("type"), str):
            try:
                factory = load_connector(block["type"])
            except ChannelSyncError as exc:
                problems.append(f"{where}.type: {exc}")
        settings = _validate(factory.Settings, extra, where, problems) if factory else None
        if channel is not None and settings is not None:
            channels.append(channel.model_copy(update={"settings": settings}))
    return channels


def _check_connectors(
    channels: list[ChannelConfig], problems: list[str], warnings: list[str], unset: list[str],
) -> None:
    """Build each channel's connector (connectors never call their channel when built) so
    that what only a connector knows (a missing endpoint, a marketplace, a URL it refuses)
    is found here, with its location, instead of at the first sync. A disabled channel's
    problems only warn; so do those that may come from a ${ENV} reference not set yet."""
    from channelsync.registry import load_connector

    for i, channel in enumerate(channels):
        where = _item("channel", i, channel.model_dump())
        waiting = {u[len(where) + 1:].partition(":")[0] for u in unset
                   if u.startswith(f"{where}.")}  # keys still holding "${VAR}"
        for problem in _connector_problems(load_connector(channel.type), channel, where):
            key = problem[len(where) + 1:].partition(":")[0] if problem.startswith(
                f"{where}.") else ""
            if key and key in waiting:
                continue  # the value is not known yet: its unset variable is the warning
            if not channel.enabled:
                warnings.append(f"{problem} (the channel is disabled)")
            elif waiting and not key:
                warnings.append(f"{problem} (perhaps because of an unset variable)")
            else:
                problems.append(problem)


def _connector_problems(factory: Any, channel: ChannelConfig, where: str) -> list[str]:
    try:
        connector = factory(channel.name, channel.settings, endpoint=channel.endpoint)
    except ConfigError as exc:
        return [_relocate(problem, channel.name, where) for problem in exc.problems]
    except Exception as exc:  # a plugin that fails in its own way: say which, keep secrets
        detail = _without_secrets(f"{type(exc).__name__}: {exc}", channel.settings)
        return [f"{where}: the {channel.type} connector refused these settings ({detail})"]
    with contextlib.suppress(Exception):  # a connector that cannot close: not a config error
        connector.close()
    return []


def _relocate(problem: str, name: str, where: str) -> str:
    """``channel 'shop': endpoint: required`` -> ``channel[0] (shop).endpoint: required``."""
    prefix = f"channel {name!r}: "
    if not problem.startswith(prefix):
        return f"{where}: {problem}"
    rest = problem[len(prefix):]
    key, sep, message = rest.partition(": ")
    if sep and key.isidentifier():
        return f"{where}.{key}: {message}"
    return f"{where}: {rest}"


def _without_secrets(text: str, settings: Any) -> str:
    for value in dict(settings or {}).values():
        if isinstance(value, SecretStr) and value.get_secret_value():
            text = text.replace(value.get_secret_value(), "***")
    return text


def _cross_check(
    names: list[str],
    kits: list[KitConfig],
    sku_rules: list[SkuRule],
    problems: list[str],
) -> None:
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"channel: the name {name!r} is used more than once")
    kit_skus = [k.sku for k in kits]
    for sku in sorted({s for s in kit_skus if kit_skus.count(s) > 1}):
        problems.append(f"kit: the sku {sku!r} is defined more than once")
    for i, kit in enumerate(kits):
        nested = [c for c in kit.components if c in kit_skus]
        if nested:
            problems.append(f"kit[{i}] ({kit.sku}): components cannot be kits: {', '.join(nested)}")
    for i, rule in enumerate(sku_rules):
        if rule.channel is not None and rule.channel not in names:
            problems.append(f"rule[{i}].channel: no channel named {rule.channel!r}")
