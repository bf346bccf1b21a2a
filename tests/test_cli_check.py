"""``monitor check`` end to end: simulated TMAPI over real sockets, a real database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.simulator.server import SimulatedTmapi

ITEM = 652702302959
TOKEN = "canary-token-7f3a9c"


pytestmark = pytest.mark.sim(items=[ITEM, 610947572360], token=TOKEN)


@pytest.fixture
def env(sim: SimulatedTmapi, migrated_url: str) -> dict[str, str]:
    return {
        "TMAPI_TOKEN": TOKEN,
        "TMAPI_BASE_URL": sim.base_url,
        "TMAPI_TIMEOUT": "5",
        "MONITOR_DATABASE_URL": migrated_url,
        "MONITOR_LOG_LEVEL": "DEBUG",
    }


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def output(result: Result) -> str:
    return result.stdout + result.stderr


def test_first_check_is_a_baseline_then_changes_show(
    sim: SimulatedTmapi, env: dict[str, str]
) -> None:
    first = run(env, "check", str(ITEM))
    assert first.exit_code == 0, output(first)
    assert "白色豹纹 / L" in first.stdout
    assert "¥29.89" in first.stdout
    assert "≥100" in first.stdout and "¥27.60" in first.stdout
    assert "baseline" in first.stdout

    again = run(env, "check", str(ITEM))
    assert "No changes since the last check" in again.stdout

    sku = sim.sku_ids(ITEM)[0]
    sim.set_price(ITEM, sku, "25.90")
    sim.set_tiers(ITEM, [(1, "29.89"), (100, "27.00"), (300, "25.90")])
    changed = run(env, "check", str(ITEM), "--json")
    assert changed.exit_code == 0, output(changed)
    data = json.loads(changed.stdout)
    assert data["item_id"] == ITEM
    assert data["currency"] == "CNY"
    assert len(data["skus"]) == 9
    assert {"sku_id", "name", "price", "stock", "sold_out"} <= set(data["skus"][0])
    assert data["tiers"][1] == {"min_qty": 100, "price": "27.00"}
    kinds = {(c["kind"], c["sku_id"]) for c in data["changes"]}
    assert ("price_drop", sku) in kinds
    assert ("tier_change", None) in kinds
    drop = next(c for c in data["changes"] if c["kind"] == "price_drop")
    assert (drop["old"], drop["new"], drop["pct"]) == ("29.89", "25.90", "-13.3")
    assert TOKEN not in output(changed)


def test_json_for_several_items_is_one_object_per_line(env: dict[str, str]) -> None:
    result = run(env, "check", str(ITEM), "610947572360", "--json")
    assert result.exit_code == 0, output(result)
    lines = result.stdout.strip().splitlines()
    assert [json.loads(line)["item_id"] for line in lines] == [ITEM, 610947572360]


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (439, "439"),
        (422, "422"),
    ],
)
def test_failure_is_one_clear_line(
    sim: SimulatedTmapi, env: dict[str, str], code: int, words: str
) -> None:
    sim.fail(ITEM, code=code, times=10)
    result = run(env, "check", str(ITEM))
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"item {ITEM}")]
    assert len(lines) == 1, result.stderr
    assert words in lines[0]
    assert "Traceback" not in output(result)
    assert TOKEN not in output(result)


def test_delisted_item_reports_417(sim: SimulatedTmapi, env: dict[str, str]) -> None:
    sim.delist(ITEM)
    result = run(env, "check", str(ITEM))
    assert result.exit_code == 1
    assert "417" in result.stderr
    assert TOKEN not in output(result)


def test_wrong_token_is_reported_without_the_token(env: dict[str, str], tmp_path: Path) -> None:
    bad = dict(env, TMAPI_TOKEN="wrong-canary-4411")
    result = run(bad, "check", str(ITEM))
    assert result.exit_code == 1
    assert "wrong-canary-4411" not in output(result)
    assert "401" in result.stderr or "auth" in result.stderr.lower()


def test_bad_item_id_is_a_usage_error(env: dict[str, str]) -> None:
    result = run(env, "check", "abc")
    assert result.exit_code == 2
    assert "abc" in result.stderr
