"""How the simulated TMAPI answers one ``item_detail`` request, and the state it answers from.

:class:`ItemDetailEndpoint` holds the catalogue (items are generated on
first use), the queued failures, the modes and the request counters, all
under one lock; :class:`~monitor.simulator.server.SimulatedTmapi` builds on
it, serving it over HTTP and adding the scripting and introspection.
Response bodies are cached per item until the item changes.

How a request is answered, first match wins:

1. not ``/1688/item_detail``: HTTP 404; not GET: HTTP 405;
2. a ``token`` is set and neither the ``apiToken`` query parameter nor the
   ``apikey`` header matches it: **HTTP 401** with ``{"code": 401, "msg": ...}``;
3. ``item_id`` missing or not a positive integer, or an undocumented
   ``language``: HTTP 200 with code 422;
4. a failure queued with :meth:`SimulatedTmapi.fail` (the item's own before
   the global ones);
5. an unknown or delisted item: HTTP 200 with code 417;
6. the item's mode (else the global mode, see :class:`Mode`);
7. ``{"code": 200, "msg": "success", "data": {...}}``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qsl

from monitor.domain import LANGUAGES
from monitor.simulator.catalog import generate_item
from monitor.simulator.loopback import Reply
from monitor.simulator.market import MARKET_EVERY, Market
from monitor.simulator.model import SimItem
from monitor.simulator.render import encode, render, strip_prices

__all__ = ["Failure", "ItemDetailEndpoint", "Mode"]

_PATH = "/1688/item_detail"
_CODE_MESSAGES = {
    401: "apiToken is missing or invalid",
    417: "item not found or temporarily unavailable",
    422: "invalid request parameter",
    439: "subscription expired or insufficient balance",
    499: "request timeout",
    500: "internal server error",
    503: "too many concurrent requests",
}


class Mode(StrEnum):
    """How an item answers. ``delay`` (see :meth:`SimulatedTmapi.set_mode`) applies to
    SLOW (seconds before the answer) and DRIP (seconds between body bytes)."""

    NORMAL = "normal"
    SLOW = "slow"
    DRIP = "drip"
    INVALID_JSON = "invalid_json"  # HTTP 200, a body that is not JSON
    TRUNCATED_JSON = "truncated_json"  # HTTP 200, the JSON cut in half (honest Content-Length)
    EMPTY_DATA = "empty_data"  # {"code": 200, "msg": "success", "data": {}}
    NO_PRICES = "no_prices"  # the data with every price removed


@dataclass
class Failure:
    """A failure queued with :meth:`SimulatedTmapi.fail`: the next ``remaining`` answers."""

    code: int | None
    http_status: int | None
    retry_after: float | None
    remaining: int


def _code_body(code: int, msg: str | None = None) -> bytes:
    return encode({"code": code, "msg": msg or _CODE_MESSAGES.get(code, "error")})


class ItemDetailEndpoint:
    """The simulated ``item_detail``: its state, and the answer to each request.

    ``ids`` are the items that exist (in order, without duplicates); ``seed``
    and ``variants`` say how they are generated, ``token`` what requests must
    carry, ``market`` whether items move by themselves as they are answered.
    The lock guards all the state; :meth:`_answer` takes it for each request.
    """

    def __init__(
        self,
        *,
        seed: int,
        ids: Sequence[int],
        variants: bool,
        token: str | None,
        market: bool,
    ) -> None:
        self.seed = seed
        self._variants = variants
        self._ids = list(dict.fromkeys(ids))
        self._known = set(self._ids)
        #: Items are generated on first use, so a huge catalogue starts at once.
        self._items: dict[int, SimItem] = {}
        self._token = token
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[int, bytes]] = {}
        self._market = Market(seed, every=MARKET_EVERY) if market else None
        self._failures: dict[int | None, deque[Failure]] = {}
        self._modes: dict[int | None, tuple[Mode, float]] = {}
        self._requests_total = 0
        self._per_item: Counter[int] = Counter()
        self._in_flight = 0
        self._max_in_flight = 0
        self._times: deque[float] = deque(maxlen=1_000_000)

    def _answer(self, method: str, target: str, headers: dict[str, str]) -> Reply:
        """Decide the reply to one request (runs on the server thread)."""
        path, _, query = target.partition("?")
        params = dict(parse_qsl(query))
        with self._lock:
            self._requests_total += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._times.append(time.monotonic())
            if path != _PATH:
                return Reply(404, _code_body(404, "no such API"))
            if method != "GET":
                return Reply(405, _code_body(405, "method not allowed"), (("Allow", "GET"),))
            if self._token is not None and self._token not in (
                params.get("apiToken"),
                headers.get("apikey"),
            ):
                return Reply(401, _code_body(401))
            raw_id = params.get("item_id", "")
            if not raw_id.isdigit() or int(raw_id) == 0:
                return Reply(200, _code_body(422, "invalid parameter: item_id"))
            if params.get("language", "zh") not in LANGUAGES:
                return Reply(200, _code_body(422, "invalid parameter: language"))
            item_id = int(raw_id)
            self._per_item[item_id] += 1
            failure = self._take_failure(item_id)
            if failure is not None:
                return failure
            item = self._lookup(item_id)
            if item is None or item.delisted:
                return Reply(200, _code_body(417))
            mode, delay = self._modes.get(item_id) or self._modes.get(None) or (Mode.NORMAL, 0)
            if mode in (Mode.NORMAL, Mode.SLOW, Mode.DRIP):
                if self._market is not None:
                    self._market.tick(item)  # bumps item.version: the body is rendered anew
                body = self._body(item)
                if mode is Mode.SLOW:
                    return Reply(200, body, delay=delay)
                if mode is Mode.DRIP:
                    return Reply(200, body, drip=delay)
                return Reply(200, body)
            if mode is Mode.INVALID_JSON:
                return Reply(200, b'{"code": 200, "msg": "success", "data": {"item_id": ,}}')
            if mode is Mode.TRUNCATED_JSON:
                body = self._body(item)
                return Reply(200, body[: len(body) // 2])
            if mode is Mode.EMPTY_DATA:
                return Reply(200, encode({"code": 200, "msg": "success", "data": {}}))
            data = render(item)
            strip_prices(data)
            return Reply(200, encode({"code": 200, "msg": "success", "data": data}))

    def _finished(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _take_failure(self, item_id: int) -> Reply | None:
        for key in (item_id, None):
            queue = self._failures.get(key)
            if not queue:
                continue
            failure = queue[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                queue.popleft()
            headers: tuple[tuple[str, str], ...] = ()
            if failure.retry_after is not None:
                headers = (("Retry-After", f"{failure.retry_after:g}"),)
            status = failure.http_status or 200
            code = failure.code if failure.code is not None else status
            return Reply(status, _code_body(code), headers)
        return None

    def _body(self, item: SimItem) -> bytes:
        cached = self._cache.get(item.item_id)
        if cached is not None and cached[0] == item.version:
            return cached[1]
        body = encode({"code": 200, "msg": "success", "data": render(item)})
        self._cache[item.item_id] = (item.version, body)
        return body

    def _lookup(self, item_id: int) -> SimItem | None:
        """The item (generated now if this is its first use), or ``None`` if unknown."""
        item = self._items.get(item_id)
        if item is None and item_id in self._known:
            item = generate_item(self.seed, item_id, variants=self._variants)
            self._items[item_id] = item
        return item

    def _item(self, item_id: int) -> SimItem:
        item = self._lookup(item_id)
        if item is None:
            raise KeyError(f"the simulator has no item {item_id}")
        return item
