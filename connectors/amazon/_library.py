"""Every import of python-amazon-sp-api, in one place.

The library reads ``SP_API_DEFAULT_MARKETPLACE`` and ``AWS_ENV`` when it is imported and fails
on a value it does not know: that becomes a ``ChannelSyncError`` naming the variable, which
``config check`` reports like any other problem. The library has no type annotations.
"""

from __future__ import annotations

from channelsync.errors import ChannelSyncError

try:
    from sp_api.api import ListingsItems, Orders  # type: ignore[import-untyped]
    from sp_api.api.feeds.feeds_2021_06_30 import FeedsV20210630  # type: ignore[import-untyped]
    from sp_api.auth import (  # type: ignore[import-untyped]
        AccessTokenClient,
        AccessTokenResponse,
        Credentials,
    )
    from sp_api.auth.exceptions import AuthorizationError  # type: ignore[import-untyped]
    from sp_api.base import (  # type: ignore[import-untyped]
        ApiResponse,
        Marketplaces,
        fill_query_params,
        sp_endpoint,
    )
    from sp_api.base import exceptions as sp_errors
    from sp_api.base._transport_httpx import HttpxTransport  # type: ignore[import-untyped]
    from sp_api.base.credential_provider import (  # type: ignore[import-untyped]
        FromCodeCredentialProvider,
        MissingCredentials,
    )
except (KeyError, ValueError) as exc:  # pragma: no cover - depends on the host's environment
    raise ChannelSyncError(
        "python-amazon-sp-api cannot be loaded in this environment: unset "
        f"SP_API_DEFAULT_MARKETPLACE or AWS_ENV (a value it does not know: {exc})"
    ) from exc

__all__ = [
    "AccessTokenClient",
    "AccessTokenResponse",
    "ApiResponse",
    "AuthorizationError",
    "Credentials",
    "FeedsV20210630",
    "FromCodeCredentialProvider",
    "HttpxTransport",
    "ListingsItems",
    "Marketplaces",
    "MissingCredentials",
    "Orders",
    "fill_query_params",
    "sp_endpoint",
    "sp_errors",
]
