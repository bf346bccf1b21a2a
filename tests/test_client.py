"""The TMAPI client: settings, request shape, the error mapping, retries, deadlines.

Most tests use ``httpx.MockTransport``; the ones marked "real socket" talk
to the simulated TMAPI over loopback. Sleeping is faked (the fake records
the delays) and the jitter comes from a seeded ``random.Random``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import traceback
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.errors import (
    ConfigError,
    TmapiAuthError,
    TmapiBadRequest,
    TmapiBadResponse,
    TmapiError,
    TmapiItemUnavailable,
    TmapiQuotaExhausted,
    TmapiRateLimited,
    TmapiServerError,
    TmapiTimeout,
    TmapiTransportError,
)
from monitor.simulator.catalog import EXAMPLE_ITEM_ID
from monitor.simulator.item_detail import Mode
from monitor.simulator.server import SimulatedTmapi
from monitor.tmapi.client import TmapiClient, backoff_delay
from monitor.tmapi.settings import TmapiSettings

TOKEN = "tok-SECRET-5f1e2d"
ITEM = 652702302959
Reply = httpx.Response | Exception


class Recorder:
    """A fake ``sleep`` that records what it was asked to wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def mock(*replies: Reply) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering with ``replies`` in turn (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        reply = replies[min(len(seen), len(replies) - 1)]
        seen.append(request)
        if isinstance(reply, Exception):
            raise reply
        return reply

    return httpx.MockTransport(handler), seen


def client(
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Recorder | None = None,
    *,
    seed: int = 7,
    **settings: Any,
) -> TmapiClient:
    settings.setdefault("token", TOKEN)
    settings.setdefault("base_url", "https://tmapi.test")
    return TmapiClient(
        TmapiSettings(**settings),
        transport=transport,
        sleep=sleep or Recorder(),
        rng=random.Random(seed),
    )


def ok(data: object = None) -> httpx.Response:
    return httpx.Response(200, json={"code": 200, "msg": "success", "data": data or {"x": 1}})


def coded(code: int, msg: str = "something went wrong") -> httpx.Response:
    return httpx.Response(200, json={"code": code, "msg": msg})


def assert_no_token(exc: BaseException) -> None:
    rendered = "".join(traceback.format_exception(exc))
    assert TOKEN not in rendered
    assert TOKEN not in repr(exc)


pytestmark = pytest.mark.sim(seed=3, items=3)


# ---------------------------------------------------------------- settings


def test_settings_from_env_reads_every_variable() -> None:
    settings = TmapiSettings.from_env(
        {
            "TMAPI_TOKEN": f" {TOKEN}\n",
            "TMAPI_BASE_URL": "http://x.test:81/",
            "TMAPI_TIMEOUT": "2.5",
        }
    )
    assert settings.token == TOKEN
    assert settings.base_url == "http://x.test:81"
    assert settings.timeout == 2.5


def test_settings_defaults_without_env() -> None:
    settings = TmapiSettings.from_env({})
    assert settings.token is None
    assert settings.base_url == "https://api.tmapi.io"
    assert settings.timeout == 60.0


def test_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "tmapi_token"
    secret.write_text(f"\n  {TOKEN}  \n")
    assert TmapiSettings.from_env({"TMAPI_TOKEN_FILE": str(secret)}).token == TOKEN


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"TMAPI_TOKEN": TOKEN, "TMAPI_TOKEN_FILE": "/x"}, "both set"),
        ({"TMAPI_TOKEN_FILE": "/nonexistent/tmapi"}, "TMAPI_TOKEN_FILE"),
        ({"TMAPI_TIMEOUT": "soon"}, "TMAPI_TIMEOUT"),
        ({"TMAPI_TIMEOUT": "0"}, "TMAPI_TIMEOUT"),
        ({"TMAPI_TIMEOUT": "-3"}, "TMAPI_TIMEOUT"),
        ({"TMAPI_TIMEOUT": "nan"}, "TMAPI_TIMEOUT"),
        ({"TMAPI_TIMEOUT": "inf"}, "TMAPI_TIMEOUT"),
        ({"TMAPI_BASE_URL": "ftp://user:pw@host"}, "TMAPI_BASE_URL"),
    ],
)
def test_bad_env_is_a_config_error_naming_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as caught:
        TmapiSettings.from_env(env)
    assert TOKEN not in str(caught.value)
    assert "pw" not in str(caught.value)


