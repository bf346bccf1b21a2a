"""Turn measurements into ``results.json`` and the printed table.

Headline numbers follow the issue: throughput, ratio and CPU are those of
the largest size measured on SQLite with no changes (10k items by default),
each the median of its rounds; storage comes from the same case (SQLite
``dbstat`` bytes); the loop lag is the worst seen in any round of any case.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.pipeline import Case, Round

TARGETS: dict[str, tuple[str, float]] = {
    "polls_per_s": (">=", 1000.0),
    "ratio_to_ceiling": (">=", 0.5),
    "cpu_ms_per_poll": ("<=", 1.0),
    "bytes_per_unchanged_poll": ("<=", 200.0),
    "peak_rss_mb_100k": ("<=", 250.0),
    "startup_s_10k": ("<=", 3.0),
    "max_loop_lag_ms": ("<=", 100.0),
}

SCENARIOS = {"unchanged": "unchanged", "changed": "changed_10pct"}


def _size(items: int) -> str:
    return f"{items // 1000}k" if items % 1000 == 0 else str(items)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _round3(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _split_ms(rounds: list[Round], fetch_ms: float | None) -> dict[str, float | None]:
    """Median CPU ms per poll of each stage; fetch from the own-client ceiling."""

    def stage(name: str) -> float:
        return statistics.median(r.split_s.get(name, 0.0) * 1000 / r.polls for r in rounds)

    parse, digest, alerts, store_total = (
        stage("parse"),
        stage("diff"),
        stage("alerts"),
        stage("store_total"),
    )
    store = max(0.0, store_total - digest - alerts)
    total = statistics.median(r.cpu_ms_per_poll for r in rounds)
    known = parse + digest + alerts + store + (fetch_ms or 0.0)
    return {
        "fetch": _round3(fetch_ms),
        "parse": _round3(parse),
        "diff": _round3(digest),
        "store": _round3(store),
        "rules_outbox": _round3(alerts),
        "other": _round3(max(0.0, total - known)),
        "total": _round3(total),
    }


def _per_poll_storage(case: Case) -> dict[str, Any]:
    """Rows and bytes an unchanged poll adds, and (by difference) a changed poll."""
    unchanged = [r for r in case.of("unchanged") if r.added.rows]
    changed = [r for r in case.of("changed") if r.added.rows]
    out: dict[str, Any] = {}
    if not unchanged:
        return out
    tables = list(unchanged[0].added.rows)
    rows_u = {t: statistics.median(r.added.rows[t] / r.polls for r in unchanged) for t in tables}
    out["rows_per_unchanged_poll"] = {t: round(v, 3) for t, v in rows_u.items() if v}
    bytes_u = _median([r.added.total_bytes / r.polls for r in unchanged if r.added.total_bytes])
    out["bytes_per_unchanged_poll"] = None if bytes_u is None else round(bytes_u, 1)
    if changed:
        per_changed_rows: dict[str, list[float]] = {t: [] for t in tables}
        per_changed_bytes: list[float] = []
        for r in changed:
            n_changed = r.outcomes.get("changed", 0)
            n_other = r.polls - n_changed
            if not n_changed:
                continue
            for t in tables:
                per_changed_rows[t].append((r.added.rows[t] - n_other * rows_u[t]) / n_changed)
            if r.added.total_bytes is not None and bytes_u is not None:
                per_changed_bytes.append((r.added.total_bytes - n_other * bytes_u) / n_changed)
        out["rows_per_changed_poll"] = {
            t: round(statistics.median(v), 3)
            for t, v in per_changed_rows.items()
            if v and statistics.median(v)
        }
        median_bytes = _median(per_changed_bytes)
        out["bytes_per_changed_poll"] = None if median_bytes is None else round(median_bytes, 1)
    return out


def build(
    *,
    machine: dict[str, Any],
    settings: dict[str, Any],
    ceilings: dict[str, Any],
    cases: list[Case],
    startup: dict[str, Any] | None,
    memory: dict[str, Any] | None,
    sweep: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``results.json`` document."""
    own = ceilings.get("own_client_per_s")
    fetch_ms = ceilings.get("own_client_cpu_ms")
    polls: dict[str, dict[str, dict[str, float | None]]] = {}
    ratios: dict[str, dict[str, dict[str, float | None]]] = {}
    cpu: dict[str, dict[str, dict[str, float | None]]] = {}
    lags: dict[str, dict[str, float]] = {}
    for case in cases:
        size = _size(case.items)
        for kind, label in (("baseline", "baseline"), *SCENARIOS.items()):
            per_s = case.median(kind, "polls_per_s")
            polls.setdefault(case.dialect, {}).setdefault(size, {})[label] = (
                None if per_s is None else round(per_s, 1)
            )
            ratios.setdefault(case.dialect, {}).setdefault(size, {})[label] = (
                None if per_s is None or not own else round(per_s / own, 3)
            )
            cpu.setdefault(case.dialect, {}).setdefault(size, {})[label] = _round3(
                case.median(kind, "cpu_ms_per_poll")
            )
        lags.setdefault(case.dialect, {})[size] = round(
            max(r.lag_max_s for r in case.rounds) * 1000, 1
        )
    sqlite_cases = [c for c in cases if c.dialect == "sqlite"]
    head = max(sqlite_cases, key=lambda c: c.items) if sqlite_cases else None
    result: dict[str, Any] = {
        "machine": machine,
        "settings": settings,
        "headline_case": None if head is None else f"sqlite/{_size(head.items)}/unchanged",
        "ceiling_own_client": _round3(own),
        "ceiling_aiohttp": _round3(ceilings.get("aiohttp_per_s")),
        "ceilings": ceilings,
        "polls_per_s": None,
        "ratio_to_ceiling": None,
        "cpu_ms_per_poll": None,
        "cpu_ms_per_poll_split": None,
        "bytes_per_unchanged_poll": None,
        "bytes_per_changed_poll": None,
        "rows_per_unchanged_poll": None,
        "rows_per_changed_poll": None,
        "peak_rss_mb_100k": None if memory is None else memory["peak_rss_mb"],
        "startup_s_10k": None if startup is None else startup["startup_s"],
        "max_loop_lag_ms": (
            round(max(r.lag_max_s for c in cases for r in c.rounds) * 1000, 1) if cases else None
        ),
        "polls_per_s_by_case": polls,
        "ratio_to_ceiling_by_case": ratios,
        "cpu_ms_per_poll_by_case": cpu,
        "max_loop_lag_ms_by_case": lags,
        "startup": startup,
        "memory": memory,
        "concurrency_sweep": sweep,
        "rounds": [
            {
                "dialect": c.dialect,
                "items": c.items,
                "kind": r.kind,
                "polls": r.polls,
                "polls_per_s": round(r.polls_per_s, 1),
                "cpu_ms_per_poll": round(r.cpu_ms_per_poll, 3),
                "lag_max_ms": round(r.lag_max_s * 1000, 1),
                "lag_p99_ms": round(r.lag_p99_s * 1000, 1),
                "outcomes": r.outcomes,
            }
            for c in cases
            for r in c.rounds
        ],
    }
    if head is not None:
        per_s = head.median("unchanged", "polls_per_s")
        result["polls_per_s"] = None if per_s is None else round(per_s, 1)
        result["ratio_to_ceiling"] = None if per_s is None or not own else round(per_s / own, 3)
        result["cpu_ms_per_poll"] = _round3(head.median("unchanged", "cpu_ms_per_poll"))
        result["cpu_ms_per_poll_split"] = {
            label: _split_ms(head.of(kind), fetch_ms)
            for kind, label in SCENARIOS.items()
            if head.of(kind)
        }
        result.update(_per_poll_storage(head))
    result["targets"] = {
        key: {
            "target": f"{op} {limit:g}",
            "value": result.get(key),
            "met": _met(result.get(key), op, limit),
        }
        for key, (op, limit) in TARGETS.items()
    }
    return result


