"""``channelsync web``: the dashboard alone against the configured ledger, and
``web hash-password`` for the password hashes of ``[[web.users]]``.

The dashboard and its libraries (Starlette, Jinja2, argon2) are imported inside the
commands, so ``channelsync --help`` and every other command stay quick.
"""

from __future__ import annotations

import sys
from typing import Annotated

import click
import typer

from channelsync.cli.common import (
    EXIT_USAGE,
    err,
    fail,
    opened,
    out,
    show_config_error,
    wait_for_signal,
    web_app,
)
from channelsync.errors import ConfigError

MIN_PASSWORD = 8


@web_app.callback(invoke_without_command=True)
def web(
    ctx: typer.Context,
    listen: Annotated[str | None, typer.Option(
        help="host:port to serve on (default: listen in the config's web section).")] = None,
) -> None:
    """Serve the dashboard alone (no syncing, no channels called) until Ctrl-C or SIGTERM."""
    if ctx.invoked_subcommand is not None:
        return
    from channelsync.config import web_listen_problem
    from channelsync.service import httpd
    from channelsync.service.web.dashboard import routes

    with opened() as application:
        web_config = application.config.web
        address = (listen or web_config.listen).strip()
        if not address:
            fail("no address to serve on: set [web] listen in the config, or give "
                 "--listen 127.0.0.1:8080", EXIT_USAGE)
        problem = web_listen_problem(address, len(web_config.users))
        if problem:
            fail(f"{'--listen' if listen else 'web.listen'}: {problem}", EXIT_USAGE)
        application.engine  # noqa: B018 - the kit table as the config says, as explain needs
        try:
            server = httpd.serve(address, routes(lambda: application, web_config),
                                 setting="--listen" if listen else "web.listen")
        except ConfigError as exc:
            show_config_error(exc)
        users = len(web_config.users)
        who = f"{users} user(s)" if users else "no login: loopback only, everyone is admin"
        out.print(f"dashboard on {server.url} ({who})", soft_wrap=True)
        try:
            wait_for_signal()
        finally:
            server.stop()


@web_app.command("hash-password")
def hash_password() -> None:
    """Print the argon2 hash of a password, for a web user's password_hash.

    The password is asked for twice on a terminal, or read as one line from stdin.
    """
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        fail(f"a password needs at least {MIN_PASSWORD} characters", EXIT_USAGE)
    from channelsync.service.web.dashboard import hash_password as make_hash

    out.print(make_hash(password), markup=False, highlight=False, soft_wrap=True)
    err.print("put it in the config as a [[web.users]] password_hash, or better in an "
              "environment variable or systemd credential named by a ${VAR} reference",
              markup=False)
