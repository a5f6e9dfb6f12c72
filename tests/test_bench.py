"""The benchmark's parts: both load generators against the real service, and the target arithmetic."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
from pathlib import Path
from typing import cast

import pytest

from loadtests import loadgen, mixed, openloop, wrk
from loadtests.bench import (
    SENTENCE_13W,
    OpenPoint,
    Point,
    System,
    continuous_section,
    continuous_targets,
    headroom,
    openloop_section,
    parse_peer,
    peer_layouts,
    peer_systems,
    scenarios,
    targets,
)
from loadtests.server import ServiceProcess

NEGATIVE, POSITIVE = "a lazy , cynical cash grab .", "a masterpiece ."


def predictions(server: ServiceProcess) -> dict[str, float]:
    return {label: server.metric("lstm_predictions_total", label=label, model="sentiment-bilstm") for label in ("negative", "positive")}


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
    assert after["negative"] - before["negative"] >= 1 and after["positive"] - before["positive"] >= 1  # each body was sent at least once


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


def test_targets_compare_with_each_peers_best_layout() -> None:
    points = [
        point("sentiment-1", "bentoml", 64, 600.0, p99=140.0),
        point("sentiment-1", "litserve-1x2", 64, 300.0),
        point("sentiment-1", "litserve-2x1", 64, 400.0),  # the best LitServe layout: 1.5x exactly, passes
        point("sentiment-1", "litserve-2x1-2api", 64, 350.0),
        point("sentiment-1", "fastapi-1x2", 64, 200.0),
        point("sentiment-1", "fastapi-2x1", 64, 301.0),  # the best FastAPI layout: 1.99x, fails
        point("sentiment-32", "bentoml", 8, 50.0, texts=32),
        point("sentiment-32", "bentoml", 64, 70.0, texts=32),  # the best: 2240 texts/s
        point("translate-1", "bentoml", 32, 90.0),
        point("translate-1", "litserve-1x2", 32, 61.0),  # 1.48x: fails
        point("translate-1", "fastapi-1x2", 32, 20.0),
        point("translate-1", "fastapi-2x1", 32, 30.0),  # 3x exactly: passes
    ]
    got = {t.name: (t.ok, t.measured) for t in targets(points, {"sentiment": 3500.0})}
    s1, tr = "sentiment, 1 text, 64 connections", "translation, beam 4, 32 connections"
    assert got == {
        f"{s1}: throughput >= 1.5x the best litserve layout": (True, "600.0 / 400.0 req/s (`litserve-2x1`) = **1.50x**"),
        f"{s1}: throughput >= 2x the best fastapi layout": (False, "600.0 / 301.0 req/s (`fastapi-2x1`) = **1.99x**"),
        f"{s1}: p99 latency": (True, "**140 ms**"),
        f"{s1}: errors": (True, "**0** of 4800"),
        "sentiment, 32 texts per request: best throughput vs the model alone": (True, "2240 texts/s at 64 connections / 3500 = **64%**"),
        f"{tr}: throughput >= 1.5x the best litserve layout": (False, "90.0 / 61.0 req/s (`litserve-1x2`) = **1.48x**"),
        f"{tr}: throughput >= 3x the best fastapi layout": (True, "90.0 / 30.0 req/s (`fastapi-2x1`) = **3.00x**"),
    }
    missing = targets([point("sentiment-1", "bentoml", 64, 600.0, p99=151.0, errors=3)], {})
    assert [t.ok for t in missing] == [None, None, False, False, None, None, None]


def test_peers_run_in_every_layout_of_the_cores() -> None:
    assert peer_layouts(2) == [(1, 2), (2, 1)]
    assert peer_layouts(4) == [(1, 4), (2, 2), (4, 1)]
    assert peer_systems(2) == ["fastapi-1x2", "fastapi-2x1", "litserve-1x2", "litserve-2x1", "litserve-2x1-2api"]
    assert [parse_peer(k) for k in peer_systems(2)] == [
        ("fastapi", 1, 2, 1),
        ("fastapi", 2, 1, 1),
        ("litserve", 1, 2, 1),
        ("litserve", 2, 1, 1),
        ("litserve", 2, 1, 2),
    ]


def test_headroom_is_the_share_of_the_empty_bentoml_api() -> None:
    text = headroom([point("sentiment-1", "bentoml", 64, 1200.0), point("sentiment-1", "bentoml-empty", 64, 3000.0)])
    assert text is not None and "**1200 req/s**" in text and "**3000 req/s**" in text and "**40%**" in text
    assert headroom([point("sentiment-1", "bentoml", 64, 1200.0)]) is None


def test_openloop_users_make_the_rate_and_locust_stats_are_read(tmp_path: Path) -> None:
    assert [openloop.users_for(r, 1.0) for r in (0.3, 27.2, 1170.0)] == [1, 28, 1170]
    stats = tmp_path / "run_stats.csv"
    stats.write_text(
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,"
        "Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
        "POST,/sentiment,980,2,6,7.1,1,90,120,97.5,0.2,6,7,8,9,12,20,40,61,85,90,90\n"
        ",Aggregated,980,2,6,7.1,1,90,120,97.5,0.2,6,7,8,9,12,20,40,61,85,90,90\n"
    )
    assert openloop.parse_stats(stats) == {"requests": 980.0, "failures": 2.0, "rps": 97.5, "p50_ms": 6.0, "p99_ms": 61.0}
    r = openloop.OpenLoopResult(100.0, 95.0, 6.0, 61.0, 978, 2, 100, 0.1)
    assert r.rate_ok and not dataclasses.replace(r, rps=94.9).rate_ok


def test_openloop_section_has_a_row_per_load_and_marks_a_rate_not_kept(tmp_path: Path) -> None:
    kept = openloop.OpenLoopResult(100.0, 99.0, 6.0, 61.0, 990, 0, 100, 0.1)
    fell_behind = openloop.OpenLoopResult(300.0, 200.0, 900.0, 2500.0, 1900, 100, 300, 0.3)
    pts = [OpenPoint("sentiment-1", "bentoml", 0.25, 400.0, 0.5, kept), OpenPoint("sentiment-1", "bentoml", 0.75, 400.0, 1.9, fell_behind)]
    text = openloop_section(pts, {"bentoml": "this service"}, tmp_path / "bench")
    rows = [line for line in text if line.startswith("| this service |")]
    assert rows == [
        "| this service | 400.0 | 25% | 100.0 | 99.0 | 6 | 61 | 0 | yes | 0.50 | 0.10 |",
        "| this service | 400.0 | 75% | 300.0 | 200.0 | 900 | 2500 | 100 | **no** | 1.90 | 0.30 |",
    ]
    assert (tmp_path / "bench-openloop.png").exists()


def test_openloop_keeps_a_fixed_arrival_rate_against_the_real_service(server: ServiceProcess) -> None:
    """40 requests/s for 3 s from Locust: about 120 requests arrive (the rate kept), every one answered."""
    before = sum(predictions(server).values())
    r = openloop.measure(server.url, "/sentiment", [json.dumps({"texts": [NEGATIVE]}).encode()], 40.0, 3.0)
    after = sum(predictions(server).values())
    assert r.users == 40 and r.errors == 0 and r.rate_ok, r
    assert r.ok >= 110 and after - before >= r.ok


# ---------------------------------------------------------------- the continuous-batching scenarios (loadtests/mixed.py)


def test_continuous_scenarios_send_valid_requests_within_the_work_limit() -> None:
    from service.config import settings
    from service.schemas import SentimentRequest, TranslateRequest

    assert settings.max_translate_work == mixed.MAX_TRANSLATE_WORK
    loads = {load.key: load for load in mixed.all_loads()}
    for load in loads.values():
        schema = TranslateRequest if load.path == "/translate" else SentimentRequest
        for b in load.bodies:
            schema.model_validate_json(b)  # what the service accepts, work limit included
            if load.path == "/translate":
                assert mixed.work(b) <= mixed.MAX_TRANSLATE_WORK
                assert json.loads(b)["source"] == "en"

    def shape(key: str) -> set[tuple[int, int, str]]:
        return {(len((b := json.loads(raw))["texts"]), b.get("beam_size", 0), b.get("target", "")) for raw in loads[key].bodies}

    assert {k: loads[k].concurrency for k in loads} == {
        "mixed-sentiment-alone": 8,
        "mixed-translate-alone": 8,
        "mixed-sentiment-beside": 8,
        "mixed-translate-beside": 8,
        "short-behind-long-short": 4,
        "short-behind-long-long": 4,
        "lengths": 32,
        "repeat-running": 64,
        "repeat-restarted": 64,
    }
    assert shape("mixed-sentiment-beside") == {(1, 0, "")}
    assert shape("mixed-translate-beside") == {(4, 4, "de"), (4, 4, "fr")}
    assert shape("short-behind-long-short") == {(1, 1, "de"), (1, 1, "fr")}
    assert shape("short-behind-long-long") == {(32, 4, "de"), (32, 4, "fr")}
    assert shape("lengths") == {(n, beam, t) for n in (1, 4, 16) for beam in (1, 4, 8) for t in ("de", "fr")}
    lengths = [(len((b := json.loads(raw))["texts"]), b["beam_size"]) for raw in loads["lengths"].bodies]
    assert all(x != y for x, y in itertools.pairwise([*lengths, lengths[0]]))  # in turn: never the same kind twice in a row
    assert loads["lengths"].texts_per_request == 7.0 and loads["short-behind-long-long"].texts_per_request == 32.0
    assert mixed.work(loads["lengths"].heaviest()) == max(mixed.work(b) for b in loads["lengths"].bodies)
    assert [[load.key for load in step] for step in mixed.steps("mixed")] == [
        ["mixed-sentiment-alone"],
        ["mixed-translate-alone"],
        ["mixed-sentiment-beside", "mixed-translate-beside"],
    ]


WRK_STDOUT = """Running 10s test @ http://127.0.0.1:{port}/{path}
  1 threads and {c} connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    {avg}    1.20ms  40.00ms   90.00%
    Req/Sec   520.00     30.00   600.00     70.00%
  {requests} requests in 10.01s, 1.00MB read
