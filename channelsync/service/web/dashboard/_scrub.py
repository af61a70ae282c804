"""The last guard before a page leaves: every secret of the config is blanked out of it.

Pages never show a secret on purpose, but they show text that came from elsewhere (a
channel's error message, a conflict): one that quoted a token or the database password
would otherwise reach the browser. Every ``SecretStr`` in the config (channel credentials,
webhook secrets, alert URLs, the database URL and its password, the session secret,
password hashes) is replaced, as written and as HTML-escaped.
"""

from __future__ import annotations

import html
from typing import Any

from pydantic import BaseModel, SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from channelsync.config import Config

MIN_LENGTH = 6  # shorter values would blank out ordinary words (a channel named "shop")
MASK = "***"


class Scrubber:
    def __init__(self, config: Config, *more: str) -> None:
        found: set[str] = set(more)
        for part in (config.database, config.daemon, config.alerts, config.web,
                     *config.channels):
            _secrets(part, found)
        try:
            password = make_url(config.database_url).password
        except ArgumentError:
            password = None
        if password:
            found.add(str(password))
        variants = {v for s in found for v in (s, html.escape(s), html.escape(s, quote=False))}
        # Longest first: a secret that contains another is blanked whole.
        self._secrets = sorted((s for s in variants if len(s) >= MIN_LENGTH), key=len,
                               reverse=True)

    def clean(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


def _secrets(value: Any, found: set[str]) -> None:
    if isinstance(value, SecretStr):
        found.add(value.get_secret_value())
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _secrets(getattr(value, name), found)
    elif isinstance(value, list | tuple | set):
        for item in value:
            _secrets(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _secrets(item, found)
