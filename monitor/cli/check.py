"""``monitor check``: fetch, store, diff and alert on offers once, and print them."""

from __future__ import annotations

import asyncio
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from monitor.cli.common import (
    SIMULATE_HELP,
    FoundWatchlist,
    answered_polls,
    tmapi_settings,
    watchlist_for_check,
)
from monitor.daemon.poller import check_items, utc_now
from monitor.db.store import PollOutcome, PollResult, Store
from monitor.domain import LANGUAGES, Change, Offer
from monitor.messages.formatting import describe_change, format_money
from monitor.tmapi.client import TmapiClient
from monitor.tmapi.settings import TmapiSettings


@click.command()
@click.argument("item_ids", nargs=-1, required=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--language",
    type=click.Choice(sorted(LANGUAGES)),
    default=None,
    help="Language TMAPI translates titles and SKU names into "
    "(default: the item's language on the watchlist, else en).",
)
@click.option(
    "--watchlist",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The watchlist whose rules alert on what the check finds (default ./watchlist.toml, "
    "or $MONITOR_WATCHLIST, else the item settings stored by the last monitor run).",
)
@click.option("--simulate", is_flag=True, help=SIMULATE_HELP)
def check(
    item_ids: tuple[int, ...],
    as_json: bool,
    language: str | None,
    path: Path | None,
    simulate: bool,
) -> None:
    """Fetch ITEM_IDS now, store them and show what changed since the last poll.

    The first poll of an item is its baseline; later checks list each change
    (prices, stock, sold-out state, quantity breaks). A change a check finds
    is alerted like one the daemon finds: the item's rules on the watchlist
    decide, and the messages are queued for its targets (the running daemon
    delivers them). An item on no watchlist is stored and alerts nobody.

    Needs TMAPI_TOKEN (or TMAPI_TOKEN_FILE); --simulate polls the built-in
    simulated TMAPI instead.

    \b
    Examples:
      monitor check 652702302959
      monitor check 652702302959 610947572360 --json --language zh
      monitor check 652702302959 --simulate
    """
    answered = answered_polls(item_ids) if simulate else None
    with tmapi_settings(item_ids, simulate=simulate, answered=answered) as tmapi:
        found, results = asyncio.run(_check(item_ids, tmapi, path, language))
    failed = False
    console = Console()
    for item_id, result in zip(item_ids, results, strict=True):
        if isinstance(result, Exception):
            failed = True
            click.echo(f"item {item_id}: not recorded: {result}", err=True)
            continue
        if result.outcome is PollOutcome.FAILED or result.offer is None:
            failed = True
            message = result.error_message or "failed"
            if not message.startswith(f"item {result.item_id}"):
                message = f"item {result.item_id}: {message}"
            click.echo(message, err=True)
            continue
        if as_json:
            continue
        _print_result(console, result)
        _print_alerts(console, result, found)
    if as_json:
        objects = [
            result_json(r, found)
            for r in results
            if not isinstance(r, Exception) and r.offer is not None
        ]
        if len(item_ids) == 1 and objects:
            click.echo(json.dumps(objects[0], ensure_ascii=False, indent=2))
        else:
            for obj in objects:
                click.echo(json.dumps(obj, ensure_ascii=False))
    if failed:
        sys.exit(1)


async def _check(
    item_ids: tuple[int, ...], tmapi: TmapiSettings, path: Path | None, language: str | None
) -> tuple[FoundWatchlist, list[PollResult | Exception]]:
    store = await asyncio.to_thread(Store.open)
    try:
        await asyncio.to_thread(store.check_source, tmapi.source, utc_now())
        found = await asyncio.to_thread(watchlist_for_check, path, store)
        async with TmapiClient(tmapi) as client:
            results = await check_items(client, store, found.watchlist, item_ids, language=language)
        return found, results
    finally:
        await asyncio.to_thread(store.close)


def _rules_of(result: PollResult, found: FoundWatchlist) -> bool:
    return found.watchlist is not None and found.watchlist.item(result.item_id) is not None


def _print_alerts(console: Console, result: PollResult, found: FoundWatchlist) -> None:
    if not _rules_of(result, found):
        console.print(
            f"[dim]Item {result.item_id} is on no watchlist ({found.origin}): "
            "no alert rules apply.[/dim]\n"
        )
    elif result.alerted:
        console.print(
            f"Alert queued for {', '.join(result.alerted)}: the running daemon delivers it "
            f"(rules from {found.origin}).\n"
        )


def _str(value: object) -> object:
    return None if value is None else (value if isinstance(value, int) else str(value))


def change_json(change: Change) -> dict[str, Any]:
    return {
        "kind": str(change.kind),
        "sku_id": change.sku_id,
        "sku_name": change.sku_name,
        "min_qty": change.min_qty,
        "old": _str(change.old),
        "new": _str(change.new),
        "pct": _str(change.pct),
    }


def offer_json(offer: Offer) -> dict[str, Any]:
    return {
        "item_id": offer.item_id,
        "title": offer.title,
        "url": offer.url,
        "currency": offer.currency,
        "unit": offer.unit,
        "shop": offer.shop_name,
        "sold_out": offer.sold_out,
        "stock": offer.stock,
        "price_min": str(offer.price_min),
        "price_max": str(offer.price_max),
        "skus": [
            {
                "sku_id": s.sku_id,
                "spec_id": s.spec_id,
                "name": s.name,
                "price": str(s.price),
                "stock": s.stock,
                "sold_out": s.sold_out,
            }
            for s in offer.skus
        ],
        "tiers": [{"min_qty": t.min_qty, "price": str(t.price)} for t in offer.tiers],
    }


def result_json(result: PollResult, found: FoundWatchlist) -> dict[str, Any]:
    assert result.offer is not None
    obj = offer_json(result.offer)
    obj["outcome"] = str(result.outcome)
    obj["polled_at"] = result.polled_at.isoformat()
    obj["changes"] = [change_json(c) for c in result.changes]
    obj["watched"] = _rules_of(result, found)
    obj["alerted"] = list(result.alerted)
    return obj


def _print_result(console: Console, result: PollResult) -> None:
    offer = result.offer
    assert offer is not None

    def money(amount: Decimal) -> str:
        return format_money(amount, offer.currency)

    console.print(f"[bold]{offer.title}[/bold]  ({offer.item_id})")
    console.print(f"{offer.url}  shop: {offer.shop_name or '—'}")
    price = money(offer.price_min)
    if offer.price_max != offer.price_min:
        price += f" – {money(offer.price_max)}"
    stock = "unknown" if offer.stock is None else str(offer.stock)
    sold = "  [red]SOLD OUT[/red]" if offer.sold_out else ""
    console.print(f"price {price}   stock {stock}{sold}")
    skus = Table("SKU", "id", "price", "stock", "", title=f"{len(offer.skus)} SKUs")
    for s in offer.skus:
        skus.add_row(
            s.name,
            s.sku_id,
            money(s.price),
            "?" if s.stock is None else str(s.stock),
            "[red]sold out[/red]" if s.sold_out else "",
        )
    console.print(skus)
    if offer.tiers:
        tiers = Table("from", "price each", title="Quantity breaks")
        for t in offer.tiers:
            tiers.add_row(f"≥{t.min_qty} {offer.unit or 'pcs'}", money(t.price))
        console.print(tiers)
    if result.outcome is PollOutcome.BASELINE:
        console.print("First check of this item: stored as the baseline.\n")
    elif not result.changes:
        console.print("No changes since the last check.\n")
    else:
        console.print(f"[bold]{len(result.changes)} change(s) since the last check:[/bold]")
        for change in result.changes:
            console.print(f"  • {describe_change(change, offer.currency, 'pcs')}")
        console.print()
