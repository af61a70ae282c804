"""Login with Amazon (the token endpoint) and S3-style presigned URLs for the Amazon emulator.

LWA answers errors as OAuth 2.0 does (`{"error": ..., "error_description": ...}`, HTTP 400);
the library reads `error` and `error_description` from them. Presigned URLs carry an expiry
(5 minutes, as Amazon's) and an HMAC of method, document and time; S3 answers in XML.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote

from channelsync.sandbox.emulator import Raw, Request, Response

__all__ = ["CLIENT_ID_PREFIX", "REFRESH_TOKEN_PREFIX", "Lwa", "Presigner"]

CLIENT_ID_PREFIX = "amzn1.application-oa2-client."
REFRESH_TOKEN_PREFIX = "Atzr|"
TOKEN_LIFETIME = 3600  # seconds, as LWA's access tokens
URL_LIFETIME = 300  # seconds, as the Feeds API's presigned URLs


def _oauth_error(error: str, description: str) -> Response:
    return 400, {"error_description": description, "error": error}, {}


class Lwa:
    """Issues access tokens for a refresh token and checks them on SP-API calls.

    Configured credentials must match; without them, any values of the right form pass
    (refresh tokens start `Atzr|`, client ids `amzn1.application-oa2-client.`).
    """

    def __init__(self, refresh_token: str | None, client_id: str | None,
                 client_secret: str | None) -> None:
        self.refresh_token, self.client_id = refresh_token, client_id
        self.client_secret = client_secret
        self._tokens: dict[str, datetime] = {}  # access token -> expiry

    def token(self, request: Request, now: datetime) -> Response:
        form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)

        def field(name: str) -> str:
            return (form.get(name) or [""])[0]

        grant = field("grant_type")
        if grant not in ("refresh_token", "client_credentials"):
            return _oauth_error("unsupported_grant_type",
                                f"The authorization grant type {grant!r} is not supported")
        if not self._client_ok(field("client_id"), field("client_secret")):
            return _oauth_error("invalid_client", "Client authentication failed")
        body: dict[str, Any] = {"token_type": "bearer", "expires_in": TOKEN_LIFETIME}
        if grant == "refresh_token":
            refresh = field("refresh_token")
            if not refresh:
                return _oauth_error("invalid_request", "The request is missing a required "
                                                       "parameter : refresh_token")
            if not self._refresh_ok(refresh):
                return _oauth_error("invalid_grant", "The request has an invalid grant "
                                                     "parameter : refresh_token")
            body["refresh_token"] = refresh
        else:
            body["scope"] = field("scope")
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        access = "Atza|" + secrets.token_urlsafe(48)
        self._tokens[access] = now + timedelta(seconds=TOKEN_LIFETIME)
        return 200, {"access_token": access, **body}, {}

    def _client_ok(self, client_id: str, secret: str) -> bool:
        if self.client_id is not None or self.client_secret is not None:
            return (hmac.compare_digest(client_id, self.client_id or "")
                    and hmac.compare_digest(secret, self.client_secret or ""))
        return client_id.startswith(CLIENT_ID_PREFIX) and len(client_id) > len(
            CLIENT_ID_PREFIX) and bool(secret)

    def _refresh_ok(self, refresh: str) -> bool:
        if self.refresh_token is not None:
            return hmac.compare_digest(refresh, self.refresh_token)
        return refresh.startswith(REFRESH_TOKEN_PREFIX) and len(refresh) > len(
            REFRESH_TOKEN_PREFIX)

    def refusal(self, token: str, now: datetime) -> str | None:
        """Why an `x-amz-access-token` is refused (None: it is valid)."""
        expiry = self._tokens.get(token)
        if expiry is None:
            return "The access token is missing or was not issued by this Login with Amazon."
        if expiry <= now:
            return "The access token you provided has expired."
        return None


def _s3_error(status: int, code: str, message: str) -> Response:
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
           f"<Message>{message}</Message></Error>")
    return status, Raw(xml.encode(), "application/xml"), {}


class Presigner:
    """Presigned URLs for the emulator's document storage (its stand-in for S3)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def _signature(self, method: str, key: str, stamp: str) -> str:
        text = f"{method}\n{key}\n{stamp}".encode()
        return hmac.new(self._key, text, hashlib.sha256).hexdigest()

    def url(self, base: str, method: str, key: str, now: datetime) -> str:
        stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        return (f"{base}/_storage/{quote(key, safe='')}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                f"&X-Amz-Date={stamp}&X-Amz-Expires={URL_LIFETIME}&X-Amz-SignedHeaders=host"
                f"&X-Amz-Signature={self._signature(method, key, stamp)}")

    def refusal(self, request: Request, key: str, now: datetime) -> Response | None:
        """An S3 error response for a URL that is forged, altered or expired."""
        stamp = request.arg("X-Amz-Date") or ""
        given = request.arg("X-Amz-Signature") or ""
        if not hmac.compare_digest(given, self._signature(request.method, key, stamp)):
            return _s3_error(403, "SignatureDoesNotMatch", "The request signature we "
                             "calculated does not match the signature you provided.")
        signed = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if now > signed + timedelta(seconds=URL_LIFETIME):
            return _s3_error(403, "AccessDenied", "Request has expired")
        return None

    @staticmethod
    def missing() -> Response:
        return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
