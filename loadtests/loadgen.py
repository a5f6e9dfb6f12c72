"""A small closed-loop HTTP/1.1 load generator on raw asyncio streams.

Each of ``concurrency`` connections sends one request, waits for the whole
response, records the latency and sends the next, for ``duration`` seconds.
Requests are pre-encoded and only the status line and ``Content-Length`` are
parsed, so the generator costs far less CPU per request than an HTTP client
library (it shares the machine with the server under test). ``measure`` is
the benchmark's fallback when ``wrk`` is not installed (``loadtests.wrk``).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Result:
    concurrency: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # successful requests, seconds
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != 200)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds

    def pct(self, q: float) -> float:
        """Latency percentile in milliseconds."""
        if not self.latencies:
            return float("nan")
        return statistics.quantiles(self.latencies, n=1000, method="inclusive")[int(q * 10) - 1] * 1000 if len(self.latencies) > 1 else self.latencies[0] * 1000

    def row(self) -> dict[str, float | int]:
        return {
            "concurrency": self.concurrency,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.pct(50), 2),
            "p99_ms": round(self.pct(99), 2),
            "errors": self.errors,
        }


def encode_post(host: str, port: int, path: str, body: object) -> bytes:
    raw = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
    return head.encode() + raw


async def _connection(host: str, port: int, request: bytes | list[bytes], stop: float, result: Result, first: int = 0) -> None:
    """One keep-alive connection; a list of requests is sent in turn, starting at ``first``."""
    requests = request if isinstance(request, list) else [request]
    i = first
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            status_line = await reader.readline()
            status = int(status_line.split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            elapsed = time.perf_counter() - t0
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == 200:
                result.latencies.append(elapsed)
    finally:
        writer.close()


async def run(host: str, port: int, request: bytes | list[bytes], concurrency: int, duration: float) -> Result:
    result = Result(concurrency, duration)
    start = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, request, start + duration, result, first=i) for i in range(concurrency)))
    result.seconds = time.perf_counter() - start
    return result


def load(host: str, port: int, path: str, body: object, concurrency: int, duration: float) -> Result:
    return asyncio.run(run(host, port, encode_post(host, port, path, body), concurrency, duration))


@dataclass(frozen=True)
class Measurement:
    """One load level, whichever generator drove it (this module or ``loadtests.wrk``)."""

    generator: str
    concurrency: int
    seconds: float
    ok: int  # 200 responses
    errors: int  # other statuses and socket errors
    p50_ms: float
    p99_ms: float
    generator_cpu_s: float  # CPU time the generator itself used

    @property
    def rps(self) -> float:
        return self.ok / self.seconds

    @property
    def generator_cores(self) -> float:
        return self.generator_cpu_s / self.seconds


def measure(url: str, bodies: list[bytes], concurrency: int, duration: float) -> Measurement:
    """``concurrency`` closed-loop connections POSTing ``bodies`` (JSON, in turn) to ``url`` for ``duration`` seconds."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: "
    requests = [f"{head}{len(b)}\r\n\r\n".encode() + b for b in bodies]
    cpu0 = time.process_time()
    r = asyncio.run(run(host, port, requests, concurrency, duration))
    cpu = time.process_time() - cpu0
    return Measurement("loadgen", concurrency, r.seconds, r.ok, r.errors, r.pct(50), r.pct(99), cpu)