def test_empty_token_file_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    with pytest.raises(ConfigError, match="is empty"):
        TmapiSettings.from_env({"TMAPI_TOKEN_FILE": str(empty)})


def test_settings_repr_hides_the_token() -> None:
    settings = TmapiSettings(token=TOKEN)
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings)
    assert "'***'" in repr(settings)
    assert TOKEN not in repr(client())


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0}, {"max_attempts": 0}, {"backoff_base": -1}, {"base_url": "api.tmapi.io"}],
)
def test_settings_validate_their_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        TmapiSettings(**kwargs)


# ---------------------------------------------------------------- the request


async def test_request_shape() -> None:
    transport, seen = mock(ok())
    async with client(transport) as tmapi:
        await tmapi.fetch(ITEM)
        await tmapi.fetch(ITEM, language="zh", scene="drop_shipping", optimize_title=True)
    first, second = seen
    assert first.method == "GET"
    assert first.url.path == "/1688/item_detail"
    assert dict(first.url.params) == {
        "item_id": str(ITEM),
        "language": "en",
        "optimize_title": "false",
        "apiToken": TOKEN,
    }
    assert dict(second.url.params) == {
        "item_id": str(ITEM),
        "language": "zh",
        "scene": "drop_shipping",
        "optimize_title": "true",
        "apiToken": TOKEN,
    }


async def test_no_api_token_without_a_token() -> None:
    transport, seen = mock(ok())
    async with client(transport, token=None) as tmapi:
        await tmapi.fetch(ITEM)
    assert "apiToken" not in seen[0].url.params


async def test_token_with_special_characters_is_encoded() -> None:
    transport, seen = mock(ok())
    async with client(transport, token="a+b/c=d&e") as tmapi:
        await tmapi.fetch(ITEM)
    assert seen[0].url.params["apiToken"] == "a+b/c=d&e"


async def test_money_is_decoded_as_decimal() -> None:
    body = b'{"code": 200, "msg": "success", "data": {"price": 29.89, "stock": 5, "s": "1.10"}}'
    transport, _ = mock(httpx.Response(200, content=body))
    async with client(transport) as tmapi:
        data = await tmapi.fetch(ITEM)
    assert data == {"price": Decimal("29.89"), "stock": 5, "s": "1.10"}
    assert isinstance(data["price"], Decimal)


@pytest.mark.parametrize("item_id", [0, -5, True])
async def test_invalid_item_ids_are_rejected_before_any_paid_call(item_id: int) -> None:
    transport, seen = mock(ok())
    async with client(transport) as tmapi:
        with pytest.raises(TmapiBadRequest):
            await tmapi.fetch(item_id)
        assert tmapi.calls == 0
    assert seen == []


async def test_unknown_language_is_rejected() -> None:
    transport, seen = mock(ok())
    async with client(transport) as tmapi:
        with pytest.raises(TmapiBadRequest, match="language"):
            await tmapi.fetch(ITEM, language="xx")
    assert seen == []


# ---------------------------------------------------------------- the error mapping

CODE_TABLE: list[tuple[int, type[TmapiError], bool, str]] = [
    (417, TmapiItemUnavailable, True, "delisted"),
    (422, TmapiBadRequest, False, "parameter"),
    (439, TmapiQuotaExhausted, False, "balance exhausted"),
    (499, TmapiTimeout, True, "timed out"),
    (500, TmapiServerError, True, "internal"),
    (503, TmapiRateLimited, True, "concurrency limit"),
    (401, TmapiAuthError, False, "token"),
    (403, TmapiAuthError, False, "token"),
    (404, TmapiBadRequest, False, "rejected"),
    (502, TmapiServerError, True, "server error"),
    (1234, TmapiBadResponse, True, "unknown TMAPI code"),
    (0, TmapiBadResponse, True, "unknown TMAPI code"),
]