WRK_RESULT {{"requests": {requests}, "duration_us": 10010000, "status_errors": {status}, "socket_errors": {socket}, "p50_us": {p50}, "p99_us": {p99}}}
Requests/sec:    520.00
Transfer/sec:    100.00KB
"""


def test_parse_two_concurrent_wrk_reports() -> None:
    """Two wrk processes' reports, read one each: the sentiment load and the translation load beside it."""
    sentiment = WRK_STDOUT.format(port=1, path="sentiment", c=8, avg="5.00ms", requests=5205, status=3, socket=2, p50=4100, p99=21500)
    translation = WRK_STDOUT.format(port=1, path="translate", c=8, avg="800.00ms", requests=101, status=0, socket=0, p50=790000, p99=1302000)
    s, t = (wrk.parse(out, "", 0, 8, cpu) for out, cpu in ((sentiment, 0.5), (translation, 0.02)))
    assert (s.generator, s.concurrency, s.ok, s.errors, s.p50_ms, s.p99_ms) == ("wrk", 8, 5202, 5, 4.1, 21.5)
    assert abs(s.seconds - 10.01) < 1e-9 and abs(s.rps - 5202 / 10.01) < 1e-9 and abs(s.generator_cores - 0.5 / 10.01) < 1e-9
    assert (t.ok, t.errors, t.p50_ms, t.p99_ms) == (101, 0, 790.0, 1302.0)
    with pytest.raises(RuntimeError, match="wrk failed"):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused", "", 1, 8, 0.0)


