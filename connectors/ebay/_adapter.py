"""A small adapter of ours around ebaysdk's Trading connection.

ebaysdk (2.2.0, unmaintained) is used for what it does well, building and sending the XML,
and nothing else: it is told never to raise on ``Ack=Failure`` (``errors=False``) so that
this module reads every answer itself and turns each failure mode into the project's errors:
Failure (whole call), PartialFailure (returned, per-item errors attached), an HTML or non-XML
body (ebaysdk's ``AttributeError``), HTTP 5xx, timeouts and refused connections.
Its logger is silenced because at DEBUG it logs request bodies, which carry the token.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from ebaysdk.trading import Connection  # type: ignore[import-untyped]

from channelsync.errors import (
    ChannelError,
    ConfigError,
    PermanentChannelError,
    RetriableChannelError,
    ThrottledError,
)

DEFAULT_ENDPOINT = "https://api.ebay.com"
USAGE_LIMIT = "518"
AUTH_ERRORS = frozenset({"931", "932", "16110", "21916984", "21917053"})
OK_ACKS = frozenset({"Success", "Warning", "PartialFailure"})


@dataclass(frozen=True)
class Fault:
    """One ``<Errors>`` element of an answer."""

    code: str
    short: str
    long: str = ""
    classification: str = ""
    severity: str = "Error"
    params: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"eBay error {self.code}: {self.short or self.long}"[:300]


class CallRefused(PermanentChannelError):
    """eBay refused a call for good (Ack=Failure with request errors); ``codes`` are its
    error codes, for a caller that recovers from one in particular."""

    def __init__(self, message: str, *, codes: frozenset[str], channel: str = "",
                 status: int | None = None) -> None:
        super().__init__(message, channel=channel, status=status)
        self.codes = codes


@dataclass(frozen=True)
class Reply:
    """An answer eBay accepted at least in part: the body below ``{Call}Response``."""

    ack: str
    body: dict[str, Any]
    faults: tuple[Fault, ...] = ()


@dataclass(frozen=True)
class Credentials:
    app_id: str
    dev_id: str
    cert_id: str
    token: str | None = None
    oauth_token: str | None = None


class TradingClient:
    """Calls of the Trading API for one channel; every failure leaves as a ``ChannelError``."""

    def __init__(self, channel: str, endpoint: str, credentials: Credentials, *,
                 site_id: int = 0, compatibility: str = "1349", timeout: float = 20) -> None:
        self.channel = channel
        url = urlsplit(endpoint or DEFAULT_ENDPOINT)
        if url.scheme not in ("http", "https") or not url.netloc or "@" in url.netloc:
            raise ConfigError([f"channel {channel!r}: endpoint: must be an http(s) URL with a "
                               "host and no credentials"])
        self.domain, self.https = url.netloc, url.scheme == "https"
        self._credentials = credentials
        self._options = {"siteid": str(site_id), "compatibility": str(compatibility),
                         "timeout": timeout}
        self._secrets = [s for s in (credentials.token, credentials.oauth_token,
                                     credentials.cert_id) if s]
        logging.getLogger("ebaysdk").setLevel(logging.CRITICAL)

    def __repr__(self) -> str:
        return f"TradingClient(channel={self.channel!r}, domain={self.domain!r})"

    def _connection(self) -> Any:
        # A new connection per call: ebaysdk appends every call's list_nodes to the
        # connection for good, so a long-lived one grows without end.
        creds = self._credentials
        auth = {"iaf_token": creds.oauth_token} if creds.oauth_token else {"token": creds.token}
        api = Connection(domain=self.domain, config_file=None, appid=creds.app_id,
                         devid=creds.dev_id, certid=creds.cert_id, escape_xml=True,
                         warnings=False, errors=False, **self._options, **auth)
        api.config.set("https", self.https, force=True)
        return api

    def call(self, verb: str, data: dict[str, Any], list_nodes: Sequence[str] = (),
             *, item_faults: bool = False) -> Reply:
        """One call. ``item_faults``: a Failure whose every error names an item is returned
        (the caller reads per-item outcomes) rather than raised."""
        nodes = [*list_nodes, "Errors", "Errors.ErrorParameters"]
        try:
            response = self._connection().execute(verb, data, list_nodes=nodes)
            status = int(response.status_code)
            body = response.dict()
        except requests.Timeout as exc:
            raise self._retriable(f"{verb}: eBay did not answer in time") from exc
        except requests.RequestException as exc:
            raise self._retriable(f"{verb}: could not reach eBay ({type(exc).__name__})") from exc
        except (AttributeError, ValueError, TypeError) as exc:  # ebaysdk on a non-XML body
            raise self._retriable(f"{verb}: malformed response") from exc
        return self._read(verb, status, body, item_faults)

    def _read(self, verb: str, status: int, body: Any, item_faults: bool) -> Reply:
        if not isinstance(body, dict) or not isinstance(body.get("Ack"), str):
            if status == 429:
                raise ThrottledError(f"{verb}: HTTP 429", channel=self.channel, status=status)
            raise self._retriable(f"{verb}: malformed response (HTTP {status})", status)
        faults = tuple(_fault(raw) for raw in as_list(body.get("Errors")))
        ack = body["Ack"]
        errors = [f for f in faults if f.severity != "Warning"]
        if status == 200 and (ack in OK_ACKS or (item_faults and errors and all(
                f.params and _per_item(f) for f in errors))):
            return Reply(ack, body, faults)
        raise self._error(verb, status, errors)

    def _error(self, verb: str, status: int, faults: Sequence[Fault]) -> ChannelError:
        text = "; ".join(f.describe() for f in faults) or f"HTTP {status}"
        message = self._redact(f"{verb}: {text}")
        codes = {f.code for f in faults}
        if USAGE_LIMIT in codes:
            return ThrottledError(message, channel=self.channel, status=status)
        if codes & AUTH_ERRORS:
            return PermanentChannelError(message, channel=self.channel, status=status)
        if status >= 500 or any(f.classification == "SystemError" for f in faults):
            return self._retriable(message, status)
        return CallRefused(message, codes=frozenset(codes), channel=self.channel, status=status)

    def _retriable(self, message: str, status: int | None = None) -> RetriableChannelError:
        return RetriableChannelError(self._redact(message), channel=self.channel, status=status)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def item_error(self, fault: Fault) -> ChannelError:
        """The error for one item of a call that went through."""
        message = self._redact(fault.describe())
        if fault.code == USAGE_LIMIT:
            return ThrottledError(message, channel=self.channel)
        if fault.classification == "SystemError":
            return RetriableChannelError(message, channel=self.channel)
        return PermanentChannelError(message, channel=self.channel)


def _per_item(fault: Fault) -> bool:
    return fault.code not in AUTH_ERRORS and fault.code != USAGE_LIMIT \
        and fault.classification != "SystemError"


def _fault(raw: Any) -> Fault:
    if not isinstance(raw, dict):
        return Fault("?", "unreadable error")
    params = []
    for param in as_list(raw.get("ErrorParameters")):
        value = param.get("Value") if isinstance(param, dict) else param
        if isinstance(value, str):
            params.append(value)
    return Fault(
        code=_text(raw.get("ErrorCode")) or "?", short=_text(raw.get("ShortMessage")),
        long=_text(raw.get("LongMessage")), classification=_text(raw.get("ErrorClassification")),
        severity=_text(raw.get("SeverityCode")) or "Error", params=tuple(params))


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def as_list(value: Any) -> list[Any]:
    """ebaysdk gives one child as a value and several as a list (unless in list_nodes)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def child(node: Any, *path: str) -> Any:
    """``node[path[0]][path[1]]...`` through ebaysdk's dicts, None where a step is missing."""
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


__all__ = ["CallRefused", "Credentials", "Fault", "Reply", "TradingClient", "as_list", "child"]
