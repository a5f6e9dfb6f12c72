"""The benchmark behind the speed figures: this service against unbatched and peer servers, side by side, in one run.

    python -m loadtests.bench [--quick] [--duration 8] [--concurrency 1 8 32 64 128] [--device cuda]

Systems, all serving the same TorchScript artifacts on the same cores:

  (a) ``bentoml``: this service as shipped (a queue and a batching thread per model in each worker,
      continuous batching for the translator; ``WORKERS`` single-threaded workers, by default one
      per core, ``--workers`` to change);
  (a1) ``bentoml-1w``: the same in one worker with all the threads;
  (b) ``bentoml-unbatched``: this service with ``BATCHING=off`` (each request its own model call or decode);
  (c) ``fastapi-PxT``: a minimal unbatched FastAPI server (``loadtests/baselines/fastapi_app.py``),
      ``uvicorn --workers P``, ``TORCH_THREADS=T``, in every layout of the cores (P x T = cores);
  (d) ``litserve-PxT[-Papi]``: LitServe with its batching (``loadtests/baselines/litserve_app.py``),
      P inference workers per API x T threads, one API server (or P), in every layout of the cores;
  (e) the model alone through the Python API, no HTTP, at its best batch size and process layout
      (one process with all threads, or one per worker): the ceiling (``loadtests/model_alone.py``);
  (f) ``bentoml-empty``: an empty BentoML API in this service's layout, no model
      (``loadtests/baselines/empty_bentoml.py``): BentoML's own ceiling, one-text sentiment only.

The verdicts compare this service with the best layout of each peer. ``--only openloop`` (part
of the default) then loads this service and each peer's best layout at a fixed arrival rate
(``loadtests/openloop.py``, Locust) at 25, 50, 75 and 90% of its own capacity.

All servers start at once and are then frozen (SIGSTOP) except the one under
load, so an idle server takes no CPU, and the systems take turns at each load
level: drift in the machine's load hits all of them alike. Load comes from
``wrk`` (``loadtests/wrk.py``; the asyncio generator ``loadtests/loadgen.py``
when wrk is missing): closed loop, keep-alive, the scenario's bodies in turn.
The generator's and each server's CPU time are measured and reported.

Writes ``docs/benchmarks.md`` (tables, the targets of the README with their
ratios and PASS/FAIL, the machine) and two plots next to it, the raw numbers to
``loadtests/results/bench.json``, and prints progress as it goes.
``--candidate DIR`` adds the service of another checkout as system (a*), to
measure a change against the current tree in the same run; ``--baseline-ref
[REF]`` does the same for a commit (default: 285678e, static batching), checked
out as a ``git worktree`` in ``loadtests/results/`` without manual steps.

Then the continuous-batching scenarios of ``loadtests/mixed.py`` (mixed
sentiment and translation load, short requests behind long ones, mixed lengths
and beams, repeatability across runs and restarts) on (a) and (a*), with their
targets as before/after ratios. ``--only mixed,short,lengths,repeat`` runs just
those (about 10 minutes; ``--quick`` for a shorter smoke run), into
``loadtests/results/benchmarks-only.md`` and ``bench-only.json``::

    python -m loadtests.bench --only mixed,short,lengths,repeat --baseline-ref
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtests import mixed, openloop, wrk
from loadtests.mixed import Load, json_body, windows
from loadtests.profile import profile_summary
from loadtests.server import ROOT, ServerProcess, ServiceProcess
from loadtests.texts import CAPTIONS, REVIEWS
from service.config import default_workers, usable_cores

RESULTS = ROOT / "loadtests" / "results"
ONLY_CHOICES = ("existing", *mixed.GROUPS, "openloop")
EMPTY_SCENARIOS = {"sentiment-1"}  # where the empty BentoML API (f) is measured: the one-text request, all overhead
OPEN_LOOP_SCENARIOS = {"sentiment-1": 64, "translate-1": 32}  # scenario -> connections of the closed-loop capacity it is sized by
OPEN_LOOP_FRACTIONS = (0.25, 0.5, 0.75, 0.9)


def peer_layouts(cores: int) -> list[tuple[int, int]]:
    """(processes, threads each) for every process count from 1 to ``cores`` that shares the cores evenly."""
    return [(n, cores // n) for n in range(1, cores + 1) if cores % n == 0]


def peer_systems(cores: int) -> list[str]:
    """The peers in every layout of ``cores``: ``fastapi-PxT`` (uvicorn workers x torch threads), ``litserve-PxT``
    (inference workers per API x torch threads, one API server) and, with several workers, ``litserve-PxT-Papi``
    (as many API server processes as inference workers)."""
    keys = [f"fastapi-{n}x{t}" for n, t in peer_layouts(cores)]
    for n, t in peer_layouts(cores):
        keys += [f"litserve-{n}x{t}"] + ([f"litserve-{n}x{t}-{n}api"] if n > 1 else [])
    return keys


def parse_peer(key: str) -> tuple[str, int, int, int]:
    """``fastapi-2x1`` -> ("fastapi", 2, 1, 1); ``litserve-2x1-2api`` -> ("litserve", 2, 1, 2): family, processes, threads, API servers."""
    family, layout, *api = key.split("-")
    n, t = (int(v) for v in layout.split("x"))
    return family, n, t, int(api[0].removesuffix("api")) if api else 1


def default_systems(cores: int) -> list[str]:
    return ["bentoml", "bentoml-1w", "bentoml-unbatched", *peer_systems(cores), "bentoml-empty"]


SENTENCE_13W = "A man in a blue shirt is riding a bike down the street."
LITSERVE_MAX_BATCH_SIZE = "64"
LITSERVE_BATCH_TIMEOUT_MS = "5"


# ---------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    path: str
    bodies: list[bytes]
    texts_per_request: int
    concurrency: list[int]
    task: str  # for the ceiling: "sentiment" or "translate"


def scenarios(concurrency: list[int], quick: bool) -> list[Scenario]:
    targets = ["de", "fr"]
    out = [
        Scenario(
            "sentiment-1",
            "`/sentiment`, one review per request",
            "/sentiment",
            [json_body({"texts": [t]}) for t in REVIEWS],
            1,
            concurrency,
            "sentiment",
        ),
        Scenario(
            "sentiment-32",
            "`/sentiment`, 32 reviews per request",
            "/sentiment",
            [json_body({"texts": w}) for w in windows(REVIEWS, 32, 16)],
            32,
            concurrency,
            "sentiment",
        ),
        Scenario(
            "translate-1",
            "`/translate`, one caption per request, beam 4, en->de and en->fr in turn",
            "/translate",
            [json_body({"texts": [t], "source": "en", "target": targets[i % 2], "beam_size": 4}) for i, t in enumerate(CAPTIONS)],
            1,
            concurrency,
            "translate",
        ),
    ]
    for beam, name in ((1, "greedy"), (4, "beam 4")):  # the issue's latency figure: one fixed 13-word sentence
        out.append(
            Scenario(
                f"translate-13w-beam{beam}",
                f'`/translate`, the 13-word sentence "{SENTENCE_13W}", {name}, en->de and en->fr in turn',
                "/translate",
                [json_body({"texts": [SENTENCE_13W], "source": "en", "target": t, "beam_size": beam}) for t in targets],
                1,
                [c for c in concurrency if c in (1, 32)],
                "translate",
            )
        )
    if not quick:
        out.append(
            Scenario(
                "translate-32",
                "`/translate`, 32 captions per request, beam 4, en->de and en->fr in turn",
                "/translate",
                [json_body({"texts": w, "source": "en", "target": targets[i % 2], "beam_size": 4}) for i, w in enumerate(windows(CAPTIONS, 32, 8))],
                32,
                [c for c in concurrency if c <= 8],  # beyond 8 connections the unbatched servers answer in tens of seconds on a CPU
                "translate",
            )
        )
    return out


# ---------------------------------------------------------------- systems


@dataclass
class System:
    key: str
    label: str
    server: ServerProcess
    bentoml: bool  # exposes lstm_* metrics (requests per model call)
    factory: Callable[[], ServerProcess] | None = None  # starts another server like this one (for ``restart``)
    only: set[str] | None = None  # the scenarios it is measured on (None: all)

    def serves(self, scenario: str) -> bool:
        return self.only is None or scenario in self.only

    def pause(self) -> None:
        os.killpg(self.server.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.server.proc.pid, signal.SIGCONT)

    def restart(self) -> float:
        """Stop the server, start a fresh one, wait until it is ready (left running); the seconds from start to ready."""
        if self.factory is None:
            raise RuntimeError(f"{self.label} cannot be restarted")
        self.resume()
        self.server.stop()
        t0 = time.monotonic()
        self.server = self.factory()
        self.server.wait_ready(timeout=300)
        return time.monotonic() - t0


def start_systems(
    keys: list[str], env: dict[str, str], service_env: dict[str, str], candidate: Path | None, candidate_label: str | None = None
) -> list[System]:
    """``env``: the baselines' (one process, ``TORCH_THREADS`` = all cores); ``service_env``: this service's workers and threads.
    ``candidate_label``: what the candidate checkout is (default: its path)."""
    logs = RESULTS / "bench-logs"
    py = sys.executable
    workers = f"WORKERS={service_env['WORKERS']} x TORCH_THREADS={service_env['TORCH_THREADS']}"
    systems: list[System] = []
    for key in keys:
        if key == "bentoml":

            def this_service() -> ServerProcess:
                return ServiceProcess(logs / "bentoml.log", **service_env)

            label = f"(a) continuous batching: this service, working tree ({workers})" if candidate_label else f"(a) this service ({workers})"
            systems.append(System(key, label, this_service(), True, factory=this_service))
        elif key == "bentoml-1w":  # the worker effect: one process with all the threads, as the baselines run
            server = ServiceProcess(logs / "bentoml-1w.log", **{**service_env, "WORKERS": "1", "TORCH_THREADS": env["TORCH_THREADS"]})
            systems.append(System(key, f"(a1) this service, WORKERS=1 x TORCH_THREADS={env['TORCH_THREADS']}", server, True))
        elif key == "bentoml-unbatched":
            server = ServiceProcess(logs / "bentoml-unbatched.log", **service_env, BATCHING="off")
            systems.append(System(key, f"(b) this service, BATCHING=off ({workers})", server, True))
        elif key == "bentoml-empty":
            server = ServiceProcess(logs / "bentoml-empty.log", target="loadtests.baselines.empty_bentoml:EmptyService", **service_env)
            systems.append(System(key, f"(f) empty BentoML API, no model ({workers})", server, False, only=EMPTY_SCENARIOS))
        elif key.startswith("fastapi-"):
            _, n, t, _ = parse_peer(key)
            app = "loadtests.baselines.fastapi_app:app"
            cmd = [py, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "{port}", "--no-access-log", "--workers", str(n)]
            label = f"(c) FastAPI, unbatched, {n} x {t} (uvicorn workers x threads)"
            systems.append(System(key, label, ServerProcess(cmd, logs / f"{key}.log", {**env, "TORCH_THREADS": str(t)}), False))
        elif key.startswith("litserve-"):
            _, n, t, api = parse_peer(key)
            ls_env = {
                **env,
                "TORCH_THREADS": str(t),
                "LITSERVE_WORKERS": str(n),
                "LITSERVE_API_SERVERS": str(api),
                "LITSERVE_MAX_BATCH_SIZE": LITSERVE_MAX_BATCH_SIZE,
                "LITSERVE_BATCH_TIMEOUT_MS": LITSERVE_BATCH_TIMEOUT_MS,
            }
            cmd = [py, "-m", "loadtests.baselines.litserve_app", "--port", "{port}"]
            label = f"(d) LitServe, batched, {n} x {t} (inference workers x threads), {api} API server{'s' if api > 1 else ''}"
            systems.append(System(key, label, ServerProcess(cmd, logs / f"{key}.log", ls_env, ready_path="/health"), False))
        else:
            raise SystemExit(f"unknown system {key!r}")
    if candidate is not None:

        def candidate_service() -> ServerProcess:
            return ServiceProcess(logs / "candidate.log", root=candidate, **service_env)

        label = f"(a*) {candidate_label or f'service from {candidate}'} ({workers})"
        systems.insert(1, System("candidate", label, candidate_service(), True, factory=candidate_service))
    t0 = time.monotonic()
    try:
        for s in systems:
            s.server.wait_ready(timeout=300)
            print(f"  {s.label}: ready at {s.server.url} ({time.monotonic() - t0:.0f} s after start)", flush=True)
    except BaseException:
        for s in systems:
            s.server.stop()
        raise
    return systems


def model_calls(server: ServerProcess) -> float:
    """Model calls so far, summed over models: the count of the service's ``lstm_batch_items`` histogram."""
    return server.metric("lstm_batch_items_count")


