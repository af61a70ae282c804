"""One error tree, chosen by how the caller recovers.

Library and HTTP errors are converted into these at the connector boundary
(``raise RetriableChannelError(...) from exc``), so the engine never imports a
channel library.
"""

from __future__ import annotations

from collections.abc import Sequence


class ChannelSyncError(Exception):
    """Root of every error channelsync raises on purpose."""


class ConfigError(ChannelSyncError):
    """A configuration that cannot be used. Carries every problem found, each with its location."""

    def __init__(self, problems: Sequence[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(self.problems))


class LedgerError(ChannelSyncError):
    """The ledger refused an operation (unknown SKU, negative stock, ...)."""


class ChannelError(ChannelSyncError):
    """Something went wrong talking to a channel."""

    def __init__(self, message: str, *, channel: str = "", status: int | None = None) -> None:
        self.channel = channel
        self.status = status
        super().__init__(message)


class RetriableChannelError(ChannelError):
    """Worth trying again later: throttling, 5xx, timeouts, connection failures."""

    def __init__(
        self,
        message: str,
        *,
        channel: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, channel=channel, status=status)
        self.retry_after = retry_after


class ThrottledError(RetriableChannelError):
    """The channel said 'too many requests'."""


class Deferred(RetriableChannelError):
    """A call that would first wait longer than a cycle should (a client-side rate limit, a
    channel asking us to come back in minutes) is not made now: the next cycle makes it.

    Not retried within the cycle and not a failure: nothing was sent. ``wait`` is how many
    seconds until the call is allowed; ``what`` is what it was for, in a seller's words
    (``orders``, ``quantities``, ``listings``), filled in by the engine.
    """

    def __init__(
        self, message: str, *, wait: float, channel: str = "", operation: str = "",
        what: str = "",
    ) -> None:
        super().__init__(message, channel=channel, retry_after=wait)
        self.wait = wait
        self.operation = operation
        self.what = what


class PermanentChannelError(ChannelError):
    """Trying again will not help: bad credentials, a rejected item, a listing that is gone."""


class BadRecordError(ChannelError):
    """One record from the channel could not be understood. The rest of the page is fine."""

    def __init__(self, message: str, *, channel: str = "", record: object = None) -> None:
        super().__init__(message, channel=channel)
        self.record = record


class Interrupted(ChannelSyncError):
    """A wait was cut short because channelsync is stopping. Nothing half-done is kept:
    work is committed a page or a batch at a time, and the rest comes next time."""
