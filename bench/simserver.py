"""The simulated TMAPI in a process of its own, scripted over stdin/stdout.

Run by :class:`bench.sim.SimProcess`; not meant to be started by hand. The
server runs on its own event loop in a background thread; the main thread reads one
JSON command per line and answers with one JSON line:

* ``{"op": "change", "fraction": 0.1, "round": 3, "items": 1000}``: change
  the price and stock of one SKU of that fraction of the first ``items``
  items (chosen by a seeded RNG, so every run changes the same items);
  answers ``{"changed": n}``;
* ``{"op": "stats"}``: ``{"requests": n, "first": t}``, where ``first`` is
  the ``time.monotonic()`` of the first request since the last reset
  (CLOCK_MONOTONIC is system-wide on Linux, so the parent can compare it);
* ``{"op": "reset"}``: zero the request counters;
* ``{"op": "quit"}``: stop.

Keeping the simulator out of the measured process keeps its CPU out of the
measured CPU time and off the measured process's GIL.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from decimal import Decimal
from typing import Any

from monitor.simulator.server import SimulatedTmapi

CENT = Decimal("0.01")


def change(sim: SimulatedTmapi, fraction: float, round_no: int, first: int) -> int:
    """Move one SKU's price by 1-5 % and take some of its stock, on ``fraction`` of
    the ``first`` items."""
    ids = sim.item_ids[:first]
    rng = random.Random(f"bench-change:{round_no}")
    count = round(len(ids) * fraction)
    for item_id in rng.sample(ids, count):
        truth = sim.truth(item_id)
        if not truth.skus:
            sim.set_tiers(
                item_id, [(q, (p * Decimal("1.03")).quantize(CENT)) for q, p in truth.tiers]
            )
            continue
        sku = rng.choice(truth.skus)
        pct = Decimal(rng.randint(1, 5) * rng.choice((-1, 1))) / 100
        price = max(CENT, (sku.price * (1 + pct)).quantize(CENT))
        if price == sku.price:
            price = sku.price + CENT
        sim.set_price(item_id, sku.sku_id, price)
        sim.set_stock(item_id, sku.sku_id, max(0, sku.stock - rng.randint(1, 5)))
    return count


def answer(sim: SimulatedTmapi, command: dict[str, Any]) -> dict[str, Any]:
    op = command.get("op")
    if op == "change":
        fraction, round_no = float(command["fraction"]), int(command["round"])
        return {"changed": change(sim, fraction, round_no, int(command["items"]))}
    if op == "stats":
        times = sim.request_times
        return {"requests": sim.requests_total, "first": min(times) if times else None}
    if op == "reset":
        sim.reset_counters()
        return {"ok": True}
    return {"error": f"unknown op {op!r}"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    sim = SimulatedTmapi(seed=args.seed, items=args.items, port=args.port)
    with sim:
        print(json.dumps({"port": sim.port, "items": sim.item_ids}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            if command.get("op") == "quit":
                break
            print(json.dumps(answer(sim, command)), flush=True)


if __name__ == "__main__":
    main()