@pytest.mark.parametrize(("code", "cls", "retryable", "words"), CODE_TABLE)
async def test_tmapi_codes_in_a_200_body(
    code: int, cls: type[TmapiError], retryable: bool, words: str
) -> None:
    transport, _ = mock(coded(code, msg="the upstream says no"))
    async with client(transport) as tmapi:
        with pytest.raises(TmapiError) as caught:
            await tmapi.fetch_once(ITEM)
    error = caught.value
    assert type(error) is cls
    assert error.retryable is retryable
    assert (error.code, error.item_id) == (code, ITEM)
    assert words in str(error)
    assert "the upstream says no" in str(error)
    assert str(error).startswith(f"item {ITEM} / TMAPI code {code}: ")


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, TmapiAuthError),
        (403, TmapiAuthError),
        (400, TmapiBadRequest),
        (404, TmapiBadRequest),
        (417, TmapiItemUnavailable),
        (422, TmapiBadRequest),
        (439, TmapiQuotaExhausted),
        (499, TmapiTimeout),
        (500, TmapiServerError),
        (502, TmapiServerError),
        (503, TmapiRateLimited),
        (504, TmapiServerError),
        (302, TmapiBadResponse),
    ],
)
async def test_http_statuses(status: int, cls: type[TmapiError]) -> None:
    transport, _ = mock(httpx.Response(status, text="<html>nope</html>"))
    async with client(transport) as tmapi:
        with pytest.raises(TmapiError) as caught:
            await tmapi.fetch_once(ITEM)
    assert type(caught.value) is cls
    assert caught.value.code == status
    assert caught.value.item_id == ITEM
    assert f"HTTP {status}" in str(caught.value)
    assert_no_token(caught.value)


async def test_documented_code_in_an_http_error_body_wins() -> None:
    transport, _ = mock(httpx.Response(400, json={"code": 439, "msg": "balance"}))
    async with client(transport) as tmapi:
        with pytest.raises(TmapiQuotaExhausted) as caught:
            await tmapi.fetch_once(ITEM)
    assert caught.value.code == 439


async def test_429_carries_retry_after_seconds() -> None:
    transport, _ = mock(httpx.Response(429, headers={"Retry-After": "12"}))
    async with client(transport) as tmapi:
        with pytest.raises(TmapiRateLimited) as caught:
            await tmapi.fetch_once(ITEM)
    assert caught.value.retry_after == 12.0
    assert caught.value.retryable


BAD_BODIES: list[tuple[bytes, str]] = [
    (b'{"code": 200, "msg": "success", "data": {"item_id": ,}}', "invalid or truncated JSON"),
    (b'{"code": 200, "msg": "success", "data": {"item_id": 1, "ti', "invalid or truncated JSON"),
    (b"", "invalid or truncated JSON"),
    (b"\xff\xfe garbage", "invalid or truncated JSON"),
    (b'{"code": 200, "data": {"price": NaN}}', "invalid or truncated JSON"),
    (b"[1, 2]", "JSON list, not an object"),
    (b'"ok"', "JSON str, not an object"),
    (b'{"msg": "success", "data": {"a": 1}}', "no numeric 'code'"),
    (b'{"code": true, "data": {"a": 1}}', "no numeric 'code'"),
    (b'{"code": 200, "msg": "success"}', "without data"),
    (b'{"code": 200, "msg": "success", "data": null}', "without data"),
    (b'{"code": 200, "msg": "success", "data": {}}', "without data"),
    (b'{"code": 200, "msg": "success", "data": []}', "without data"),
]


@pytest.mark.parametrize(("body", "words"), BAD_BODIES)
async def test_bad_bodies_are_bad_responses(body: bytes, words: str) -> None:
    transport, _ = mock(httpx.Response(200, content=body))
    async with client(transport) as tmapi:
        with pytest.raises(TmapiBadResponse, match=words) as caught:
            await tmapi.fetch_once(ITEM)
    assert caught.value.item_id == ITEM
    assert caught.value.retryable


