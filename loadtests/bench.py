"""The benchmark behind the speed figures: this service against unbatched and peer servers, side by side, in one run.

    python -m loadtests.bench [--quick] [--duration 8] [--concurrency 1 8 32 64 128] [--device cuda]

Systems, all serving the same TorchScript artifacts on the same cores:

  (a) ``bentoml``: this service as shipped (adaptive batching; ``WORKERS`` single-threaded workers,
      by default one per core, ``--workers`` to change);
  (a1) ``bentoml-1w``: the same in one worker with all the threads, the baselines' layout;
  (b) ``bentoml-unbatched``: this service with ``BATCHING=off`` (each request one model call);
  (c) ``fastapi``: a minimal unbatched FastAPI server (``loadtests/baselines/fastapi_app.py``);
  (d) ``litserve``: LitServe with its batching (``loadtests/baselines/litserve_app.py``);
  (e) the model alone through the Python API, no HTTP, at its best batch size and process layout
      (one process with all threads, or one per worker): the ceiling (``loadtests/model_alone.py``).

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
measure a change against the current tree in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtests import loadgen, wrk
from loadtests.loadgen import Measurement
from loadtests.profile import profile_summary
from loadtests.server import ROOT, ServerProcess, ServiceProcess
from loadtests.texts import CAPTIONS, REVIEWS
from service.config import default_workers, usable_cores

RESULTS = ROOT / "loadtests" / "results"
SENTENCE_13W = "A man in a blue shirt is riding a bike down the street."
LITSERVE_MAX_BATCH_SIZE = "64"
LITSERVE_BATCH_TIMEOUT_MS = "5"


# ---------------------------------------------------------------- scenarios


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def _windows(pool: list[str], size: int, count: int) -> list[list[str]]:
    """``count`` lists of ``size`` consecutive texts of ``pool`` (wrapping), each starting further on."""
    return [[pool[(start * 7 + i) % len(pool)] for i in range(size)] for start in range(count)]


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
            [_json({"texts": [t]}) for t in REVIEWS],
            1,
            concurrency,
            "sentiment",
        ),
        Scenario(
            "sentiment-32",
            "`/sentiment`, 32 reviews per request",
            "/sentiment",
            [_json({"texts": w}) for w in _windows(REVIEWS, 32, 16)],
            32,
            concurrency,
            "sentiment",
        ),
        Scenario(
            "translate-1",
            "`/translate`, one caption per request, beam 4, en->de and en->fr in turn",
            "/translate",
            [_json({"texts": [t], "source": "en", "target": targets[i % 2], "beam_size": 4}) for i, t in enumerate(CAPTIONS)],
            1,
            concurrency,
            "translate",
        ),
    ]
    for beam, name in ((1, "greedy"), (4, "beam 4")):  # the latency figure: one fixed 13-word sentence
        out.append(
            Scenario(
                f"translate-13w-beam{beam}",
                f'`/translate`, the 13-word sentence "{SENTENCE_13W}", {name}, en->de and en->fr in turn',
                "/translate",
                [_json({"texts": [SENTENCE_13W], "source": "en", "target": t, "beam_size": beam}) for t in targets],
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
                [_json({"texts": w, "source": "en", "target": targets[i % 2], "beam_size": 4}) for i, w in enumerate(_windows(CAPTIONS, 32, 8))],
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
    notes: list[str] = field(default_factory=list)

    def pause(self) -> None:
        os.killpg(self.server.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.server.proc.pid, signal.SIGCONT)


def start_systems(keys: list[str], env: dict[str, str], service_env: dict[str, str], candidate: Path | None) -> list[System]:
    """``env``: the baselines' (one process, ``TORCH_THREADS`` = all cores); ``service_env``: this service's workers and threads."""
    logs = RESULTS / "bench-logs"
    py = sys.executable
    workers = f"WORKERS={service_env['WORKERS']} x TORCH_THREADS={service_env['TORCH_THREADS']}"
    systems: list[System] = []
    for key in keys:
        if key == "bentoml":
            systems.append(System(key, f"(a) this service ({workers})", ServiceProcess(logs / "bentoml.log", **service_env), True))
        elif key == "bentoml-1w":  # the worker effect: one process with all the threads, as the baselines run
            server = ServiceProcess(logs / "bentoml-1w.log", **{**service_env, "WORKERS": "1", "TORCH_THREADS": env["TORCH_THREADS"]})
            systems.append(System(key, f"(a1) this service, WORKERS=1 x TORCH_THREADS={env['TORCH_THREADS']}", server, True))
        elif key == "bentoml-unbatched":
            server = ServiceProcess(logs / "bentoml-unbatched.log", **service_env, BATCHING="off")
            systems.append(System(key, f"(b) this service, BATCHING=off ({workers})", server, True))
        elif key == "fastapi":
            cmd = [py, "-m", "uvicorn", "loadtests.baselines.fastapi_app:app", "--host", "127.0.0.1", "--port", "{port}", "--no-access-log"]
            systems.append(System(key, "(c) FastAPI, unbatched", ServerProcess(cmd, logs / "fastapi.log", env), False))
        elif key == "litserve":
            ls_env = {**env, "LITSERVE_MAX_BATCH_SIZE": LITSERVE_MAX_BATCH_SIZE, "LITSERVE_BATCH_TIMEOUT_MS": LITSERVE_BATCH_TIMEOUT_MS}
            cmd = [py, "-m", "loadtests.baselines.litserve_app", "--port", "{port}"]
            systems.append(System(key, "(d) LitServe, batched", ServerProcess(cmd, logs / "litserve.log", ls_env, ready_path="/health"), False))
        else:
            raise SystemExit(f"unknown system {key!r}")
    if candidate is not None:
        server = ServiceProcess(logs / "candidate.log", root=candidate, **service_env)
        systems.insert(1, System("candidate", f"(a*) service from {candidate} ({workers})", server, True))
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


def batch_counters(url: str) -> tuple[float, float]:
    """(model calls, texts) so far, summed over models, from the service's ``lstm_batch_items`` histogram."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    calls = sum(float(m) for m in re.findall(r"^lstm_batch_items_count\{[^}]*\} (\S+)$", text, re.M))
    texts = sum(float(m) for m in re.findall(r"^lstm_batch_items_sum\{[^}]*\} (\S+)$", text, re.M))
    return calls, texts