def check_answers(system: System, path: str, bodies: Iterable[bytes]) -> None:
    """Each body once: 200 and one result per text, else the system is broken and the run stops."""
    for body in bodies:
        req = urllib.request.Request(system.server.url + path, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            answer = json.loads(r.read())
        if not isinstance(answer, list) or len(answer) != len(json.loads(body)["texts"]):
            raise RuntimeError(f"{system.label} answered {path} with {answer!r:.300}")


# ---------------------------------------------------------------- measuring


@dataclass
class Point:
    scenario: str
    system: str
    concurrency: int
    rps: float
    texts_per_s: float
    p50_ms: float
    p99_ms: float
    ok: int
    errors: int
    server_cores: float
    server_cpu_ms_per_request: float
    generator: str
    generator_cores: float
    requests_per_model_call: float | None = None
    run: int = 0  # the repeatability scenario: which of its runs
    startup_s: float | None = None  # measured right after a fresh start that took this long (start to ready)


def window(args: argparse.Namespace, latency: tuple[float, int], concurrency: int) -> float:
    """Seconds to measure at ``concurrency``: ``--duration``, or longer when requests are expected to take long.

    In a closed loop each connection completes one request per latency, so a window
    shorter than a few latencies counts few or no answers. The latency is guessed
    from the last measurement (``(p50 ms, connections)``), as if it grew in
    proportion to the connections (true without batching), capped at ``--max-duration``.
    """
    p50_ms, at = latency
    expected_s = p50_ms / 1000 * max(1.0, concurrency / at)
    return max(args.duration, min(args.max_duration, 4 * expected_s))


def measure(system: System, sc: Scenario, concurrency: int, duration: float) -> Point:
    system.resume()
    try:
        calls0 = model_calls(system.server) if system.bentoml else None
        cpu0 = system.server.cpu_seconds()
        m = mixed.drive(system.server.url + sc.path, sc.bodies, concurrency, duration)
        cpu = system.server.cpu_seconds() - cpu0
        per_call = None
        if calls0 is not None:
            time.sleep(0.2)  # the last batches finish after the generator stops
            calls = model_calls(system.server) - calls0
            per_call = m.ok / calls if calls else None
        time.sleep(0.3)  # let requests cut off by the generator's stop finish before freezing the server
    finally:
        system.pause()
    return Point(
        sc.key,
        system.key,
        concurrency,
        m.rps,
        m.rps * sc.texts_per_request,
        m.p50_ms,
        m.p99_ms,
        m.ok,
        m.errors,
        cpu / m.seconds,
        1000 * cpu / m.ok if m.ok else float("nan"),
        m.generator,
        m.generator_cores,
        per_call,
    )


def settle(server: ServerProcess, idle_cores: float = 0.2, limit_s: float = 60.0) -> None:
    """Wait until the server is idle (under ``idle_cores`` over half a second), at most ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        cpu0 = server.cpu_seconds()
        time.sleep(0.5)
        if server.cpu_seconds() - cpu0 < idle_cores * 0.5:
            return


def measure_together(system: System, loads: Sequence[Load], duration: float, run: int = 0, startup_s: float | None = None) -> list[Point]:
    """``loads`` at the same time on ``system`` (one generator each, started together): a point per load.

    The server's CPU time is the whole server's, whatever load caused it: with several loads, every point
    gets the same *server cores*, and *server CPU/req* is per request of all the loads together."""
    system.resume()
    try:
        calls0 = model_calls(system.server) if system.bentoml and len(loads) == 1 else None
        cpu0 = system.server.cpu_seconds()
        ms = mixed.together([(system.server.url + load.path, load.bodies, load.concurrency) for load in loads], duration)
        cpu = system.server.cpu_seconds() - cpu0
        per_call = None
        if calls0 is not None:
            time.sleep(0.2)  # the last batches finish after the generator stops
            calls = model_calls(system.server) - calls0
            per_call = ms[0].ok / calls if calls else None
        settle(system.server)  # requests cut off by the generators' stop (long translations: seconds) finish before the next measurement
    finally:
        system.pause()
    seconds = max(m.seconds for m in ms)
    answered = sum(m.ok for m in ms)
    return [
        Point(
            load.key,
            system.key,
            load.concurrency,
            m.rps,
            m.rps * load.texts_per_request,
            m.p50_ms,
            m.p99_ms,
            m.ok,
            m.errors,
            cpu / seconds,
            1000 * cpu / answered if answered else float("nan"),
            m.generator,
            m.generator_cores,
            per_call,
            run,
            startup_s,
        )
        for load, m in zip(loads, ms, strict=True)
    ]


def _progress(done: str, s: System, p: Point) -> str:
    run = f" run {p.run}" if p.run else ""
    fresh = f" (fresh: ready after {p.startup_s:.0f} s)" if p.startup_s is not None else ""
    return (
        f"  [{done}] {s.key:<10} {p.scenario + run:<26} c={p.concurrency:<3} {p.rps:8.1f} req/s {p.texts_per_s:7.0f} texts/s "
        f"p50 {p.p50_ms:7.1f} p99 {p.p99_ms:7.1f} ms  err {p.errors}  server {p.server_cores:.2f} cores{fresh}"
    )


def run_groups(args: argparse.Namespace, systems: list[System], groups: list[str], points: list[Point]) -> None:
    """The continuous-batching scenarios (``loadtests.mixed``) on this service and the candidate, taking turns; points appended as measured."""
    compared = [s for s in systems if s.key in ("bentoml", "candidate")]
    if not compared:
        print("  (skipped: neither this service nor a candidate runs; --systems bentoml)", flush=True)
        return
    for group in groups:
        group_steps = mixed.steps(group)
        loads = [load for step in group_steps for load in step]
        print(f"== {group}: {', '.join(f'{load.key} ({load.concurrency} conn.)' for load in loads)}", flush=True)
        if group == "repeat":
            run_repeat(args, compared, group_steps, points)
            continue
        latency: dict[tuple[str, str], tuple[float, int]] = {}  # (system, load) -> (p50 ms, connections): sizes the window
        for s in compared:  # warm-up: every step's loads, together, 2 s
            s.resume()
            try:
                for load in loads:
                    check_answers(s, load.path, dict.fromkeys([load.bodies[0], load.heaviest()]))  # the first and the heaviest
            finally:
                s.pause()
            for step in group_steps:
                for load, p in zip(step, measure_together(s, step, 2.0), strict=True):
                    # a 2 s warm-up only sees the requests that finish within it: connections / req/s (Little's law) guards
                    # against that bias; none answered: the longest window
                    expected = max(p.p50_ms, 1000 * load.concurrency / p.rps) if p.ok else 1000 * args.max_duration
                    latency[s.key, load.key] = (expected, load.concurrency)
        # one window for the group, for every system alike: the alone and beside figures compare like with like
        duration = max(window(args, latency[s.key, load.key], load.concurrency) for s in compared for load in loads)
        n = len(group_steps) * len(compared)
        done = 0
        for i, step in enumerate(group_steps):
            for s in compared[i % len(compared) :] + compared[: i % len(compared)]:
                done += 1
                for p in measure_together(s, step, duration):
                    points.append(p)
                    print(_progress(f"{done}/{n}", s, p), flush=True)


def run_repeat(args: argparse.Namespace, systems: list[System], group_steps: list[list[Load]], points: list[Point]) -> None:
    """``REPEAT_RUNS`` runs against the running service, then as many against a freshly started one each (stop, start, wait until ready, measure)."""
    (running,), (restarted,) = group_steps
    for s in systems:  # warm-up of the running service, as every scenario has
        measure_together(s, [running], 2.0)
    n = 2 * mixed.REPEAT_RUNS * len(systems)
    done = 0
    for run in range(1, mixed.REPEAT_RUNS + 1):
        for s in systems[run % len(systems) :] + systems[: run % len(systems)]:
            done += 1
            (p,) = measure_together(s, [running], args.duration, run=run)
            points.append(p)
            print(_progress(f"{done}/{n}", s, p), flush=True)
    for run in range(1, mixed.REPEAT_RUNS + 1):
        for s in systems[run % len(systems) :] + systems[: run % len(systems)]:
            done += 1
            startup = s.restart()  # the other systems stay frozen meanwhile
            (p,) = measure_together(s, [restarted], args.duration, run=run, startup_s=startup)
            points.append(p)
            print(_progress(f"{done}/{n}", s, p), flush=True)


@dataclass
class OpenPoint:
    """One open-loop measurement: ``fraction`` of the system's closed-loop capacity as a fixed arrival rate."""

    scenario: str
    system: str
    fraction: float
    capacity_rps: float
    server_cores: float
    result: openloop.OpenLoopResult


def capacity(system: System, sc: Scenario, points: list[Point], concurrency: int, duration: float) -> float:
    """The system's closed-loop req/s for this scenario: the best measured in this run, else one closed-loop run at ``concurrency``."""
    measured = [p.rps for p in points if p.scenario == sc.key and p.system == system.key and p.ok]
    if measured:
        return max(measured)
    system.resume()
    try:
        check_answers(system, sc.path, sc.bodies[:1])
        mixed.drive(system.server.url + sc.path, sc.bodies, 8, 2.0)  # warm-up
    finally:
        system.pause()
    p = measure(system, sc, concurrency, duration)
    points.append(p)
    return p.rps


def run_openloop(args: argparse.Namespace, systems: list[System], points: list[Point]) -> list[OpenPoint]:
    """This service and each peer's best layout under an open-loop load at ``OPEN_LOOP_FRACTIONS`` of their own capacity."""
    out: list[OpenPoint] = []
    scs = [sc for sc in scenarios(args.concurrency, quick=True) if sc.key in OPEN_LOOP_SCENARIOS]
    seconds = max(args.duration, 4.0)
    for sc in scs:
        conns = OPEN_LOOP_SCENARIOS[sc.key]
        caps = {s.key: capacity(s, sc, points, conns, args.duration) for s in systems if s.key == "bentoml" or s.key.split("-")[0] in ("fastapi", "litserve")}
        compared = [s for s in systems if s.key == "bentoml" and caps.get(s.key)]
        for family in ("litserve", "fastapi"):
            layouts = [s for s in systems if s.key.startswith(f"{family}-") and caps.get(s.key)]
            if layouts:
                compared.append(max(layouts, key=lambda s: caps[s.key]))
        print(f"== open loop, {sc.key}: " + ", ".join(f"{s.key} capacity {caps[s.key]:.1f} req/s" for s in compared), flush=True)
        for i, fraction in enumerate(OPEN_LOOP_FRACTIONS):
            for s in compared[i % len(compared) :] + compared[: i % len(compared)]:
                rate = fraction * caps[s.key]
                s.resume()
                try:
                    cpu0, t0 = s.server.cpu_seconds(), time.monotonic()
                    r = openloop.measure(s.server.url, sc.path, sc.bodies, rate, seconds, log=RESULTS / "bench-logs" / f"openloop-{s.key}.log")
                    cores = (s.server.cpu_seconds() - cpu0) / (time.monotonic() - t0)
                    settle(s.server)
                finally:
                    s.pause()
                out.append(OpenPoint(sc.key, s.key, fraction, caps[s.key], cores, r))
                kept = "" if r.rate_ok else "  (rate NOT kept)"
                print(
                    f"  {s.key:<18} {fraction:>4.0%} = {rate:7.1f} req/s -> {r.rps:7.1f}  p50 {r.p50_ms:6.0f} p99 {r.p99_ms:6.0f} ms  "
                    f"err {r.errors}  server {cores:.2f} gen. {r.generator_cores:.2f} cores{kept}",
                    flush=True,
                )
    return out


def ceiling(task: str, env: dict[str, str], processes: int, seconds: float) -> list[dict[str, Any]]:
    """The model alone in ``processes`` processes at once (``env``'s threads each), texts/s summed per batch size.

    The processes load, then start together at a common instant, so their timed windows coincide."""
    sizes = ["32", "64", "128", "256", "512"] if task == "sentiment" else ["8", "16", "32", "64", "128"]
    start_at = time.time() + 20.0  # loading takes a few seconds
    cmd = [sys.executable, "-m", "loadtests.model_alone", "--task", task, "--seconds", f"{seconds:g}", "--start-at", f"{start_at:.3f}", "--batch-sizes", *sizes]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"model_alone failed: {cmd}")
    runs = [[json.loads(line) for line in out.splitlines() if line.startswith("{")] for out in outs]
    rows = []
    for parts in zip(*runs, strict=True):
        tps = sum(r["texts_per_s"] for r in parts)
        ms = sum(r["ms_per_batch"] for r in parts) / len(parts)
        rows.append({**parts[0], "texts_per_s": tps, "ms_per_batch": ms, "processes": processes, "threads": int(env["TORCH_THREADS"])})
    return rows


