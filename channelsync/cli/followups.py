"""``followups [list] [--due] [--dry-run]``, ``followups send`` and ``followups retry ID``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from channelsync.cli import format as fmt
from channelsync.cli.common import JsonOpt, app, emit, fail, opened, out

if TYPE_CHECKING:  # the ledger and the follow-ups are imported where a command needs them
    from channelsync.config import Config
    from channelsync.followups.run import Preview
    from channelsync.service.app import App

followups_app = typer.Typer(help="After-sales follow-ups: due, sent, failed; sending them.")
app.add_typer(followups_app, name="followups")

DueOpt = Annotated[bool, typer.Option(
    "--due", help="The follow-ups due now and not sent yet, instead of those recorded.")]
DryRunOpt = Annotated[bool, typer.Option(
    "--dry-run", help="Render the follow-ups due now, as they would be sent; send and "
    "record nothing.")]
StateOpt = Annotated[str | None, typer.Option(
    "--state", help="Only recorded ones in this state: sending, sent, failed, skipped.")]
LimitOpt = Annotated[int, typer.Option(help="At most this many, latest first.")]


@followups_app.callback(invoke_without_command=True)
def followups_default(ctx: typer.Context, due: DueOpt = False, dry_run: DryRunOpt = False,
                      state: StateOpt = None, limit: LimitOpt = 50,
                      as_json: JsonOpt = False) -> None:
    if ctx.invoked_subcommand is None:
        followups_list(due=due, dry_run=dry_run, state=state, limit=limit, as_json=as_json)


@followups_app.command("list")
def followups_list(due: DueOpt = False, dry_run: DryRunOpt = False, state: StateOpt = None,
                   limit: LimitOpt = 50, as_json: JsonOpt = False) -> None:
    """Follow-ups recorded (sending, sent, failed, skipped), latest first; with --due those
    due now and not recorded yet; with --dry-run those rendered as they would be sent."""
    from channelsync.followups.queries import STATES

    if state is not None and state not in STATES:
        fail(f"--state must be one of {', '.join(STATES)} (got {state!r})", 2)
    with opened() as application:
        if not application.config.followups:
            _no_rules(as_json, "dry_run" if dry_run else "due" if due else "followups")
            return
        if dry_run:
            _dry_run(application, limit, as_json)
        elif due:
            _due(application, limit, as_json)
        else:
            _recorded(application, state, limit, as_json)


@followups_app.command("send")
def followups_send(as_json: JsonOpt = False) -> None:
    """Send the follow-ups due now, as the daemon does every minute (for a timer instead of
    the daemon). Exit status 1 when one could not be sent (it is retried later)."""
    from channelsync.followups.run import FollowupSender

    with opened() as application:
        if not application.config.followups:
            _no_rules(as_json, "sent")
            return
        run = FollowupSender(application.config, application.db, clock=application.now
                             ).run_once()
        application.send_alerts()
    if as_json:
        emit({"sent": run.sent, "retrying": run.retrying, "failed": run.failed,
              "skipped": run.skipped, "conflicts_opened": run.opened})
    else:
        out.print(f"{fmt.plural(run.sent, 'follow-up')} sent, {run.retrying} to retry, "
                  f"{run.failed} failed, {run.skipped} skipped")
        if run.retrying or run.failed:
            fmt.notes(out, ["'channelsync followups --state failed' and '--state sending' "
                            "show why; failed ones are conflicts too"])
    if run.retrying or run.failed:
        raise typer.Exit(1)


@followups_app.command("retry")
def followups_retry(
    ids: Annotated[list[int] | None, typer.Argument(
        help="Failed follow-ups' ids, as listed.")] = None,
    rule: Annotated[str | None, typer.Option(
        "--rule", help="Every failed follow-up of this rule.")] = None,
) -> None:
    """Queue failed follow-ups again, rendered anew with their rule's template (fix the
    template or the destination first). The daemon or 'followups send' sends them."""
    from channelsync.followups import queries

    if not ids and rule is None:
        fail("give the ids of failed follow-ups, or --rule NAME for all of a rule's", 2)
    problems, queued = [], 0
    with opened() as application:
        if rule is not None:
            with application.db.connect() as conn:
                ids = [*(ids or []), *(r["id"] for r in queries.recorded(
                    conn, state="failed", rule=rule, limit=100_000))]
        for row_id in ids or []:
            with application.db.begin() as conn:
                try:
                    why = queries.requeue(conn, application.config, row_id, application.now())
                except LookupError as exc:
                    why = str(exc)
            if why:
                problems.append(f"#{row_id}: not queued: {why}")
            else:
                queued += 1
    out.print(f"{fmt.plural(queued, 'follow-up')} queued again")
    if problems:
        fmt.notes(out, problems)
        raise typer.Exit(1)


# -- the views ---------------------------------------------------------------------------------


def _no_rules(as_json: bool, key: str) -> None:
    if as_json:
        emit({key: []} if key != "sent" else {"sent": 0})
    else:
        out.print("no [[followup]] rules in the config (README: Follow-ups)", markup=False)


def _recorded(application: App, state: str | None, limit: int, as_json: bool) -> None:
    from channelsync.followups import queries

    now = application.now()
    with application.db.connect() as conn:
        rows = queries.recorded(conn, state=state, limit=limit)
        counts = queries.counts(conn)
    if as_json:
        emit({"followups": [queries.as_json(r) for r in rows], "counts": counts})
        return
    if not rows:
        out.print("no follow-ups recorded" + (f" in state {state}" if state else "")
                  + "; 'channelsync followups --due' shows those due now")
        return
    out.print(fmt.grid(("id", "rule", "channel", "order", "state", "when"),
                       [(r["id"], r["rule"], r["channel"], r["order_id"], r["state"],
                         _when(r, now)) for r in rows],
                       numeric=("id",), fold=("rule", "channel", "order")))
    lines = [f"#{r['id']} {r['state']}"
             + (f" after {fmt.plural(r['attempts'], 'try', 'tries')}" if r["attempts"] else "")
             + f": {r['last_error']}" for r in rows if r["last_error"]]
    total = sum(counts.values())
    if total > len(rows):
        lines.append(f"the latest {len(rows)} of {total} shown; --limit for more, --state to "
                     "choose")
    fmt.notes(out, lines)


def _when(row: dict[str, Any], now: datetime) -> str:
    if row["state"] == "sent":
        return f"sent {fmt.ago(row['sent_at'], now)}"
    if row["state"] == "sending" and row["next_attempt_at"] is not None:
        return "retry " + fmt.ago(row["next_attempt_at"], now) if row["attempts"] else \
            "sending"
    return fmt.ago(row["recorded_at"], now)


def _due(application: App, limit: int, as_json: bool) -> None:
    from channelsync.followups.run import FollowupSender

    now = application.now()
    found = FollowupSender(application.config, application.db, clock=application.now
                           ).due_now(limit)
    if as_json:
        emit({"due": [{"rule": d.rule, "channel": d.channel, "order_id": d.order_id,
                       "due_at": d.due_at.isoformat()} for d in found]})
        return
    if found:
        since = {r.name: r.since for r in application.config.followups}
        out.print(fmt.grid(("rule", "channel", "order", "since", "due"),
                           [(d.rule, d.channel, d.order_id, since[d.rule], fmt.ago(d.due_at, now))
                            for d in found], fold=("rule", "channel", "order")))
    else:
        out.print("no follow-up due now")
    fmt.notes(out, _policy_notes(application.config)
              + ([f"the first {limit} shown; --limit for more"] if len(found) == limit else []))


def _dry_run(application: App, limit: int, as_json: bool) -> None:
    from channelsync.followups.run import FollowupSender
    from channelsync.followups.send import destinations

    previews = FollowupSender(application.config, application.db, clock=application.now
                              ).preview(limit)
    if as_json:
        emit({"dry_run": [p.as_json() for p in previews]})
    else:
        where = {r.name: ", ".join(destinations(r)) for r in application.config.followups}
        now = application.now()
        for preview in previews:
            _show(preview, where[preview.due.rule], now)
        if not previews:
            out.print("no follow-up due now")
        fmt.notes(out, _policy_notes(application.config)
                  + ["dry run: nothing was sent or recorded"])
    if any(p.error for p in previews):
        raise typer.Exit(1)


def _show(preview: Preview, where: str, now: datetime) -> None:
    d = preview.due
    out.print(f"[bold]{d.rule}[/bold]: " + escape(f"{d.channel} order {d.order_id}, due "
                                                  f"{fmt.ago(d.due_at, now)}"), highlight=False)
    if preview.error:
        fmt.notes(out, [f"error: {preview.error}"])
        return
    fmt.notes(out, [f"to {where}", f"subject: {preview.subject}"])
    for line in preview.body.rstrip("\n").splitlines() or [""]:
        out.print(f"    {line}", markup=False, highlight=False)
    out.print()


def _policy_notes(config: Config) -> list[str]:
    from channelsync.followups.rules import withheld

    return [f"{name}: no follow-ups, its channel does not allow writing to buyers outside "
            "its own messaging (followups = true on the channel would send them anyway)"
            for name in withheld(config)]
