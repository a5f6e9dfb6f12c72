"""A real Prometheus scraping a real service, for the monitoring test and the dashboard snapshot.

- ``PrometheusProcess``: the ``prometheus`` binary (Debian's, ``make install-system``) on a free
  port, with deploy/prometheus/prometheus.yml and its alert rules, the target swapped for a
  local service and the intervals shortened so that a test sees data within seconds.
- ``dashboard_panels`` / ``concrete``: the PromQL of every panel of the shipped Grafana
  dashboard, with Grafana's variables replaced by what Grafana would send.
- ``traffic``, ``post``, ``burst``, ``drive``: load on both endpoints (the client of ``loadtests.loadgen``), single
  requests, bursts over the admission limit and bad requests.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from loadtests.loadgen import Tally, closed_loop, encode
from loadtests.server import ROOT, ServerProcess

DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "lstm-service.json"
JOB = "lstm-service"

SENTIMENT = {"texts": ["a gorgeous, witty, seductive movie .", "the plot is nothing but boilerplate clichés", "fine"]}
TRANSLATE_GREEDY = {"texts": ["A man in a blue shirt is riding a bike."], "target": "de", "beam_size": 1}
TRANSLATE_BEAM = {"texts": ["Two dogs play in the snow.", "A woman is reading a book."], "target": "fr", "beam_size": 4}
# Refused requests, each counted in lstm_rejected_requests_total: 400 (three kinds), 415, 413.
BAD_REQUESTS: list[tuple[str, bytes, str]] = [
    ("/sentiment", b'{"texts": []}', "application/json"),
    ("/sentiment", b"not json", "application/json"),
    ("/sentiment", b"great film", "text/plain"),
    ("/translate", b'{"texts": ["a dog"], "target": "es"}', "application/json"),
    ("/translate", b'{"texts": ["a dog"], "target": "de", "beam_size": 99}', "application/json"),
    ("/translate", b'{"texts": ["' + b"a" * (2 << 20) + b'"], "target": "de"}', "application/json"),
]


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        raise FileNotFoundError("the prometheus binary is not on PATH: `make install-system` installs it (Debian package prometheus)")
    return path


def local_config(target: str, interval: str = "1s") -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml scraping ``target`` (host:port) every ``interval``, rules evaluated as often."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = {**config.get("global", {}), "scrape_interval": interval, "evaluation_interval": interval}
    config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / f) for f in config["rule_files"]]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == JOB)
    job["static_configs"] = [{"targets": [target]}]
    config["scrape_configs"] = [job]
    return config


class PrometheusProcess(ServerProcess):
    """``prometheus`` on a free port with ``local_config(target)``; its files and log under ``workdir``, its data fresh."""

    def __init__(self, target: str, workdir: Path, interval: str = "1s") -> None:
        shutil.rmtree(workdir / "data", ignore_errors=True)  # an earlier run's series would still answer instant queries
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(local_config(target, interval), sort_keys=False))
        cmd = [
            prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            "--web.listen-address=127.0.0.1:{port}",
        ]
        super().__init__(cmd, workdir / "prometheus.log", ready_path="/-/ready")

    def wait_ready(self, timeout: float = 30.0) -> PrometheusProcess:
        super().wait_ready(timeout)
        return self

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>; the ``data`` of a successful answer, else ``PrometheusError`` with Prometheus' message."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query now: the result vector (a scalar comes back as one sample without labels)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return list(self.api("query_range", query=expr, start=start, end=end, step=step)["result"])

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll ``expr`` until it returns data (e.g. until the first scrapes are in)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.5)


class PrometheusError(RuntimeError):
    pass


def dashboard_panels(path: Path = DASHBOARD) -> list[dict[str, Any]]:
    """Every panel of a dashboard, those inside collapsed rows included, rows themselves too."""
    panels: list[dict[str, Any]] = []
    for panel in json.loads(path.read_text())["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def concrete(expr: str, variables: dict[str, str], rate_interval: str) -> str:
    """``expr`` as Grafana sends it: ``$__rate_interval`` and the template variables (``$name``, ``${name}``) replaced."""
    expr = expr.replace("$__rate_interval", rate_interval).replace("${__rate_interval}", rate_interval)
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    return expr


def traffic(url: str, plan: Mapping[str, tuple[str, object]], concurrency: int, seconds: float) -> dict[str, Tally]:
    """Every ``name: (path, body)`` of ``plan`` from ``concurrency`` connections of its own, all at once, for ``seconds``."""

    async def all_at_once() -> list[Tally]:
        return await asyncio.gather(*(closed_loop(url, [encode(url + path, body)], concurrency, seconds) for path, body in plan.values()))

    return dict(zip(plan, asyncio.run(all_at_once()), strict=True))


def post(url: str, body: bytes, ctype: str = "application/json") -> int | None:
    """One POST; its status, or None when the connection failed (the server may close it on an oversized body)."""
    request = urllib.request.Request(url, data=body, headers={"content-type": ctype}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        e.close()
        return e.code
    except OSError:
        return None


def burst(url: str, n: int, texts: list[str]) -> list[int | None]:
    """``n`` sentiment requests of ``texts`` at once (released together by a barrier); their statuses."""
    body = json.dumps({"texts": texts}).encode()
    statuses: list[int | None] = []
    start = threading.Barrier(n)

    def one() -> None:
        start.wait()
        statuses.append(post(f"{url}/sentiment", body))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def send_bad_requests(url: str) -> None:
    for path, body, ctype in BAD_REQUESTS:
        post(url + path, body, ctype)


def drive(host: str, port: int, seconds: float, concurrency: int = 4) -> dict[str, Tally]:
    """Good requests on both endpoints from ``concurrency`` connections each, for ``seconds``; then every bad request once."""
    url = f"http://{host}:{port}"
    plan = {"sentiment": ("/sentiment", SENTIMENT), "translate greedy": ("/translate", TRANSLATE_GREEDY), "translate beam 4": ("/translate", TRANSLATE_BEAM)}
    results = traffic(url, plan, concurrency, seconds)
    send_bad_requests(url)
    return results