async def test_code_as_a_string_is_understood() -> None:
    transport, _ = mock(httpx.Response(200, json={"code": "417", "msg": "gone"}))
    async with client(transport) as tmapi:
        with pytest.raises(TmapiItemUnavailable):
            await tmapi.fetch_once(ITEM)


@pytest.mark.parametrize(
    ("raised", "cls"),
    [
        (httpx.ConnectError("connection refused"), TmapiTransportError),
        (httpx.RemoteProtocolError("peer closed connection"), TmapiTransportError),
        (httpx.ReadTimeout("timed out"), TmapiTimeout),
        (httpx.ConnectTimeout("timed out"), TmapiTimeout),
    ],
)
async def test_transport_failures(raised: Exception, cls: type[TmapiError]) -> None:
    transport, _ = mock(raised)
    async with client(transport) as tmapi:
        with pytest.raises(TmapiError) as caught:
            await tmapi.fetch_once(ITEM)
    assert type(caught.value) is cls
    assert caught.value.item_id == ITEM
    assert caught.value.__suppress_context__
    assert caught.value.__cause__ is None


async def test_transport_error_text_quoting_the_url_is_not_repeated() -> None:
    url = f"https://tmapi.test/1688/item_detail?item_id={ITEM}&apiToken={TOKEN}"
    transport, _ = mock(httpx.ConnectError(f"cannot reach {url}"))
    async with client(transport) as tmapi:
        with pytest.raises(TmapiTransportError) as caught:
            await tmapi.fetch_once(ITEM)
    assert_no_token(caught.value)
    assert "ConnectError" in str(caught.value)


async def test_no_error_message_contains_the_token() -> None:
    replies: list[Reply] = [
        httpx.Response(401, json={"code": 401, "msg": f"apiToken {TOKEN} is invalid"}),
        coded(422, msg=f"bad request /1688/item_detail?apiToken={TOKEN}"),
        httpx.Response(500, text=f"boom at ?apiToken={TOKEN}"),
        httpx.ReadError(f"GET https://tmapi.test/?apiToken={TOKEN} failed"),
    ]
    for reply in replies:
        transport, _ = mock(reply)
        async with client(transport) as tmapi:
            with pytest.raises(TmapiError) as caught:
                await tmapi.fetch_once(ITEM)
        assert_no_token(caught.value)


# ---------------------------------------------------------------- retries


async def test_retryable_errors_are_retried_with_full_jitter() -> None:
    sleep = Recorder()
    transport, seen = mock(coded(500), coded(503), coded(499), ok({"item_id": ITEM}))
    async with client(transport, sleep, backoff_base=1.0, backoff_max=30.0) as tmapi:
        data = await tmapi.fetch(ITEM)
        assert tmapi.calls == 4
    assert data == {"item_id": ITEM}
    assert len(seen) == 4
    jitter = random.Random(7)
    assert sleep.delays == [jitter.uniform(0, 1.0), jitter.uniform(0, 2.0), jitter.uniform(0, 4.0)]


async def test_retries_are_bounded_and_the_last_error_is_raised() -> None:
    sleep = Recorder()
    transport, seen = mock(coded(500))
    async with client(transport, sleep, max_attempts=3) as tmapi:
        with pytest.raises(TmapiServerError):
            await tmapi.fetch(ITEM)
        assert tmapi.calls == 3
    assert len(seen) == 3
    assert len(sleep.delays) == 2


async def test_backoff_is_capped() -> None:
    sleep = Recorder()
    transport, _ = mock(coded(500))
    async with client(transport, sleep, max_attempts=6, backoff_base=10, backoff_max=15) as tmapi:
        with pytest.raises(TmapiServerError):
            await tmapi.fetch(ITEM)
    jitter = random.Random(7)
    expected = [jitter.uniform(0, cap) for cap in (10, 15, 15, 15, 15)]
    assert sleep.delays == expected


