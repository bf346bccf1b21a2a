"""A simulated TMAPI: a real HTTP/1.1 server on loopback that answers like ``item_detail``.

Tests, the demo and the benchmarks talk to it over real sockets with the
real client. It runs its own event loop in a background thread, so it works
the same from sync code, from async tests and from the CLI::

    with SimulatedTmapi(seed=1, items=10) as sim:
        settings = TmapiSettings(token=None, base_url=sim.base_url)
        sim.set_price(652702302959, "5674557541674", "27.50")
        sim.fail(code=503, times=2)

Items change only as scripted, or by :meth:`SimulatedTmapi.evolve`, unless
``market=True``: then each item moves by itself on every 2nd successful
request for it, in a seeded cycle the default alert rules report (a SKU cut
5-15 %, sold out, restocked, a cheaper quantity break, prices back up; see
:mod:`monitor.simulator.market`).

The HTTP side is :mod:`monitor.simulator.loopback`, deliberately small so that
it serves thousands of requests per second. How each request is answered,
and the state it is answered from, is :mod:`monitor.simulator.item_detail`;
this module adds the server's lifecycle, the scripting and introspection
methods, and ``python -m monitor.simulator``.

Scripting and introspection methods are thread-safe.
"""

from __future__ import annotations

import argparse
import copy
import random
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

from monitor.simulator.catalog import default_item_ids
from monitor.simulator.item_detail import Failure, ItemDetailEndpoint, Mode
from monitor.simulator.loopback import LoopbackServer
from monitor.simulator.market import evolve_item
from monitor.simulator.model import Event, ItemTruth, SimItem, SimSku, to_price
from monitor.simulator.render import render

__all__ = ["SimulatedTmapi", "main"]


