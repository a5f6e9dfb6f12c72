"""Graceful shutdown of the real server: SIGTERM to the main process, as ``docker stop`` and Kubernetes send it.

``bentoml serve`` is a circus arbiter with uvicorn workers. On SIGTERM the
arbiter stops its workers; each worker stops accepting, lets every request it
holds finish (BentoML waits for them without a time limit; our deadline,
``REQUEST_TIMEOUT_S``, bounds them), and exits; then the arbiter exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import psutil

from .conftest import assert_all_translated, metric, start_server, translations_in_flight

IN_FLIGHT = 6
GRACE_S = 30  # the termination grace period of deploy/ (compose stop_grace_period; Kubernetes less its preStop)


def listening(port: int) -> list[int | None]:
    """The processes with a TCP socket listening on ``port`` (each worker: it accepts on its own SO_REUSEPORT socket)."""
    return [c.pid for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port]


def wait_until_nothing_listens(port: int) -> None:
    deadline = time.monotonic() + GRACE_S
    while sockets := listening(port):
        assert time.monotonic() < deadline, f"still listening {GRACE_S} s after SIGTERM: {sockets}"
        time.sleep(0.05)


def test_sigterm_drains_in_flight_requests_and_exits_0() -> None:
    server = start_server("shutdown")
    try:

        def in_progress() -> float:
            return metric(server, "bentoml_service_request_in_progress", endpoint="/translate")

        threads, answers = translations_in_flight(server.url, IN_FLIGHT, in_progress, 60)
        assert in_progress() == IN_FLIGHT
        assert not answers, "the requests finished before SIGTERM: make them slower"

        assert listening(server.port)
        sigterm = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)  # the main process only, as a container runtime does
        wait_until_nothing_listens(server.port)  # every worker has stopped accepting: the drain has begun
        assert len(answers) < IN_FLIGHT, "the workers stopped listening only once every request was answered"
        try:  # a request arriving during the drain is not served
            late = httpx.post(f"{server.url}/sentiment", json={"texts": ["late"]}, timeout=2)
            raise AssertionError(f"a request was answered after SIGTERM: {late.status_code}")
        except httpx.TransportError:
            pass
        for t in threads:
            t.join(60)
        try:
            code = server.proc.wait(GRACE_S)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - sigterm
        assert_all_translated(answers, IN_FLIGHT)
        assert code == 0, f"exit status {code} after {took:.1f} s"
        assert took < GRACE_S
        log = server.log.read_text()
        assert "Traceback" not in log and "[ERROR]" not in log, log[-3000:]
    finally:
        server.stop()