def check_answers(system: System, sc: Scenario) -> None:
    """One request per body kind: 200 and one result per text, else the system is broken and the run stops."""
    req = urllib.request.Request(system.server.url + sc.path, sc.bodies[0], {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        body = json.loads(r.read())
    if not isinstance(body, list) or len(body) != sc.texts_per_request:
        raise RuntimeError(f"{system.label} answered {sc.path} with {body!r:.300}")


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


def drive(url: str, bodies: list[bytes], concurrency: int, duration: float) -> Measurement:
    if wrk.available():
        return wrk.measure(url, bodies, concurrency, duration)
    return loadgen.measure(url, bodies, concurrency, duration)


def measure(system: System, sc: Scenario, concurrency: int, duration: float) -> Point:
    system.resume()
    try:
        counters = batch_counters(system.server.url) if system.bentoml else None
        cpu0 = system.server.cpu_seconds()
        m = drive(system.server.url + sc.path, sc.bodies, concurrency, duration)
        cpu = system.server.cpu_seconds() - cpu0
        per_call = None
        if counters is not None:
            time.sleep(0.2)  # the last batches finish after the generator stops
            calls = batch_counters(system.server.url)[0] - counters[0]
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


def targets(points: list[Point], ceilings: dict[str, float]) -> list[Target]:
    out = []
    a = find(points, "sentiment-1", "bentoml", 64)
    for peer, factor in (("litserve", 1.5), ("fastapi", 2.0)):
        b = find(points, "sentiment-1", peer, 64)
        name = f"sentiment, 1 text, 64 connections: throughput >= {factor:g}x {peer}"
        if a and b and b.rps > 0:
            out.append(Target(name, f"{a.rps:.0f} / {b.rps:.0f} req/s = **{a.rps / b.rps:.2f}x**", f">= {factor:g}x", a.rps >= factor * b.rps))
        else:
            out.append(Target(name, "not measured", f">= {factor:g}x", None))
    if a:
        out.append(Target("sentiment, 1 text, 64 connections: p99 latency", f"**{a.p99_ms:.0f} ms**", "<= 250 ms", a.p99_ms <= 250))
        out.append(Target("sentiment, 1 text, 64 connections: errors", f"**{a.errors}** of {a.ok + a.errors}", "0", a.errors == 0))
    best = max((p for p in points if p.scenario == "sentiment-32" and p.system == "bentoml"), key=lambda p: p.texts_per_s, default=None)
    name = "sentiment, 32 texts per request: best throughput vs the model alone"
    if best and ceilings.get("sentiment"):
        share = best.texts_per_s / ceilings["sentiment"]
        measured = f"{best.texts_per_s:.0f} texts/s at {best.concurrency} connections / {ceilings['sentiment']:.0f} = **{share:.0%}**"
        out.append(Target(name, measured, ">= 60%", share >= 0.6))
    else:
        out.append(Target(name, "not measured", ">= 60%", None))
    a = find(points, "translate-1", "bentoml", 32)
    b = find(points, "translate-1", "fastapi", 32)
    name = "translation, beam 4, 32 connections: throughput >= 3x the unbatched FastAPI server"
    if a and b and b.rps > 0:
        out.append(Target(name, f"{a.rps:.1f} / {b.rps:.1f} req/s = **{a.rps / b.rps:.2f}x**", ">= 3x", a.rps >= 3 * b.rps))
    else:
        out.append(Target(name, "not measured", ">= 3x", None))
    return out


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
    ceiling_rows: dict[str, list[dict[str, Any]]],
    profile: str | None,
    elapsed: float,
) -> None:
    ceilings = {task: max(r["texts_per_s"] for r in rows) for task, rows in ceiling_rows.items() if rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    pngs = plot(points, systems, scs, ceilings, out.with_suffix(""))
    tg = targets(points, ceilings)
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
        f"worker per core); the baselines run as they ship, one process with `TORCH_THREADS={args.torch_threads}`; (a1) is this service "
        "in that same one-process layout, so the worker effect and the rest can be told apart.",
        f"- Load generator: {generator_name()}; closed loop (each connection sends its next request when the answer is in), "
        f"keep-alive, the scenario's request bodies in turn, on the same machine. It used at most **{gen_max:.2f} cores** "
        "during any measurement (column *gen. cores*).",
        "- Servers take turns at each load level; the others are frozen meanwhile (SIGSTOP), so an idle server costs nothing.",
        "- What was profiled and tried, with measured effects: [performance.md](performance.md).",
        "",
        "Systems:",
        "",
        "- **(a) this service**: `bentoml serve service.service:LSTMService`, default settings (adaptive batching: a batch forms "
        "the moment the model is free, `MAX_BATCH_SIZE=128` texts; `service/dispatcher.py`).",
        "- **(a1) this service, one worker**: the same with `WORKERS=1` and all the threads in it.",
        "- **(b) this service, `BATCHING=off`**: the same code with the APIs registered unbatched: each request is one model call with its own texts.",
        "- **(c) FastAPI, unbatched**: `loadtests/baselines/fastapi_app.py`, sync handlers (FastAPI's thread pool), pydantic models, "
        "one model call per request, uvicorn, 1 worker.",
        f"- **(d) LitServe, batched**: `loadtests/baselines/litserve_app.py`, `max_batch_size={LITSERVE_MAX_BATCH_SIZE}` requests, "
        f"`batch_timeout={LITSERVE_BATCH_TIMEOUT_MS} ms`, `fast_queue=True`, one inference worker per API, 1 API server process.",
        "- **(e) model alone**: `loadtests/model_alone.py`, the Python API called back to back, no HTTP, at several batch sizes; the best is the ceiling.",
        "",
    ]
    for s in systems:
        text += [f"- Note on {s.label}: {n}" for n in s.notes]
    text += ["", "## Targets", "", "| target | measured | required | verdict |", "| --- | --- | --- | --- |"]
    text += [f"| {t.name} | {t.measured} | {t.required} | {verdict(t.ok)} |" for t in tg]
    text += ["", f"![throughput]({pngs[0].name})", "", f"![latency]({pngs[1].name})", ""]
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
    print(f"wrote {out}, {', '.join(str(p) for p in pngs)}", flush=True)


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 s per measurement, 1/32/64 connections, no 32-caption scenario, no profile (about 3 minutes)")
    ap.add_argument("--duration", type=float, help="seconds per measurement (default 8; 2 with --quick)")
    ap.add_argument("--concurrency", type=int, nargs="+", help="connections (default 1 8 32 64 128; 1 32 64 with --quick)")
    ap.add_argument("--max-duration", type=float, help="longest window, for slow load levels (default 30 s; 12 with --quick)")
    ap.add_argument("--systems", nargs="+", default=["bentoml", "bentoml-1w", "bentoml-unbatched", "fastapi", "litserve"])
    ap.add_argument("--scenarios", nargs="+", help="scenario keys to run (default: all)")
    ap.add_argument("--candidate", type=Path, help="also measure the service of this checkout, as (a*)")
    ap.add_argument("--device", default="cpu", help="DEVICE for every system (cpu, cuda)")
    ap.add_argument("--torch-threads", type=int, default=usable_cores(), help="TORCH_THREADS of the one-process servers (c), (d), (a1) (default: all cores)")
    ap.add_argument("--workers", type=int, help="WORKERS of this service (default: its own default for the device); TORCH_THREADS = cores / WORKERS")
    ap.add_argument("--profile", action=argparse.BooleanOptionalAction, help="py-spy profile of (a) under load (default: on unless --quick)")
    ap.add_argument("--out", type=Path, help="report (default docs/benchmarks.md; docs/benchmarks-gpu.md for cuda)")
    args = ap.parse_args()
    args.duration = args.duration or (2.0 if args.quick else 8.0)
    args.max_duration = max(args.duration, args.max_duration or (12.0 if args.quick else 30.0))
    args.concurrency = args.concurrency or ([1, 32, 64] if args.quick else [1, 8, 32, 64, 128])
    args.profile = (not args.quick) if args.profile is None else args.profile
    cuda = args.device.startswith("cuda")
    args.out = args.out or ROOT / "docs" / ("benchmarks-gpu.md" if cuda else "benchmarks.md")
    if cuda and args.concurrency == [1, 8, 32, 64, 128]:
        args.concurrency = [1, 8, 32, 64, 128, 256]
    scs = [sc for sc in scenarios(args.concurrency, args.quick) if not args.scenarios or sc.key in args.scenarios]
    env = {"TORCH_THREADS": str(args.torch_threads), "DEVICE": args.device}
    args.workers = args.workers or default_workers(args.device)
    service_env = {"WORKERS": str(args.workers), "TORCH_THREADS": str(max(1, args.torch_threads // args.workers)), "DEVICE": args.device}
    started = time.monotonic()
    n_points = sum(len(sc.concurrency) for sc in scs) * (len(args.systems) + (args.candidate is not None))
    print(f"bench: {len(scs)} scenarios, {n_points} measurements of {args.duration:g} s, generator: {'wrk' if wrk.available() else 'loadgen'}", flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    print("starting servers ...", flush=True)
    systems = start_systems(args.systems, env, service_env, args.candidate)
    points: list[Point] = []
    ceiling_rows: dict[str, list[dict[str, Any]]] = {}
    profile: str | None = None
    try:
        for s in systems:
            s.pause()
        done = 0
        for sc in scs:
            print(f"== {sc.key}: {sc.title}", flush=True)
            latency: dict[str, tuple[float, int]] = {}  # system -> (p50 ms, at connections): sizes the next window
            for s in systems:  # warm-up; also trains BentoML's batching model
                s.resume()
                try:
                    check_answers(s, sc)
                    w = drive(s.server.url + sc.path, sc.bodies, 8, 2.0)
                    latency[s.key] = (w.p50_ms, 8) if w.ok else (2 * 2000.0, 8)
                finally:
                    s.pause()
            for i, c in enumerate(sc.concurrency):
                order = systems[i % len(systems) :] + systems[: i % len(systems)]
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
        for s in systems:
            if s.key == "bentoml-unbatched":
                merged = [p for p in points if p.system == s.key and p.requests_per_model_call and p.requests_per_model_call > 1.05]
                if merged:
                    s.notes.append(
                        "**its batches merged several requests** (req/call > 1): this service does not support `BATCHING=off` yet, "
                        "so (b) is not an unbatched run."
                    )
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
                profile = profile_summary(a.server, sc.path, sc.bodies, 64, 10.0, drive)
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
    (RESULTS / "bench.json").write_text(json.dumps({"points": [asdict(p) for p in points], "ceilings": ceiling_rows}, indent=1))
    write_report(args.out, args, systems, scs, points, ceiling_rows, profile, time.monotonic() - started)


if __name__ == "__main__":
    if shutil.which("wrk") is None:
        print("note: wrk not found (make install-system installs it); using the slower asyncio generator", file=sys.stderr)
    main()
