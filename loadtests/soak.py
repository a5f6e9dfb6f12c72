"""The soak: ordinary load for a long time (the client of ``loadtests.loadgen``), with the server's resident memory.

    python -m loadtests.soak                         # `make soak`: 30 minutes against a fresh server
    python -m loadtests.soak --duration 60 --warmup 20    # a minute; memory baseline after 20 s
    python -m loadtests.soak --url http://127.0.0.1:3000 --pid 1234   # a running server (memory of the pid's process tree)

``concurrency`` closed-loop keep-alive connections send a fixed mix of
ordinary requests (one-text and eight-text sentiment, one-caption
translations greedy and beam 4, en->de and en->fr) for ``duration`` seconds;
every request has a client timeout. Memory is the resident set (RSS) of the
server's process tree (BentoML's arbiter and its workers), sampled every
``--sample`` seconds; growth is the last sample over the first one taken
after ``--warmup`` seconds of load.

Exit status 1 when any request failed (not 200, a socket error, a timeout) or
memory grew more than ``--max-growth`` (5%). The report is printed as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from loadtests.loadgen import Tally, closed_loop, encode
from loadtests.proctree import tree_usage
from loadtests.texts import CAPTIONS, REVIEWS


def ordinary_requests(url: str) -> list[bytes]:
    """The soak's mix for the server at ``url``: what normal clients send, cycled in this order."""
    url = url.rstrip("/")
    out = []
    for i in range(8):
        out.append(encode(f"{url}/sentiment", {"texts": [REVIEWS[i % len(REVIEWS)]]}))
        out.append(encode(f"{url}/sentiment", {"texts": [REVIEWS[(i + k) % len(REVIEWS)] for k in range(8)]}))
        target, beam = ("de", "fr")[i % 2], (1, 4)[(i // 2) % 2]
        out.append(encode(f"{url}/translate", {"texts": [CAPTIONS[i % len(CAPTIONS)]], "target": target, "beam_size": beam}))
    return out


@dataclass
class SoakResult:
    tally: Tally
    samples: list[tuple[float, int]]  # (seconds since the start of the load, RSS bytes of the server's process tree)
    warmup: float

    @property
    def after_warmup(self) -> list[int]:
        return [rss for t, rss in self.samples if t >= self.warmup]

    @property
    def growth(self) -> float:
        """RSS at the end over RSS right after warm-up, minus 1."""
        rss = self.after_warmup
        return rss[-1] / rss[0] - 1

    def passed(self, max_growth: float) -> bool:
        return self.tally.requests > 0 and self.tally.failures == 0 and self.growth <= max_growth

    def report(self) -> dict[str, object]:
        rss = self.after_warmup
        return {
            **self.tally.summary(),
            "rss_mib_at_start": round(self.samples[0][1] / 2**20, 1),
            "rss_mib_after_warmup": round(rss[0] / 2**20, 1),
            "rss_mib_at_end": round(rss[-1] / 2**20, 1),
            "rss_mib_max_after_warmup": round(max(rss) / 2**20, 1),
            "rss_growth_after_warmup": round(self.growth, 4),
            "samples": len(self.samples),
        }


async def _soak(url: str, pid: int, duration: float, warmup: float, concurrency: int, sample: float, timeout: float) -> SoakResult:
    requests = ordinary_requests(url)
    samples: list[tuple[float, int]] = []
    start = time.perf_counter()

    async def sampler() -> None:
        while time.perf_counter() - start < duration:
            samples.append((round(time.perf_counter() - start, 1), tree_usage(pid).rss_bytes))
            await asyncio.sleep(sample)

    task = asyncio.create_task(sampler())
    tally = await closed_loop(url, requests, concurrency, duration, timeout)
    task.cancel()
    samples.append((round(time.perf_counter() - start, 1), tree_usage(pid).rss_bytes))
    return SoakResult(tally, samples, warmup)


def soak(url: str, pid: int, duration: float, warmup: float = 60.0, concurrency: int = 8, sample: float = 5.0, timeout: float = 10.0) -> SoakResult:
    """The ordinary mix against ``url`` (served by the process tree of ``pid``) for ``duration`` seconds, memory sampled."""
    if warmup >= duration:
        raise ValueError("warmup must be shorter than duration")
    return asyncio.run(_soak(url, pid, duration, warmup, concurrency, sample, timeout))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=1800.0, help="seconds of load (default 1800 = 30 minutes)")
    ap.add_argument("--warmup", type=float, help="seconds of load before the memory baseline (default: a tenth of --duration, at most 120)")
    ap.add_argument("--concurrency", type=int, default=8, help="closed-loop connections (default 8)")
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between memory samples")
    ap.add_argument("--timeout", type=float, default=10.0, help="client timeout per request, seconds")
    ap.add_argument("--max-growth", type=float, default=0.05, help="largest allowed RSS growth after warm-up (default 0.05 = 5%%)")
    ap.add_argument("--url", help="a running server (default: start one with the shipped models)")
    ap.add_argument("--pid", type=int, help="with --url: the server's main process, for its memory")
    ap.add_argument("--out", type=Path, help="also write the report (JSON) here")
    args = ap.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else min(120.0, args.duration / 10)

    server = None
    exit_status = None
    if args.url:
        if args.pid is None:
            ap.error("--url needs --pid (the server process whose memory is watched)")
        url, pid = args.url, args.pid
    else:
        from loadtests.server import ROOT, ServiceProcess

        server = ServiceProcess(ROOT / "test-artifacts" / "server-soak.log").wait_ready()
        url, pid = server.url, server.proc.pid
    try:
        result = soak(url, pid, args.duration, warmup, args.concurrency, args.sample, args.timeout)
    finally:
        if server is not None:
            exit_status = server.stop()
    passed = result.passed(args.max_growth)
    report = {**result.report(), "max_growth": args.max_growth, "server_exit_status": exit_status, "passed": passed}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
