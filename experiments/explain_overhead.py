"""Do requests without ``explain``/``alignment`` pay for them? The code before the flags against this tree, in one run.

    python -m experiments.explain_overhead [--baseline 002eb9b] [--rounds 5] [--out docs/explain_overhead.md]

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

HTTP latencies on a busy machine are noisy, so a third table times the same
plain requests without HTTP and BentoML, in this process, request by request in
turns: request JSON -> request model -> the model call as the service makes it
-> response JSON, with the baseline's ``service/inference.py`` and
``service/schemas.py`` loaded from its tree around the same TorchScript programs
(``TORCH_THREADS=1``). Both must give the same answers.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import importlib.util
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
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


IN_PROCESS_WORKLOADS = [
    ("sentiment, 1 text", "sentiment", {"texts": [SHORT]}, 1000),
    ("sentiment, 32 texts", "sentiment", {"texts": REVIEWS}, 150),
    ("translate, 1 sentence, greedy", "translate", {"texts": [CAPTION], "target": "de", "beam_size": 1}, 120),
]


def load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def request_paths(tree: Path) -> dict[str, dict[str, Callable[[str], str]]]:
    """Per system, the plain request path without HTTP: request JSON -> request model -> model call as the service makes it -> response JSON.

    The baseline's ``service/inference.py`` and ``service/schemas.py`` are loaded from ``tree`` under other
    names, around the same loaded TorchScript programs, so the two differ only in their Python code.
    """
    import torch
    from pydantic import RootModel

    from service import inference, schemas

    torch.set_num_threads(1)
    old_inference = load_module("baseline_inference", tree / "service" / "inference.py")
    old_schemas = load_module("baseline_schemas", tree / "service" / "schemas.py")
    clf, tm = inference.load_sentiment(), inference.load_translation_model()
    old_clf = old_inference.SentimentClassifier(clf.program, clf.vocab, clf.meta, clf.sha256, clf.device)
    old_tm = old_inference.TranslationModel(tm.program, tm.tok, tm.meta, tm.sha256, tm.device)

    def paths(sch: Any, c: Any, t: Any, flags: bool) -> dict[str, Callable[[str], str]]:
        s_out, t_out = RootModel[list[sch.SentimentResult]], RootModel[list[sch.TranslateResult]]  # type: ignore[name-defined]

        def sentiment(body: str) -> str:
            req = sch.SentimentRequest.model_validate_json(body)
            res, _ = c.run(req.texts, [req.explain for _ in req.texts]) if flags else c.run(req.texts)  # as service.py calls it
            return str(s_out(res).model_dump_json())

        def translate(body: str) -> str:
            req = sch.TranslateRequest.model_validate_json(body)
            targets = [req.target for _ in req.texts]
            args = (req.texts, targets, req.beam_size, [req.alignment for _ in req.texts]) if flags else (req.texts, targets, req.beam_size)
            return str(t_out(t.run(*args)[0]).model_dump_json())

        return {"sentiment": sentiment, "translate": translate}

    return {"baseline": paths(old_schemas, old_clf, old_tm, False), "this": paths(schemas, clf, tm, True)}


def in_process(tree: Path) -> dict[str, dict[str, list[float]]]:
    """Seconds per plain request without HTTP, baseline and this tree alternating request by request."""
    systems = request_paths(tree)
    out: dict[str, dict[str, list[float]]] = {name: {} for name in systems}
    for name, route, body, n in IN_PROCESS_WORKLOADS:
        raw = json.dumps(body)
        answers = {system: fns[route](raw) for system, fns in systems.items()}
        assert answers["baseline"] == answers["this"], f"{name}: the answers differ"
        for system in systems:
            out[system][name] = []
        for i in range(n + 20):
            for system in ("baseline", "this") if i % 2 == 0 else ("this", "baseline"):
                start = time.perf_counter()
                systems[system][route](raw)
                if i >= 20:  # warm-up
                    out[system][name].append(time.perf_counter() - start)
        print(f"in-process: {name} done", flush=True)
    return out


def median_ms(xs: list[float]) -> float:
    return 1000 * statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default=BASELINE, help="git commit without the flags (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, help="also write the tables (Markdown) here")
    args = ap.parse_args()

    logs = ROOT / "test-artifacts"
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
        local = in_process(tree)

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
    lines += ["", "The same plain requests without HTTP (JSON in, model call, JSON out), both code paths alternating request by request:", ""]
    lines += ["| workload | baseline: median | this tree: median | ratio |", "| --- | ---: | ---: | ---: |"]
    for name, *_ in IN_PROCESS_WORKLOADS:
        mb, mt = median_ms(local["baseline"][name]), median_ms(local["this"][name])
        lines.append(f"| {name} | {mb:.2f} ms | {mt:.2f} ms | {mt / mb:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
