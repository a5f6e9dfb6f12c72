"""Where a BentoML worker's time goes under load: py-spy samples, grouped by what the code does.

    from loadtests.profile import profile_summary
    section = profile_summary(server, "/sentiment", bodies, 64, 10.0, drive)   # markdown

Runs ``py-spy record`` (PyPI ``py-spy``, in the ``bench`` extra) on the service's
worker process while ``drive`` loads it, then files every sample under the
innermost frame that matches one of ``CATEGORIES``. py-spy needs ptrace
permission on the worker (root, or ``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from loadtests.server import ServerProcess

# (what the code does, pattern on "function (file:line)"): a sample goes to the innermost frame that matches.
CATEGORIES: list[tuple[str, str]] = [
    ("BentoML: the output's JSON schema, rebuilt for every response (`IOMixin.mime_type`)", r"json_schema|mime_type"),
    ("OpenTelemetry tracing middleware", r"opentelemetry"),
    ("metrics (Prometheus client: BentoML's middleware and ours)", r"prometheus_client|instruments\.py|service/metrics\.py"),
    ("HTTPGuard middleware (`service/http_guard.py`)", r"http_guard\.py"),
    ("model queues and batching threads (`service/jobs.py`, `service/*_batcher.py`)", r"service/(jobs|sentiment_batcher|translation_batcher)\.py"),
    ("tokenization", r"tokenizer\.py|sentencepiece"),
    ("model call and result building (`service/inference.py`, torch)", r"inference\.py|translate\.py|torch/"),
    ("request parsing and validation, response serialization (pydantic, json)", r"serde\.py|pydantic|json/"),
    ("HTTP protocol and socket I/O (uvicorn: h11 or httptools)", r"h11|httptools|uvicorn/|selector_events\.py"),
    ("BentoML and Starlette request handling (routing, context, middleware chain)", r"_bentoml_impl|_bentoml_sdk|bentoml/|starlette/"),
    ("event loop, threads and thread pool hand-offs (asyncio, anyio)", r"asyncio/|anyio/|threading\.py|selectors\.py|concurrent/"),
]


def categorize(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in CATEGORIES:
            if re.search(pattern, frame):
                return name
    return "other"


def summarize(raw: str) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """py-spy's raw (collapsed) output -> (samples, per category, per innermost function)."""
    by_cat: collections.Counter[str] = collections.Counter()
    by_leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")[1:]  # the first entry names the thread
        total += n
        by_cat[categorize(frames)] += n
        if frames:
            leaf = re.sub(r"\((?:.*/)?([^/]+:\d+)\)", r"(\1)", frames[-1])
            by_leaf[leaf] += n
    return total, by_cat.most_common(), by_leaf.most_common(12)


def worker_pid(server: ServerProcess) -> int:
    """The BentoML worker (the process that runs the service code), else the server process itself."""
    for child in psutil.Process(server.proc.pid).children(recursive=True):
        try:
            if any("_bentoml_impl.worker" in part for part in child.cmdline()):
                return int(child.pid)
        except psutil.NoSuchProcess:
            continue
    return server.proc.pid


def profile_summary(server: ServerProcess, path: str, bodies: list[bytes], concurrency: int, seconds: float, drive: Callable[..., Any]) -> str:
    """A markdown section: share of the worker's busy samples by category, while ``drive`` loads ``path``."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return "## Where the time goes\n\npy-spy is not installed (`pip install -e '.[bench]'`); no profile."
    pid = worker_pid(server)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "profile.txt"
        cmd = [spy, "record", "-p", str(pid), "-d", f"{seconds:g}", "-r", "200", "-f", "raw", "-o", str(out), "--nonblocking", "--threads", "--full-filenames"]
        spy_proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        load = threading.Thread(target=drive, args=(server.url + path, bodies, concurrency, seconds + 1.0))
        load.start()
        log, _ = spy_proc.communicate()
        load.join()
        if spy_proc.returncode != 0 or not out.exists():
            return f"## Where the time goes\n\npy-spy failed ({spy_proc.returncode}): `{log.strip()[-300:]}`"
        total, by_cat, by_leaf = summarize(out.read_text())
    lines = [
        "## Where the time goes",
        "",
        f"`py-spy record` at 200 Hz on (a)'s worker for {seconds:g} s while {concurrency} connections send `{path}` requests "
        f"(first scenario's bodies): {total} samples of busy threads (the event loop and the model thread), filed under the "
        "innermost frame that says what the code does (`loadtests/profile.py`).",
        "",
        "| where | share of samples |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {n / total:.1%} |" for name, n in by_cat] if total else ["| (no samples) | - |"]
    lines += ["", "Innermost functions with the most samples:", "", "| function | share |", "| --- | ---: |"]
    lines += [f"| `{leaf}` | {n / total:.1%} |" for leaf, n in by_leaf] if total else []
    return "\n".join(lines)
