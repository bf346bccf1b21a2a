"""Charts: the step, band and stock series, and real PNG / SVG files from ``monitor chart``."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.cli.plot import (
    ChartInput,
    chart_format,
    price_band,
    render_chart,
    sku_steps,
    stock_steps,
)
from monitor.db.queries import PriceRow
from monitor.db.store import Store
from tests.factories import ITEM_ID, apply_poll, at, offer, sku, with_sku
from tests.outbox_helpers import target
from tests.test_views import T, alerting_poll, build_history

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def row(
    sku_id: str, price: str, start: float, end: float | None, stock: int | None = 5
) -> PriceRow:
    return PriceRow(
        item_id=ITEM_ID,
        sku_id=sku_id,
        sku_name=f"SKU {sku_id}",
        price=Decimal(price),
        stock=stock,
        sold_out=stock == 0,
        valid_from=at(start),
        valid_to=None if end is None else at(end),
    )


# -- series ------------------------------------------------------------------------


def test_sku_steps_clip_to_the_window_and_leave_gaps() -> None:
    rows = [
        row("a", "10.00", 0, 20),
        row("a", "9.50", 20, None),
        row("b", "7.00", 0, 10),  # b removed at 10, back at 30
        row("b", "7.20", 30, None),
    ]
    steps = {s.label: s for s in sku_steps(rows, at(5), at(40))}
    a, b = steps["SKU a"], steps["SKU b"]
    assert a.times == (at(5), at(20), at(40))
    assert a.values == (Decimal("10.00"), Decimal("9.50"), Decimal("9.50"))
    assert b.times == (at(5), at(10), at(30), at(40))
    assert b.values == (Decimal("7.00"), None, Decimal("7.20"), Decimal("7.20"))


def test_price_band_and_stock_follow_every_change() -> None:
    rows = [
        row("a", "10.00", 0, 20, stock=5),
        row("a", "9.50", 20, None, stock=4),
        row("b", "7.00", 0, 10, stock=None),
        row("c", "12.00", 10, None, stock=8),
    ]
    low, high = price_band(rows, at(0), at(30))
    assert low.times == (at(0), at(10), at(20), at(30))
    assert low.values == (Decimal("7.00"), Decimal("10.00"), Decimal("9.50"), Decimal("9.50"))
    assert high.values == (Decimal("10.00"), Decimal("12.00"), Decimal("12.00"), Decimal("12.00"))
    stock = stock_steps(rows, at(0), at(30))
    assert stock is not None
    assert stock.times == low.times
    assert stock.values == (5, 13, 12, 12)  # b's unknown stock is left out
    assert stock_steps([row("x", "1", 0, None, stock=None)], at(0), at(5)) is None


def test_chart_format_comes_from_the_extension() -> None:
    assert chart_format(Path("a.PNG")) == "png"
    assert chart_format(Path("dir/a.svg")) == "svg"
    with pytest.raises(ValueError, match=r"use a \.png or \.svg"):
        chart_format(Path("a.pdf"))


def test_render_refuses_an_empty_chart(tmp_path: Path) -> None:
    data = ChartInput(ITEM_ID, "t", "CNY", at(0), at(10), rows=())
    with pytest.raises(ValueError, match="no prices to draw"):
        render_chart(data, tmp_path / "x.png")


# -- files -------------------------------------------------------------------------


def run(store: Store, now: datetime, *args: str) -> Result:
    env = {"MONITOR_DATABASE_URL": store.engine.url.render_as_string(hide_password=False)}
    return CliRunner().invoke(cli, list(args), env=env, obj={"now": now}, catch_exceptions=False)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_chart_writes_a_png_with_alerts_and_changes(store: Store, tmp_path: Path) -> None:
    base = offer()
    apply_poll(store, ITEM_ID, T[0], base)
    cheaper = with_sku(base, "5000000000000", price=Decimal("25.90"))
    alerting_poll(store, T[1], cheaper, [target("slack")])
    apply_poll(store, ITEM_ID, T[2], with_sku(cheaper, "5000000000003", stock=0, sold_out=True))
    path = tmp_path / "robe.png"

    result = run(store, T[2] + timedelta(hours=1), "chart", str(ITEM_ID), "-o", str(path))

    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"{path}  (PNG: 9 SKUs as a price band, 2 change(s), 1 alert(s))"
    )
    data = path.read_bytes()
    assert png_size(data) == (1200, 672)
    assert len(data) > 20_000
    assert data.endswith(b"\x00\x00\x00\x00IEND\xaeB`\x82")


def test_chart_writes_an_svg_with_one_line_per_sku(store: Store, tmp_path: Path) -> None:
    skus = [sku("a", "10.00", 5, name="white / M"), sku("b", "12.50", 7, name="black / L")]
    apply_poll(store, ITEM_ID, T[0], offer(skus=skus))
    apply_poll(store, ITEM_ID, T[1], offer(skus=[skus[0], sku("b", "11.00", 7, name="black / L")]))
    path = tmp_path / "robe.svg"

    result = run(store, T[3], "chart", str(ITEM_ID), "-o", str(path), "--since", "all")

    assert result.exit_code == 0, result.output
    assert f"{path}  (SVG: 2 SKUs, 1 change(s), 0 alert(s))" in result.output
    root = ET.fromstring(path.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = path.read_text(encoding="utf-8")
    assert "<svg" in text
    for label in ("white / M", "black / L", "price (CNY)", "stock (units)", "changes (1)"):
        assert label in text, label
    # Deterministic: drawing again gives the same file.
    run(store, T[3], "chart", str(ITEM_ID), "-o", str(tmp_path / "again.svg"), "--since", "all")
    assert (tmp_path / "again.svg").read_text(encoding="utf-8") == text


def test_chart_default_name_and_errors(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_history(store, T)
    monkeypatch.chdir(tmp_path)
    result = run(store, T[4], "chart", "Leopard robe", "--since", "all")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"chart-{ITEM_ID}.png  (PNG: 10 SKUs as a price band")
    assert (tmp_path / f"chart-{ITEM_ID}.png").read_bytes()[:8] == PNG_MAGIC

    bad = run(store, T[4], "chart", str(ITEM_ID), "-o", "chart.pdf")
    assert bad.exit_code == 2
    assert "chart.pdf: use a .png or .svg file name" in bad.output

    # A window that starts after every row ended or began still shows the open rows.
    recent = run(store, T[4] + timedelta(days=2), "chart", str(ITEM_ID), "--since", "1h")
    assert recent.exit_code == 0, recent.output
    assert "10 SKUs" not in recent.output and "9 SKUs" in recent.output


def test_titles_without_a_cjk_font_keep_what_can_be_drawn() -> None:
    from monitor.cli.plot import _drawable_title

    assert _drawable_title("Leopard robe (652702302959): 跨境速卖通", 1) == (
        "Leopard robe (652702302959)"
    )
    assert _drawable_title("跨境速卖通 (652702302959)", 652702302959) == "1688 offer 652702302959"
    assert _drawable_title("Satin pyjamas (7)", 7) == "Satin pyjamas (7)"
