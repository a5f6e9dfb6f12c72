"""SLO gates for load tests, from the one SLO file the alert rules also read (``deploy/slo.yml``).

    slo = load_slo()                                   # SLO_FILE, else deploy/slo.yml
    violations = check(slo, [EndpointStats("sentiment", 1000, 2, 0.08, 0.2)])

A load test passes when, for every endpoint it called, the client-side p95 and
p99 latency are within the file's ``latency_seconds`` and, over all its
requests, failures / requests is at most ``max_error_ratio``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SLO_FILE = ROOT / "deploy" / "slo.yml"


@dataclass(frozen=True)
class SLO:
    source: Path
    max_error_ratio: float
    latency_seconds: dict[str, dict[str, float]]  # endpoint ("sentiment", "translate") -> {"p95": s, "p99": s}


@dataclass(frozen=True)
class EndpointStats:
    """What a load test measured for one endpoint (latencies in seconds)."""

    endpoint: str
    requests: int
    failures: int
    p95: float
    p99: float


def load_slo(path: str | Path | None = None) -> SLO:
    """Read the SLO file: ``path``, else ``$SLO_FILE``, else ``deploy/slo.yml``."""
    path = Path(path or os.environ.get("SLO_FILE") or DEFAULT_SLO_FILE)
    raw = yaml.safe_load(path.read_text())
    latency = {endpoint: {q: float(v) for q, v in qs.items()} for endpoint, qs in raw["latency_seconds"].items()}
    return SLO(source=path, max_error_ratio=float(raw["max_error_ratio"]), latency_seconds=latency)


def check(slo: SLO, stats: list[EndpointStats]) -> list[str]:
    """The SLOs missed, one line each; an empty list means the load test passed."""
    missed = []
    for s in stats:
        if s.requests == 0:
            continue
        for q in ("p95", "p99"):
            limit = slo.latency_seconds.get(s.endpoint, {}).get(q)
            measured = getattr(s, q)
            if limit is not None and measured > limit:
                missed.append(f"{s.endpoint} {q} latency {measured * 1000:.0f} ms > SLO {limit * 1000:.0f} ms")
    requests = sum(s.requests for s in stats)
    failures = sum(s.failures for s in stats)
    if requests == 0:
        missed.append("no requests were made")
    elif failures / requests > slo.max_error_ratio:
        missed.append(f"failure ratio {failures / requests:.4f} ({failures} of {requests}) > SLO {slo.max_error_ratio}")
    return missed


def report(slo: SLO, stats: list[EndpointStats]) -> str:
    """A small table of measured values against the SLOs, for the end of a load test."""
    lines = ["SLO check (client side)", f"{'endpoint':<12}{'requests':>10}{'failures':>10}{'p95 ms':>10}{'SLO':>8}{'p99 ms':>10}{'SLO':>8}"]
    for s in stats:
        lim = slo.latency_seconds.get(s.endpoint, {})
        p95_slo = f"{lim['p95'] * 1000:.0f}" if "p95" in lim else "-"
        p99_slo = f"{lim['p99'] * 1000:.0f}" if "p99" in lim else "-"
        lines.append(f"{s.endpoint:<12}{s.requests:>10}{s.failures:>10}{s.p95 * 1000:>10.0f}{p95_slo:>8}{s.p99 * 1000:>10.0f}{p99_slo:>8}")
    missed = check(slo, stats)
    lines += [f"SLO MISSED: {m}" for m in missed] or [f"SLO met: every latency and the failure ratio are within {slo.source}"]
    return "\n".join(lines)
