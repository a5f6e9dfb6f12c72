"""The benchmark's scenarios for continuous batching, and loads that run at the same time (used by ``loadtests.bench``).

    python -m loadtests.bench --only mixed,short,lengths,repeat --baseline-ref

Each scenario runs on this service (the working tree: each model its own
executor thread per worker, iteration-level continuous batching for the
translator) and on static batching (commit ``285678e``: one model call at a time
per worker shared by both models, a translation batch decodes until its longest
hypothesis ends), checked out by ``baseline_worktree`` as a ``git worktree``
under ``loadtests/results/`` (ignored by git) and served as the benchmark's (a*):

- ``mixed``: one-text sentiment (8 connections) beside 4-caption beam-4
  translation (8 connections), both at once; and each load alone.
- ``short``: one-caption greedy translations (4 connections) while 4
  connections send 32-caption beam-4 translations.
- ``lengths``: translations of 1, 4 and 16 captions at beams 1, 4 and 8 in
  turn, at 32 connections.
- ``repeat``: one-text sentiment at 64 connections, 5 runs against one running
  service and 5 runs each against a freshly started one.

Loads that run at the same time are separate ``wrk`` processes (the script of
``loadtests.wrk``) started together for the same duration (``together``); each
reports its own counts and latency percentiles, and its own CPU time
(``os.wait4``'s resource usage of that process).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests import loadgen, wrk
from loadtests.loadgen import Measurement
from loadtests.texts import CAPTIONS, REVIEWS

STATIC_BATCHING_REF = "285678e9308aab3f6734a9bc68215769ccf112d9"  # "static batching": the before of the before/after
GROUPS = ("mixed", "short", "lengths", "repeat")
MAX_TRANSLATE_WORK = 32000  # the service's default MAX_TRANSLATE_WORK: characters of all texts x beam_size, per request
REPEAT_RUNS = 5
TARGETS = ("de", "fr")


def json_body(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def windows(pool: list[str], size: int, count: int) -> list[list[str]]:
    """``count`` lists of ``size`` consecutive texts of ``pool`` (wrapping), each starting further on."""
    return [[pool[(start * 7 + i) % len(pool)] for i in range(size)] for start in range(count)]


def translate_body(texts: list[str], target: str, beam: int) -> bytes:
    return json_body({"texts": texts, "source": "en", "target": target, "beam_size": beam})


def work(body: bytes) -> int:
    """What the service's work limit counts for a ``/translate`` body: characters of all texts x beam."""
    b = json.loads(body)
    return sum(len(t) for t in b["texts"]) * int(b.get("beam_size", 4))


@dataclass(frozen=True)
class Load:
    """One closed-loop load: ``concurrency`` connections POSTing ``bodies`` in turn to ``path``; its points get ``key``."""

    key: str
    path: str
    bodies: list[bytes]
    concurrency: int

    @property
    def texts_per_request(self) -> float:
        """Mean texts per body: bodies go out in turn, so per answered request on average (over a long enough window)."""
        return sum(len(json.loads(b)["texts"]) for b in self.bodies) / len(self.bodies)

    def heaviest(self) -> bytes:
        return max(self.bodies, key=work) if self.path == "/translate" else max(self.bodies, key=len)


def sentiment_bodies() -> list[bytes]:
    return [json_body({"texts": [t]}) for t in REVIEWS]


def captions_bodies(size: int, beam: int, count: int) -> list[bytes]:
    """``count`` bodies of ``size`` captions at ``beam``, en->de and en->fr in turn."""
    return [translate_body(w, TARGETS[i % 2], beam) for i, w in enumerate(windows(CAPTIONS, size, count))]


def lengths_bodies() -> list[bytes]:
    """1, 4 and 16 captions at beams 1, 4 and 8, every pair, en->de and en->fr each (18 bodies, consecutive ones differ)."""
    pairs = list(itertools.product((1, 4, 16), (1, 4, 8)))
    out = []
    for k in range(2 * len(pairs)):  # 9 pairs and 2 targets: k % 9, k % 2 meet every (pair, target) once
        size, beam = pairs[k % len(pairs)]
        texts = [CAPTIONS[(k * 7 + i) % len(CAPTIONS)] for i in range(size)]
        out.append(translate_body(texts, TARGETS[k % 2], beam))
    return out