def test_together_starts_every_generator_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in ``wrk`` that takes 1 s and reports its connections: two runs take about 1 s, not 2, and each gets its own report."""
    fake = tmp_path / "wrk"
    fake.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in -c*) c="${a#-c}";; esac; done\n'
        'date +%s.%N >> "$WRK_LOG.start"\n'
        "sleep 1\n"
        'date +%s.%N >> "$WRK_LOG.end"\n'
        'echo "WRK_RESULT {\\"requests\\": $((c * 10)), \\"duration_us\\": 1000000, \\"status_errors\\": 0, \\"socket_errors\\": 0, '
        '\\"p50_us\\": $((c * 1000)), \\"p99_us\\": $((c * 2000))}"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("WRK_LOG", str(tmp_path / "wrk"))
    a, b = mixed.together([("http://127.0.0.1:9/sentiment", [b"{}"], 8), ("http://127.0.0.1:9/translate", [b"{}"], 4)], 1.0)
    starts = [float(x) for x in (tmp_path / "wrk.start").read_text().split()]
    ends = [float(x) for x in (tmp_path / "wrk.end").read_text().split()]
    assert len(starts) == len(ends) == 2 and max(starts) < min(ends)  # together: the second started before the first ended
    assert (a.concurrency, a.ok, a.p50_ms, a.p99_ms) == (8, 80, 8.0, 16.0)
    assert (b.concurrency, b.ok, b.p50_ms, b.p99_ms) == (4, 40, 4.0, 8.0)


def test_baseline_worktree_is_checked_out_once_and_reused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()

    repo.mkdir()
    git("init", "-q")
    (repo / "f.txt").write_text("static\n")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "static batching")
    sha = git("rev-parse", "HEAD")
    (repo / "f.txt").write_text("continuous\n")  # the working tree moved on; the baseline is the commit
    path, got = mixed.baseline_worktree(sha[:7], repo, tmp_path / "results")
    assert got == sha and path == tmp_path / "results" / f"baseline-{sha[:12]}"
    assert (path / "f.txt").read_text() == "static\n"
    assert mixed.baseline_worktree(sha, repo, tmp_path / "results") == (path, sha)  # reused
    (path / "f.txt").write_text("edited\n")
    with pytest.raises(SystemExit, match="not a clean checkout"):
        mixed.baseline_worktree(sha, repo, tmp_path / "results")
    with pytest.raises(SystemExit, match="not a commit"):
        mixed.baseline_worktree("no-such-ref", repo, tmp_path / "results")


def continuous_points(**changes: float) -> list[Point]:
    """A run where every target passes; ``changes``: ``<scenario>__<system>__<field>`` overrides."""
    pts = [
        point("mixed-sentiment-alone", "bentoml", 8, 500.0, p99=25.0),
        point("mixed-sentiment-beside", "bentoml", 8, 450.0, p99=50.0),  # 2x alone exactly, under 60 ms
        point("mixed-translate-alone", "bentoml", 8, 10.0, texts=4),
        point("mixed-translate-beside", "bentoml", 8, 8.0, texts=4),  # 0.8x exactly
        point("mixed-sentiment-beside", "candidate", 8, 300.0, p99=400.0),
        point("short-behind-long-short", "bentoml", 4, 40.0, p99=200.0),
        point("short-behind-long-short", "candidate", 4, 2.0, p99=600.0),  # 3x lower exactly
        point("lengths", "bentoml", 32, 13.0, texts=7),
        point("lengths", "candidate", 32, 10.0, texts=7),  # 1.3x exactly
        point("sentiment-1", "bentoml", 64, 950.0),
        point("sentiment-1", "candidate", 64, 1000.0),  # 0.95x exactly
        point("translate-1", "bentoml", 32, 30.0),
        point("translate-1", "candidate", 32, 20.0),
    ]
    for i, (a, b) in enumerate([(100.0, 100.0), (110.0, 60.0), (115.0, 100.0), (105.0, 100.0), (100.0, 100.0)], start=1):
        for scenario in ("repeat-running", "repeat-restarted"):
            pts.append(dataclasses.replace(point(scenario, "bentoml", 64, a), run=i))  # max/min 1.15 exactly
            pts.append(dataclasses.replace(point(scenario, "candidate", 64, b), run=i))  # static batching: 1.67
    for key, value in changes.items():
        scenario, system, attr = key.replace("_", "-").split("--")
        i = next(i for i, p in enumerate(pts) if p.scenario == scenario and p.system == system)
        pts[i] = dataclasses.replace(pts[i], **{attr.replace("-", "_"): value})
    return pts


def test_continuous_targets_pass_and_fail_on_the_ratios() -> None:
    existing = ["sentiment-1", "translate-1"]
    names = [
        "sentiment p99 beside <= 2x alone",
        "sentiment p99 beside < 60 ms",
        "translation beside >= 0.8x alone",
        "short p99 3x lower",
        "lengths 1.3x",
        "repeat running",
        "repeat restarted",
        "today's scenarios",
    ]
    got = continuous_targets(continuous_points(), existing)
    assert len(got) == len(names) and all(t.ok for t in got), [(t.name, t.measured) for t in got]
    assert "static batching: 1.67x" in got[5].measured and got[7].measured.startswith("worst of 2: sentiment-1 at 64 connections")
    failing = {
        "sentiment p99 beside <= 2x alone": {"mixed_sentiment_beside__bentoml__p99_ms": 50.1},  # also 50.1 < 60: only the first fails
        "translation beside >= 0.8x alone": {"mixed_translate_beside__bentoml__rps": 7.9},
        "short p99 3x lower": {"short_behind_long_short__candidate__p99_ms": 599.0},
        "lengths 1.3x": {"lengths__candidate__texts_per_s": 70.1},  # 91 / 70.1 = 1.298
        "repeat running": {"repeat_running__bentoml__rps": 99.0},  # the first run: 115 / 99 = 1.16
        "today's scenarios": {"translate_1__bentoml__rps": 18.9},
    }
    for name, change in failing.items():
        verdicts = dict(zip(names, (t.ok for t in continuous_targets(continuous_points(**change), existing)), strict=True))
        assert [n for n, ok in verdicts.items() if not ok] == [name], change
    at_60 = continuous_points(mixed_sentiment_alone__bentoml__p99_ms=30.0, mixed_sentiment_beside__bentoml__p99_ms=60.0)  # 2x alone, not under 60 ms
    verdicts = [t.ok for t in continuous_targets(at_60, existing)]
    assert verdicts == [True, False, True, True, True, True, True, True]
    errors = continuous_targets(continuous_points(lengths__bentoml__errors=2, lengths__candidate__errors=5), existing)[4]
    assert errors.ok is False and errors.measured.endswith("errors: 2 (static batching: 5)")  # the new system's errors fail it
    errors = continuous_targets(continuous_points(lengths__candidate__errors=5), existing)[4]
    assert errors.ok is True and errors.measured.endswith("errors: 0 (static batching: 5)")
    starved = continuous_targets(continuous_points(short_behind_long_short__bentoml__ok=0), existing)[3]  # none answered in the window
    assert starved.ok is False and starved.measured.startswith("**no answer** from (a) in short-behind-long-short")
    assert continuous_targets(continuous_points(short_behind_long_short__candidate__ok=0), existing)[3].ok is None  # the baseline's: not measured
    alone = [p for p in continuous_points() if p.system == "bentoml" and p.scenario.startswith("mixed")]  # no baseline, no today's scenarios
    assert [t.ok for t in continuous_targets(alone, existing)] == [True, True, True, None, None, None, None, None]


def test_continuous_section_reports_every_scenario_and_the_ratios() -> None:
    systems = [
        System("bentoml", "(a) continuous", cast(ServiceProcess, None), True),
        System("candidate", "(a*) static batching (285678e)", cast(ServiceProcess, None), True),
    ]
    text = "\n".join(continuous_section(continuous_points(), systems, ["sentiment-1", "translate-1"]))
    for heading in ("### Mixed", "### Short behind long", "### Translation, mixed lengths", "### Repeatability", "### Before/after"):
        assert heading in text
    assert "| short behind long: short p99 ms | 600 | 200 | 0.33x | lower |" in text
    assert "| mixed lengths and beams: captions/s | 70.0 | 91.0 | 1.30x | higher |" in text
    assert "| (a) continuous | fresh each run | 100, 110, 115, 105, 100 | 100 | 105 | 115 | 1.15x |" in text
    assert "| translate-1 | 32 | 20.0 | 30.0 | 1.50x |" in text
    assert continuous_section([point("sentiment-1", "bentoml", 64, 1.0)], systems, ["sentiment-1"]) == []


def test_together_drives_two_loads_at_once(server: ServiceProcess) -> None:
    """End to end, briefly: one-text sentiment and one-caption greedy translation at once, each load answered."""
    if not wrk.available():
        pytest.skip("wrk is not installed (make install-system)")
    short = [b for b in next(load for load in mixed.all_loads() if load.key == "short-behind-long-short").bodies[:2]]
    s, t = mixed.together([(f"{server.url}/sentiment", [json.dumps({"texts": [NEGATIVE]}).encode()], 2), (f"{server.url}/translate", short, 1)], 1.0)
    assert s.ok >= 2 and t.ok >= 1 and s.errors == t.errors == 0
    assert 0 < s.p50_ms <= s.p99_ms and 0 < t.p50_ms <= t.p99_ms
