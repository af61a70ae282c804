"""``channelsync alerts test``: a test alert to every ``[alerts] urls`` destination."""

from __future__ import annotations

import socket

import typer

from channelsync.cli.common import EXIT_FAILED, EXIT_USAGE, JsonOpt, app, emit, fail, load, out

alerts_app = typer.Typer(help="Alert destinations: the apprise URLs in the alerts section.",
                         no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("test")
def alerts_test(as_json: JsonOpt = False) -> None:
    """Send a test alert to every configured destination; show which ones took it."""
    from channelsync.ledger.schema import utcnow
    from channelsync.service.alerts import AppriseSender, sample_alert  # apprise loads slowly

    config = load()
    if not config.alerts.urls:
        fail("no alert destinations: list apprise URLs as urls in the alerts section", EXIT_USAGE)
    sender = AppriseSender(config.alerts.urls)
    outcomes = sender.send_each(*sample_alert(socket.gethostname(), utcnow()))
    ok = all(delivered for _, delivered in outcomes)
    if as_json:
        emit({"destinations": [{"destination": name, "ok": delivered}
                               for name, delivered in outcomes], "ok": ok})
    else:
        for name, delivered in outcomes:
            out.print(f"{name}: {'OK' if delivered else 'FAILED'}", markup=False)
    if not ok:
        raise typer.Exit(EXIT_FAILED)
