"""The sandbox: the base every channel emulator is built on, and the demo.

``Emulator``, ``route`` and the error classes are public: a third-party connector's emulator
subclasses them (``from channelsync.sandbox import Emulator, route``).
"""

from channelsync.sandbox.emulator import (
    BadRequest,
    Conflict,
    Emulator,
    NotFound,
    Raw,
    Request,
    Response,
    Route,
    SandboxError,
    route,
    sku_quantity,
)

__all__ = ["BadRequest", "Conflict", "Emulator", "NotFound", "Raw", "Request", "Response",
           "Route", "SandboxError", "route", "sku_quantity"]
