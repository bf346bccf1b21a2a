"""Secret-safe logging: redaction rules, the filter, the formats, and the whole path.

The end-to-end test runs the real client against the simulated TMAPI at
DEBUG, with httpx and httpcore logging every request, and checks that the
token appears in no emitted line, no record, no exception and no traceback.
"""

from __future__ import annotations

import io
import json
import logging
import random
import sys
import traceback
from collections.abc import Iterator

import pytest

from monitor.errors import ConfigError, TmapiAuthError, TmapiError
from monitor.logs import RedactingFilter, redact, register_secret, setup_logging
from monitor.simulator.item_detail import Mode
from monitor.simulator.server import SimulatedTmapi
from monitor.tmapi.client import TmapiClient
from monitor.tmapi.settings import TmapiSettings

ITEM = 652702302959


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Give each test the root logger (and the chatty libraries) back as it found them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        handler.filters = [f for f in handler.filters if not isinstance(f, RedactingFilter)]
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


class Keep(logging.Handler):
    """Keeps every record it handles (after its filters ran) and their formatted text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


# ---------------------------------------------------------------- redact()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET https://api.tmapi.io/1688/item_detail?item_id=1&apiToken=abc123XYZ&x=1",
            "GET https://api.tmapi.io/1688/item_detail?item_id=1&apiToken=***&x=1",
        ),
        ("url?apikey=k-9 done", "url?apikey=*** done"),
        ("a?token=t0k&b=2", "a?token=***&b=2"),
        ("TMAPI_TOKEN=secret123 set", "TMAPI_TOKEN=*** set"),
        ("db password=hunter2;", "db password=***;"),
        ("mailto://user:p4ss@gmail.com?to=a@b.c", "mailto://***@gmail.com?to=a@b.c"),
        (
            "postgresql+psycopg://app:s3cret@db:5432/monitor",
            "postgresql+psycopg://***@db:5432/monitor",
        ),
        ("weird://us:pa@ss@host/path", "weird://***@host/path"),
        ("{'apikey': 'k-123', 'x': 1}", "{'apikey': '***', 'x': 1}"),
        ('{"token": "abc", "n": 2}', '{"token": "***", "n": 2}'),
        ("[(b'apikey', b'k-123')]", "[(b'apikey', b'***')]"),
        ("nothing secret here: https://detail.1688.com/offer/1.html", None),
    ],
)
def test_redact_patterns(text: str, expected: str | None) -> None:
    assert redact(text) == (text if expected is None else expected)
    assert redact(redact(text)) == redact(text)


def test_registered_secrets_are_redacted_in_every_form() -> None:
    secret = "slack-T000/B111/XXXX+yy=="
    register_secret(secret)
    assert redact(f"posting to slack://{secret}/#general") == "posting to slack://***/#general"
    assert redact("url-encoded: slack-T000%2FB111%2FXXXX%2Byy%3D%3D") == "url-encoded: ***"
    assert redact("plus-encoded: slack-T000%2FB111%2FXXXX%2Byy%3D%3D!") == "plus-encoded: ***!"


def test_longer_secret_wins_over_a_shorter_one_it_contains() -> None:
    register_secret("inner-secret")
    register_secret("outer-inner-secret-x")
    assert redact("see outer-inner-secret-x") == "see ***"


def test_short_values_are_not_registered() -> None:
    register_secret("ab")
    assert redact("abba cab") == "abba cab"


# ---------------------------------------------------------------- the filter


def log_through_filter(logger: logging.Logger, emit: object) -> Keep:
    keep = Keep()
    keep.addFilter(RedactingFilter())
    logger.addHandler(keep)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        assert callable(emit)
        emit()
    finally:
        logger.removeHandler(keep)
    return keep


def test_filter_redacts_args_tracebacks_and_stacks() -> None:
    logger = logging.getLogger("tests.logs.filter")
    url = "https://api.tmapi.io/1688/item_detail?item_id=1&apiToken=zz-unregistered-1"

    def emit() -> None:
        logger.info("HTTP Request: GET %s %r", url, {"apikey": "zz-unregistered-2"})
        try:
            raise RuntimeError(f"failed at {url}")
        except RuntimeError:
            logger.exception("while fetching")
        logger.warning("with stack %s", url, stack_info=True)
        logger.info("bad format %d", "not-a-number apiToken=zz-unregistered-3")

    keep = log_through_filter(logger, emit)
    everything = "\n".join(keep.lines)
    for leaked in ("zz-unregistered-1", "zz-unregistered-2", "zz-unregistered-3"):
        assert leaked not in everything
        for record in keep.records:
            assert leaked not in f"{record.msg} {record.args} {record.exc_text} {record.stack_info}"
    assert "apiToken=***" in everything
    assert "RuntimeError: failed at" in everything
    assert all(record.args == () for record in keep.records)


# ---------------------------------------------------------------- setup_logging


def test_text_format_goes_to_the_stream() -> None:
    stream = io.StringIO()
    setup_logging("debug", stream=stream)
    logging.getLogger("tests.logs.text").debug("hello %s", "world")
    line = stream.getvalue().strip()
    assert line.endswith("DEBUG   tests.logs.text: hello world")


def test_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO")
    logging.getLogger("tests.logs.stderr").warning("to stderr")
    captured = capsys.readouterr()
    assert "to stderr" in captured.err
    assert "to stderr" not in captured.out


def test_json_format_is_one_object_per_line() -> None:
    stream = io.StringIO()
    setup_logging(logging.INFO, fmt="json", stream=stream)
    logger = logging.getLogger("tests.logs.json")
    logger.info("plain ünïcode")
    try:
        raise ValueError("at https://x.test/?apiToken=zz-json-secret")
    except ValueError:
        logger.exception("it broke")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert set(first) == {"ts", "level", "logger", "msg"}
    assert first["level"] == "INFO" and first["logger"] == "tests.logs.json"
    assert first["msg"] == "plain ünïcode"
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["msg"] == "it broke"
    assert "ValueError" in second["exc"]
    assert "zz-json-secret" not in stream.getvalue()


def test_setup_twice_replaces_its_handler_and_respects_the_level() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("INFO", stream=first)
    setup_logging("WARNING", stream=second)
    logger = logging.getLogger("tests.logs.twice")
    logger.info("quiet")
    logger.warning("loud")
    assert first.getvalue() == ""
    assert "loud" in second.getvalue() and "quiet" not in second.getvalue()


def test_chatty_libraries_are_quiet_unless_debugging() -> None:
    setup_logging("INFO", stream=io.StringIO())
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    setup_logging("DEBUG", stream=io.StringIO())
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG


def test_secrets_argument_registers_them() -> None:
    stream = io.StringIO()
    setup_logging("INFO", stream=stream, secrets=["tgram://bot-zz-registered/12345"])
    logging.getLogger("tests.logs.secrets").info("notify tgram://bot-zz-registered/12345")
    assert "bot-zz-registered" not in stream.getvalue()
    assert "notify ***" in stream.getvalue()


@pytest.mark.parametrize(("level", "fmt"), [("LOUD", "text"), ("", "text"), ("INFO", "xml")])
def test_bad_level_or_format_is_a_config_error(level: str, fmt: str) -> None:
    with pytest.raises(ConfigError):
        setup_logging(level, fmt=fmt, stream=io.StringIO())


# ---------------------------------------------------------------- the whole path

TOKEN = "e2e-TOKEN-a1b2c3d4e5"


async def test_token_never_leaks_through_logs_errors_or_tracebacks() -> None:
    stream = io.StringIO()
    setup_logging("DEBUG", fmt="text", stream=stream)
    keep = Keep()
    logging.getLogger().addHandler(keep)
    setup_logging("DEBUG", fmt="text", stream=stream)  # gives `keep` its filter too
    log = logging.getLogger("tests.logs.e2e")
    errors: list[BaseException] = []

    async def no_sleep(delay: float) -> None:
        del delay

    with SimulatedTmapi(seed=1, items=3, token=TOKEN) as sim:
        base = sim.base_url
        good = TmapiSettings(token=TOKEN, base_url=base, timeout=1.0, max_attempts=2)
        bad = TmapiSettings(token=TOKEN[::-1], base_url=base)
        sim.fail(ITEM, code=500, times=1)
        sim.set_mode(sim.item_ids[1], Mode.DRIP, delay=0.1)
        sim.set_mode(sim.item_ids[2], Mode.INVALID_JSON)
        async with TmapiClient(good, sleep=no_sleep, rng=random.Random(1)) as client:
            await client.fetch(ITEM)  # one retry, then success
            for item_id in sim.item_ids[1:]:
                try:
                    await client.fetch_once(item_id)
                except TmapiError as exc:
                    errors.append(exc)
                    log.exception("item %s failed via %r", item_id, client)
        async with TmapiClient(bad, sleep=no_sleep) as client:
            with pytest.raises(TmapiAuthError) as caught:
                await client.fetch(ITEM)
            errors.append(caught.value)
            log.error("auth failed: %s", caught.value, exc_info=caught.value)
    closed = TmapiClient(TmapiSettings(token=TOKEN, base_url=base, max_attempts=1))
    async with closed:
        try:
            await closed.fetch(ITEM)
        except TmapiError as exc:
            errors.append(exc)
            log.warning("refused", exc_info=True)

    output = stream.getvalue()
    # The test can fail: httpx really did log the request URLs, token included.
    assert "HTTP Request: GET" in output
    assert "apiToken=***" in output
    assert any(r.name.startswith("httpcore") for r in keep.records)
    assert len(errors) == 4
    assert TOKEN not in output
    assert TOKEN[::-1] not in output
    for record in keep.records:
        text = f"{record.getMessage()} {record.exc_text} {record.stack_info} {record.args}"
        assert TOKEN not in text
    for error in errors:
        rendered = "".join(traceback.format_exception(error)) + repr(error) + str(error)
        assert TOKEN not in rendered and TOKEN[::-1] not in rendered
    assert sys.exc_info() == (None, None, None)