def steps(group: str) -> list[list[Load]]:
    """The loads of a scenario group: a step's loads run at the same time, the steps one after the other."""
    if group == "mixed":

        def sentiment(key: str) -> Load:
            return Load(key, "/sentiment", sentiment_bodies(), 8)

        def translation(key: str) -> Load:
            return Load(key, "/translate", captions_bodies(4, 4, 16), 8)

        return [
            [sentiment("mixed-sentiment-alone")],
            [translation("mixed-translate-alone")],
            [sentiment("mixed-sentiment-beside"), translation("mixed-translate-beside")],
        ]
    if group == "short":
        short = [translate_body([c], TARGETS[i % 2], 1) for i, c in enumerate(CAPTIONS)]
        return [[Load("short-behind-long-short", "/translate", short, 4), Load("short-behind-long-long", "/translate", captions_bodies(32, 4, 8), 4)]]
    if group == "lengths":
        return [[Load("lengths", "/translate", lengths_bodies(), 32)]]
    if group == "repeat":
        return [[Load("repeat-running", "/sentiment", sentiment_bodies(), 64)], [Load("repeat-restarted", "/sentiment", sentiment_bodies(), 64)]]
    raise ValueError(f"unknown scenario group {group!r}")


def all_loads() -> list[Load]:
    return [load for g in GROUPS for step in steps(g) for load in step]


# ---------------------------------------------------------------- loads at the same time


def _wrk_together(runs: list[tuple[str, list[bytes], int]], duration: float, timeout_s: float) -> list[Measurement]:
    with tempfile.TemporaryDirectory() as tmp:
        procs: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
        try:
            scripts = []
            for i, (url, bodies, _) in enumerate(runs):  # every script first: the processes then start within milliseconds
                scripts.append(Path(tmp) / f"post{i}.lua")
                scripts[-1].write_text(wrk.script(url, bodies))
            for i, (url, _, concurrency) in enumerate(runs):
                out, err = Path(tmp) / f"out{i}", Path(tmp) / f"err{i}"
                with out.open("wb") as o, err.open("wb") as e:
                    procs.append((subprocess.Popen(wrk.command(url, concurrency, duration, timeout_s, scripts[i]), stdout=o, stderr=e), out, err))
            results = []
            for (proc, out, err), (_, _, concurrency) in zip(procs, runs, strict=True):
                _, status, usage = os.wait4(proc.pid, 0)  # this process's own CPU time (RUSAGE_CHILDREN would mix the runs)
                proc.returncode = os.waitstatus_to_exitcode(status)
                results.append(wrk.parse(out.read_text(), err.read_text(), proc.returncode, concurrency, usage.ru_utime + usage.ru_stime))
            return results
        finally:
            for proc, _, _ in procs:
                if proc.returncode is None:
                    proc.kill()
                    proc.wait()


def _loadgen_together(runs: list[tuple[str, list[bytes], int]], duration: float, timeout_s: float) -> list[Measurement]:
    """Without wrk: the asyncio generator, one thread each (they share this process's CPU time, so each reports all of it)."""
    results: list[Measurement | BaseException | None] = [None] * len(runs)

    def one(i: int) -> None:
        try:
            results[i] = loadgen.measure(*runs[i], duration, timeout_s)
        except BaseException as e:  # re-raised below, in the caller's thread
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(runs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = []
    for r in results:
        if not isinstance(r, Measurement):
            raise RuntimeError(f"load generator failed: {r!r}")
        out.append(r)
    return out


def drive(url: str, bodies: list[bytes], concurrency: int, duration: float, timeout_s: float = 60.0) -> Measurement:
    """One closed-loop load: ``concurrency`` connections POSTing ``bodies`` in turn to ``url``, with ``wrk`` (else ``loadtests.loadgen``)."""
    return (wrk.measure if wrk.available() else loadgen.measure)(url, bodies, concurrency, duration, timeout_s)


def together(runs: list[tuple[str, list[bytes], int]], duration: float, timeout_s: float = 60.0) -> list[Measurement]:
    """Each ``(url, bodies, connections)`` driven by its own generator, all started at once for ``duration`` seconds."""
    if len(runs) == 1:
        return [drive(*runs[0], duration, timeout_s)]
    return (_wrk_together if wrk.available() else _loadgen_together)(runs, duration, timeout_s)


# ---------------------------------------------------------------- the baseline checkout


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


def baseline_worktree(ref: str, root: Path, parent: Path) -> tuple[Path, str]:
    """A clean checkout of ``ref`` at ``parent/baseline-<sha>`` (``git worktree``, made once and reused): (its path, the full sha)."""
    try:
        sha = _git(root, "rev-parse", "--verify", f"{ref}^{{commit}}")
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"--baseline-ref {ref}: not a commit of {root}: {e.stderr.strip()}") from e
    path = parent / f"baseline-{sha[:12]}"
    if (path / ".git").exists():
        if _git(path, "rev-parse", "HEAD") == sha and not _git(path, "status", "--porcelain", "--untracked-files=no"):
            return path, sha
        raise SystemExit(f"{path} is not a clean checkout of {sha}: remove it (git worktree remove --force {path}) and rerun")
    parent.mkdir(parents=True, exist_ok=True)
    _git(root, "worktree", "prune")  # forget a worktree folder deleted by hand, so its path can be used again
    try:
        _git(root, "worktree", "add", "--detach", str(path), sha)
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"git worktree add {path} {sha} failed: {e.stderr.strip()}") from e
    return path, sha
