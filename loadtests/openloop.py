"""Open-loop load: a fixed arrival rate against a server, with Locust (``loadtests/openloop_users.py``).

``measure(url, path, bodies, rate, seconds)`` runs Locust headless in a child
process with ``rate x interval`` users each sending one request per interval,
resets its statistics once every user is running, and returns what Locust
measured over the rest of the run: achieved rate, p50/p99 (Locust's histogram:
exact to the millisecond below 100 ms, to 10 ms below 1 s), failures, and the
generator's own CPU time. ``rate_ok`` says whether the arrivals kept the target
rate (at least 95% of it); when they did not, the server could not keep up and
the latency figures are those of a partly closed loop.
"""

from __future__ import annotations

import csv
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USERS_FILE = ROOT / "loadtests" / "openloop_users.py"
KEPT_RATE = 0.95  # achieved / target below which the arrivals did not keep their rate


@dataclass
class OpenLoopResult:
    target_rps: float
    rps: float
    p50_ms: float
    p99_ms: float
    ok: int
    errors: int
    users: int
    generator_cores: float

    @property
    def rate_ok(self) -> bool:
        return self.rps >= KEPT_RATE * self.target_rps


def users_for(rate: float, interval_s: float) -> int:
    """Users that, sending one request per ``interval_s`` each, make ``rate`` requests per second (at least one)."""
    return max(1, math.ceil(rate * interval_s))


def command(host: str, users: int, seconds: float, csv_prefix: Path) -> list[str]:
    spawn = max(1, users)  # all users within about a second, each starting its own pacing: arrivals spread evenly
    return [
        sys.executable, "-m", "locust", "-f", str(USERS_FILE), "--headless", "--only-summary", "--reset-stats",
        "-u", str(users), "-r", str(spawn), "-t", f"{seconds:g}s", "--host", host, "--csv", str(csv_prefix),
        "--loglevel", "WARNING", "--exit-code-on-error", "0",
    ]  # fmt: skip


def parse_stats(path: Path) -> dict[str, float]:
    """The ``Aggregated`` row of Locust's ``<prefix>_stats.csv``: requests, failures, requests/s, p50 and p99 (ms)."""
    with path.open() as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return {
        "requests": float(row["Request Count"]),
        "failures": float(row["Failure Count"]),
        "rps": float(row["Requests/s"]),
        "p50_ms": float(row["50%"]) if row["50%"] not in ("", "N/A") else float("nan"),
        "p99_ms": float(row["99%"]) if row["99%"] not in ("", "N/A") else float("nan"),
    }


def measure(url: str, path: str, bodies: list[bytes], rate: float, seconds: float, interval_s: float = 1.0, log: Path | None = None) -> OpenLoopResult:
    """``rate`` requests/s of ``bodies`` (in turn) POSTed to ``url + path`` for ``seconds`` (plus about a second of start-up)."""
    users = users_for(rate, interval_s)
    with tempfile.TemporaryDirectory(prefix="openloop-") as tmp:
        bodies_file = Path(tmp) / "bodies.json"
        bodies_file.write_text(json.dumps([json.loads(b) for b in bodies]))
        env = {**os.environ, "OPEN_LOOP_PATH": path, "OPEN_LOOP_BODIES": str(bodies_file), "OPEN_LOOP_INTERVAL_S": f"{users / rate:.6f}"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        proc = subprocess.run(command(url, users, seconds + 1.0, Path(tmp) / "run"), cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(proc.stdout + proc.stderr)
        stats = Path(tmp) / "run_stats.csv"
        if proc.returncode != 0 or not stats.exists():
            raise RuntimeError(f"locust failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
        s = parse_stats(stats)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return OpenLoopResult(rate, s["rps"], s["p50_ms"], s["p99_ms"], int(s["requests"] - s["failures"]), int(s["failures"]), users, cpu / wall)
