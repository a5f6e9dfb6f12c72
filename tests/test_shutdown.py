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
import threading
import time

import httpx

from .conftest import metric, start_server

CAPTIONS = [
    "A man in a blue shirt is riding a bike down the street while a woman with a red umbrella watches him.",
    "Two young children are playing with a brown dog in the snow next to a wooden fence.",
    "A group of people are standing in front of a large building waiting for the bus to arrive.",
    "A woman in a black dress is singing on a stage while a man plays the guitar behind her.",
]
IN_FLIGHT = 6
GRACE_S = 30  # the termination grace period of deploy/ (compose stop_grace_period; Kubernetes less its preStop)


def test_sigterm_drains_in_flight_requests_and_exits_0() -> None:
    server = start_server("shutdown")
    try:
        texts = CAPTIONS * 2
        body = {"texts": texts, "target": "de", "beam_size": 8}  # seconds of model time for all of them together
        answers: list[httpx.Response | Exception] = []

        def one() -> None:
            try:
                answers.append(httpx.post(f"{server.url}/translate", json=body, timeout=60))
            except Exception as e:  # kept for the assertion
                answers.append(e)

        threads = [threading.Thread(target=one) for _ in range(IN_FLIGHT)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while metric(server, "bentoml_service_request_in_progress", endpoint="/translate") < IN_FLIGHT and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metric(server, "bentoml_service_request_in_progress", endpoint="/translate") == IN_FLIGHT
        assert not answers, "the requests finished before SIGTERM: make them slower"

        sigterm = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)  # the main process only, as a container runtime does
        time.sleep(0.5)
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
        assert [a.status_code if isinstance(a, httpx.Response) else repr(a) for a in answers] == [200] * IN_FLIGHT
        assert all(len(a.json()) == len(texts) for a in answers if isinstance(a, httpx.Response))
        assert code == 0, f"exit status {code} after {took:.1f} s"
        assert took < GRACE_S
        log = server.log.read_text()
        assert "Traceback" not in log and "[ERROR]" not in log, log[-3000:]
    finally:
        server.stop()
