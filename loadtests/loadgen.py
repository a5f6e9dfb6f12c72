"""The load tests' HTTP client: closed-loop HTTP/1.1 keep-alive connections on raw asyncio streams.

``closed_loop``: each of ``concurrency`` connections sends a request (pre-encoded by
``encode``), reads the whole answer, records its status and latency and sends the
next, for ``duration`` seconds. Every request has a client timeout; a socket error
or a timeout is counted and the connection opened again; ``Retry-After`` is read
(and, with ``backoff``, obeyed) and ``Connection: close`` honoured. Only the status
line and those headers are parsed, so the client costs far less CPU per request
than an HTTP client library (it shares the machine with the server under test).

Used by the soak (``loadtests.soak``), the overload test, the monitoring test's
traffic (``tools.monitoring``) and, as ``measure``, by the benchmark when ``wrk``
is not installed (``loadtests.wrk``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def encode(url: str, body: object) -> bytes:
    """A POST of ``body`` (JSON bytes as they are, anything else encoded as JSON) to ``url`` (``http://host:port/path``)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    host, port = _host_port(url)
    path = urlsplit(url).path or "/"
    return f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n".encode() + raw


@dataclass
class Tally:
    """What a closed loop saw: statuses, latencies by status, Retry-After on 429/503, failures."""

    statuses: Counter[int] = field(default_factory=Counter)
    latencies: dict[int, list[float]] = field(default_factory=dict)  # status -> seconds (0: socket errors and timeouts)
    without_retry_after: int = 0  # 429/503 answers missing the header
    socket_errors: Counter[str] = field(default_factory=Counter)  # exception name -> count (timeouts included)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.socket_errors.values())

    @property
    def ok(self) -> int:
        """Answers with status 200."""
        return self.statuses[200]

    @property
    def failures(self) -> int:
        return self.requests - self.ok

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
            async with asyncio.timeout(timeout):
                if conn is None:
                    conn = await asyncio.open_connection(host, port)
                conn[1].write(request)
                status, retry_after, close = await _answer(conn[0])
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
    """``concurrency`` connections to the server of ``url`` (its host and port; the requests carry their paths), each
    sending ``requests`` in turn (each starting elsewhere) for ``duration`` seconds, ``timeout`` seconds per request.

    ``backoff``: after an answer with ``Retry-After`` a connection waits that long, as a well-behaved client does.
    """
    host, port = _host_port(url)
    tally = Tally()
    start = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, requests, i, start + duration, timeout, tally, backoff) for i in range(concurrency)))
    tally.seconds = time.perf_counter() - start
    return tally


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


def measure(url: str, bodies: list[bytes], concurrency: int, duration: float, timeout_s: float = 60.0) -> Measurement:
    """``concurrency`` closed-loop connections POSTing ``bodies`` (JSON, in turn) to ``url`` for ``duration`` seconds."""
    requests = [encode(url, b) for b in bodies]
    cpu0 = time.process_time()
    t = asyncio.run(closed_loop(url, requests, concurrency, duration, timeout_s))
    cpu = time.process_time() - cpu0
    return Measurement("loadgen", concurrency, t.seconds, t.ok, t.failures, t.pct(0.5) * 1000, t.pct(0.99) * 1000, cpu)