class SimulatedTmapi(ItemDetailEndpoint):
    """A simulated TMAPI server; see :mod:`monitor.simulator.item_detail` for what it answers.

    ``items`` is a count (the documented example 652702302959 first, then
    seeded IDs) or explicit IDs. ``variants`` gives items the quirks of real
    responses (:mod:`monitor.simulator.quirks`); item 652702302959 always stays
    the documented example. With ``token`` set, requests must carry it.

    ``market=True``: on every :data:`~monitor.simulator.market.MARKET_EVERY`-th
    answer with an item's data (modes NORMAL, SLOW, DRIP) the item makes its
    next move before the answer is rendered, seeded by ``seed`` and its ID and
    driven by its own request count only; :meth:`market_moves` lists them.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        items: int | Sequence[int] = 5,
        variants: bool = False,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        market: bool = False,
    ) -> None:
        ids = default_item_ids(seed, items) if isinstance(items, int) else list(items)
        super().__init__(seed=seed, ids=ids, variants=variants, token=token, market=market)
        self._evolve_rng = random.Random(f"tmapi-sim:{seed}:evolve")
        self._server = LoopbackServer(
            self._answer, on_done=self._finished, host=host, port=port, name="simulated-tmapi"
        )

    def __repr__(self) -> str:
        state = f"serving {self.base_url}" if self._server.running else "stopped"
        return f"SimulatedTmapi(seed={self.seed}, items={len(self._ids)}, {state})"

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Start serving in a background thread; returns ``self``."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Close the server and every connection, and end the thread. Idempotent."""
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: pass it as ``TmapiSettings.base_url``."""
        if not self._server.running:
            raise RuntimeError("the simulator is not running; call start() first")
        return f"http://{self._server.host}:{self._server.port}"

    # ----------------------------------------------------------------- scripting

    @staticmethod
    def _holders(item: SimItem, sku_id: str | None) -> list[SimSku] | list[SimItem]:
        """What carries the stock: one SKU, every SKU, or a single-spec item itself."""
        if sku_id is not None:
            return [item.sku(sku_id)]
        return item.skus or [item]

    def set_price(self, item_id: int, sku_id: str | None, price: Decimal | str) -> None:
        """Set a SKU's price; ``sku_id=None``: every SKU's, or a single-spec item's
        one-piece price (its first tier)."""
        value = to_price(price)
        with self._lock:
            item = self._item(item_id)
            if sku_id is not None:
                item.sku(sku_id).price = value
            elif item.skus:
                for sku in item.skus:
                    sku.price = value
            else:
                item.tiers[0] = (item.tiers[0][0], value)
            item.version += 1

    def set_stock(self, item_id: int, sku_id: str | None, stock: int) -> None:
        """Set a SKU's stock; ``sku_id=None``: every SKU's, or a single-spec item's."""
        if stock < 0:
            raise ValueError("stock cannot be negative")
        with self._lock:
            item = self._item(item_id)
            for holder in self._holders(item, sku_id):
                holder.stock = stock
            item.version += 1

    def sell_out(self, item_id: int, sku_id: str | None = None) -> None:
        """Set the stock of one SKU, or of the whole item, to 0."""
        self.set_stock(item_id, sku_id, 0)

    def restock(self, item_id: int, sku_id: str | None = None, stock: int | None = None) -> None:
        """Give one SKU, or every SKU, ``stock`` pieces (default: its initial stock)."""
        if stock is not None and stock < 0:
            raise ValueError("stock cannot be negative")
        with self._lock:
            item = self._item(item_id)
            for holder in self._holders(item, sku_id):
                holder.stock = holder.initial_stock if stock is None else stock
            item.version += 1

    def set_tiers(self, item_id: int, tiers: Sequence[tuple[int, Decimal | str]]) -> None:
        """Replace the quantity breaks with ``[(min_qty, price), ...]``."""
        parsed = sorted((int(qty), to_price(price)) for qty, price in tiers)
        with self._lock:
            item = self._item(item_id)
            if not parsed and not item.skus:
                raise ValueError("a single-spec item needs at least one tier (its price)")
            item.tiers = parsed
            item.version += 1

    def delist(self, item_id: int) -> None:
        """Make the item answer code 417 until :meth:`relist`."""
        with self._lock:
            self._item(item_id).delisted = True

    def relist(self, item_id: int) -> None:
        with self._lock:
            self._item(item_id).delisted = False

    def fail(
        self,
        item_id: int | None = None,
        *,
        code: int | None = None,
        http_status: int | None = None,
        times: int = 1,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``times`` requests (for ``item_id``, or any) with an error.

        ``code`` alone: HTTP 200 with ``{"code": code, ...}``; ``http_status``:
        that status with a JSON body whose code is ``code`` or the status;
        neither: code 500. ``retry_after`` adds a ``Retry-After`` header.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        if code is None and http_status is None:
            code = 500
        with self._lock:
            queue = self._failures.setdefault(item_id, deque())
            queue.append(Failure(code, http_status, retry_after, times))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def set_mode(
        self, item_id: int | None = None, mode: Mode | str = Mode.NORMAL, *, delay: float = 0.1
    ) -> None:
        """Set how ``item_id`` (``None``: every item without its own mode) answers.

        ``delay`` is the wait of SLOW and the interval of DRIP, in seconds.
        Setting an item back to NORMAL makes it follow the global mode again.
        """
        mode = Mode(mode)
        with self._lock:
            if mode is Mode.NORMAL and item_id is not None:
                self._modes.pop(item_id, None)
            else:
                self._modes[item_id] = (mode, delay)

    def evolve(self, rng_steps: int = 1) -> list[Event]:
        """Apply ``rng_steps`` seeded random steps of change to every item; returns what changed."""
        events: list[Event] = []
        with self._lock:
            for _ in range(rng_steps):
                for item_id in sorted(self._known):
                    events.extend(evolve_item(self._item(item_id), self._evolve_rng))
        return events

    def resume_market(self, answered: Mapping[int, int]) -> None:
        """Put each item's market where ``answered[item_id]`` successful requests left it.

        The moves depend only on the seed and the request count, so a new
        simulator resumes where an earlier one stopped (``monitor check
        --simulate`` run twice sees the second poll's move). No-op when off.
        """
        with self._lock:
            if self._market is None:
                return
            for item_id, count in answered.items():
                if item_id in self._known:
                    item = self._item(item_id)
                    for _ in range(max(0, count)):
                        self._market.tick(item)
            self._market.drain()

    def market_moves(self) -> list[Event]:
        """The moves ``market=True`` made since the last call, oldest first (none when off)."""
        with self._lock:
            return self._market.drain() if self._market is not None else []

    # ----------------------------------------------------------------- introspection

    @property
    def item_ids(self) -> list[int]:
        return list(self._ids)

    def sku_ids(self, item_id: int) -> list[str]:
        with self._lock:
            return [sku.sku_id for sku in self._item(item_id).skus]

    def payload(self, item_id: int) -> dict[str, Any]:
        """The item's current ``data`` as NORMAL mode serves it (a copy)."""
        with self._lock:
            return copy.deepcopy(render(self._item(item_id)))

    def truth(self, item_id: int) -> ItemTruth:
        """What the item really is, whatever quirks its JSON has."""
        with self._lock:
            return self._item(item_id).truth()

    @property
    def requests_total(self) -> int:
        return self._requests_total

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def max_in_flight(self) -> int:
        return self._max_in_flight

    @property
    def request_times(self) -> list[float]:
        """``time.monotonic()`` of each request received (the last million)."""
        with self._lock:
            return list(self._times)

    def requests_for(self, item_id: int) -> int:
        with self._lock:
            return self._per_item[item_id]

    def reset_counters(self) -> None:
        with self._lock:
            self._requests_total = 0
            self._per_item.clear()
            self._max_in_flight = self._in_flight
            self._times.clear()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m monitor.simulator --port 8688 --seed 1 --items 10``: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m monitor.simulator", description="Serve a simulated TMAPI item_detail API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8688)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--items", default="5", help="a count, or comma-separated item IDs")
    parser.add_argument("--variants", action="store_true", help="real-world data quirks")
    parser.add_argument("--token", default=None, help="require this apiToken")
    parser.add_argument(
        "--evolve-every", type=float, default=0.0, metavar="SECONDS", help="change items over time"
    )
    parser.add_argument(
        "--market", action="store_true", help="items move by themselves as they are polled"
    )
    args = parser.parse_args(argv)
    items: int | list[int] = (
        [int(part) for part in args.items.split(",")] if "," in args.items else int(args.items)
    )
    sim = SimulatedTmapi(
        seed=args.seed,
        items=items,
        variants=args.variants,
        token=args.token,
        host=args.host,
        port=args.port,
        market=args.market,
    )
    evolve_every: float = args.evolve_every
    waits = [w for w in (evolve_every, 0.5 if args.market else 0.0) if w > 0]
    due = time.monotonic() + evolve_every
    stop = threading.Event()
    with sim:
        print(f"simulated TMAPI serving {len(sim.item_ids)} items at {sim.base_url}", flush=True)
        print("item IDs: " + " ".join(str(i) for i in sim.item_ids), flush=True)
        try:
            while not stop.wait(min(waits) if waits else None):
                events = sim.market_moves()
                if evolve_every and time.monotonic() >= due:
                    due += evolve_every
                    events.extend(sim.evolve())
                for event in events:
                    print(
                        f"{event.item_id} {event.kind} {event.sku_id or '-'} {event.detail}",
                        flush=True,
                    )
        except KeyboardInterrupt:
            print("stopped", flush=True)
