"""No secret leaks, by any road; secrets can come from files; SQLite files are private.

The big test plants canary secrets everywhere a secret can be (the TMAPI
token, from ``TMAPI_TOKEN_FILE`` too; the user, password and path token of
every apprise URL, inline and through ``${VAR}`` and ``${VAR}_FILE``; the
PostgreSQL password, through a TCP proxy since the server trusts any
password), then drives every error path through real ``monitor`` processes
with all logging at DEBUG, and looks for the canaries in their stdout and
stderr (log lines, tracebacks, CLI output) and in every row of every table.
Each canary starts and ends with ``KNRY``, so even a cut-off piece shows.

The error paths driven (see :data:`ERROR_PATHS`):

* TMAPI, via ``monitor check`` and ``monitor run --once``: HTTP 401 (token
  rejected), codes 417, 422, 439, 499, 500, 503 and HTTP 429 with
  ``Retry-After``, HTTP 502, invalid and truncated JSON, ``code`` 200 with
  empty data, a payload without prices, a request timeout, a dripping body,
  TMAPI unreachable (connection refused);
* delivery, via ``run --once`` (failing items alert at once) and ``notify
  test``: webhook 500, webhook 429 with ``Retry-After``, SMTP server down,
  webhook host unreachable, next to targets that work;
* the watchlist, via ``validate`` and ``run``: unknown scheme, a URL apprise
  rejects, unset / empty ``${VAR}``, ``VAR`` and ``VAR_FILE`` both set,
  ``VAR_FILE`` unreadable or empty, a URL in the wrong place;
* the database, via ``db current``, ``run --once`` and a running daemon:
  reachable (the URL printed), refused (nothing listening), unsupported
  scheme, unparseable URL, URL from ``MONITOR_DATABASE_URL_FILE``, and the
  connection cut while ``monitor run`` polls and delivers.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
import sqlalchemy as sa

from monitor.db.engine import check_connection, make_engine, upgrade
from monitor.db.store import Store
from monitor.errors import ConfigError, MonitorError, StorageError, TmapiError
from monitor.logs import redact
from monitor.simulator.item_detail import Mode
from monitor.simulator.server import SimulatedTmapi
from monitor.tmapi.client import TmapiClient
from monitor.tmapi.settings import TmapiSettings
from monitor.watchlist.fields import variable_value
from monitor.watchlist.load import parse_watchlist
from monitor.watchlist.model import WatchlistError
from monitor.watchlist.summary import summarize
from monitor.watchlist.urls import privacy_url
from tests.receivers import Answer, SmtpReceiver, WebhookReceiver, free_port
from tests.reliability.harness import TcpProxy, through_proxy, wait_for

REPO = Path(__file__).resolve().parent.parent
MARK = "KNRY"


def canary(name: str) -> str:
    return f"{MARK}{name}{uuid.uuid4().hex[:10]}{MARK}"


def leaks(text: str, secrets: list[str]) -> list[str]:
    """The secrets (or pieces carrying the marker) found in ``text``."""
    found = [s for s in secrets for form in {s, quote(s, safe=""), quote_plus(s)} if form in text]
    if MARK.lower() in text.lower():
        at = text.lower().index(MARK.lower())
        found.append(f"marker at: {text[max(0, at - 80) : at + 40]!r}")
    return found


# -- ${VAR} from VAR_FILE --------------------------------------------------------------------


def target_url(text: str, env: dict[str, str]) -> str:
    return parse_watchlist(text, path="w.toml", env=env).targets["hook"].url


def test_a_variable_comes_from_its_file_when_unset(tmp_path: Path) -> None:
    secret = canary("file")
    (tmp_path / "token").write_text(f"  {secret}\n", encoding="utf-8")
    text = '[targets]\nhook = "json://127.0.0.1:1/hook/${HOOK_TOKEN}"\n'
    for env in (
        {"HOOK_TOKEN_FILE": str(tmp_path / "token")},
        {"HOOK_TOKEN": "", "HOOK_TOKEN_FILE": str(tmp_path / "token")},
    ):
        assert target_url(text, env) == f"json://127.0.0.1:1/hook/{secret}"
    # The value read from the file is a registered secret from now on.
    assert redact(f"token {secret} in a log line") == "token *** in a log line"


def test_a_variable_set_directly_needs_no_file() -> None:
    assert variable_value("X", {"X": "direct"}) == "direct"
    assert variable_value("X", {}) is None
    assert variable_value("X", {"X": ""}) == ""


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("both", "${HOOK_TOKEN}: HOOK_TOKEN and HOOK_TOKEN_FILE are both set; keep one"),
        ("missing", "HOOK_TOKEN_FILE names"),
        ("empty", "${HOOK_TOKEN}: the file"),
        ("binary", "which cannot be read (not UTF-8 text)"),
    ],
)
def test_a_bad_variable_file_is_a_clear_error_without_the_value(
    tmp_path: Path, setup: str, message: str
) -> None:
    secret = canary("bad")
    path = tmp_path / "token"
    env = {"HOOK_TOKEN_FILE": str(path)}
    if setup == "both":
        path.write_text(secret, encoding="utf-8")
        env["HOOK_TOKEN"] = secret
    elif setup == "empty":
        path.write_text(" \n", encoding="utf-8")
    elif setup == "binary":
        path.write_bytes(b"\xff\xfe" + secret.encode())
    text = '[targets]\nhook = "json://127.0.0.1:1/hook/${HOOK_TOKEN}"\n'
    with pytest.raises(WatchlistError) as caught:
        parse_watchlist(text, path="w.toml", env=env)
    (problem,) = caught.value.problems
    assert problem.startswith("w.toml: targets.hook: url: ")
    assert message in problem
    assert leaks(problem, [secret]) == []
    if setup != "both":
        assert str(path) in problem


def test_validate_summary_hides_webhook_path_tokens() -> None:
    inline, from_env = canary("inline"), canary("env")
    text = (
        "[targets]\n"
        f'inline = "json://127.0.0.1:9/hook/{inline}"\n'
        'from_env = "json://127.0.0.1:9/hook/${HOOK_TOKEN}"\n\n'
        '[defaults]\nnotify = ["inline", "from_env"]\n\n[[items]]\nid = 1\n'
    )
    watchlist = parse_watchlist(text, path="w.toml", env={"HOOK_TOKEN": from_env})
    shown = "\n".join(summarize(watchlist))
    for target in watchlist.targets.values():
        shown += f"\n{target!r}\n{privacy_url(target.url)}"
    assert "from_env" in shown
    assert leaks(shown, [inline, from_env]) == []


# -- private SQLite files ------------------------------------------------------------------------


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_database_and_its_folder_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask would make them world-readable
    try:
        db = tmp_path / "new" / "monitor.db"
        url = f"sqlite+pysqlite:///{db}"
        upgrade(url)
        store = Store.open(url)
        store.close()
    finally:
        os.umask(old)
    assert mode_of(db.parent) == 0o700
    assert mode_of(db) == 0o600
    # SQLite gives its write-ahead log and shared-memory files the database file's mode.
    for extra in ("monitor.db-wal", "monitor.db-shm"):
        if (db.parent / extra).exists():
            assert mode_of(db.parent / extra) == 0o600, extra


def test_the_default_database_is_created_private_by_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home" / "monitor"
    old = os.umask(0o022)  # inherited by the child
    try:
        result = subprocess.run(
            [sys.executable, "-m", "monitor", "db", "upgrade"],
            cwd=REPO,
            env=clean_env(MONITOR_HOME=str(home)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    assert mode_of(home) == 0o700
    assert mode_of(home / "monitor.db") == 0o600


# -- exceptions and tracebacks, in process ---------------------------------------------------------


def full_text(exc: BaseException) -> str:
    """Everything an exception can show: str, repr and the whole printed traceback."""
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


async def test_tmapi_errors_carry_no_token_in_message_repr_or_traceback() -> None:
    token = canary("tmapi")

    def echo(request: httpx.Request) -> httpx.Response:
        # A hostile server: echoes the full URL (with the token) everywhere it can.
        url = str(request.url)
        path = request.url.path
        if path.endswith("/item_detail") and "item_id=1&" in url:
            raise httpx.ConnectError(f"cannot connect to {url}", request=request)
        if "item_id=2&" in url:
            raise httpx.ReadTimeout(f"timed out reading {url}", request=request)
        if "item_id=3&" in url:
            return httpx.Response(500, json={"code": 500, "msg": f"boom at {url}"})
        if "item_id=4&" in url:
            return httpx.Response(302, headers={"Location": url})
        if "item_id=5&" in url:
            return httpx.Response(200, json={"code": 422, "msg": f"bad {url} apiToken={token}"})
        return httpx.Response(200, content=f"not json {url}".encode())

    settings = TmapiSettings(token=token, base_url="http://tmapi.invalid", max_attempts=1)
    assert leaks(repr(settings) + str(settings), [token]) == []
    async with TmapiClient(settings, transport=httpx.MockTransport(echo)) as client:
        assert leaks(repr(client), [token]) == []
        for item_id in range(1, 7):
            with pytest.raises(TmapiError) as caught:
                await client.fetch(item_id)
            assert leaks(full_text(caught.value), [token]) == [], item_id


def test_database_errors_carry_no_password() -> None:
    password = canary("db")
    url = f"postgresql+psycopg://postgres:{password}@127.0.0.1:{free_port()}/test"
    for action in (
        lambda: check_connection(make_engine(url)),
        lambda: Store.open(url),
        lambda: make_engine(f"mysql://u:{password}@h/db"),
        lambda: make_engine(f"postgresql://u:{password}@h:notaport/db"),
    ):
        with pytest.raises(MonitorError) as caught:
            action()
        assert isinstance(caught.value, StorageError | ConfigError)
        assert leaks(full_text(caught.value), [password]) == []


# -- every error path through the CLI, at DEBUG ----------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "TMAPI_"))}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


@dataclass
class Canaries:
    tmapi: str
    db: str
    hook_password: str
    hook_token: str
    fail_token: str
    limited_token: str
    mail_password: str
    mail_down_password: str
    unreachable_token: str
    env_token: str
    file_token: str
    inline_bad: str

    def all(self) -> list[str]:
        return list(vars(self).values())


@pytest.fixture
def canaries() -> Canaries:
    return Canaries(*(canary(f"c{n}") for n in range(12)))


# item -> how the simulator fails it, and how many times (check items and run items are apart).
# Retryable failures happen once in ``check`` (logged, then retried), so it does not crawl.
CHECK_FAULTS: dict[int, tuple[str, object, int]] = {
    101: ("http", 401, 1),
    102: ("code", 417, 1),
    103: ("code", 422, 1),
    104: ("code", 439, 1),
    105: ("code", 499, 1),
    106: ("code", 500, 1),
    107: ("code", 503, 1),
    108: ("http", 429, 1),
    109: ("http", 502, 1),
}
MODE_ITEMS = {
    110: Mode.INVALID_JSON,
    111: Mode.TRUNCATED_JSON,
    112: Mode.EMPTY_DATA,
    113: Mode.NO_PRICES,
    120: Mode.SLOW,
    121: Mode.DRIP,
}
RUN_FAULTS: dict[int, tuple[str, object, int]] = {
    202: ("code", 500, 100),
    203: ("mode", Mode.NO_PRICES, 0),
    204: ("http", 401, 100),
}
RUN_ITEMS = [201, 202, 203, 204]
DAEMON_ITEMS = [301, 302]

#: What the big test drives, for the report and the docstring.
ERROR_PATHS = [
    "check: HTTP 401, codes 417/422/439/499/500/503, HTTP 429 + Retry-After, HTTP 502",
    "check: invalid JSON, truncated JSON, code 200 + empty data, no prices",
    "check: request timeout (slow answer), dripping body, TMAPI unreachable",
    "run --once: failed polls alerting at once to webhook 500, webhook 429 + Retry-After,"
    " SMTP down, unreachable host, and to working webhook and SMTP targets",
    "notify test: the same targets",
    "validate: good watchlist; unknown scheme, URL apprise rejects, unset/empty ${VAR},"
    " VAR and VAR_FILE both set, unreadable and empty VAR_FILE, URL as a list",
    "run: bad watchlist",
    "db current: through the proxy, from MONITOR_DATABASE_URL_FILE, refused,"
    " unsupported scheme, unparseable URL",
    "run --once: database refused",
    "run: the database connection cut and refused while polling and delivering",
]


def inject(sim: SimulatedTmapi, faults: dict[int, tuple[str, object, int]]) -> None:
    for item_id, (kind, value, times) in faults.items():
        if kind == "http":
            sim.fail(item_id, http_status=int(str(value)), times=times, retry_after=1)
        elif kind == "code":
            sim.fail(item_id, code=int(str(value)), times=times)
        else:
            sim.set_mode(item_id, Mode(str(value)))


def good_watchlist(
    path: Path, c: Canaries, hook: WebhookReceiver, smtp: SmtpReceiver, items: list[int]
) -> Path:
    closed = free_port()
    url = f"127.0.0.1:{hook.port}"
    targets = {
        "ok": f"json://hookuser:{c.hook_password}@{url}/ok/{c.hook_token}",
        "fail": f"json://{url}/fail/{c.fail_token}",
        "limited": f"json://{url}/limited/{c.limited_token}",
        "mail": smtp.mailto_url(password=c.mail_password),
        "mail_down": f"mailto://user:{c.mail_down_password}@127.0.0.1:{closed}"
        "?from=a@example.com&to=b@example.com&mode=insecure",
        "unreachable": f"json://127.0.0.1:{closed}/x/{c.unreachable_token}",
        "from_env": f"json://{url}/env/${{ENV_TOKEN}}",
        "from_file": f"json://{url}/file/${{FILE_TOKEN}}",
    }
    lines = ["[settings]", "max_requests_per_second = 100", "", "[targets]"]
    lines += [f'{name} = "{value}"' for name, value in targets.items()]
    lines += [
        "",
        "[defaults]",
        'interval = "1s"',
        "notify = [" + ", ".join(f'"{name}"' for name in targets) + "]",
        'alert_on = ["price_drop", "poll_failing"]',
        "failing_after = 1",
        "",
    ]
    for item_id in items:
        lines += ["[[items]]", f"id = {item_id}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def credentials_watchlist(
    path: Path, c: Canaries, hook: WebhookReceiver, smtp: SmtpReceiver
) -> Path:
    """Targets whose secrets are passwords (inline, from ${VAR}, from ${VAR}_FILE).

    Secrets in a webhook's path are left out: ``validate`` shows them, see
    :func:`test_validate_summary_hides_webhook_path_tokens`.
    """
    path.write_text(
        f"""