def test_backoff_delay_grows_exponentially_within_the_cap() -> None:
    rng = random.Random(1)
    for attempt in range(1, 12):
        for _ in range(50):
            delay = backoff_delay(attempt, base=0.5, cap=20.0, rng=rng)
            assert delay is not None
            assert 0.0 <= delay <= min(20.0, 0.5 * 2 ** (attempt - 1))
    assert backoff_delay(3, base=1, cap=30, rng=rng, retry_after=4.5) == 4.5
    assert backoff_delay(3, base=1, cap=30, rng=rng, retry_after=31) is None


@pytest.mark.parametrize(
    "reply",
    [coded(422), coded(439), httpx.Response(401), httpx.Response(403), httpx.Response(400)],
)
async def test_permanent_errors_are_not_retried(reply: httpx.Response) -> None:
    sleep = Recorder()
    transport, seen = mock(reply)
    async with client(transport, sleep) as tmapi:
        with pytest.raises(TmapiError) as caught:
            await tmapi.fetch(ITEM)
    assert not caught.value.retryable
    assert len(seen) == 1
    assert sleep.delays == []


async def test_retry_after_is_honoured() -> None:
    sleep = Recorder()
    transport, seen = mock(
        httpx.Response(429, headers={"Retry-After": "7"}),
        httpx.Response(503, headers={"Retry-After": "2.5"}),
        ok(),
    )
    async with client(transport, sleep) as tmapi:
        await tmapi.fetch(ITEM)
    assert sleep.delays == [7.0, 2.5]
    assert len(seen) == 3


async def test_retry_after_beyond_backoff_max_is_left_to_the_caller() -> None:
    sleep = Recorder()
    transport, seen = mock(httpx.Response(429, headers={"Retry-After": "3600"}), ok())
    async with client(transport, sleep, backoff_max=30) as tmapi:
        with pytest.raises(TmapiRateLimited) as caught:
            await tmapi.fetch(ITEM)
    assert caught.value.retry_after == 3600.0
    assert sleep.delays == []
    assert len(seen) == 1


async def test_fetch_once_makes_exactly_one_attempt() -> None:
    sleep = Recorder()
    transport, seen = mock(coded(500), ok())
    async with client(transport, sleep) as tmapi:
        with pytest.raises(TmapiServerError):
            await tmapi.fetch_once(ITEM)
        assert tmapi.calls == 1
    assert len(seen) == 1
    assert sleep.delays == []


# ---------------------------------------------------------------- real socket


async def test_real_socket_fetch_returns_the_simulated_data(sim: SimulatedTmapi) -> None:
    async with client(base_url=sim.base_url) as tmapi:
        data = await tmapi.fetch(EXAMPLE_ITEM_ID)
    expected = json.loads(json.dumps(sim.payload(EXAMPLE_ITEM_ID)), parse_float=Decimal)
    assert data == expected
    assert data["item_id"] == EXAMPLE_ITEM_ID
    assert sim.requests_for(EXAMPLE_ITEM_ID) == 1


async def test_real_socket_retries_then_succeeds(sim: SimulatedTmapi) -> None:
    sleep = Recorder()
    sim.fail(ITEM, code=503, times=2)
    async with client(sleep=sleep, base_url=sim.base_url) as tmapi:
        data = await tmapi.fetch(ITEM)
        assert tmapi.calls == 3
    assert data["item_id"] == ITEM
    assert sim.requests_for(ITEM) == 3
    assert len(sleep.delays) == 2


async def test_real_socket_429_with_retry_after(sim: SimulatedTmapi) -> None:
    sleep = Recorder()
    sim.fail(ITEM, http_status=429, retry_after=3)
    async with client(sleep=sleep, base_url=sim.base_url) as tmapi:
        await tmapi.fetch(ITEM)
    assert sleep.delays == [3.0]


async def test_real_socket_delisted_item_exhausts_the_attempts(sim: SimulatedTmapi) -> None:
    sim.delist(ITEM)
    async with client(base_url=sim.base_url, max_attempts=3) as tmapi:
        with pytest.raises(TmapiItemUnavailable):
            await tmapi.fetch(ITEM)
    assert sim.requests_for(ITEM) == 3


