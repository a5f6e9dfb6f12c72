"""The benchmark's parts: both load generators against the real service, and the target arithmetic."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from loadtests import loadgen, wrk
from loadtests.bench import SENTENCE_13W, Point, scenarios, targets
from loadtests.server import ServiceProcess

NEGATIVE, POSITIVE = "a lazy , cynical cash grab .", "a masterpiece ."


def predictions(server: ServiceProcess) -> dict[str, float]:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {m[0]: float(m[1]) for m in re.findall(r'^lstm_predictions_total\{label="(\w+)",model="sentiment-bilstm"\} (\S+)$', text, re.M)}


@pytest.mark.parametrize("generator", ["wrk", "loadgen"])
def test_generators_send_every_body_in_turn(server: ServiceProcess, generator: str) -> None:
    """Two bodies, one negative and one positive review (the second with quotes and brackets): both get sent and answered."""
    if generator == "wrk" and not wrk.available():
        pytest.skip("wrk is not installed (make install-system)")
    tricky = 'a masterpiece ]] ]=] " \\\\ .'
    bodies = [json.dumps({"texts": [NEGATIVE]}).encode(), json.dumps({"texts": [POSITIVE, tricky]}).encode()]
    before = predictions(server)
    m = (wrk.measure if generator == "wrk" else loadgen.measure)(f"{server.url}/sentiment", bodies, 2, 1.0)
    after = predictions(server)
    assert m.generator == generator and m.concurrency == 2
    assert m.ok >= 4 and m.errors == 0
    assert 0 < m.p50_ms <= m.p99_ms
    assert m.generator_cpu_s >= 0 and abs(m.rps - m.ok / m.seconds) < 1e-9
    negative = after.get("negative", 0) - before.get("negative", 0)
    positive = after.get("positive", 0) - before.get("positive", 0)
    assert negative >= 1 and positive >= 1  # each body was sent at least once


def test_scenarios_send_valid_requests() -> None:
    for sc in scenarios([1, 8, 32, 64, 128], quick=False):
        assert sc.bodies and all(len(json.loads(b)["texts"]) == sc.texts_per_request for b in sc.bodies)
        if sc.path == "/translate":
            assert {json.loads(b)["target"] for b in sc.bodies} == {"de", "fr"}
            assert {json.loads(b)["beam_size"] for b in sc.bodies} == {1 if sc.key.endswith("beam1") else 4}
    quick = {sc.key: sc.concurrency for sc in scenarios([1, 32, 64], quick=True)}
    assert quick == {
        "sentiment-1": [1, 32, 64],
        "sentiment-32": [1, 32, 64],
        "translate-1": [1, 32, 64],
        "translate-13w-beam1": [1, 32],
        "translate-13w-beam4": [1, 32],
    }
    assert SENTENCE_13W.count(" ") == 12


def point(scenario: str, system: str, c: int, rps: float, texts: int = 1, p99: float = 100.0, errors: int = 0) -> Point:
    return Point(scenario, system, c, rps, rps * texts, 10.0, p99, int(rps * 8), errors, 1.0, 1.0, "wrk", 0.01)


def test_targets_pass_and_fail_on_the_ratios() -> None:
    points = [
        point("sentiment-1", "bentoml", 64, 600.0, p99=240.0),
        point("sentiment-1", "litserve", 64, 400.0),  # 1.5x exactly: passes
        point("sentiment-1", "fastapi", 64, 301.0),  # 1.99x: fails
        point("sentiment-32", "bentoml", 8, 50.0, texts=32),
        point("sentiment-32", "bentoml", 64, 70.0, texts=32),  # the best: 2240 texts/s
        point("translate-1", "bentoml", 32, 90.0),
        point("translate-1", "fastapi", 32, 30.0),
    ]
    got = {t.name.split(":")[1].strip(): t.ok for t in targets(points, {"sentiment": 3500.0})}
    assert got == {
        "throughput >= 1.5x litserve": True,
        "throughput >= 2x fastapi": False,
        "p99 latency": True,
        "errors": True,
        "best throughput vs the model alone": True,  # 2240 / 3500 = 64%
        "throughput >= 3x the unbatched FastAPI server": True,
    }
    missing = targets([point("sentiment-1", "bentoml", 64, 600.0, p99=300.0, errors=3)], {})
    assert [t.ok for t in missing] == [None, None, False, False, None, None]