def _met(value: object, op: str, limit: float) -> bool | None:
    if not isinstance(value, int | float):
        return None
    return value >= limit if op == ">=" else value <= limit


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def table(result: dict[str, Any]) -> str:
    """The headline table and the per-case table, as Markdown."""
    m = result["machine"]
    during = m.get("during_run", {})
    lines = [
        f"Machine: {m['cpu']}, {m['cores_usable']} cores, {m['memory_gb']} GB, {m['os']}; "
        f"Python {m['python']}, SQLite {m['sqlite']}, PostgreSQL {m['postgresql'] or '-'}",
        f"Load during the run: {during.get('busy_pct', '-')} % of CPU busy, "
        f"{during.get('steal_pct', '-')} % stolen by the hypervisor, CPU pressure (some, 60 s) "
        f"{during.get('cpu_pressure_some_avg60_pct', '-')} %, load average "
        f"{during.get('load_average', '-')}",
        f"Headline case: {result['headline_case']}",
        "",
        "| key | value | target | met |",
        "|---|---:|---|---|",
    ]
    shown = [
        "ceiling_own_client",
        "ceiling_aiohttp",
        *TARGETS,
        "bytes_per_changed_poll",
    ]
    for key in shown:
        target = result["targets"].get(key)
        met = "" if target is None else {True: "yes", False: "NO", None: "-"}[target["met"]]
        lines.append(
            f"| {key} | {_fmt(result.get(key))} | {target['target'] if target else ''} | {met} |"
        )
    for key in ("rows_per_unchanged_poll", "rows_per_changed_poll"):
        rows = result.get(key) or {}
        text = ", ".join(f"{t} {v:g}" for t, v in rows.items()) or "-"
        lines.append(f"| {key} | {text} | | |")
    split = result.get("cpu_ms_per_poll_split") or {}
    for scenario, stages in split.items():
        text = ", ".join(f"{k} {_fmt(v)}" for k, v in stages.items())
        lines.append(f"| cpu split, {scenario} (ms/poll) | {text} | | |")
    lines += [
        "",
        "| database | items | scenario | polls/s | ratio to ceiling | CPU ms/poll | max lag ms |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    polls = result["polls_per_s_by_case"]
    for dialect, sizes in polls.items():
        for size, scenarios in sizes.items():
            for label, per_s in scenarios.items():
                ratio = result["ratio_to_ceiling_by_case"][dialect][size][label]
                cpu = result["cpu_ms_per_poll_by_case"][dialect][size][label]
                lag = result["max_loop_lag_ms_by_case"][dialect][size]
                lines.append(
                    f"| {dialect} | {size} | {label} | {_fmt(per_s)} | {_fmt(ratio)} | "
                    f"{_fmt(cpu)} | {_fmt(lag)} |"
                )
    sweep = result.get("concurrency_sweep")
    if sweep:
        lines += [
            "",
            "| requests in flight (SQLite, 1k, unchanged) | polls/s | CPU ms/poll "
            "| max lag ms | p99 lag ms |",
            "|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {row['concurrency']} | {_fmt(row['polls_per_s'])} | {_fmt(row['cpu_ms_per_poll'])} "
            f"| {_fmt(row['max_loop_lag_ms'])} | {_fmt(row['p99_loop_lag_ms'])} |"
            for row in sweep
        ]
    return "\n".join(lines)
