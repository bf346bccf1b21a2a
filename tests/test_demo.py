"""``monitor demo --duration 5`` runs the real daemon end to end and shows alerts."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from monitor.cli import cli


def test_demo_runs_end_to_end_and_shows_alerts(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = CliRunner().invoke(
        cli, ["demo", "--duration", "5", "--dir", str(folder)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    out = result.output
    # the scripted price cut on the documented example reaches the console target
    assert "¥29.89 → ¥25.90 (−13.3%)" in out
    assert "≥100 pcs: ¥27.60 → ¥27.00" in out
    assert "sold out" in out
    # then the status table and the chart
    assert "Leopard robe" in out and "652702302959" in out
    assert "TMAPI calls today" in out
    chart = folder / "chart.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (folder / "monitor.db").stat().st_size > 0
    assert "alerts delivered" in out
    delivered = int(out.rsplit(" polls, ", 1)[1].split(" alerts", 1)[0])
    assert delivered >= 2
