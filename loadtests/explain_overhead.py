"""Do requests without ``explain``/``alignment`` pay for them? The code before the flags against this tree, in one run.

    python -m loadtests.explain_overhead [--baseline 002eb9b] [--rounds 5] [--out docs/explain_overhead.md]

Starts two services side by side (``TORCH_THREADS=1`` each, one worker): the
source tree of ``--baseline`` (default: the last commit before explanations),
extracted with ``git archive``, and this working tree. It checks that they differ
as expected (the baseline answers ``explain: true`` with 400), then sends both the
same plain requests, round by round, alternating which goes first, so that drift
in the machine's load hits both alike. Reported per workload: median latency of
each and the ratio this tree / baseline (1.00 = no change), and for the
concurrent workload the throughput ratio. A second table gives the price of the
flags themselves (this tree only): a request with the flag against the same
request without it.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import io
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from loadtests.server import ROOT, ServiceProcess

BASELINE = "002eb9b"  # the last commit before explanations and alignments
REVIEW = "I liked this product at first. But the battery dies after an hour, the screen scratches easily and the support never answered my emails."
SHORT = "a gorgeous, witty, seductive movie."
CAPTION = "A man in a blue shirt is riding a bike."
REVIEWS = [SHORT, "the plot is nothing but boilerplate clichés", REVIEW, "not bad at all, a decent film"] * 8  # 32 texts


@dataclass(frozen=True)
class Workload:
    name: str
    route: str
    body: dict[str, Any]
    requests: int  # per round and server
    clients: int = 1


PLAIN = [
    Workload("/sentiment, 1 text", "/sentiment", {"texts": [SHORT]}, 120),
    Workload("/sentiment, 32 texts", "/sentiment", {"texts": REVIEWS}, 30),
    Workload("/translate, 1 sentence, greedy", "/translate", {"texts": [CAPTION], "target": "de", "beam_size": 1}, 40),
    Workload("/translate, 1 sentence, beam 4", "/translate", {"texts": [CAPTION], "target": "de", "beam_size": 4}, 20),
    Workload("/sentiment, 1 text, 16 clients", "/sentiment", {"texts": [SHORT]}, 320, clients=16),
]
FLAGGED = [
    (Workload("/sentiment, the 28-token review", "/sentiment", {"texts": [REVIEW]}, 20), {"explain": True}),
    (Workload("/sentiment, 8-token text", "/sentiment", {"texts": [SHORT]}, 40), {"explain": True}),
    (Workload("/translate, 1 sentence, beam 4", "/translate", {"texts": [CAPTION], "target": "de", "beam_size": 4}, 20), {"alignment": True}),
]


def extract(ref: str, into: Path) -> Path:
    """The source tree of commit ``ref`` (with its artifacts) under ``into``."""
    tar = subprocess.run(["git", "archive", "--format=tar", ref], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    return into


def run(url: str, w: Workload) -> tuple[list[float], float]:
    """Latencies (s) of ``w.requests`` requests from ``w.clients`` closed-loop clients, and the wall time.

    A fresh connection pool per run: a keep-alive connection left idle while the other server
    was measured may have been closed by now.
    """
    client = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=w.clients))

    def one(_: int) -> float:
        start = time.perf_counter()
        r = client.post(url + w.route, json=w.body)
        elapsed = time.perf_counter() - start
        if r.status_code != 200:
            raise RuntimeError(f"{w.name}: {r.status_code} {r.text[:200]}")
        return elapsed

    with client:
        start = time.perf_counter()
        if w.clients == 1:
            lat = [one(i) for i in range(w.requests)]
        else:
            with cf.ThreadPoolExecutor(w.clients) as pool:
                lat = list(pool.map(one, range(w.requests)))
        return lat, time.perf_counter() - start


def compare(
    a: tuple[str, str], b: tuple[str, str], workloads: list[Workload], rounds: int, tweak: Callable[[str, Workload], Workload]
) -> dict[str, dict[str, Any]]:
    """Latencies and throughput of each workload on systems ``a`` and ``b`` (name, url), interleaved over ``rounds``."""
    out: dict[str, dict[str, Any]] = {w.name: {a[0]: {"lat": [], "wall": 0.0, "n": 0}, b[0]: {"lat": [], "wall": 0.0, "n": 0}} for w in workloads}
    for r in range(rounds):
        order = (a, b) if r % 2 == 0 else (b, a)
        for w in workloads:
            for name, url in order:
                lat, wall = run(url, tweak(name, w))
                rec = out[w.name][name]
                rec["lat"] += lat
                rec["wall"] += wall
                rec["n"] += len(lat)
        print(f"round {r + 1}/{rounds} done", flush=True)
    return out


def median_ms(xs: list[float]) -> float:
    return 1000 * statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default=BASELINE, help="git commit without the flags (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, help="also write the tables (Markdown) here")
    args = ap.parse_args()

    logs = ROOT / "loadtests" / "results"
    with tempfile.TemporaryDirectory(prefix="baseline-") as tmp:
        tree = extract(args.baseline, Path(tmp))
        base = ServiceProcess(logs / "explain-overhead-baseline.log", root=tree, TORCH_THREADS="1")
        this = ServiceProcess(logs / "explain-overhead-this.log", TORCH_THREADS="1")
        try:
            base.wait_ready()
            this.wait_ready()
            probe = {"texts": [SHORT], "explain": True}
            assert httpx.post(base.url + "/sentiment", json=probe).status_code == 400, "the baseline already knows explain"
            assert "explanation" in httpx.post(this.url + "/sentiment", json=probe).json()[0], "this tree does not explain"
            for url in (base.url, this.url):  # warm-up, not measured
                for w in PLAIN:
                    run(url, Workload(w.name, w.route, w.body, 5, w.clients))
            plain = compare(("baseline", base.url), ("this", this.url), PLAIN, args.rounds, lambda _, w: w)
            flags = {w.name: f for w, f in FLAGGED}
            with_flag = compare(
                ("without", this.url),
                ("with", this.url),
                [w for w, _ in FLAGGED],
                args.rounds,
                lambda name, w: Workload(w.name, w.route, {**w.body, **flags[w.name]}, w.requests) if name == "with" else w,
            )
        finally:
            base.stop()
            this.stop()

    lines = [
        f"Plain requests (no flags): baseline `{args.baseline}` against this tree, {args.rounds} interleaved rounds, "
        "1 worker, `TORCH_THREADS=1` each, both services on the same machine.",
        "",
        "| workload | baseline: median | this tree: median | latency ratio | throughput ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for w in PLAIN:
        b, t = plain[w.name]["baseline"], plain[w.name]["this"]
        thr = (t["n"] / t["wall"]) / (b["n"] / b["wall"])
        mb, mt = median_ms(b["lat"]), median_ms(t["lat"])
        lines.append(f"| {w.name} | {mb:.1f} ms | {mt:.1f} ms | {mt / mb:.2f} | {thr:.2f} |")
    lines += ["", "The price of the flags (this tree, the same request with and without the flag):", ""]
    lines += ["| request | flag | without: median | with: median | ratio |", "| --- | --- | ---: | ---: | ---: |"]
    for w, f in FLAGGED:
        wo, wi = with_flag[w.name]["without"], with_flag[w.name]["with"]
        ratio = median_ms(wi["lat"]) / median_ms(wo["lat"])
        lines.append(f"| {w.name} | `{next(iter(f))}` | {median_ms(wo['lat']):.1f} ms | {median_ms(wi['lat']):.1f} ms | {ratio:.1f}× |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