# ---------------------------------------------------------------- report


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    mem = ""
    try:
        kb = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}){mem}, GPU: {gpu}, Linux {platform.release()}, torch {torch.__version__}, Python {platform.python_version()}"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("bentoml", "litserve", "fastapi", "uvicorn", "uvloop", "httptools"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            out.append(f"{pkg} (not installed)")
    return ", ".join(out)


def generator_name() -> str:
    if wrk.available():
        v = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout.split("Copyright")[0].strip()
        return f"`{v}` (Debian package `wrk`), 1 thread, driven by `loadtests/wrk.py`"
    return "`loadtests/loadgen.py` (asyncio; wrk was not installed)"


@dataclass
class Target:
    name: str
    measured: str
    required: str
    ok: bool | None  # None: not measured in this run


def find(points: list[Point], scenario: str, system: str, concurrency: int) -> Point | None:
    return next((p for p in points if p.scenario == scenario and p.system == system and p.concurrency == concurrency), None)


def best_peer(points: list[Point], scenario: str, family: str, concurrency: int) -> Point | None:
    """The fastest layout of a peer (``fastapi``, ``litserve``) at this scenario and load: the one the verdicts compare with."""
    layouts = [p for p in points if p.scenario == scenario and p.concurrency == concurrency and p.system.startswith(f"{family}-") and p.ok]
    return max(layouts, key=lambda p: p.rps, default=None)