[targets]
hook = "json://hookuser:{c.hook_password}@127.0.0.1:{hook.port}/ok"
env_hook = "json://hookuser:${{ENV_TOKEN}}@127.0.0.1:{hook.port}/env"
mail = "{smtp.mailto_url(password=c.mail_password)}"
file_mail = "mailto://user:${{FILE_TOKEN}}@127.0.0.1:{smtp.port}?from=a@example.com&to=b@example.com"

[defaults]
notify = ["hook", "env_hook", "mail", "file_mail"]

[[items]]
id = 1
""",
        encoding="utf-8",
    )
    return path


def bad_watchlist(path: Path, c: Canaries) -> Path:
    path.write_text(
        f"""
[targets]
unknown_scheme = "nosuch://{c.inline_bad}@host/{c.inline_bad}"
rejected = "json://user:{c.inline_bad}@127.0.0.1:notaport/{c.inline_bad}"
unset = "json://127.0.0.1/${{NOT_SET_ANYWHERE}}"
empty = "json://127.0.0.1/${{EMPTY_TOKEN}}"
both = "json://127.0.0.1/${{ENV_TOKEN}}/${{BOTH_TOKEN}}"
unreadable = "json://127.0.0.1/${{GONE_TOKEN}}"
empty_file = "json://127.0.0.1/${{BLANK_TOKEN}}"
listed = ["json://127.0.0.1/{c.inline_bad}"]

