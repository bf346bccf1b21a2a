"""Fuzzing the two doors untrusted input comes through: TMAPI responses and the watchlist.

Whatever TMAPI (or a broken proxy in front of it) sends back, raw bytes
through :func:`monitor.tmapi.answers.interpret` and then
:func:`monitor.tmapi.parse.parse_item` end as data and an ``Offer``, or as a
``TmapiError`` / ``ParseError``: never another exception. The same holds for
whole HTTP exchanges through :class:`TmapiClient` (odd statuses, headers and
content encodings). Whatever bytes the watchlist file holds, and whatever
``${VAR}`` / ``VAR_FILE`` they refer to, loading gives a ``Watchlist`` or a
``ConfigError``.

``tests/test_parse.py`` and ``tests/test_watchlist.py`` fuzz the parser on
decoded JSON and the loader on text; these tests start one step earlier, at
the bytes. Example counts are bounded and generation is derandomized, so the
file runs in seconds and the same way every time. JSON nested deeper than
Python's recursion limit is not generated here: it is the known bug pinned by
:func:`test_a_body_nested_too_deeply_is_a_bad_response`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor.domain import Offer
from monitor.errors import ConfigError, ParseError, TmapiBadResponse, TmapiError
from monitor.tmapi.answers import interpret
from monitor.tmapi.client import TmapiClient
from monitor.tmapi.parse import parse_item
from monitor.tmapi.settings import TmapiSettings
from monitor.watchlist.load import load_watchlist
from monitor.watchlist.model import Watchlist
from tests.payloads import json_paths

EXAMPLE = (
    Path(__file__).parents[1].joinpath("monitor/simulator/data/example_item.json").read_bytes()
)
ITEM = int(json.loads(EXAMPLE)["data"]["item_id"])

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- TMAPI responses, from the bytes up -----------------------------------------------------------

TOKENS = [
    b"null", b'"null"', b'""', b"0", b"-0", b"1e400", b"-1e-400", b"1" + b"0" * 30, b"29.89",
    b'"\xc2\xa529.89"', b'"25.90-29.89"', b"true", b"[]", b"{}", b"[", b"{", b"]", b"}", b",",
    b":", b'"', b"\\", b"\xff", b"\x00", b'{"code": 200}', b'"data"', b'"skus"', b"NaN",
]  # fmt: skip
#: Mostly 200 (so the parser gets its share), and every other kind of status.
STATUSES = st.one_of(
    st.just(200),
    st.just(200),
    st.just(200),
    st.sampled_from([204, 301, 401, 403, 404, 417, 422, 429, 439, 499, 500, 503]),
    st.integers(min_value=100, max_value=999),
)
RETRY_AFTER = (
    st.none()
    | st.sampled_from(
        ["0", "5", "-1", "1e9", "nan", "inf", "Wed, 21 Oct 2015 07:28:00 GMT", "Mon, 01 Jan 99999"]
    )
    | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
)


@st.composite
def mutated_example(draw: st.DrawFn) -> bytes:
    """The documented response with a few byte-level edits: cut, splice, overwrite."""
    body = bytearray(EXAMPLE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(body)))
        edit = draw(st.sampled_from(["cut", "insert", "overwrite", "nest"]))
        if edit == "cut":
            del body[at:]
        elif edit == "insert":
            body[at:at] = draw(st.sampled_from(TOKENS) | st.binary(max_size=8))
        elif edit == "overwrite":
            end = at + draw(st.integers(min_value=1, max_value=40))
            body[at:end] = draw(st.sampled_from(TOKENS))
        else:  # nesting, kept below the recursion limit (see the module docstring)
            depth = draw(st.integers(min_value=1, max_value=200))
            body[at:at] = b"[" * depth + b"1" + b"]" * depth
    return bytes(body)


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def encode(value: Any) -> bytes:
    return json.dumps(value, default=str).encode()


ENVELOPES = st.builds(
    lambda code, msg, data: encode({"code": code, "msg": msg, "data": data}),
    st.sampled_from([200, "200", 417, 422, 439, 499, 500, 503, 600, None, "x", True]),
    st.none() | st.text(max_size=20),
    JSON_VALUES,
)


EXAMPLE_PATHS = json_paths(json.loads(EXAMPLE))


@st.composite
def edited_example(draw: st.DrawFn) -> bytes:
    """The documented response with a few values replaced or removed, re-encoded."""
    document = json.loads(EXAMPLE)
    for path in draw(st.lists(st.sampled_from(EXAMPLE_PATHS), min_size=1, max_size=3)):
        parent = document
        for step in path[:-1]:
            if not isinstance(parent, dict | list):
                break
            try:
                parent = parent[step]
            except (KeyError, IndexError):
                break
        else:
            last = path[-1]
            if isinstance(parent, dict) or (isinstance(parent, list) and last < len(parent)):
                if draw(st.booleans()):
                    parent[last] = draw(JSON_VALUES)
                elif isinstance(parent, dict):
                    parent.pop(last, None)
    return encode(document)


#: Edited documents twice as often: they are the ones that reach the parser.
BODIES = st.one_of(
    st.binary(max_size=200), mutated_example(), edited_example(), edited_example(), ENVELOPES
)


def check_response(status: int, retry_after: str | None, body: bytes) -> None:
    headers = httpx.Headers({} if retry_after is None else {"Retry-After": retry_after})
    try:
        data = interpret(ITEM, status, headers, body, now=1_700_000_000.0)
    except TmapiError as exc:
        assert exc.item_id == ITEM
        assert str(exc)  # printable
        assert exc.retry_after is None or exc.retry_after >= 0
        return
    assert isinstance(data, dict) and data
    try:
        offer = parse_item(data, item_id=ITEM)
    except ParseError as exc:
        assert exc.item_id == ITEM
        return
    assert isinstance(offer, Offer)
    assert all(isinstance(sku.price, Decimal) and sku.price.is_finite() for sku in offer.skus)


@FUZZ
@given(status=STATUSES, retry_after=RETRY_AFTER, body=BODIES)
@example(status=200, retry_after=None, body=EXAMPLE)
@example(status=200, retry_after=None, body=b'{"code":200,"data":{"item_id":1e999999999}}')
def test_any_response_is_an_offer_or_the_projects_own_error(
    status: int, retry_after: str | None, body: bytes
) -> None:
    check_response(status, retry_after, body)


def test_the_documented_example_parses() -> None:
    data = interpret(ITEM, 200, httpx.Headers(), EXAMPLE, now=0.0)
    assert parse_item(data, item_id=ITEM).item_id == ITEM


@pytest.mark.parametrize("status", [200, 500])
def test_a_body_nested_too_deeply_is_a_bad_response(status: int) -> None:
    body = b'{"code": 200, "data": {"skus": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    with pytest.raises(TmapiBadResponse if status == 200 else TmapiError):
        interpret(ITEM, status, httpx.Headers(), body, now=0.0)


ENCODINGS = st.none() | st.sampled_from(["gzip", "deflate", "br", "identity", "zstd", "bogus"])


@FUZZ
@given(status=STATUSES, encoding=ENCODINGS, retry_after=RETRY_AFTER, body=BODIES)
async def test_any_http_exchange_is_data_or_a_tmapi_error(
    status: int, encoding: str | None, retry_after: str | None, body: bytes
) -> None:
    headers = {"Content-Type": "application/json"}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    if retry_after is not None:
        headers["Retry-After"] = retry_after

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, content=body)

    settings_ = TmapiSettings(token="fuzz-token", base_url="http://tmapi.invalid", max_attempts=1)
    async with TmapiClient(settings_, transport=httpx.MockTransport(answer)) as client:
        try:
            data = await client.fetch(ITEM)
        except TmapiError as exc:
            assert "fuzz-token" not in str(exc)
            return
    assert isinstance(data, dict)


# -- the watchlist, from the bytes up -------------------------------------------------------------

WATCHLIST_LINES = [
    b"[settings]", b"max_concurrency = 4", b"max_requests_per_second = 2.5", b"jitter = 0.6",
    b"[targets]", b'hook = "json://127.0.0.1:9/${HOOK_TOKEN}"', b'mail = "mailto://u:${PW}@h"',
    b"[targets.ops]", b'url = "json://127.0.0.1:9/ops"', b'quiet_hours = "22:00-08:00"',
    b"[defaults]", b'interval = "30m"', b'notify = ["hook", "ops"]', b"price_drop_pct = 3",
    b"[[items]]", b"id = 652702302959", b'id = "https://detail.1688.com/offer/1.html"',
    b'name = "robe"', b"target_price = 26", b'skus = ["*"]', b"enabled = false",
    b"\xef\xbb\xbf", b"\xff\xfe", b'"${"', b"= =", b"[[", b"]]", b"\x00", b"# comment",
]  # fmt: skip


@st.composite
def watchlist_bytes(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.sampled_from(WATCHLIST_LINES) | st.binary(max_size=20), max_size=14))
    return b"\n".join(lines)


@st.composite
def environments(draw: st.DrawFn) -> dict[str, str]:
    """``HOOK_TOKEN`` and ``PW`` set directly, through ``*_FILE``, both, or not at all."""
    env: dict[str, str] = {}
    for name in ("HOOK_TOKEN", "PW"):
        how = draw(st.sampled_from(["unset", "direct", "file", "both", "missing file", "empty"]))
        if how in ("direct", "both"):
            env[name] = draw(st.text(max_size=12))
        if how == "empty":
            env[name] = ""
        if how in ("file", "both"):
            env[f"{name}_FILE"] = f"{{dir}}/{name.lower()}"
        if how == "missing file":
            env[f"{name}_FILE"] = "{dir}/not-there"
    return env


@FUZZ
@given(
    content=watchlist_bytes(),
    env=environments(),
    secret_file=st.binary(max_size=30),
)
def test_any_watchlist_file_loads_or_is_a_config_error(
    tmp_path: Path, content: bytes, env: dict[str, str], secret_file: bytes
) -> None:
    folder = tmp_path / "fuzz"
    folder.mkdir(exist_ok=True)
    for name in ("hook_token", "pw"):
        (folder / name).write_bytes(secret_file)
    path = folder / "watchlist.toml"
    path.write_bytes(content)
    resolved = {key: value.replace("{dir}", str(folder)) for key, value in env.items()}
    try:
        loaded = load_watchlist(path, env=resolved)
    except ConfigError as exc:
        assert str(exc)
        return
    assert isinstance(loaded, Watchlist)
