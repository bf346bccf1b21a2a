"""The client's default transport (aiohttp under httpx) and its JSON decoding.

Real sockets on 127.0.0.1: a tiny server written here answers each request
with whatever bytes the test wants, so compressed bodies, dropped
connections and the request's shape can be checked end to end.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest

from monitor.errors import TmapiBadResponse, TmapiTransportError
from monitor.tmapi import answers as answers_module
from monitor.tmapi.client import TmapiClient
from monitor.tmapi.settings import TmapiSettings

TOKEN = "transport-secret-4242"
ITEM = 652702302959
OK = b'{"code": 200, "msg": "success", "data": {"item_id": 652702302959, "price": 29.89}}'

Answer = Callable[[bytes], bytes]


def response(body: bytes, *headers: str, length: int | None = None) -> bytes:
    head = [
        "HTTP/1.1 200 OK",
        "Content-Type: application/json",
        f"Content-Length: {len(body) if length is None else length}",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@asynccontextmanager
async def server(answer: Answer, *, close_after: bool = False) -> AsyncIterator[list[bytes]]:
    """Serve on 127.0.0.1; ``answer(request head)`` gives the raw reply. Yields the heads."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                heads.append(head)
                writer.write(answer(head))
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    heads.append(f"http://127.0.0.1:{port}".encode())
    try:
        yield heads
    finally:
        srv.close()
        await srv.wait_closed()


def client_for(heads: list[bytes]) -> TmapiClient:
    base = heads.pop(0).decode()
    return TmapiClient.with_aiohttp(TmapiSettings(token=TOKEN, base_url=base, max_attempts=1))


async def test_requests_carry_the_query_and_headers_and_money_is_decimal() -> None:
    async with server(lambda _head: response(OK)) as heads, client_for(heads) as tmapi:
        data = await tmapi.fetch(ITEM, language="zh")
        again = await tmapi.fetch(ITEM)
    assert data == {"item_id": ITEM, "price": Decimal("29.89")}
    assert again == data
    first = heads[0].decode("latin-1").lower()
    assert first.startswith(f"get /1688/item_detail?item_id={ITEM}&language=zh&".lower())
    assert f"apitoken={TOKEN}".lower() in first
    for header in ("accept: application/json", "user-agent: monitor-1688", "accept-encoding: gzip"):
        assert header in first
    assert len(heads) == 2  # both requests, on the connection kept alive


async def test_a_gzip_body_is_decoded() -> None:
    body = gzip.compress(OK)
    reply = response(body, "Content-Encoding: gzip")
    async with server(lambda _head: reply) as heads, client_for(heads) as tmapi:
        assert (await tmapi.fetch_once(ITEM))["price"] == Decimal("29.89")


async def test_a_corrupt_gzip_body_is_a_bad_response() -> None:
    reply = response(b"not gzip at all", "Content-Encoding: gzip")
    async with server(lambda _head: reply) as heads, client_for(heads) as tmapi:
        with pytest.raises(TmapiBadResponse, match="undecodable"):
            await tmapi.fetch_once(ITEM)


async def test_a_connection_dropped_mid_body_is_a_transport_error() -> None:
    reply = response(OK[:20], length=len(OK))
    async with server(lambda _head: reply, close_after=True) as heads, client_for(heads) as tmapi:
        with pytest.raises(TmapiTransportError) as caught:
            await tmapi.fetch_once(ITEM)
    assert caught.value.retryable
    assert TOKEN not in str(caught.value) and "://" not in str(caught.value)


async def test_a_garbled_reply_is_a_transport_error_without_the_url() -> None:
    async with (
        server(lambda _head: b"HTTP/1.1 banana\r\n\r\n") as heads,
        client_for(heads) as tmapi,
    ):
        with pytest.raises(TmapiTransportError) as caught:
            await tmapi.fetch_once(ITEM)
    assert TOKEN not in repr(caught.value) and "://" not in str(caught.value)


def reference(body: bytes) -> Any:
    """What ``json`` makes of ``body``, the way the client asks it to."""
    return json.loads(body, parse_float=Decimal, parse_constant=answers_module._reject_constant)


@pytest.mark.parametrize(
    "body",
    [
        OK,
        b'{"a": [1.0, 2.50, -0.0, 1E2, 0.1e-7, 123456789012345678901234567890]}',
        b'{"a": 1, "a": 2}',
        '{"name": "黄色豹纹 / L", "s": "\\u00e9\\ud83d\\ude00"}'.encode(),
        b'"\\ud800"',
        '{"utf16": 1.5}'.encode("utf-16"),
        b'\xef\xbb\xbf{"bom": 1}',
        b" [ ] ",
    ],
)
def test_decoding_matches_json_with_decimals(body: bytes) -> None:
    try:
        expected = reference(body)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            answers_module._decode(body)
    else:
        decoded = answers_module._decode(body)
        assert decoded == expected
        assert repr(decoded) == repr(expected)  # same types, same Decimal digits


@pytest.mark.parametrize(
    "body",
    [b'{"price": NaN}', b"[Infinity]", b'{"a": }', b"", b'{"a": 1', b"\xff\xfe\x00"],
)
def test_what_json_rejects_is_rejected(body: bytes) -> None:
    with pytest.raises(ValueError):
        reference(body)
    with pytest.raises(ValueError):
        answers_module._decode(body)
