"""A short soak of the real server (``make soak`` runs the same for 30 minutes): no errors, resident memory stable.

Longer: ``SOAK_SECONDS=600 pytest tests/test_soak.py`` (warm-up: a third of it, at most 120 s).
"""

from __future__ import annotations

import os

from loadtests.soak import soak

from .conftest import Server

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "30"))
MAX_GROWTH = 0.05


def test_soak_without_errors_or_memory_growth(server: Server) -> None:
    result = soak(server.url, server.proc.pid, duration=SOAK_SECONDS, warmup=min(120.0, SOAK_SECONDS / 3), concurrency=4, sample=1.0)
    report = result.report()
    print("\nsoak:", report)
    assert result.tally.requests > 50, report
    assert result.tally.failures == 0, report
    assert result.growth <= MAX_GROWTH, report
    assert result.passed(MAX_GROWTH)