def ratio_target(points: list[Point], scenario: str, concurrency: int, what: str, family: str, factor: float) -> Target:
    """(a)'s req/s at least ``factor`` times the best layout of ``family``."""
    a, b = find(points, scenario, "bentoml", concurrency), best_peer(points, scenario, family, concurrency)
    name = f"{what}, {concurrency} connections: throughput >= {factor:g}x the best {family} layout"
    if a and b and b.rps > 0:
        measured = f"{a.rps:.1f} / {b.rps:.1f} req/s (`{b.system}`) = **{a.rps / b.rps:.2f}x**"
        return Target(name, measured, f">= {factor:g}x", a.rps >= factor * b.rps)
    return Target(name, "not measured", f">= {factor:g}x", None)


def targets(points: list[Point], ceilings: dict[str, float]) -> list[Target]:
    """The README's speed targets, against each peer's best layout (issue 16)."""
    out = [ratio_target(points, "sentiment-1", 64, "sentiment, 1 text", family, factor) for family, factor in (("litserve", 1.5), ("fastapi", 2.0))]
    a = find(points, "sentiment-1", "bentoml", 64)
    if a:
        out.append(Target("sentiment, 1 text, 64 connections: p99 latency", f"**{a.p99_ms:.0f} ms**", "<= 150 ms", a.p99_ms <= 150))
        out.append(Target("sentiment, 1 text, 64 connections: errors", f"**{a.errors}** of {a.ok + a.errors}", "0", a.errors == 0))
    best = max((p for p in points if p.scenario == "sentiment-32" and p.system == "bentoml"), key=lambda p: p.texts_per_s, default=None)
    name = "sentiment, 32 texts per request: best throughput vs the model alone"
    if best and ceilings.get("sentiment"):
        share = best.texts_per_s / ceilings["sentiment"]
        measured = f"{best.texts_per_s:.0f} texts/s at {best.concurrency} connections / {ceilings['sentiment']:.0f} = **{share:.0%}**"
        out.append(Target(name, measured, ">= 60%", share >= 0.6))
    else:
        out.append(Target(name, "not measured", ">= 60%", None))
    out += [ratio_target(points, "translate-1", 32, "translation, beam 4", family, factor) for family, factor in (("litserve", 1.5), ("fastapi", 3.0))]
    return out


def headroom(points: list[Point], scenario: str = "sentiment-1", concurrency: int = 64) -> str | None:
    """(a)'s req/s as a share of the empty BentoML API (f) in the same layout: how much of BentoML's ceiling the service reaches."""
    a, f = find(points, scenario, "bentoml", concurrency), find(points, scenario, "bentoml-empty", concurrency)
    if not (_answered(a) and _answered(f)) or a is None or f is None:
        return None
    return (
        f"One-text `/sentiment` at {concurrency} connections: this service answers **{a.rps:.0f} req/s**, the empty BentoML API in the same "
        f"layout **{f.rps:.0f} req/s**: the service reaches **{a.rps / f.rps:.0%}** of what BentoML's stack alone allows on this machine "
        f"(server CPU per request: {a.server_cpu_ms_per_request:.2f} ms against {f.server_cpu_ms_per_request:.2f} ms)."
    )


def spread(values: Sequence[float]) -> tuple[float, float, float, float]:
    """(min, median, max, max/min); max/min is infinite when the smallest is 0."""
    lo, hi = min(values), max(values)
    return lo, statistics.median(values), hi, hi / lo if lo > 0 else float("inf")


def runs(points: list[Point], scenario: str, system: str) -> list[Point]:
    return sorted((p for p in points if p.scenario == scenario and p.system == system), key=lambda p: p.run)


def _answered(p: Point | None) -> bool:
    return p is not None and p.ok > 0


