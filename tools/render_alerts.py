"""Write the Prometheus rules (deploy/prometheus/alerts.yml) from the SLO file (deploy/slo.yml).

    python -m tools.render_alerts          # rewrite the rules after changing deploy/slo.yml
    python -m tools.render_alerts --check  # exit 1 when the committed rules are out of date

The same rules, wrapped in a ``PrometheusRule``, go to deploy/k8s/monitoring/prometheusrule.yaml for
clusters that run the Prometheus Operator. Every number in them comes from deploy/slo.yml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SLO_FILE = ROOT / "deploy" / "slo.yml"
RULES_FILE = ROOT / "deploy" / "prometheus" / "alerts.yml"
K8S_RULES_FILE = ROOT / "deploy" / "k8s" / "monitoring" / "prometheusrule.yaml"

JOB = "lstm-service"  # the scrape job: compose's prometheus.yml job_name, the Kubernetes Service's name
ENDPOINTS = {"sentiment": "/sentiment", "translate": "/translate"}  # slo.yml's latency keys -> HTTP routes
HEADER = "# Generated from deploy/slo.yml by `python -m tools.render_alerts`: change that file and rerun, do not edit.\n"

API = f'job="{JOB}", endpoint=~"{"|".join(ENDPOINTS.values())}"'
REQUESTS = f"bentoml_service_request_total{{{API}}}"
LATENCY_BUCKETS = "bentoml_service_request_duration_seconds_bucket"
SERVER_ERRORS = f'bentoml_service_request_total{{{API}, http_response_code=~"5.."}}'


def error_ratio_record(window: str) -> str:
    return f"lstm:request_errors:ratio_rate{window}"


def rules(slo: dict[str, Any]) -> dict[str, Any]:
    budget = f"(1 - {slo['availability']})"
    burns = slo["burn_rate_alerts"]
    windows = sorted({"5m", *(b["long"] for b in burns), *(b["short"] for b in burns)}, key=_seconds)
    recording = [
        {
            "record": error_ratio_record(w),
            "expr": f"sum by (job) (rate({SERVER_ERRORS}[{w}]))\n/\nsum by (job) (rate({REQUESTS}[{w}]))",
        }
        for w in windows
    ]

    def burn(severity: str) -> str:
        parts = [
            f"(\n  {error_ratio_record(b['long'])} > ({b['factor']} * {budget})\n  and\n  {error_ratio_record(b['short'])} > ({b['factor']} * {budget})\n)"
            for b in burns
            if b["severity"] == severity
        ]
        return "\nor\n".join(parts)

    def burn_windows(severity: str) -> str:
        return ", ".join(f"{b['factor']}x over {b['long']} and {b['short']}" for b in burns if b["severity"] == severity)

    alerts: list[dict[str, Any]] = [
        {
            "alert": "LSTMServiceTargetDown",
            "expr": f'up{{job="{JOB}"}} == 0 or absent(up{{job="{JOB}"}})',
            "for": "2m",
            "labels": {"severity": "page"},
            "annotations": {
                "summary": "Prometheus cannot scrape the LSTM service",
                "description": "{{ if $labels.instance }}{{ $labels.instance }} is down{{ else }}no target of job " + JOB + " is known{{ end }} "
                "(GET /metrics failed or no instance was discovered) for 2 minutes.",
            },
        },
        {
            "alert": "LSTMServiceNoTraffic",
            "expr": f"sum by (job) (rate({REQUESTS}[{slo['no_traffic_minutes']}m])) == 0",
            "for": "1m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "The LSTM service gets no requests",
                "description": f"No request reached /sentiment or /translate for {slo['no_traffic_minutes']} minutes "
                "although there was traffic before: check the clients and whatever routes to the service.",
            },
        },
        {
            "alert": "LSTMServiceHighErrorRatio",
            "expr": f"sum by (job, endpoint) (rate({SERVER_ERRORS}[5m]))\n/\nsum by (job, endpoint) (rate({REQUESTS}[5m]))\n> {slo['max_error_ratio']}",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.endpoint }} answers too many requests with 5xx",
                "description": "{{ $value | humanizePercentage }} of {{ $labels.endpoint }} requests failed with a 5xx over 5 minutes "
                f"(limit {slo['max_error_ratio']:.0%}). 503 means shed under load; 500 is a bug: see the service log.",
            },
        },
    ]
    for name, route in ENDPOINTS.items():
        p99 = slo["latency_seconds"][name]["p99"]
        alerts.append(
            {
                "alert": "LSTMServiceLatencyP99AboveSLO",
                "expr": f'histogram_quantile(0.99, sum by (job, endpoint, le) (rate({LATENCY_BUCKETS}{{job="{JOB}", endpoint="{route}"}}[5m])))\n> {p99}',
                "for": "10m",
                "labels": {"severity": "warning", "slo_seconds": str(p99)},
                "annotations": {
                    "summary": f"{route} p99 latency above its SLO of {p99} s",
                    "description": "The 99th percentile of {{ $labels.endpoint }} latency is {{ $value | humanizeDuration }} over 5 minutes "
                    f"(SLO: {p99} s), for 10 minutes. Look at batch wait vs inference time on the dashboard.",
                },
            }
        )
    alerts += [
        {
            "alert": "LSTMServiceRejectingRequests",
            "expr": f'sum by (job, endpoint) (rate(lstm_rejected_requests_total{{job="{JOB}", reason=~"overloaded|shed|timeout"}}[5m]))\n'
            f"/\nsum by (job, endpoint) (rate({REQUESTS}[5m]))\n> {slo['rejected_ratio']}",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.endpoint }} refuses requests for lack of capacity",
                "description": "{{ $value | humanizePercentage }} of {{ $labels.endpoint }} requests were refused (429 in-flight limit, "
                f"503 shed, or timed out) over 5 minutes, for 10 minutes (limit {slo['rejected_ratio']:.0%}): add replicas or workers.",
            },
        },
        {
            "alert": "LSTMServiceSaturated",
            "expr": f'histogram_quantile(0.95, sum by (job, model, le) (rate(lstm_batch_wait_seconds_bucket{{job="{JOB}"}}[5m])))\n'
            f"> {slo['saturation_batch_wait_p95_seconds']}",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.model }} requests queue too long before their batch runs",
                "description": "p95 time waiting for a {{ $labels.model }} batch is {{ $value | humanizeDuration }} "
                f"(limit {slo['saturation_batch_wait_p95_seconds']} s; a request that has waited MAX_LATENCY_MS in the queue is shed with a 503): "
                "the model is busy all the time.",
            },
        },
        {
            "alert": "LSTMServiceErrorBudgetBurn",
            "expr": burn("page"),
            "labels": {"severity": "page"},
            "annotations": {
                "summary": "The availability error budget burns fast",
                "description": f"5xx errors use up the error budget of the {slo['availability']:.1%} availability SLO too fast "
                f"({burn_windows('page')}): {{{{ $value | humanizePercentage }}}} of requests failed over the long window.",
            },
        },
        {
            "alert": "LSTMServiceErrorBudgetBurnSlow",
            "expr": burn("ticket"),
            "labels": {"severity": "ticket"},
            "annotations": {
                "summary": "The availability error budget burns faster than it refills",
                "description": f"5xx errors use up the error budget of the {slo['availability']:.1%} availability SLO "
                f"({burn_windows('ticket')}): {{{{ $value | humanizePercentage }}}} of requests failed over the long window.",
            },
        },
    ]
    return {
        "groups": [
            {"name": "lstm-service-slo", "rules": recording},
            {"name": "lstm-service-alerts", "rules": alerts},
        ]
    }


def prometheus_rule(groups: dict[str, Any]) -> dict[str, Any]:
    """The rules as a Prometheus Operator ``PrometheusRule`` (deploy/k8s/monitoring/)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": JOB, "labels": {"app.kubernetes.io/name": JOB, "release": "prometheus"}},
        "spec": groups,
    }


def _seconds(window: str) -> int:
    return int(window[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[window[-1]]


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def dump(data: dict[str, Any]) -> str:
    return HEADER + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)


def rendered() -> dict[Path, str]:
    groups = rules(yaml.safe_load(SLO_FILE.read_text()))
    return {RULES_FILE: dump(groups), K8S_RULES_FILE: dump(prometheus_rule(groups))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file differs")
    args = parser.parse_args(argv)
    stale = [path for path, text in rendered().items() if not path.is_file() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run python -m tools.render_alerts", file=sys.stderr)
        return 1 if stale else 0
    for path, text in rendered().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
