"""Locust scenarios for the service, with the SLO gate of ``deploy/slo.yml``.

    make loadtest HOST=http://localhost:3000 USERS=32 DURATION=60s [SHAPE=ramp|step] [USER_CLASS=MixedUser]

Users (pick one or more by class name on the command line; ``make loadtest`` runs ``MixedUser``):

- ``SentimentUser``: ``POST /sentiment`` with 1 to 32 review sentences (mostly 1-4).
- ``TranslationUser``: ``POST /translate`` with 1 to 4 captions, en->de and en->fr
  mixed, beam sizes 1, 2, 4 (most often) and 8.
- ``MixedUser``: both, three sentiment requests for each translation.

Every request is checked: status 200 and one result per text, else it counts as a
failure. Users send back to back (no think time) unless ``WAIT_S`` gives a
maximum random pause. ``LOAD_SHAPE=ramp`` or ``step`` turns on a load shape
(``loadtests/shapes.py``) sized by ``-u`` and ``-t``.

At the end the per-endpoint p95/p99 latency and the failure ratio are checked
against the SLO file (``SLO_FILE``, default ``deploy/slo.yml``: the numbers the
alert rules use); Locust exits 1 when one is missed, and writes the check next
to its CSV report (``<csv prefix>_slo.txt``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from locust import FastHttpUser, LoadTestShape, between, constant, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests.shapes import SHAPES
from loadtests.slo import EndpointStats, check, load_slo, report
from loadtests.texts import CAPTIONS, REVIEWS

WAIT_S = float(os.environ.get("WAIT_S", "0"))
TEXT_COUNTS = [1] * 6 + [2, 3, 4, 8, 32]  # texts per sentiment request: mostly one, sometimes a page of them
BEAMS = [1, 1, 2, 4, 4, 4, 4, 8]  # beam sizes asked for: beam 4 (the default) most often


def _check(response: Any, n_texts: int) -> None:
    """Mark a response failed unless it is 200 with one result per text."""
    if response.status_code != 200:
        response.failure(f"HTTP {response.status_code}: {response.text[:200] if response.text else ''}")
        return
    try:
        body = response.json()
    except ValueError:
        response.failure("response is not JSON")
        return
    if not isinstance(body, list) or len(body) != n_texts:
        response.failure(f"expected {n_texts} results, got {body!r:.200}")


class _ServiceUser(FastHttpUser):
    abstract = True
    wait_time = between(0, WAIT_S) if WAIT_S > 0 else constant(0)

    def sentiment(self) -> None:
        texts = random.sample(REVIEWS, random.choice(TEXT_COUNTS))
        with self.client.post("/sentiment", json={"texts": texts}, catch_response=True) as r:
            _check(r, len(texts))

    def translate(self) -> None:
        texts = random.sample(CAPTIONS, random.randint(1, 4))
        body = {"texts": texts, "source": "en", "target": random.choice(["de", "fr"]), "beam_size": random.choice(BEAMS)}
        with self.client.post("/translate", json=body, catch_response=True) as r:
            _check(r, len(texts))


class SentimentUser(_ServiceUser):
    @task
    def classify(self) -> None:
        self.sentiment()


class TranslationUser(_ServiceUser):
    @task
    def translate_captions(self) -> None:
        self.translate()


class MixedUser(_ServiceUser):
    @task(3)
    def classify(self) -> None:
        self.sentiment()

    @task(1)
    def translate_captions(self) -> None:
        self.translate()


_SHAPE = os.environ.get("LOAD_SHAPE", "").strip().lower()
if _SHAPE not in ("", "none", *SHAPES):
    raise SystemExit(f"LOAD_SHAPE={_SHAPE!r}: choose one of {', '.join(SHAPES)} or none")


class LoadShape(LoadTestShape):
    """``LOAD_SHAPE``'s users over time (``loadtests/shapes.py``), peak ``-u``, length ``-t``, spawn rate ``-r``."""

    abstract = _SHAPE in ("", "none")  # Locust uses a shape class only when it is not abstract
    use_common_options = True  # -u, -r and -t reach the shape instead of being refused with it

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        opts = self.runner.environment.parsed_options
        peak = int(getattr(opts, "num_users", None) or 1)
        rate = float(getattr(opts, "spawn_rate", None) or peak)
        run_time = float(getattr(opts, "run_time", None) or 60)
        users = SHAPES[_SHAPE](self.get_run_time(), peak, run_time)
        return None if users is None else (users, rate)


def endpoint_stats(environment: Environment) -> list[EndpointStats]:
    """Per-endpoint requests, failures and latency percentiles (seconds) from Locust's statistics."""
    out = []
    for endpoint in ("sentiment", "translate"):
        entry = environment.stats.get(f"/{endpoint}", "POST")
        out.append(
            EndpointStats(
                endpoint,
                entry.num_requests,
                entry.num_failures,
                entry.get_response_time_percentile(0.95) / 1000 if entry.num_requests else 0.0,
                entry.get_response_time_percentile(0.99) / 1000 if entry.num_requests else 0.0,
            )
        )
    return out


@events.quitting.add_listener
def slo_gate(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master holds the merged statistics
    slo = load_slo()
    stats = endpoint_stats(environment)
    text = report(slo, stats)
    print(text, flush=True)
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        Path(f"{prefix}_slo.txt").write_text(text + "\n")
    environment.process_exit_code = 1 if check(slo, stats) else 0
