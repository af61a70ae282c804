"""channelsync: one truth of stock for every sales channel, so that no unit is sold twice."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