def continuous_targets(points: list[Point], existing: Sequence[str], new: str = "bentoml", old: str = "candidate") -> list[Target]:
    """The issue's targets for continuous batching (``new``) against static batching (``old``); ``existing``: today's scenario keys.

    A target of the new scenarios also needs every request of ``new`` in the measurements it uses answered (no errors), and
    at least one answer in each of them: a service that sheds or starves the slow requests would otherwise look fast."""

    def get(scenario: str, system: str, c: int) -> Point | None:
        p = find(points, scenario, system, c)
        return p if _answered(p) else None

    def present(*keys: tuple[str, str, int]) -> list[Point]:
        """The points of ``keys`` (scenario, system, connections) that were measured, answered or not."""
        return [p for k in keys if (p := find(points, *k)) is not None]

    def judged(name: str, required: str, ps: Sequence[Point], result: tuple[str, bool] | None) -> Target:
        """``result``: (measured, ok), None when not measured; errors of ``new``'s points in ``ps`` fail it, as do none answered."""
        if silent := [p.scenario for p in ps if p.system == new and not p.ok]:
            return Target(name, f"**no answer** from (a) in {', '.join(silent)}; errors: {sum(p.errors for p in ps if p.system == new)}", required, False)
        if result is None:
            return Target(name, "not measured", f"{required}, no errors", None)
        measured, ok = result
        errors = sum(p.errors for p in ps if p.system == new)
        other = sum(p.errors for p in ps if p.system != new)
        if errors or other:
            measured += f"; errors: {errors}" + (f" (static batching: {other})" if other else "")
        return Target(name, measured, f"{required}, no errors", ok and not errors)

    out = []
    alone, beside = get("mixed-sentiment-alone", new, 8), get("mixed-sentiment-beside", new, 8)
    ps = present(("mixed-sentiment-alone", new, 8), ("mixed-sentiment-beside", new, 8))
    name = "mixed: sentiment p99 beside translation (8 + 8 connections) <= 2x its p99 alone"
    r = beside.p99_ms / alone.p99_ms if alone and beside and alone.p99_ms > 0 else None
    result = (f"{beside.p99_ms:.1f} / {alone.p99_ms:.1f} ms = **{r:.2f}x**", r <= 2) if alone and beside and r is not None else None
    out.append(judged(name, "<= 2x", ps, result))
    name = "mixed: sentiment p99 beside translation"
    out.append(judged(name, "< 60 ms", present(("mixed-sentiment-beside", new, 8)), (f"**{beside.p99_ms:.1f} ms**", beside.p99_ms < 60) if beside else None))
    alone, beside = get("mixed-translate-alone", new, 8), get("mixed-translate-beside", new, 8)
    name = "mixed: translation throughput beside sentiment >= 0.8x alone"
    r = beside.rps / alone.rps if alone and beside else None
    result = (f"{beside.rps:.1f} / {alone.rps:.1f} req/s = **{r:.2f}x**", r >= 0.8) if alone and beside and r is not None else None
    out.append(judged(name, ">= 0.8x", present(("mixed-translate-alone", new, 8), ("mixed-translate-beside", new, 8)), result))
    a, b = get("short-behind-long-short", new, 4), get("short-behind-long-short", old, 4)
    name = "short behind long: one-caption greedy p99 >= 3x lower than static batching"
    r = b.p99_ms / a.p99_ms if a and b and a.p99_ms > 0 else None
    result = (f"{b.p99_ms:.0f} / {a.p99_ms:.0f} ms = **{r:.2f}x** lower", r >= 3) if a and b and r is not None else None
    out.append(judged(name, ">= 3x", present(("short-behind-long-short", new, 4), ("short-behind-long-short", old, 4)), result))
    a, b = get("lengths", new, 32), get("lengths", old, 32)
    name = "translation, 1/4/16 captions at beams 1/4/8, 32 connections: throughput >= 1.3x static batching"
    r = a.texts_per_s / b.texts_per_s if a and b else None
    result = (f"{a.texts_per_s:.1f} / {b.texts_per_s:.1f} captions/s = **{r:.2f}x**", r >= 1.3) if a and b and r is not None else None
    out.append(judged(name, ">= 1.3x", present(("lengths", new, 32), ("lengths", old, 32)), result))
    for scenario, what in (("repeat-running", "one running service"), ("repeat-restarted", "a freshly started service each run")):
        ra, rb = runs(points, scenario, new), runs(points, scenario, old)
        name = f"repeatability, sentiment, 1 text, 64 connections, {mixed.REPEAT_RUNS} runs against {what}: req/s max/min"
        result = None
        if len(ra) >= 2:
            lo, _, hi, r = spread([p.rps for p in ra])
            before = f" (static batching: {spread([p.rps for p in rb])[3]:.2f}x)" if len(rb) >= 2 else ""
            result = (f"{hi:.0f} / {lo:.0f} req/s = **{r:.2f}x**{before}", r <= 1.15)
        out.append(judged(name, "<= 1.15x", ra + rb, result))
    pairs = [(p, q) for p in points if p.scenario in existing and p.system == new and p.ok and (q := find(points, p.scenario, old, p.concurrency)) and q.ok]
    name = "no scenario of today's benchmark slower than static batching by more than 5% (req/s)"
    if pairs:
        p, q = min(pairs, key=lambda pq: pq[0].rps / pq[1].rps)
        r = p.rps / q.rps
        measured = f"worst of {len(pairs)}: {p.scenario} at {p.concurrency} connections, {p.rps:.1f} / {q.rps:.1f} req/s = **{r:.2f}x**"
        out.append(Target(name, measured, ">= 0.95x", r >= 0.95))
    else:
        out.append(Target(name, "not measured", ">= 0.95x", None))
    return out