[[items]]
id = 1
""",
        encoding="utf-8",
    )
    return path


@dataclass
class Run:
    name: str
    proc: subprocess.Popen[bytes]
    output: Path
    expect_code: int
    must_show: tuple[str, ...]

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")


def launcher(folder: Path, started: list[Run]) -> Callable[..., Run]:
    """Start ``monitor --log-level DEBUG ARGS`` with stdout and stderr into one file
    (a pipe nobody reads would fill up and stall a chatty process); each run is
    added to ``started``."""

    def launch(name: str, args: list[str], env: dict[str, str], code: int, *shows: str) -> Run:
        output = folder / f"{name.replace(' ', '_')}.out"
        with output.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "--log-level", "DEBUG", *args],
                cwd=REPO,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        started.append(Run(name, proc, output, code, shows))
        return started[-1]

    return launch


@pytest.fixture
def daemon_schema_url(pg_admin: sa.Engine, pg_schema_url: str) -> Iterator[str]:
    """A second PostgreSQL schema, for the daemon: one database follows one watchlist
    (a process with another watchlist would unwatch its items)."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(pg_schema_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with pg_admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.mark.postgres
def test_no_canary_reaches_any_output_or_row(
    pg_schema_url: str,
    daemon_schema_url: str,
    start_sim: Callable[..., SimulatedTmapi],
    canaries: Canaries,
    tmp_path: Path,
) -> None:
    c = canaries
    sim = start_sim(items=[*CHECK_FAULTS, *MODE_ITEMS, *RUN_ITEMS, *DAEMON_ITEMS], token=c.tmapi)
    upgrade(pg_schema_url)
    upgrade(daemon_schema_url)
    engine = make_engine(pg_schema_url)
    daemon_engine = make_engine(daemon_schema_url)
    pg = sa.make_url(pg_schema_url)
    inject(sim, CHECK_FAULTS)
    inject(sim, RUN_FAULTS)
    for item_id, mode in MODE_ITEMS.items():
        sim.set_mode(item_id, mode, delay=5 if mode is Mode.SLOW else 0.2)
    runs: list[Run] = []
    started: list[Run] = []
    launch = launcher(tmp_path, started)
    try:
        with (
            TcpProxy(pg.host or "127.0.0.1", pg.port or 5432) as proxy,
            TcpProxy(pg.host or "127.0.0.1", pg.port or 5432) as flaky,
            WebhookReceiver() as hook,
            SmtpReceiver() as smtp,
        ):
            hook.always(f"/fail/{c.fail_token}", Answer(500))
            hook.always(f"/limited/{c.limited_token}", Answer(429, {"Retry-After": "60"}))
            db_url = through_proxy(pg_schema_url, proxy, password=c.db)
            refused_url = f"postgresql+psycopg://postgres:{c.db}@127.0.0.1:{free_port()}/test"
            (tmp_path / "token").write_text(c.tmapi + "\n", encoding="utf-8")
            (tmp_path / "file_token").write_text(c.file_token, encoding="utf-8")
            (tmp_path / "db_url").write_text(db_url, encoding="utf-8")
            (tmp_path / "blank").write_text("\n", encoding="utf-8")
            run_list = good_watchlist(tmp_path / "run.toml", c, hook, smtp, RUN_ITEMS)
            daemon_list = good_watchlist(tmp_path / "daemon.toml", c, hook, smtp, DAEMON_ITEMS)
            bad_list = bad_watchlist(tmp_path / "bad.toml", c)
            validate_list = credentials_watchlist(tmp_path / "validate.toml", c, hook, smtp)
            env = clean_env(
                TMAPI_TOKEN_FILE=str(tmp_path / "token"),
                TMAPI_BASE_URL=sim.base_url,
                TMAPI_TIMEOUT="0.5",
                MONITOR_DATABASE_URL=db_url,
                ENV_TOKEN=c.env_token,
                FILE_TOKEN_FILE=str(tmp_path / "file_token"),
                EMPTY_TOKEN="",
                BOTH_TOKEN=c.inline_bad,
                BOTH_TOKEN_FILE=str(tmp_path / "file_token"),
                GONE_TOKEN_FILE=str(tmp_path / "no-such-file"),
                BLANK_TOKEN_FILE=str(tmp_path / "blank"),
            )
            unreachable_tmapi = {**env, "TMAPI_BASE_URL": f"http://127.0.0.1:{free_port()}"}
            from_file = {**env, "MONITOR_DATABASE_URL_FILE": str(tmp_path / "db_url")}
            del from_file["MONITOR_DATABASE_URL"]
            refused = {**env, "MONITOR_DATABASE_URL": refused_url}
            daemon_url = through_proxy(daemon_schema_url, flaky, c.db)
            daemon_env = {**env, "MONITOR_DATABASE_URL": daemon_url}

            daemon = launch(
                "run (database cut)", ["run", "--watchlist", str(daemon_list), "--lease", "10"],
                daemon_env, 0, "claiming due items failed",
            )  # fmt: skip
            runs += [
                launch(
                    "check", ["check", *map(str, CHECK_FAULTS), "112", "113"], env, 1,
                    "TMAPI code 417", "TMAPI code 439", "(HTTP 401)", "(HTTP 502)",
                    "code 200 without data", "could not be parsed",
                ),
                launch("check broken JSON", ["check", "110", "111"], env, 1,
                       "invalid or truncated JSON"),
                launch("check slow and drip", ["check", "120", "121"], env, 1,
                       "item 120: no complete response", "item 121: no complete response"),
                launch("check unreachable", ["check", "101"], unreachable_tmapi, 1, "ConnectError"),
                launch(
                    "run --once", ["run", "--once", "--watchlist", str(run_list)], env, 0,
                    "polled 4 items", "next try at", "to target 'mail'",
                ),
                launch("notify test", ["notify", "test", "--watchlist", str(run_list)], env, 1,
                       "FAILED", "ok  "),
                launch("validate good", ["validate", str(validate_list)], env, 0,
                       "hook:", "mail:"),
                launch(
                    "validate bad", ["validate", str(bad_list)], env, 1,
                    "targets.unknown_scheme", "targets.rejected", "NOT_SET_ANYWHERE",
                    "EMPTY_TOKEN", "both set", "no-such-file", "is empty", "targets.listed",
                ),
                launch("run bad watchlist", ["run", "--watchlist", str(bad_list)], env, 1,
                       "targets.rejected"),
                launch("db current from file", ["db", "current"], from_file, 0, "postgres:***@"),
                launch("db current refused", ["db", "current"], refused, 1, "Connection refused"),
                launch("run --once refused", ["run", "--once", "--watchlist", str(run_list)],
                       refused, 1, "Connection refused"),
                launch("db current mysql", ["db", "current"],
                       {**env, "MONITOR_DATABASE_URL": f"mysql://u:{c.db}@h/db"}, 1, "unsupported"),
                launch("db current unparseable", ["db", "current"],
                       {**env, "MONITOR_DATABASE_URL": f"postgresql://u:{c.db}@h:port/db"}, 1,
                       "cannot be parsed"),
            ]  # fmt: skip

            # The daemon: polls and delivers, then its database connection is cut.
            def daemon_polled() -> bool:
                n = int(str(scalar(daemon_engine, "SELECT count(*) FROM polls")))
                return n >= 2

            wait_for("the daemon's first polls", daemon_polled, 40)
            flaky.cut()
            sim.set_mode(DAEMON_ITEMS[0], Mode.NO_PRICES)  # it alerts once the database is back
            before = polls_of(daemon_engine, DAEMON_ITEMS[0])
            for run in runs:
                run.proc.wait(timeout=90)
                assert run.proc.returncode == run.expect_code, f"{run.name}:\n{run.text()}"
            flaky.restore()

            def failure_delivered() -> bool:
                found = rows_text(daemon_engine, "SELECT attempts FROM notifications")
                return polls_of(daemon_engine, 301) > before and "(1,)" in found

            wait_for("the daemon to poll and deliver again", failure_delivered, 30)
            daemon.proc.terminate()
            assert daemon.proc.wait(timeout=30) == 0, daemon.text()
            runs.append(daemon)
    finally:
        for run in started:
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait()
    try:
        problems: list[str] = []
        for run in runs:
            out = run.text()
            problems += [f"{run.name}: missing {s!r}" for s in run.must_show if s not in out]
            problems += [f"{run.name}: leaked {s}" for s in leaks(out, c.all())]
        for db in (engine, daemon_engine):
            problems += [f"database: {s}" for s in leaks(dump_tables(db), c.all())]
        assert not problems, "\n".join(problems)
        # The paths were really driven: deliveries failed and were recorded, secret-free.
        errors = rows_text(engine, "SELECT target, last_error FROM notifications")
        for target in ("fail", "limited", "mail_down", "unreachable"):
            assert target in errors
    finally:
        engine.dispose()
        daemon_engine.dispose()


def scalar(engine: sa.Engine, sql: str) -> object:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


def polls_of(engine: sa.Engine, item_id: int) -> int:
    return int(str(scalar(engine, f"SELECT count(*) FROM polls WHERE item_id = {item_id}")))


def rows_text(engine: sa.Engine, sql: str) -> str:
    with engine.connect() as conn:
        return "\n".join(repr(tuple(row)) for row in conn.execute(sa.text(sql)))


def dump_tables(engine: sa.Engine) -> str:
    """Every row of every table of the schema, as text."""
    inspector = sa.inspect(engine)
    parts = []
    for table in inspector.get_table_names():
        parts.append(f"== {table}")
        parts.append(rows_text(engine, f'SELECT * FROM "{table}"'))
    for view in inspector.get_view_names():
        parts.append(f"== view {view}")
        parts.append(rows_text(engine, f'SELECT * FROM "{view}"'))
    text = "\n".join(parts)
    assert "== notifications" in text and "== polls" in text
    return text
