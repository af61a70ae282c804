"""``customers [list] [--tier T] [--json]`` and ``customers forget BUYER``."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer

from channelsync.cli import format as fmt
from channelsync.cli.common import JsonOpt, customers_app, emit, fail, opened, out

TierOpt = Annotated[str | None, typer.Option("--tier", help="Only buyers at this tier now.")]
LimitOpt = Annotated[int, typer.Option(help="At most this many, highest spend first.")]


@customers_app.callback(invoke_without_command=True)
def customers_default(ctx: typer.Context, tier: TierOpt = None, limit: LimitOpt = 50,
                      as_json: JsonOpt = False) -> None:
    if ctx.invoked_subcommand is None:
        customers_list(tier=tier, limit=limit, as_json=as_json)


@customers_app.command("list")
def customers_list(tier: TierOpt = None, limit: LimitOpt = 50, as_json: JsonOpt = False) -> None:
    """Buyers by tier and spend: display name, channels, orders and spend within the
    loyalty window, tier. Never an email: channelsync keeps a salted hash of it only."""
    from channelsync.customers import queries

    with opened() as application:
        loyalty = application.config.loyalty
        if tier is not None and tier not in {t.name for t in loyalty.tiers}:
            known = ", ".join(t.name for t in loyalty.tiers) or "none configured"
            fail(f"no loyalty tier named {tier!r} (tiers: {known})")
        now = application.now()
        with application.db.connect() as conn:
            found = queries.list_customers(conn, loyalty, now, tier=tier)
    if as_json:
        emit({"customers": [c.as_json() for c in found[:limit]], "count": len(found),
              "window_days": loyalty.window_days})
        return
    if not loyalty.salt.get_secret_value():
        fmt.notes(out, ["buyers are not recognised: set [loyalty] salt in the config (a "
                        "secret: openssl rand -hex 32, kept in ${ENV} or a systemd credential)"])
    if not found:
        out.print("no buyers" + (" at that tier" if tier else " recognised yet"))
        return
    rows = [(c.id, c.name or "-", ", ".join(c.channels), c.orders, _spend(c.spend),
             c.tier + (f" ({c.tag})" if c.tag else "") if c.tier else "-")
            for c in found[:limit]]
    out.print(fmt.grid(("id", "buyer", "channels", "orders", "spend", "tier"), rows,
                       numeric=("orders",), fold=("buyer", "channels", "spend")))
    lines = [f"orders and spend over the last {loyalty.window_days} days; cancelled and "
             "returned orders do not count"]
    if len(found) > limit:
        lines.append(f"the first {limit} of {len(found)} shown; --limit for more")
    fmt.notes(out, lines)


@customers_app.command("forget")
def customers_forget(
    buyer: Annotated[str, typer.Argument(
        help="The buyer's id (as 'customers' shows it) or their email address.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Erase a buyer: their name, key and tier on their orders, their follow-ups' text.
    Their orders stay with their lines and stock movements: stock is not touched."""
    from channelsync.customers import queries

    with opened() as application:
        salt = application.config.loyalty.salt.get_secret_value()
        with application.db.begin() as conn:
            try:
                keys = queries.find(conn, buyer, salt)
            except ValueError as exc:
                fail(str(exc))
            if not keys:
                hint = "" if salt or "@" not in buyer else \
                    " (no [loyalty] salt is set, so no buyer is known by email)"
                fail(f"no buyer matches {buyer!r}{hint}")
            if len(keys) > 1:
                fail(f"{len(keys)} buyers have an id starting {buyer!r}: give more of it")
            if not yes and not typer.confirm(f"Forget buyer {keys[0][:queries.SHOWN_ID]}?"):
                fail("nothing forgotten")
            done = queries.forget(conn, keys, application.now())
    out.print(f"forgot buyer {done.ids[0]}: {fmt.plural(done.orders, 'order')} no longer "
              f"name them, {fmt.plural(done.followups, 'follow-up')} emptied; stock untouched")


def _spend(spend: dict[str, Decimal]) -> str:
    return ", ".join(f"{amount:.2f} {currency}" for currency, amount in sorted(spend.items())) \
        or "-"
