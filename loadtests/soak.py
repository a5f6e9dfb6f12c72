"""Soak and burst load on raw asyncio, with the server's resident memory.

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
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from loadtests.texts import CAPTIONS, REVIEWS


@dataclass
class Tally:
    """What a closed loop saw: statuses, latencies by status, Retry-After on 429/503, failures."""

    statuses: Counter[int] = field(default_factory=Counter)
    latencies: dict[int, list[float]] = field(default_factory=dict)  # status -> seconds
    without_retry_after: int = 0  # 429/503 answers missing the header
    socket_errors: Counter[str] = field(default_factory=Counter)  # exception name -> count (timeouts included)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.socket_errors.values())

    @property
    def failures(self) -> int:
        return self.requests - self.statuses[200]

    def pct(self, q: float, status: int = 200) -> float:
        """Latency quantile ``q`` (0..1) of the answers with ``status``, in seconds (nan when none)."""
        xs = sorted(self.latencies.get(status, []))
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    def summary(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 1),
            "statuses": dict(sorted(self.statuses.items())),
            "socket_errors": dict(self.socket_errors),
            "without_retry_after": self.without_retry_after,
            "p50_ms_200": round(self.pct(0.5) * 1000, 1),
            "p99_ms_200": round(self.pct(0.99) * 1000, 1),
            "max_ms_any": round(max((max(v) for v in self.latencies.values() if v), default=0.0) * 1000, 1),
        }


def encode(host: str, port: int, path: str, body: object) -> bytes:
    raw = json.dumps(body).encode()
    return f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n".encode() + raw


def ordinary_requests(host: str, port: int) -> list[bytes]:
    """The soak's mix: what normal clients send, cycled in this order."""
    out = []
    for i in range(8):
        out.append(encode(host, port, "/sentiment", {"texts": [REVIEWS[i % len(REVIEWS)]]}))
        out.append(encode(host, port, "/sentiment", {"texts": [REVIEWS[(i + k) % len(REVIEWS)] for k in range(8)]}))
        target, beam = ("de", "fr")[i % 2], (1, 4)[(i // 2) % 2]
        out.append(encode(host, port, "/translate", {"texts": [CAPTIONS[i % len(CAPTIONS)]], "target": target, "beam_size": beam}))
    return out


async def _answer(reader: asyncio.StreamReader) -> tuple[int, float | None, bool]:
    """Read one response: (status, Retry-After seconds or None, server closes the connection)."""
    status = int((await reader.readline()).split()[1])
    length, retry_after, close = 0, None, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"retry-after":
            retry_after = float(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    await reader.readexactly(length)
    return status, retry_after, close


async def _connection(host: str, port: int, requests: Sequence[bytes], first: int, stop: float, timeout: float, tally: Tally, backoff: bool) -> None:
    i = first
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while time.perf_counter() < stop:
        request = requests[i % len(requests)]
        i += 1
        t0 = time.perf_counter()
        try:
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            conn[1].write(request)
            status, retry_after, close = await asyncio.wait_for(_answer(conn[0]), timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            tally.socket_errors[type(e).__name__] += 1
            tally.latencies.setdefault(0, []).append(time.perf_counter() - t0)
            if conn is not None:
                conn[1].close()
            conn = None
            continue
        tally.statuses[status] += 1
        tally.latencies.setdefault(status, []).append(time.perf_counter() - t0)
        if status in (429, 503) and retry_after is None:
            tally.without_retry_after += 1
        if close:
            conn[1].close()
            conn = None
        if backoff and retry_after is not None:
            await asyncio.sleep(min(retry_after, max(0.0, stop - time.perf_counter())))
    if conn is not None:
        conn[1].close()


async def closed_loop(url: str, requests: Sequence[bytes], concurrency: int, duration: float, timeout: float = 10.0, backoff: bool = False) -> Tally:
    """``concurrency`` connections, each sending ``requests`` in turn (each starting elsewhere) for ``duration`` seconds.

    ``backoff``: after an answer with ``Retry-After`` a connection waits that long, as a well-behaved client does.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tally = Tally()
    start = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, requests, i, start + duration, timeout, tally, backoff) for i in range(concurrency)))
    tally.seconds = time.perf_counter() - start
    return tally


def tree_rss(pid: int) -> int:
    """Resident bytes of process ``pid`` and all its descendants."""
    root = psutil.Process(pid)
    total = 0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


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
    parts = urlsplit(url)
    requests = ordinary_requests(parts.hostname or "127.0.0.1", parts.port or 80)
    samples: list[tuple[float, int]] = []
    start = time.perf_counter()

    async def sampler() -> None:
        while time.perf_counter() - start < duration:
            samples.append((round(time.perf_counter() - start, 1), tree_rss(pid)))
            await asyncio.sleep(sample)

    task = asyncio.create_task(sampler())
    tally = await closed_loop(url, requests, concurrency, duration, timeout)
    task.cancel()
    samples.append((round(time.perf_counter() - start, 1), tree_rss(pid)))
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