def _cell(p: Point | None, fmt: str, attr: str) -> str:
    return format(getattr(p, attr), fmt) if _answered(p) else "-"


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def continuous_section(points: list[Point], systems: list[System], existing: Sequence[str], new: str = "bentoml", old: str = "candidate") -> list[str]:
    """The report's section for the continuous-batching scenarios: tables per scenario, then the before/after ratios."""
    compared = [s for s in systems if s.key in (new, old)]
    keys = {load.key for load in mixed.all_loads()}
    if not any(p.scenario in keys for p in points):
        return []
    labels = {s.key: s.label for s in compared}
    before = labels.get(old, "(a*) not run (--baseline-ref)")
    text = [
        "## Continuous batching against static batching",
        "",
        f"{labels.get(new, '(a)')} against {before}, in the same run, taking turns (the other frozen). "
        "Loads at the same time are separate wrk processes started together for the same duration, each with its own "
        "counts and percentiles (`loadtests/mixed.py`); *server cores* is then the whole server's. captions/s: req/s x the mean "
        "captions per request of the bodies sent in turn.",
        "",
        "### Mixed: one-text sentiment beside 4-caption beam-4 translation, 8 + 8 connections",
        "",
        "| load | system | alone req/s | alone p50 ms | alone p99 ms | beside req/s | beside p50 ms | beside p99 ms "
        "| p99 beside/alone | req/s beside/alone | errors | server cores (beside) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for load, what in (("sentiment", "sentiment, 1 text"), ("translate", "translation, 4 captions, beam 4")):
        for s in compared:
            a, b = find(points, f"mixed-{load}-alone", s.key, 8), find(points, f"mixed-{load}-beside", s.key, 8)
            if a is None and b is None:
                continue
            p99 = rps = "-"
            if a and b and a.ok and b.ok:
                p99, rps = _ratio(b.p99_ms, a.p99_ms), _ratio(b.rps, a.rps)
            errors = sum(p.errors for p in (a, b) if p)
            text.append(
                f"| {what} | {s.label} | {_cell(a, '.1f', 'rps')} | {_cell(a, '.1f', 'p50_ms')} | {_cell(a, '.1f', 'p99_ms')} | {_cell(b, '.1f', 'rps')} | "
                f"{_cell(b, '.1f', 'p50_ms')} | {_cell(b, '.1f', 'p99_ms')} | {p99} | {rps} | {errors} | {_cell(b, '.2f', 'server_cores')} |"
            )
    text += [
        "",
        "### Short behind long: one-caption greedy translations (4 connections) while 32-caption beam-4 translations run (4 connections)",
        "",
        "| system | short req/s | short p50 ms | short p99 ms | short errors "
        "| long req/s | long captions/s | long p50 ms | long p99 ms | long errors | server cores |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in compared:
        a, b = find(points, "short-behind-long-short", s.key, 4), find(points, "short-behind-long-long", s.key, 4)
        if a is None or b is None:
            continue
        text.append(
            f"| {s.label} | {_cell(a, '.1f', 'rps')} | {_cell(a, '.1f', 'p50_ms')} | {_cell(a, '.1f', 'p99_ms')} | {a.errors} | {_cell(b, '.2f', 'rps')} | "
            f"{_cell(b, '.1f', 'texts_per_s')} | {_cell(b, '.0f', 'p50_ms')} | {_cell(b, '.0f', 'p99_ms')} | {b.errors} | {b.server_cores:.2f} |"
        )
    text += [
        "",
        "### Translation, mixed lengths and beams: 1, 4 and 16 captions at beams 1, 4 and 8 in turn, 32 connections",
        "",
        "| system | req/s | captions/s | p50 ms | p99 ms | errors | server cores |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in compared:
        if (p := find(points, "lengths", s.key, 32)) is not None:
            text.append(
                f"| {s.label} | {_cell(p, '.2f', 'rps')} | {_cell(p, '.1f', 'texts_per_s')} | {_cell(p, '.0f', 'p50_ms')} | "
                f"{_cell(p, '.0f', 'p99_ms')} | {p.errors} | {p.server_cores:.2f} |"
            )
    text += [
        "",
        f"### Repeatability: one-text sentiment, 64 connections, {mixed.REPEAT_RUNS} runs",
        "",
        "Against one running service (after a warm-up), and against a freshly started one each run (stop, start, wait until "
        "every worker is ready, measure at once: no warm-up).",
        "",
        "| system | service | req/s, run by run | min | median | max | max/min | p99 ms, min / median / max | errors | start to ready, s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for scenario, what in (("repeat-running", "running"), ("repeat-restarted", "fresh each run")):
        for s in compared:
            rs = runs(points, scenario, s.key)
            if not rs:
                continue
            lo, med, hi, r = spread([p.rps for p in rs])
            plo, pmed, phi, _ = spread([p.p99_ms for p in rs])
            startup = " / ".join(f"{p.startup_s:.0f}" for p in rs if p.startup_s is not None) or "-"
            text.append(
                f"| {s.label} | {what} | {', '.join(f'{p.rps:.0f}' for p in rs)} | {lo:.0f} | {med:.0f} | {hi:.0f} | {r:.2f}x | "
                f"{plo:.0f} / {pmed:.0f} / {phi:.0f} | {sum(p.errors for p in rs)} | {startup} |"
            )
    text += ["", "### Before/after", "", "| measure | static batching (a*) | continuous (a) | after/before | better |", "| --- | ---: | ---: | ---: | --- |"]

    def row(what: str, scenario: str, c: int, attr: str, fmt: str, better: str) -> None:
        a, b = find(points, scenario, new, c), find(points, scenario, old, c)
        va = getattr(a, attr) if _answered(a) else None
        vb = getattr(b, attr) if _answered(b) else None
        if va is not None or vb is not None:
            text.append(f"| {what} | {_num(vb, fmt)} | {_num(va, fmt)} | {_ratio(va, vb)} | {better} |")

    row("mixed: sentiment p99 ms beside translation", "mixed-sentiment-beside", 8, "p99_ms", ".1f", "lower")
    row("mixed: sentiment req/s beside translation", "mixed-sentiment-beside", 8, "rps", ".1f", "higher")
    row("mixed: translation req/s beside sentiment", "mixed-translate-beside", 8, "rps", ".1f", "higher")
    row("mixed: sentiment p99 ms alone", "mixed-sentiment-alone", 8, "p99_ms", ".1f", "lower")
    row("mixed: translation req/s alone", "mixed-translate-alone", 8, "rps", ".1f", "higher")
    row("short behind long: short p50 ms", "short-behind-long-short", 4, "p50_ms", ".0f", "lower")
    row("short behind long: short p99 ms", "short-behind-long-short", 4, "p99_ms", ".0f", "lower")
    row("short behind long: long captions/s", "short-behind-long-long", 4, "texts_per_s", ".1f", "higher")
    row("mixed lengths and beams: captions/s", "lengths", 32, "texts_per_s", ".1f", "higher")
    row("mixed lengths and beams: p99 ms", "lengths", 32, "p99_ms", ".0f", "lower")
    for scenario, what in (("repeat-running", "running service"), ("repeat-restarted", "fresh service each run")):
        ra, rb = runs(points, scenario, new), runs(points, scenario, old)
        sa, sb = (spread([p.rps for p in ra]) if ra else None), (spread([p.rps for p in rb]) if rb else None)
        if sa or sb:
            va, vb = (sa[1] if sa else None), (sb[1] if sb else None)
            text.append(f"| repeatability, {what}: median req/s | {_num(vb, '.0f')} | {_num(va, '.0f')} | {_ratio(va, vb)} | higher |")
            text.append(f"| repeatability, {what}: req/s max/min | {_num(sb and sb[3], '.2f')} | {_num(sa and sa[3], '.2f')} | - | lower |")
    pairs = [(p, q) for p in points if p.scenario in existing and p.system == new and p.ok and (q := find(points, p.scenario, old, p.concurrency)) and q.ok]
    if pairs:
        text += ["", "Today's scenarios (the tables above), req/s:", "", "| scenario | connections | static batching (a*) | continuous (a) | after/before |"]
        text += ["| --- | ---: | ---: | ---: | ---: |"]
        text += [f"| {p.scenario} | {p.concurrency} | {q.rps:.1f} | {p.rps:.1f} | {p.rps / q.rps:.2f}x |" for p, q in pairs]
    text.append("")
    return text


def openloop_section(open_points: list[OpenPoint], labels: dict[str, str], stem: Path) -> list[str]:
    """The report's open-loop section: a table per scenario and a chart of p50/p99 against the load (share of capacity)."""
    if not open_points:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys(p.scenario for p in open_points))
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 4.0), squeeze=False)
    text = [
        "## Latency under an open-loop load",
        "",
        "Requests at a fixed arrival rate (`loadtests/openloop.py`: Locust users with their own schedules and random phases, "
        "one request per second each), at 25, 50, 75 and 90% of each system's own closed-loop capacity (its best req/s above), "
        "for this service and the best layout of each peer. A closed loop slows down with the server; here arrivals do not, so "
        "queueing shows in the tail. *rate kept*: at least 95% of the target arrived (otherwise the answers fell behind and "
        "the latency is that of a partly closed loop). Percentiles are Locust's (exact below 100 ms, to 10 ms below 1 s).",
        "",
    ]
    for ax, key in zip(axes[0], keys, strict=True):
        text += [
            f"### {key}",
            "",
            "| system | capacity req/s | load | target req/s | achieved req/s | p50 ms | p99 ms | errors | rate kept | server cores | gen. cores |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
        ]
        for system in dict.fromkeys(p.system for p in open_points if p.scenario == key):
            pts = sorted((p for p in open_points if p.scenario == key and p.system == system), key=lambda p: p.fraction)
            for p in pts:
                r = p.result
                text.append(
                    f"| {labels.get(system, system)} | {p.capacity_rps:.1f} | {p.fraction:.0%} | {r.target_rps:.1f} | {r.rps:.1f} | "
                    f"{r.p50_ms:.0f} | {r.p99_ms:.0f} | {r.errors} | {'yes' if r.rate_ok else '**no**'} | {p.server_cores:.2f} | {r.generator_cores:.2f} |"
                )
            loads = [100 * p.fraction for p in pts]
            line = ax.plot(loads, [p.result.p99_ms for p in pts], marker="o", label=f"{system} p99")
            ax.plot(loads, [p.result.p50_ms for p in pts], marker=".", linestyle="--", color=line[0].get_color(), label=f"{system} p50")
        text.append("")
        ax.set_yscale("log")
        ax.set_xlabel("arrival rate, % of the system's capacity")
        ax.set_ylabel("latency, ms (log)")
        ax.set_title(f"open loop: {key}", fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path = stem.with_name(f"{stem.name}-openloop.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [*text[:2], f"![open-loop latency]({path.name})", "", *text[2:]]


def verdict(ok: bool | None) -> str:
    return {True: "PASS", False: "**FAIL**", None: "not measured"}[ok]


def plot(points: list[Point], systems: list[System], scs: list[Scenario], ceilings: dict[str, float], stem: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {s.key: s.label for s in systems}
    paths = []
    for kind in ("throughput", "latency"):
        fig, axes = plt.subplots(1, len(scs), figsize=(4.6 * len(scs), 4.0), squeeze=False)
        for ax, sc in zip(axes[0], scs, strict=True):
            for s in systems:
                pts = sorted((p for p in points if p.scenario == sc.key and p.system == s.key and p.ok > 0), key=lambda p: p.concurrency)
                if not pts:
                    continue
                if kind == "throughput":
                    ax.plot([p.concurrency for p in pts], [p.texts_per_s for p in pts], marker="o", label=labels[s.key])
                else:
                    ax.plot([p.texts_per_s for p in pts], [p.p99_ms for p in pts], marker="o", label=labels[s.key])
            if kind == "throughput":
                if sc.task in ceilings:
                    ax.axhline(ceilings[sc.task], color="black", linestyle="--", linewidth=1, label="(e) model alone, best batch")
                ax.set_xscale("log", base=2)
                ax.set_xlabel("concurrent connections")
                ax.set_ylabel("texts / s")
            else:
                ax.set_yscale("log")
                ax.set_xlabel("texts / s")
                ax.set_ylabel("p99 latency, ms (log)")
            ax.set_title(sc.key, fontsize=10)
            ax.grid(True, alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.suptitle("throughput against concurrency" if kind == "throughput" else "p99 latency against throughput (points: 1 ... max connections)")
        fig.tight_layout()
        path = stem.with_name(f"{stem.name}-{kind}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(
    out: Path,
    args: argparse.Namespace,
    systems: list[System],
    scs: list[Scenario],
    points: list[Point],
    open_points: list[OpenPoint],
    ceiling_rows: dict[str, list[dict[str, Any]]],
    profile: str | None,
    elapsed: float,
) -> None:
    ceilings = {task: max(r["texts_per_s"] for r in rows) for task, rows in ceiling_rows.items() if rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    pngs = plot(points, systems, scs, ceilings, out.with_suffix("")) if scs else []
    existing = [sc.key for sc in scs]
    tg = targets(points, ceilings) if scs else []
    if any(g in mixed.GROUPS for g in args.only) or args.baseline_ref:
        tg += continuous_targets(points, existing)
    labels = {s.key: s.label for s in systems}
    gen_max = max((p.generator_cores for p in points), default=0.0)
    command = "python -m loadtests.bench " + " ".join(sys.argv[1:])
    text = [
        "# Benchmarks",
        "",
        f"Generated by `make bench{'-gpu' if args.device.startswith('cuda') else ''}` (`{command.strip()}`) on {dt.date.today().isoformat()}, "
        f"{elapsed / 60:.0f} minutes; {args.duration:g} s per measurement after a warm-up (up to {args.max_duration:g} s where requests "
        "take long: at least 4 expected latencies). Rerun it to check; compare ratios "
        "within one run, not absolute numbers across runs or machines.",
        "",
        f"- Machine: {machine()}.",
        f"- Software: {versions()}.",
        f"- Device `{args.device}`, the shipped artifacts, access logs off. This service runs as it ships: `WORKERS={args.workers}` "
        f"processes with `TORCH_THREADS={max(1, args.torch_threads // args.workers)}` each (its default on this machine: one single-threaded "
        f"worker per core); the peers run in every layout of the {args.torch_threads} cores (processes x threads), and each verdict "
        "compares with the peer's best layout at that load; (a1) is this service in one process with all the threads.",
        f"- Load generator: {generator_name()}; closed loop (each connection sends its next request when the answer is in), "
        f"keep-alive, the scenario's request bodies in turn, on the same machine. It used at most **{gen_max:.2f} cores** "
        "during any measurement (column *gen. cores*).",
        "- Servers take turns at each load level; the others are frozen meanwhile (SIGSTOP), so an idle server costs nothing.",
        "- What was profiled and tried, with measured effects: [performance.md](performance.md).",
        "",
        "Systems:",
        "",
    ]
    described = {
        "bentoml": "- **(a) this service**: `bentoml serve service.service:LSTMService`, default settings: in each worker a queue and a "
        "thread per model; a sentiment batch forms from what waits when the model is free (`MAX_BATCH_SIZE=128` texts); translations "
        "join and leave one running decode (`service/sentiment_batcher.py`, `service/translation_batcher.py`).",
        "candidate": f"- **(a\\*) static batching ({(args.baseline_sha or '')[:7]})**: this service at commit `{args.baseline_sha}` (a `git worktree` in "
        "`loadtests/results/`, `--baseline-ref`), same settings: one model call at a time per worker, shared by both models; "
        "a translation batch decodes until its longest hypothesis ends."
        if args.baseline_ref
        else f"- **(a\\*) another checkout**: this service from `{args.candidate}`, same settings.",
        "bentoml-1w": "- **(a1) this service, one worker**: the same with `WORKERS=1` and all the threads in it.",
        "bentoml-unbatched": "- **(b) this service, `BATCHING=off`**: the same code, each model thread taking one request per model call or decode "
        "with its own texts.",
        "fastapi": "- **(c) FastAPI, unbatched**: `loadtests/baselines/fastapi_app.py`, sync handlers (FastAPI's thread pool), pydantic models, "
        "one model call per request, uvicorn; in every layout of the cores: `fastapi-PxT` = `uvicorn --workers P`, `TORCH_THREADS=T`.",
        "litserve": f"- **(d) LitServe, batched**: `loadtests/baselines/litserve_app.py`, `max_batch_size={LITSERVE_MAX_BATCH_SIZE}` requests, "
        f"`batch_timeout={LITSERVE_BATCH_TIMEOUT_MS} ms`, `fast_queue=True`; in every layout of the cores: `litserve-PxT` = "
        "`workers_per_device=P` inference workers per API with `TORCH_THREADS=T`, one API server process; `litserve-PxT-Papi`: P API servers.",
        "bentoml-empty": "- **(f) empty BentoML API**: `loadtests/baselines/empty_bentoml.py`, this service's layout and listener, a fixed answer "
        "per text, no guard, queue or model: BentoML's ceiling on this machine (one-text sentiment only).",
        "ceiling": "- **(e) model alone**: `loadtests/model_alone.py`, the Python API called back to back, no HTTP, at several batch sizes; "
        "the best is the ceiling.",
    }
    ran = {s.key.split("-")[0] if s.key.split("-")[0] in ("fastapi", "litserve") else s.key for s in systems} | ({"ceiling"} if ceiling_rows else set())
    text += [line for key, line in described.items() if key in ran]
    text += ["", "## Targets", "", "| target | measured | required | verdict |", "| --- | --- | --- | --- |"]
    text += [f"| {t.name} | {t.measured} | {t.required} | {verdict(t.ok)} |" for t in tg]
    text.append("")
    if pngs:
        text += [f"![throughput]({pngs[0].name})", "", f"![latency]({pngs[1].name})", ""]
    if (share := headroom(points)) is not None:
        text += ["## Headroom under BentoML", "", share, ""]
    text += openloop_section(open_points, labels, out.with_suffix(""))
    text += continuous_section(points, systems, existing)
    if ceiling_rows:
        text += [
            "## (e) The model alone (ceiling)",
            "",
            "In one process with all the threads (as the baselines run) and, when this service runs several workers, in as many "
            "processes at once with its threads each (texts/s summed; ms per batch averaged). The best row is the ceiling.",
            "",
            "| task | processes x threads | batch size | texts/s | ms per batch |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for task, rows in ceiling_rows.items():
            for r in rows:
                best = " (best)" if r["texts_per_s"] == ceilings.get(task) else ""
                layout = f"{r.get('processes', 1)} x {r.get('threads', '?')}"
                text.append(f"| {task} | {layout} | {r['batch_size']} | {r['texts_per_s']:.0f}{best} | {r['ms_per_batch']:.1f} |")
        text.append("")
    for sc in scs:
        text += [
            f"## {sc.title}",
            "",
            "*server cores*: CPU time of the server's processes / wall time; *server CPU/req*: its CPU time per answered request; "
            "*req/call*: requests per model call (this service's `lstm_batch_items` metric: how many requests a batch merged).",
            "",
            "| connections | system | req/s | texts/s | p50 ms | p99 ms | errors | server cores | server CPU/req ms | req/call | gen. cores |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in sc.concurrency:
            for s in systems:
                p = find(points, sc.key, s.key, c)
                if p is None:
                    continue
                per_call = f"{p.requests_per_model_call:.1f}" if p.requests_per_model_call else "-"
                text.append(
                    f"| {c} | {labels[s.key]} | {p.rps:.1f} | {p.texts_per_s:.0f} | {p.p50_ms:.1f} | {p.p99_ms:.1f} | {p.errors} | "
                    f"{p.server_cores:.2f} | {p.server_cpu_ms_per_request:.2f} | {per_call} | {p.generator_cores:.2f} |"
                )
        text.append("")
    if profile:
        text += [profile, ""]
    out.write_text("\n".join(text))
    print("\n".join(f"TARGET {verdict(t.ok):>12}  {t.name}: {t.measured} (required {t.required})".replace("**", "") for t in tg), flush=True)
    print(f"wrote {', '.join(str(p) for p in [out, *pngs])}", flush=True)


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 s per measurement, 1/32/64 connections, no 32-caption scenario, no profile (about 3 minutes)")
    ap.add_argument("--duration", type=float, help="seconds per measurement (default 8; 2 with --quick)")
    ap.add_argument("--concurrency", type=int, nargs="+", help="connections (default 1 8 32 64 128; 1 32 64 with --quick)")
    ap.add_argument("--max-duration", type=float, help="longest window, for slow load levels (default 30 s; 12 with --quick)")
    ap.add_argument(
        "--systems",
        nargs="+",
        help=f"default: {' '.join(default_systems(usable_cores()))} (the peers in every layout of --torch-threads cores); "
        "bentoml only when --only leaves out 'existing' and 'openloop'",
    )
    ap.add_argument("--scenarios", nargs="+", help="keys of today's scenarios to run (default: all)")
    ap.add_argument(
        "--only",
        type=lambda v: [g.strip() for g in v.split(",") if g.strip()],
        default=list(ONLY_CHOICES),
        help=f"comma-separated groups to run (default: all): 'existing' (today's scenarios, the model alone, the profile) and the "
        f"continuous-batching scenarios {','.join(mixed.GROUPS)}; e.g. --only {','.join(mixed.GROUPS)} (report and raw numbers "
        "then go to loadtests/results/benchmarks-only.md and bench-only.json unless --out)",
    )
    source = ap.add_mutually_exclusive_group()
    source.add_argument("--candidate", type=Path, help="also measure the service of this checkout, as (a*)")
    source.add_argument(
        "--baseline-ref",
        nargs="?",
        const=mixed.STATIC_BATCHING_REF,
        help=f"also measure this commit's service as (a*), from a git worktree in loadtests/results/ (made once, reused); "
        f"without a value the static-batching commit {mixed.STATIC_BATCHING_REF[:7]}",
    )
    ap.add_argument("--device", default="cpu", help="DEVICE for every system (cpu, cuda)")
    ap.add_argument("--torch-threads", type=int, default=usable_cores(), help="TORCH_THREADS of the one-process servers (c), (d), (a1) (default: all cores)")
    ap.add_argument("--workers", type=int, help="WORKERS of this service (default: its own default for the device); TORCH_THREADS = cores / WORKERS")
    ap.add_argument("--profile", action=argparse.BooleanOptionalAction, help="py-spy profile of (a) under load (default: on unless --quick)")
    ap.add_argument("--out", type=Path, help="report (default docs/benchmarks.md; docs/benchmarks-gpu.md for cuda)")
    args = ap.parse_args()
    if unknown := [g for g in args.only if g not in ONLY_CHOICES]:
        ap.error(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(ONLY_CHOICES)}")
    existing = "existing" in args.only
    groups = [g for g in mixed.GROUPS if g in args.only]
    openloop_group = "openloop" in args.only
    args.systems = args.systems or (
        default_systems(args.torch_threads) if existing else ["bentoml", *peer_systems(args.torch_threads)] if openloop_group else ["bentoml"]
    )
    args.duration = args.duration or (2.0 if args.quick else 8.0)
    args.max_duration = max(args.duration, args.max_duration or (12.0 if args.quick else 30.0))
    args.concurrency = args.concurrency or ([1, 32, 64] if args.quick else [1, 8, 32, 64, 128])
    args.profile = (not args.quick) if args.profile is None else args.profile
    cuda = args.device.startswith("cuda")
    default_out = ROOT / "docs" / ("benchmarks-gpu.md" if cuda else "benchmarks.md") if existing else RESULTS / "benchmarks-only.md"
    args.out = args.out or default_out
    raw = RESULTS / ("bench.json" if existing else "bench-only.json")
    if cuda and args.concurrency == [1, 8, 32, 64, 128]:
        args.concurrency = [1, 8, 32, 64, 128, 256]
    scs = [sc for sc in scenarios(args.concurrency, args.quick) if existing and (not args.scenarios or sc.key in args.scenarios)]
    env = {"TORCH_THREADS": str(args.torch_threads), "DEVICE": args.device}
    args.workers = args.workers or default_workers(args.device)
    service_env = {"WORKERS": str(args.workers), "TORCH_THREADS": str(max(1, args.torch_threads // args.workers)), "DEVICE": args.device}
    started = time.monotonic()
    RESULTS.mkdir(parents=True, exist_ok=True)
    candidate_label = None
    args.baseline_sha = None
    if args.baseline_ref:
        args.candidate, args.baseline_sha = mixed.baseline_worktree(args.baseline_ref, ROOT, RESULTS)
        candidate_label = f"static batching ({args.baseline_sha[:7]})"
        print(f"baseline: {args.baseline_ref} ({args.baseline_sha[:12]}), checked out at {args.candidate}", flush=True)
    per_scenario = {sc.key: sum(k != "bentoml-empty" or sc.key in EMPTY_SCENARIOS for k in args.systems) + (args.candidate is not None) for sc in scs}
    n_points = sum(len(sc.concurrency) * per_scenario[sc.key] for sc in scs)
    generator = "wrk" if wrk.available() else "loadgen"
    new = ", ".join(groups) or "no"
    print(f"bench: {len(scs)} of today's scenarios ({n_points} measurements of {args.duration:g} s), {new} continuous-batching ones; {generator}", flush=True)
    if groups and args.candidate is None:
        print("note: no --baseline-ref (or --candidate): the continuous-batching scenarios run on this service alone, without before/after ratios", flush=True)

    print("starting servers ...", flush=True)
    systems = start_systems(args.systems, env, service_env, args.candidate, candidate_label)
    points: list[Point] = []
    open_points: list[OpenPoint] = []
    ceiling_rows: dict[str, list[dict[str, Any]]] = {}
    profile: str | None = None
    try:
        for s in systems:
            s.pause()
        done = 0
        for sc in scs:
            print(f"== {sc.key}: {sc.title}", flush=True)
            latency: dict[str, tuple[float, int]] = {}  # system -> (p50 ms, at connections): sizes the next window
            measured = [s for s in systems if s.serves(sc.key)]
            for s in measured:  # warm-up
                s.resume()
                try:
                    check_answers(s, sc.path, sc.bodies[:1])
                    w = mixed.drive(s.server.url + sc.path, sc.bodies, 8, 2.0)
                    latency[s.key] = (w.p50_ms, 8) if w.ok else (2 * 2000.0, 8)
                finally:
                    s.pause()
            for i, c in enumerate(sc.concurrency):
                order = measured[i % len(measured) :] + measured[: i % len(measured)]
                for s in order:
                    p = measure(s, sc, c, window(args, latency[s.key], c))
                    latency[s.key] = (p.p50_ms, c) if p.ok else (2 * latency[s.key][0] * max(1, c / latency[s.key][1]), c)
                    points.append(p)
                    done += 1
                    per_call = f", {p.requests_per_model_call:.1f} req/call" if p.requests_per_model_call else ""
                    print(
                        f"  [{done}/{n_points}] {s.key:<18} c={c:<4} {p.rps:8.1f} req/s {p.texts_per_s:8.0f} texts/s "
                        f"p50 {p.p50_ms:7.1f} p99 {p.p99_ms:7.1f} ms  err {p.errors}  server {p.server_cores:.2f} cores{per_call}",
                        flush=True,
                    )
        run_groups(args, systems, groups, points)
        if openloop_group:
            open_points = run_openloop(args, systems, points)
        for task in sorted({sc.task for sc in scs}):
            print(f"== model alone: {task}", flush=True)
            seconds = 1.5 if args.quick else 3.0
            layouts = [(env, 1)] + ([(service_env, args.workers)] if args.workers > 1 else [])  # as the baselines run, as this service runs
            ceiling_rows[task] = [r for e, n in layouts for r in ceiling(task, e, n, seconds)]
            for r in ceiling_rows[task]:
                print(f"  {r['processes']} x {r['threads']} threads, batch {r['batch_size']:>4}: {r['texts_per_s']:8.0f} texts/s", flush=True)
        a = next((s for s in systems if s.key == "bentoml"), None)
        if args.profile and a is not None and scs:
            print("== py-spy profile of (a) under load", flush=True)
            sc = scs[0]
            a.resume()
            try:
                profile = profile_summary(a.server, sc.path, sc.bodies, 64, 10.0, mixed.drive)
            finally:
                a.pause()
    finally:
        for s in systems:
            s.resume()
        stoppers = [threading.Thread(target=s.server.stop) for s in systems]  # in parallel: each may take its grace period
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
    baseline = {"ref": args.baseline_ref, "sha": args.baseline_sha, "path": str(args.candidate)} if args.baseline_ref else None
    raw_points = {"points": [asdict(p) for p in points], "openloop": [asdict(p) for p in open_points]}
    raw.write_text(json.dumps({**raw_points, "ceilings": ceiling_rows, "baseline": baseline}, indent=1))
    write_report(args.out, args, systems, scs, points, open_points, ceiling_rows, profile, time.monotonic() - started)


if __name__ == "__main__":
    if shutil.which("wrk") is None:
        print("note: wrk not found (make install-system installs it); using the slower asyncio generator", file=sys.stderr)
    main()