async def test_real_socket_quota_is_not_retried(sim: SimulatedTmapi) -> None:
    sim.fail(code=439, times=5)
    async with client(base_url=sim.base_url) as tmapi:
        with pytest.raises(TmapiQuotaExhausted):
            await tmapi.fetch(ITEM)
    assert sim.requests_total == 1


async def test_real_socket_wrong_token_is_an_auth_error() -> None:
    with SimulatedTmapi(items=1, token="the-right-token") as guarded:
        async with client(base_url=guarded.base_url) as tmapi:
            with pytest.raises(TmapiAuthError) as caught:
                await tmapi.fetch(ITEM)
        assert guarded.requests_total == 1
        async with client(base_url=guarded.base_url, token="the-right-token") as tmapi:
            assert (await tmapi.fetch(ITEM))["item_id"] == ITEM
    assert_no_token(caught.value)


async def test_real_socket_connection_refused_is_a_transport_error() -> None:
    simulator = SimulatedTmapi(items=1).start()
    url = simulator.base_url
    simulator.stop()
    async with client(base_url=url, max_attempts=1) as tmapi:
        with pytest.raises(TmapiTransportError) as caught:
            await tmapi.fetch(ITEM)
    assert_no_token(caught.value)


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        (Mode.INVALID_JSON, "invalid or truncated JSON"),
        (Mode.TRUNCATED_JSON, "invalid or truncated JSON"),
        (Mode.EMPTY_DATA, "without data"),
    ],
)
async def test_real_socket_broken_bodies(sim: SimulatedTmapi, mode: Mode, words: str) -> None:
    sim.set_mode(ITEM, mode)
    async with client(base_url=sim.base_url) as tmapi:
        with pytest.raises(TmapiBadResponse, match=words):
            await tmapi.fetch_once(ITEM)


async def test_overall_deadline_fires_on_a_dripping_body(sim: SimulatedTmapi) -> None:
    # One byte every 0.1 s keeps every per-read timeout happy; only the
    # overall deadline can end this request.
    sim.set_mode(ITEM, Mode.DRIP, delay=0.1)
    async with client(base_url=sim.base_url, timeout=0.3) as tmapi:
        started = time.monotonic()
        with pytest.raises(TmapiTimeout, match=r"no complete response within 0\.3 s") as caught:
            await tmapi.fetch_once(ITEM)
        elapsed = time.monotonic() - started
    assert 0.29 <= elapsed < 0.9
    assert caught.value.item_id == ITEM
    assert caught.value.retryable


async def test_connections_are_limited(sim: SimulatedTmapi) -> None:
    sim.set_mode(None, Mode.SLOW, delay=0.05)
    tmapi = TmapiClient(TmapiSettings(base_url=sim.base_url), max_connections=3)
    async with tmapi:
        results = await asyncio.gather(*(tmapi.fetch_once(ITEM) for _ in range(9)))
    assert len(results) == 9
    assert tmapi.calls == 9
    assert sim.max_in_flight == 3
    assert sim.in_flight == 0


async def test_many_requests_share_few_connections(sim: SimulatedTmapi) -> None:
    tmapi = TmapiClient(TmapiSettings(base_url=sim.base_url), max_connections=10)
    async with tmapi:
        semaphore = asyncio.Semaphore(10)

        async def one(item_id: int) -> dict[str, Any]:
            async with semaphore:
                return await tmapi.fetch(item_id)

        results = await asyncio.gather(*(one(i) for i in sim.item_ids * 40))
    assert [r["item_id"] for r in results] == sim.item_ids * 40
    assert sim.requests_total == tmapi.calls == 120
    assert sim.max_in_flight <= 10


def test_client_works_from_sync_code_via_asyncio_run(sim: SimulatedTmapi) -> None:
    async def go() -> dict[str, Any]:
        async with client(base_url=sim.base_url) as tmapi:
            return await tmapi.fetch(ITEM)

    assert asyncio.run(go())["item_id"] == ITEM
