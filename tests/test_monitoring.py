"""The dashboard and the alerts against a real Prometheus scraping the real service.

One service (``bentoml serve``) and one Prometheus (Debian's binary, deploy/prometheus/prometheus.yml
with the target swapped and 1 s intervals) for the module. Traffic on both endpoints, bad requests
and a burst over the admission limit; then every PromQL expression of every dashboard panel and
every rule goes through Prometheus' HTTP API: each must run, and each dashboard query must return
data (the GPU panel excepted on a machine without one: it must return nothing).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import OUT, Server, start_server
from tools import dashboard_snapshot
from tools.monitoring import DASHBOARD, JOB, RULES, PrometheusProcess, burst, concrete, dashboard_panels, drive

RATE_WINDOW = "30s"  # $__rate_interval: a few 1 s scrapes
MAX_IN_FLIGHT = 8  # small, so that the burst below is partly refused (429, reason overloaded)
SETTLE_S = 120  # how long Prometheus may take to scrape and evaluate once more, on however busy a machine
ADAPTER = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "custom-metrics" / "prometheus-adapter-values.yaml"


class Stack:
    def __init__(self, service: Server, prom: PrometheusProcess, start: float, end: float) -> None:
        self.service, self.prom, self.start, self.end = service, prom, start, end


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    service = start_server("monitoring", MAX_IN_FLIGHT=str(MAX_IN_FLIGHT))
    prom = PrometheusProcess(f"{service.host}:{service.port}", OUT / "prometheus-monitoring")
    try:
        prom.wait_ready()
        assert prom.wait_for(f'up{{job="{JOB}"}} == 1', SETTLE_S), "Prometheus never scraped the service"
        start = time.time()
        results = drive(service.host, service.port, seconds=6.0, concurrency=2)  # 6 connections <= MAX_IN_FLIGHT
        assert all(r.ok > 0 for r in results.values()), {k: r.statuses for k, r in results.items()}
        statuses = burst(service.url, 40, ["a fine film ."] * 32)
        assert 429 in statuses and 200 in statuses, statuses
        settle(prom, time.time())  # a scrape after the last request, and the rules evaluated on it
        yield Stack(service, prom, start, time.time())
    finally:
        prom.stop()
        service.stop()


def settle(prom: PrometheusProcess, after: float) -> None:
    """Wait until Prometheus has stored a scrape of the service that began after ``after`` (Unix time; so it read every
    count up to then), then until it has evaluated every rule group twice since: the recording rules on that scrape,
    then the alerts on those records (the groups are evaluated independently)."""
    deadline = time.monotonic() + SETTLE_S

    def until(what: str, done: Callable[[], list[float]], since: float) -> float:
        while not ((times := done()) and min(times) > since):
            assert time.monotonic() < deadline, f"Prometheus has not {what} within {SETTLE_S} s: {times}"
            time.sleep(0.2)
        return max(times)

    def scraped() -> list[float]:
        return [float(s["value"][1]) for s in prom.query(f'timestamp(up{{job="{JOB}"}})')]

    def evaluated() -> list[float]:
        return [unix_time(g["lastEvaluation"]) for g in prom.api("rules")["groups"]]

    mark = until("scraped the service after the traffic", scraped, after + 0.01)  # + the 2 ms it may shift a scrape's time
    for _ in range(2):
        mark = until("evaluated every rule group after the last scrape", evaluated, mark)


def unix_time(rfc3339: str) -> float:
    """Unix time of an RFC 3339 time as Prometheus writes it (nanoseconds, ``Z`` or an offset)."""
    match = re.fullmatch(r"([^.]+?)(\.\d+)?(Z|[+-]\d\d:\d\d)", rfc3339)
    assert match, rfc3339
    whole, fraction, zone = match.groups()
    return datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone)).timestamp() + float(fraction or 0)


def variables(prom: PrometheusProcess) -> dict[str, str]:
    """What Grafana sends for "All" of each template variable: its values, from its own query, as a regex."""
    values = {}
    for var in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"]["query"])
        assert match, var["query"]
        selector, label = match.groups()
        values[var["name"]] = sorted(prom.api(f"label/{label}/values", **{"match[]": selector}))
    assert values == {"endpoint": ["/sentiment", "/translate"], "model": ["sentiment-bilstm", "translator-lstm"]}
    return {name: "|".join(v) for name, v in values.items()}


def test_every_dashboard_query_runs_and_returns_data(stack: Stack) -> None:
    subs = variables(stack.prom)
    empty, checked = [], 0
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            expr = concrete(target["expr"], subs, RATE_WINDOW)
            assert "$" not in expr, expr
            result = stack.prom.query(expr)  # raises with Prometheus' message on a bad query
            checked += 1
            if "lstm_gpu_" in expr:
                assert result == [], f"{panel['title']}: GPU data on a CPU-only service"
            elif not result:
                empty.append(f"{panel['title']} [{target['refId']}]: {expr}")
    assert checked >= 30
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_dashboard_figures_match_the_traffic(stack: Stack) -> None:
    prom = stack.prom
    info = prom.query(f'lstm_model_info{{job="{JOB}"}}')
    assert {(s["metric"]["model"], s["metric"]["device"], s["metric"]["version"]) for s in info} == {
        ("sentiment-bilstm", "cpu", "1.0.0"),
        ("translator-lstm", "cpu", "1.2.0"),
    }
    reasons = {s["metric"]["reason"] for s in prom.query(f'sum by (reason) (lstm_rejected_requests_total{{job="{JOB}"}}) > 0')}
    assert {"invalid_request", "body_too_large", "overloaded"} <= reasons
    codes = {s["metric"]["http_response_code"] for s in prom.query(f'sum by (http_response_code) (bentoml_service_request_total{{job="{JOB}"}}) > 0')}
    assert {"200", "400", "413", "415", "429"} <= codes
    labels = {s["metric"]["label"] for s in prom.query(f'lstm_predictions_total{{job="{JOB}"}} > 0')}
    assert labels == {"positive", "negative"}
    (rss,) = prom.query(f'process_resident_memory_bytes{{job="{JOB}"}}')
    assert 100e6 < float(rss["value"][1]) < 20e9
    (cpu,) = prom.query(f'process_cpu_seconds_total{{job="{JOB}"}}')
    assert float(cpu["value"][1]) > 1.0  # loading and warming up two models alone takes more


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_every_rule_runs_in_prometheus_without_error(stack: Stack) -> None:
    loaded = stack.prom.api("rules")["groups"]
    states = {(r.get("name"), r["health"], r.get("lastError", "")) for g in loaded for r in g["rules"]}
    assert len(states) == len({r.get("alert") or r["record"] for r in rules()})
    assert all(health == "ok" and not error for _, health, error in states), states
    assert sum(len(g["rules"]) for g in loaded) == len(rules())


def test_every_rule_expression_and_its_measured_side_return_data(stack: Stack) -> None:
    """An alert compares a measured value with a limit; the measured side must exist, or the alert could never fire."""
    empty = []
    for rule in rules():
        expr = rule["expr"]
        stack.prom.query(expr)  # runs
        if "record" in rule:
            measured = expr
        elif (m := re.fullmatch(r"(.+)\n> [\d.]+", expr, re.S)) is not None:
            measured = m.group(1)
        elif rule["alert"] == "LSTMServiceTargetDown":
            measured = f'up{{job="{JOB}"}}'
        elif rule["alert"] == "LSTMServiceNoTraffic":
            measured = expr.removesuffix(" == 0")
        else:  # the burn-rate alerts: combinations of the recording rules checked above
            assert re.findall(r"lstm:request_errors:ratio_rate\w+", expr)
            continue
        if not stack.prom.query(measured):
            empty.append(f"{rule.get('alert') or rule['record']}: {measured}")
    assert not empty, "no data:\n" + "\n".join(empty)


def test_only_the_burn_rate_alerts_can_fire_this_soon_and_only_on_5xx(stack: Stack) -> None:
    """The other alerts wait minutes (`for`); the burn-rate ones fire at once, but only when requests failed with a 5xx."""
    firing = {a["labels"]["alertname"] for a in stack.prom.api("alerts")["alerts"] if a["state"] == "firing"}
    assert firing <= {"LSTMServiceErrorBudgetBurn", "LSTMServiceErrorBudgetBurnSlow"}
    (errors,) = stack.prom.query(f'sum(bentoml_service_request_total{{job="{JOB}", http_response_code=~"5.."}})')
    if float(errors["value"][1]) == 0:
        assert firing == set()


def test_prometheus_adapter_rule_query_runs(stack: Stack) -> None:
    (rule,) = yaml.safe_load(ADAPTER.read_text())["rules"]["custom"]
    query = rule["metricsQuery"].replace("<<.Series>>", "bentoml_service_request_in_progress")
    query = query.replace("<<.LabelMatchers>>", f'job="{JOB}"').replace("<<.GroupBy>>", "job")
    (series,) = stack.prom.query(query)
    assert series["metric"] == {"job": JOB} and float(series["value"][1]) >= 0


def test_dashboard_snapshot_draws_every_key_panel(stack: Stack) -> None:
    out = OUT / "dashboard-test.png"
    drawn = dashboard_snapshot.render(stack.prom, stack.start, stack.end, out, step=1.0)
    assert set(drawn) == set(dashboard_snapshot.KEY_PANELS)
    assert all(n > 0 for n in drawn.values()), drawn
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size < 300_000
