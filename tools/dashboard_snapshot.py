"""docs/dashboard.png: the key panels of the Grafana dashboard, drawn from a live Prometheus.

    python -m tools.dashboard_snapshot [--out docs/dashboard.png]     (make dashboard-snapshot)

Grafana cannot run here, so this starts the service and a real Prometheus (``tools.monitoring``),
drives the service through three phases of load (light; heavy, with the sentiment inputs turning
negative; a burst over the admission limit plus bad requests), then runs each panel's own PromQL
from deploy/grafana/dashboards/lstm-service.json as range queries and plots them with matplotlib.
Rate windows are shortened to fit a two-minute run.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from loadtests.server import ROOT, ServiceProcess
from tools.monitoring import TRANSLATE_BEAM, TRANSLATE_GREEDY, PrometheusProcess, burst, concrete, dashboard_panels, send_bad_requests, traffic

OUT = ROOT / "docs" / "dashboard.png"
KEY_PANELS = [
    "Requests by endpoint and status",
    "Latency p50 / p95 / p99 by endpoint",
    "Errors and rejections by reason",
    "Requests in progress",
    "Mean batch size per model",
    "Waiting for a batch vs inference",
    "Tokens per second",
    "Padding share of batch tensors",
    "Predictions by label (drift)",
    "CPU (cores used) and workers ready",
    "Memory",
    "Input length (tokens per text)",
]
VARIABLES = {"endpoint": "/sentiment|/translate", "model": "sentiment-bilstm|translator-lstm"}
RATE_WINDOW = "10s"  # $__rate_interval for a 1 s scrape interval, short enough for a two-minute picture
DRIFT_WINDOW = "30s"  # the drift panel's 15-minute window, shortened likewise

POSITIVE = [
    "a gorgeous , witty , seductive movie .",
    "one of the most beautiful films of the year , moving and funny .",
    "a delightful , warm and wonderfully acted story .",
    "the plot is thin but the actors are great fun .",
]
NEGATIVE = [
    "the plot is nothing but boilerplate clichés .",
    "a dull , lifeless and painfully long mess .",
    "an ugly , boring film with no reason to exist .",
    "the best thing about it is the ending , because it ends .",
]


def _unit_format(unit: str) -> Any:
    from matplotlib.ticker import EngFormatter, FuncFormatter, PercentFormatter

    if unit == "s":
        return EngFormatter(unit="s", places=0)
    if unit == "bytes":
        return EngFormatter(unit="B", places=0)
    if unit == "percentunit":
        return PercentFormatter(1.0, decimals=0)
    if unit == "reqps":
        return FuncFormatter(lambda v, _: f"{v:g}/s")
    return FuncFormatter(lambda v, _: f"{v / 1000:g}k" if abs(v) >= 1000 else f"{v:g}")


def _legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip() or "value"


def render(prom: PrometheusProcess, start: float, end: float, out: Path, step: float = 1.0, titles: list[str] = KEY_PANELS) -> dict[str, int]:
    """Plot the panels named ``titles`` over [start, end] to ``out`` (PNG); returns the number of series drawn per panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    panels = {p["title"]: p for p in dashboard_panels()}
    cols = 4
    rows = -(-len(titles) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 4.4, rows * 2.9), squeeze=False)
    drawn: dict[str, int] = {}
    for ax, title in zip(axes.flat, titles, strict=False):
        panel = panels[title]
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        drawn[title] = 0
        for target in panel["targets"]:
            expr = concrete(target["expr"], VARIABLES, RATE_WINDOW).replace("[15m]", f"[{DRIFT_WINDOW}]")
            for series in prom.query_range(expr, start, end, step):
                points = [(datetime.fromtimestamp(t), float(v)) for t, v in series["values"] if v not in ("NaN", "+Inf", "-Inf")]
                if not points:
                    continue
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, linewidth=1.2, label=_legend(target.get("legendFormat", ""), series["metric"]))
                drawn[title] += 1
        ax.set_title(title, fontsize=9, loc="left")
        ax.yaxis.set_major_formatter(_unit_format(unit))
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=5))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.set_xlim(datetime.fromtimestamp(start), datetime.fromtimestamp(end))
        if drawn[title]:
            ax.legend(fontsize=6, loc="upper left", frameon=False, ncol=1 if drawn[title] < 5 else 2)
    for ax in list(axes.flat)[len(titles) :]:
        ax.axis("off")
    fig.suptitle("LSTM service dashboard (Grafana panels' PromQL against a live Prometheus; make dashboard-snapshot)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=72)
    plt.close(fig)
    return drawn


def phases(host: str, port: int, seconds: float) -> None:
    """Light load; heavy load with the sentiment inputs turning negative; bursts over the admission limit and bad requests."""
    url = f"http://{host}:{port}"
    light = {"s": ("/sentiment", {"texts": POSITIVE[:3] + NEGATIVE[:1]}), "t": ("/translate", TRANSLATE_GREEDY)}
    heavy = {
        "s": ("/sentiment", {"texts": NEGATIVE[:3] + POSITIVE[:1]}),
        "s2": ("/sentiment", {"texts": NEGATIVE}),
        "t": ("/translate", TRANSLATE_GREEDY),
        "t4": ("/translate", TRANSLATE_BEAM),
    }
    traffic(url, light, 1, seconds * 0.3)
    traffic(url, heavy, 3, seconds * 0.45)
    stop = time.monotonic() + seconds * 0.25
    while time.monotonic() < stop:
        burst(url, 48, NEGATIVE + POSITIVE)  # more than the admission limit lets in (429s)
        send_bad_requests(url)
        traffic(url, light, 1, 2.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seconds", type=float, default=100.0, help="length of the load (default 100)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dashboard-snapshot-") as tmp:
        service = ServiceProcess(Path(tmp) / "service.log", MAX_IN_FLIGHT="16", TORCH_THREADS="1").wait_ready()
        prom = PrometheusProcess(f"{service.host}:{service.port}", Path(tmp) / "prometheus")
        try:
            prom.wait_ready()
            prom.wait_for('up{job="lstm-service"} == 1')
            start = time.time()
            phases(service.host, service.port, args.seconds)
            time.sleep(3)  # the last scrapes
            drawn = render(prom, start, time.time(), args.out, step=1.0)
        finally:
            prom.stop()
            service.stop()
    empty = [t for t, n in drawn.items() if not n]
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB); panels without data: {empty or 'none'}")


if __name__ == "__main__":
    main()
