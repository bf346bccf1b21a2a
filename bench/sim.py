"""The parent side of :mod:`bench.simserver`: start, script and stop the simulated TMAPI."""

from __future__ import annotations

import json
import subprocess
import sys
from types import TracebackType
from typing import Any, Self


class SimProcess:
    """A simulated TMAPI serving ``items`` items on 127.0.0.1, in a subprocess."""

    def __init__(self, items: int, *, seed: int = 1) -> None:
        self.items = items
        self.seed = seed
        self._proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.item_ids: list[int] = []

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.simserver",
                *("--items", str(self.items), "--seed", str(self.seed)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hello = json.loads(self._read())
        self.port = int(hello["port"])
        self.item_ids = [int(i) for i in hello["items"]]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.write('{"op": "quit"}\n')
            proc.stdin.flush()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        self._proc = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def _read(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process ended unexpectedly")
        return line

    def call(self, **command: Any) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self._read())
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def change(self, fraction: float, round_no: int, items: int) -> int:
        """Change ``fraction`` of the first ``items`` items (one SKU's price and stock each)."""
        reply = self.call(op="change", fraction=fraction, round=round_no, items=items)
        return int(reply["changed"])

    def reset(self) -> None:
        self.call(op="reset")

    def stats(self) -> dict[str, Any]:
        return self.call(op="stats")
