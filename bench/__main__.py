"""``python -m bench``: how much the monitor costs on top of the TMAPI calls.

Runs, against the simulated TMAPI in a subprocess on 127.0.0.1:

1. the ceilings (raw fetch + decode: the project's client, and aiohttp +
   orjson) on the same responses and concurrency as the pipeline;
2. the pipeline (client → parse → diff → store → rules → outbox) for each
   database and watchlist size: polls per second, CPU per poll and its
   split, event-loop lag, rows and bytes per poll;
3. ``monitor run`` as a process: time to the first poll with 10k items,
   peak memory with 100k items.

Prints a table and writes ``bench/results.json``. ``--quick`` (under a
minute) measures 1k items only and shortens everything else.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import ceilings, machine, processes, report
from bench.databases import postgres_database, postgres_reachable, sqlite_database
from bench.pipeline import Case, run_async, run_case
from bench.sim import SimProcess

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k items only, fewer runs (<60 s)")
    parser.add_argument("--runs", type=int, help="rounds per scenario (default 3, quick 2)")
    parser.add_argument("--sizes", help="watchlist sizes, comma-separated (default 1000,10000)")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="requests in flight (default 32)"
    )
    parser.add_argument(
        "--no-sweep", action="store_true", help="skip the concurrency sweep (default mode)"
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("MONITOR_BENCH_PG_URL", DEFAULT_PG),
        help="PostgreSQL server to create a scratch database on ($MONITOR_BENCH_PG_URL)",
    )
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--no-processes", action="store_true", help="skip startup and memory")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("results.json"), help="JSON output"
    )
    return parser.parse_args(argv)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Ceilings:
    """Both ceilings, measured in sessions of ``runs`` runs each; medians over all runs.

    The benchmark measures them before and after the pipeline cases, so a
    machine that is faster or slower for a while (a shared one) moves the
    ceiling the ratio is taken against less than it would with one session.
    """

    def __init__(self, sim: SimProcess, ids: list[int], *, requests: int, concurrency: int) -> None:
        self.sim = sim
        self.ids = ids
        self.requests = requests
        self.concurrency = concurrency
        self.own: list[ceilings.Rate] = []
        self.fast: list[ceilings.Rate] | None = []

    def measure(self, runs: int) -> None:
        base_url, ids = self.sim.base_url, self.ids
        own = ceilings.own_client(
            base_url,
            ids,
            requests=self.requests,
            concurrency=self.concurrency,
            runs=runs,
            run=run_async,
        )
        fast = ceilings.aiohttp_orjson(
            base_url, ids, requests=self.requests, concurrency=self.concurrency, runs=runs
        )
        self.own += own
        self.fast = None if fast is None or self.fast is None else self.fast + fast
        fast_text = "not installed"
        if fast is not None:
            fast_text = f"{statistics.median(r.per_s for r in fast):.0f}/s"
        log(
            f"ceilings: own client {statistics.median(r.per_s for r in own):.0f}/s "
            f"({statistics.median(r.cpu_ms for r in own):.3f} ms CPU/request), "
            f"aiohttp+orjson {fast_text}"
        )

    def result(self) -> dict[str, Any]:
        own, fast = self.own, self.fast
        return {
            "requests_per_run": self.requests,
            "runs": len(own),
            "concurrency": self.concurrency,
            "own_client_per_s": statistics.median(r.per_s for r in own),
            "own_client_cpu_ms": statistics.median(r.cpu_ms for r in own),
            "own_client_runs": [round(r.per_s, 1) for r in own],
            "aiohttp_per_s": None if not fast else statistics.median(r.per_s for r in fast),
            "aiohttp_cpu_ms": None if not fast else statistics.median(r.cpu_ms for r in fast),
            "aiohttp_runs": None if not fast else [round(r.per_s, 1) for r in fast],
        }


#: Requests in flight tried by the sweep (SQLite, 1k items, unchanged rounds).
SWEEP = (8, 16, 32, 50)


def concurrency_sweep(sim: SimProcess, workdir: Path) -> list[dict[str, Any]]:
    """Throughput, CPU and loop lag against the number of requests in flight."""
    rows = []
    for concurrency in SWEEP:
        with sqlite_database(workdir) as url:
            case = run_async(
                run_case(
                    url,
                    "sqlite",
                    sim,
                    items=1000,
                    runs=2,
                    changed_runs=0,
                    concurrency=concurrency,
                    change_fraction=0.1,
                    workdir=workdir,
                    log=log,
                )
            )
        rounds = case.of("unchanged")
        rows.append(
            {
                "concurrency": concurrency,
                "polls_per_s": round(statistics.median(r.polls_per_s for r in rounds), 1),
                "cpu_ms_per_poll": round(statistics.median(r.cpu_ms_per_poll for r in rounds), 3),
                "max_loop_lag_ms": round(max(r.lag_max_s for r in rounds) * 1000, 1),
                "p99_loop_lag_ms": round(max(r.lag_p99_s for r in rounds) * 1000, 1),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    started = time.monotonic()
    sizes = [int(s) for s in (args.sizes or ("1000" if args.quick else "1000,10000")).split(",")]
    runs = args.runs or (2 if args.quick else 3)
    use_pg = not args.no_pg and postgres_reachable(args.pg_url)
    if not args.no_pg and not use_pg:
        log(f"PostgreSQL at {args.pg_url} is not reachable: skipping it")
    settings = {
        "quick": args.quick,
        "sizes": sizes,
        "runs": runs,
        "concurrency": args.concurrency,
        "change_fraction": 0.1,
        "postgresql": use_pg,
    }
    about = machine.describe(args.pg_url if use_pg else None)
    ticks = machine.cpu_times()
    cases: list[Case] = []
    sweep: list[dict[str, Any]] | None = None
    startup: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        workdir = Path(tmp)
        with SimProcess(max(sizes)) as sim:
            log(f"simulated TMAPI on {sim.base_url} with {len(sim.item_ids)} items")
            ids = sim.item_ids
            ceiling = Ceilings(
                sim,
                ids[: min(len(ids), 5000)],
                requests=2000 if args.quick else 5000,
                concurrency=args.concurrency,
            )
            ceiling.measure(runs)
            dialects = ["sqlite", "postgresql"] if use_pg else ["sqlite"]
            for dialect in dialects:
                for size in sizes:
                    database = (
                        sqlite_database(workdir)
                        if dialect == "sqlite"
                        else postgres_database(args.pg_url)
                    )
                    with database as url:
                        cases.append(
                            run_async(
                                run_case(
                                    url,
                                    dialect,
                                    sim,
                                    items=size,
                                    runs=runs,
                                    concurrency=args.concurrency,
                                    change_fraction=0.1,
                                    workdir=workdir,
                                    log=log,
                                )
                            )
                        )
            ceiling.measure(runs)  # again after the cases: see Ceilings
            if not args.quick and not args.no_sweep:
                sweep = concurrency_sweep(sim, workdir)
            if not args.no_processes and len(ids) >= 10_000:
                timing = processes.startup(sim, 10_000, workdir)
                startup = {
                    "startup_s": round(timing.first_start_s, 3),
                    "first_start_s": round(timing.first_start_s, 3),
                    "restart_s": round(timing.restart_s, 3),
                }
                log(f"startup with 10k items: {startup}")
        if not args.no_processes:
            if startup is None:
                with SimProcess(10_000) as sim:
                    timing = processes.startup(sim, 10_000, workdir)
                startup = {
                    "startup_s": round(timing.first_start_s, 3),
                    "first_start_s": round(timing.first_start_s, 3),
                    "restart_s": round(timing.restart_s, 3),
                }
                log(f"startup with 10k items: {startup}")
            with SimProcess(100_000) as sim:
                mem = processes.memory(sim, 100_000, workdir, run_for=3 if args.quick else 10)
            memory = {
                "peak_rss_mb": round(mem.peak_rss_mb, 1),
                "rss_mb_at_end": round(mem.rss_mb, 1),
                "polls_while_measured": mem.polls,
                "seconds_polling": mem.seconds,
            }
            log(f"memory with 100k items: {memory}")
    about["during_run"] = machine.contention(ticks)
    settings["seconds"] = round(time.monotonic() - started, 1)
    result = report.build(
        machine=about,
        settings=settings,
        ceilings=ceiling.result(),
        cases=cases,
        startup=startup,
        memory=memory,
        sweep=sweep,
    )
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(report.table(result))
    log(f"wrote {args.out} in {settings['seconds']:.0f} s")


if __name__ == "__main__":
    main()
