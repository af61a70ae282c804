"""Where a follow-up goes: the rule's apprise ``urls`` (``mailto://``, Slack, a webhook...)
and its ``outbox`` file, one JSON document per line, for the seller's own mailer.

A follow-up is delivered when the outbox file has its line (where the rule has a file) and
at least one URL took it (where the rule has URLs; a broken destination among working ones
is logged, not retried, which would send it again to the working ones).

The outbox file is written once per follow-up: before writing a follow-up that may have
been written already (a retry, or one left ``sending`` by a crash) the file is read for its
``key``, so a crash between writing and recording the send adds no second line. Apprise
has no such check: a crash in the instant between a URL taking the message and the ledger
recording it sends that message again on the next run (at least once there; exactly once
otherwise). Lines are appended under an exclusive ``flock`` and synced to disk before the
send is recorded. The mailer should take lines by renaming the file (the check reads the
current file only).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import apprise
from pydantic import SecretStr

from channelsync.config import FollowupConfig

log = logging.getLogger(__name__)

SEND_TIMEOUT = 30.0  # seconds one follow-up may take, all URLs together
_TAG = "followup-dest-"
_HOST = re.compile(r"^(localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+|\[[0-9A-Fa-f:.]+\])$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


def mask(url: str) -> str:
    """``scheme://host`` of an apprise URL, ``scheme://***`` where the host is a token.
    The same rule as ``channelsync.service.alerts.mask_url``, which this layer cannot import."""
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.match(scheme):
        return "***"
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    host = netloc[: netloc.find("]") + 1] if netloc.startswith("[") else netloc.partition(":")[0]
    return f"{scheme}://{host if _HOST.match(host) else '***'}"


@dataclass(frozen=True)
class Message:
    id: int
    key: str  # rule:channel:order_id
    rule: str
    channel: str
    order_id: str
    subject: str
    body: str
    due_at: datetime | None

    def record(self, now: datetime) -> dict[str, Any]:
        """The outbox file's line."""
        return {"id": self.id, "key": self.key, "rule": self.rule, "channel": self.channel,
                "order_id": self.order_id, "subject": self.subject, "body": self.body,
                "due_at": self.due_at.isoformat() if self.due_at else None,
                "written_at": now.isoformat()}


def destinations(rule: FollowupConfig) -> list[str]:
    """Where the rule sends, fit to print: masked URLs, the outbox file's path."""
    shown = [f"urls[{i}] {mask(u.get_secret_value())}" for i, u in enumerate(rule.urls)]
    return shown + ([f"outbox {rule.outbox}"] if rule.outbox else [])


class Destinations:
    """One rule's URLs and outbox file."""

    def __init__(self, rule: FollowupConfig, *, timeout: float = SEND_TIMEOUT) -> None:
        self.outbox = OutboxFile(Path(rule.outbox)) if rule.outbox else None
        self.urls = AppriseUrls(rule.urls, timeout=timeout) if rule.urls else None

    def deliver(self, message: Message, now: datetime, *, maybe_written: bool) -> str:
        """"" when delivered, else why not (never a URL's secret). ``maybe_written``: the
        follow-up may be in the outbox file already (a retry, a crash)."""
        if self.outbox is not None:
            try:
                self.outbox.write(message, now, check=maybe_written)
            except OSError as exc:
                return f"outbox {self.outbox.path}: {exc.strerror or exc}"
            except Exception as exc:  # a path the system refuses, say: a failed send
                return f"outbox {self.outbox.path}: {type(exc).__name__}: {exc}"
        if self.urls is not None:
            failed = self.urls.send(message.subject, message.body, label=message.key)
            if failed is not None:
                return f"not delivered to {', '.join(failed)}"
        return ""


class OutboxFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, message: Message, now: datetime, *, check: bool) -> bool:
        """Append the message's line unless ``check`` finds it there. True when written."""
        line = json.dumps(message.record(now), ensure_ascii=False, sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as file:
            fcntl.flock(file, fcntl.LOCK_EX)  # writers on this host take turns
            file.seek(0)
            existing = file.read()
            if check and message.key in _keys(existing):
                return False
            # A line cut short by a crash stays on its own line, unreadable, never joined.
            start = b"\n" if existing and not existing.endswith(b"\n") else b""
            file.write(start + line.encode("utf-8") + b"\n")
            file.flush()
            os.fsync(file.fileno())
        return True


def _keys(data: bytes) -> set[str]:
    keys = set()
    for raw in data.splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("key"), str):
            keys.add(record["key"])
    return keys


class AppriseUrls:
    """Every URL of a rule in one ``apprise.Apprise``, tagged with its index so that each
    one's outcome is known; logged masked (apprise URLs carry passwords and tokens)."""

    def __init__(self, urls: Sequence[SecretStr], *, timeout: float = SEND_TIMEOUT) -> None:
        self.timeout = timeout
        self.names = [f"urls[{i}] {mask(u.get_secret_value())}" for i, u in enumerate(urls)]
        self._apprise = apprise.Apprise(asset=apprise.AppriseAsset(service_timeout=timeout))
        self.usable = 0
        for i, url in enumerate(urls):
            if self._add(url.get_secret_value(), f"{_TAG}{i}"):
                self.usable += 1
            else:
                log.warning("follow-up destination %s is not a URL apprise understands",
                            self.names[i])

    def _add(self, url: str, tag: str) -> bool:
        if mask(url) == "***":  # no scheme: apprise would log the whole string
            return False
        try:
            return bool(self._apprise.add(url, tag=tag))
        except Exception:  # apprise raises on some malformed URLs; the URL is not logged
            return False

    def send(self, title: str, body: str, *, label: str) -> list[str] | None:
        """None when at least one URL took it; else the (masked) destinations that did not.
        Logged by ``label`` (the follow-up's key), never by its text, which names the buyer."""
        delivered: set[int] = set()
        if self.usable:
            try:
                result = self._apprise.notify(body=body, title=title, timeout=self.timeout)
                delivered = {int(tag[len(_TAG):]) for service in result if service
                             for tag in service.tag if tag.startswith(_TAG)}
            except Exception as exc:  # its message may hold a URL: only the type is logged
                log.warning("sending a follow-up failed: %s", type(exc).__name__)
        failed = [name for i, name in enumerate(self.names) if i not in delivered]
        if delivered:  # sent: the ones that did not take it are not tried again, so say so
            for name in failed:
                log.warning("follow-up %s was not delivered to %s", label, name)
        return None if delivered else failed
