"""How a buyer is recognised: an HMAC-SHA256, with the seller's secret salt, of their
normalised email (across channels) or of the channel's own buyer id (within that channel).
The email and the id themselves are never stored; without the salt the hashes cannot be
turned back into them, nor matched against a list of known addresses."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

KEY_LENGTH = 64  # hex characters of a hash


def normalise_email(email: str) -> str:
    """Lower case, without surrounding spaces; "" for something that is no address."""
    value = email.strip().lower()
    local, at, domain = value.rpartition("@")
    return value if at and local and "." in domain and " " not in value else ""


def _hash(salt: str, text: str) -> str:
    return hmac.new(salt.encode(), text.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Identity:
    """The hashes one order carries: by email (may be ""), by the channel's buyer id."""

    email: str = ""
    channel_id: str = ""

    @property
    def key(self) -> str:
        """The buyer's key unless an alias says otherwise: the email's where there is one."""
        return self.email or self.channel_id


def identity(salt: str, channel: str, email: str, buyer_id: str) -> Identity:
    normal = normalise_email(email)
    return Identity(_hash(salt, f"email:{normal}") if normal else "",
                    _hash(salt, f"id:{channel}:{buyer_id.strip()}") if buyer_id.strip() else "")


def email_key(salt: str, email: str) -> str:
    """The key of a buyer known by this email ("" if it is no address)."""
    normal = normalise_email(email)
    return _hash(salt, f"email:{normal}") if normal else ""
