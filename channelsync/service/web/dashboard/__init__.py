"""The seller's dashboard: server-rendered pages over the ledger, behind a login.

``routes(source, web)`` is the route set that ``channelsync run`` (``[web] listen``) and
``channelsync web`` serve with ``httpd.serve``; ``hash_password`` makes the hashes that
``[[web.users]]`` hold. Pages only read the ledger; the actions (stock set and adjust,
acknowledging a conflict) call what the commands call.
"""

from channelsync.service.web.dashboard._auth import hash_password
from channelsync.service.web.dashboard._site import build, routes

__all__ = ["build", "hash_password", "routes"]
