"""The image and the compose stack, for real: built and run with the container engine at hand (a Docker engine,
else podman, which ``make install-system`` installs from Debian: deploy/install-engine.sh).

The module builds the image (deploy/build-image.sh: the Python base from Debian's packages where no registry
answers, each built only when missing, and the service image only when its inputs changed), starts the compose
stack's service and Prometheus (a Prometheus from Debian's package where prom/prometheus cannot be pulled) under
a project name of its own on free ports, and checks: healthy through the health check; both endpoints answer;
non-root on a read-only root filesystem; Prometheus scrapes the service by its compose name and has loaded the
alert rules; ``stop`` drains requests in flight and the container exits 0. Timings and the image size go to
test-artifacts/container.json and to the terminal.

Grafana is not started: no registry serves its image here and Debian has no package; its provisioning is
checked by tools in tests/test_deploy.py. It skips only where no engine is installed and none can be (no apt-get).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
import pytest
import yaml

from loadtests.server import ROOT, free_port
from tools import render_alerts

from .conftest import assert_all_translated, translations_in_flight

pytestmark = pytest.mark.timeout(1800)  # a cold first run builds two base images and the service image

OUT = ROOT / "test-artifacts"
PROMETHEUS_DEFAULT = "docker.io/prom/prometheus:v2.53.3"
GRACE_S = 30  # docker-compose.yml's stop_grace_period
IN_FLIGHT = 3


def engine_and_compose() -> tuple[str, list[str]] | None:
    """What deploy/engine.sh picks: (engine, compose command), or None when there is no engine."""
    result = subprocess.run(["bash", "-c", "source deploy/engine.sh && echo $ENGINE && echo $COMPOSE"], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        return None
    engine, compose = result.stdout.split("\n")[:2]
    return engine, compose.split()


def run(cmd: list[str], timeout: float = 900, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@dataclass
class Stack:
    engine: str
    compose: list[str]
    env: dict[str, str]
    service_url: str
    prometheus_url: str
    report: dict[str, Any] = field(default_factory=dict)
    up_at: float = 0.0

    def compose_cmd(self, *args: str) -> list[str]:
        return [*self.compose, "-p", self.env["COMPOSE_PROJECT_NAME"], "-f", str(ROOT / "docker-compose.yml"), "--profile", "cpu", *args]

    def container(self, service: str) -> str:
        project = self.env["COMPOSE_PROJECT_NAME"]
        labels = [f"label=com.docker.compose.project={project}", f"label=com.docker.compose.service={service}"]
        ids = run([self.engine, "ps", "-a", "-q", "--filter", labels[0], "--filter", labels[1]]).stdout.split()
        assert len(ids) == 1, f"{service}: containers {ids}"
        return ids[0]

    def inspect(self, service: str, template: str) -> str:
        return run([self.engine, "inspect", "--format", template, self.container(service)]).stdout.strip()

    def logs(self, service: str) -> str:
        result = run([self.engine, "logs", self.container(service)], check=False)
        return (result.stdout + result.stderr)[-6000:]

    def save_report(self) -> None:
        OUT.mkdir(exist_ok=True)
        (OUT / "container.json").write_text(json.dumps(self.report, indent=2) + "\n")


def remove_stale_stacks(engine: str, compose: list[str]) -> None:
    """Stacks an earlier run left behind (killed at a time-out): down, volumes and all, unless their test still runs."""
    listed = run([engine, "ps", "-a", "--format", '{{index .Labels "com.docker.compose.project"}}'], check=False).stdout.split()
    for project in sorted({p for p in listed if p.startswith("lstm-serving-test-")}):
        pid = int(project.rsplit("-", 1)[1])
        if pid != os.getpid() and not psutil.pid_exists(pid):
            run([*compose, "-p", project, "-f", str(ROOT / "docker-compose.yml"), "--profile", "cpu", "down", "-v", "-t", "5"], check=False)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    found = engine_and_compose()
    if found is None:
        if shutil.which("apt-get"):
            pytest.fail("no container engine, though one can be installed here: make install-system (deploy/install-engine.sh)")
        pytest.skip("no container engine (neither a Docker engine nor podman) and no apt-get to install podman")
    engine, compose = found
    report: dict[str, Any] = {"engine": engine, "compose": " ".join(compose)}

    start = time.monotonic()
    build = run(["bash", "deploy/build-image.sh", "lstm-serving:latest"], timeout=1500)
    report["build_s"] = round(time.monotonic() - start, 1)
    report["build_log"] = [ln for ln in build.stdout.splitlines() if ln.startswith(("build-image:", "localhost/"))]
    report["image_bytes"] = int(run([engine, "image", "inspect", "--format", "{{.Size}}", "lstm-serving:latest"]).stdout.strip())

    prometheus_image = os.environ.get("PROMETHEUS_IMAGE", "")
    if not prometheus_image:
        pull = run(["bash", "-c", f"source deploy/engine.sh && can_pull {PROMETHEUS_DEFAULT}"], check=False)
        if pull.returncode == 0:
            prometheus_image = PROMETHEUS_DEFAULT
        else:
            start = time.monotonic()
            run(["bash", "deploy/build-debian-image.sh", "prometheus"], timeout=900)
            report["prometheus_image_build_s"] = round(time.monotonic() - start, 1)
            prometheus_image = "localhost/prometheus-debian:bookworm"
    report["prometheus_image"] = prometheus_image

    remove_stale_stacks(engine, compose)
    port, prom_port = free_port(), free_port()
    env = {
        "COMPOSE_PROJECT_NAME": f"lstm-serving-test-{os.getpid()}",
        "PORT": str(port),
        "PROMETHEUS_PORT": str(prom_port),
        "PROMETHEUS_IMAGE": prometheus_image,
    }
    s = Stack(engine, compose, env, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{prom_port}", report)
    try:
        s.up_at = time.monotonic()
        run(s.compose_cmd("up", "-d", "--no-build", "lstm-service", "prometheus"), env=env, timeout=300)
        yield s
    finally:
        run(s.compose_cmd("down", "-v", "-t", "5"), env=env, check=False, timeout=300)
        s.save_report()


def test_compose_file_parses_with_every_profile() -> None:
    """The compose tool itself (docker compose or podman-compose) reads the file, both profiles, defaults interpolated."""
    found = engine_and_compose()
    if found is None:
        pytest.skip("no container engine")
    _, compose = found
    result = run([*compose, "-f", str(ROOT / "docker-compose.yml"), "--profile", "cpu", "--profile", "gpu", "config"], env={"PROMETHEUS_IMAGE": ""})
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == {"lstm-service", "lstm-service-gpu", "prometheus", "grafana"}
    assert services["prometheus"]["image"] == PROMETHEUS_DEFAULT
    assert "/home/app/bentoml:mode=1777" in services["lstm-service"]["tmpfs"]


def test_image_is_built_with_its_health_check_and_user(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    (image,) = json.loads(run([stack.engine, "image", "inspect", "lstm-serving:latest"]).stdout)
    assert image["Config"]["User"] == "10001:10001"
    # kept by podman too: built in docker format (deploy/build-image.sh); podman shows it beside the OCI config
    healthcheck = image.get("Healthcheck") or image["Config"]["Healthcheck"]
    assert "/readyz" in " ".join(healthcheck["Test"])
    size_mb = stack.report["image_bytes"] / 1e6
    assert size_mb < 2000, f"{size_mb:.0f} MB"
    with capsys.disabled():
        print(f"\n[container] {stack.engine}: image lstm-serving:latest {size_mb:.0f} MB, build step {stack.report['build_s']} s")


def wait_healthy(stack: Stack, timeout: float = 180) -> float:
    """Seconds from `compose up` to healthy. Podman runs health checks from systemd timers, and this machine has
    no systemd: run the same check by hand (`podman healthcheck run`), as the timer would, until it passes."""
    deadline = time.monotonic() + timeout
    container = stack.container("lstm-service")
    while time.monotonic() < deadline:
        if stack.engine == "podman":
            run(["podman", "healthcheck", "run", container], check=False, timeout=30)
        status = stack.inspect("lstm-service", "{{.State.Health.Status}}")
        if status == "healthy":
            return time.monotonic() - stack.up_at
        assert stack.inspect("lstm-service", "{{.State.Status}}") == "running", stack.logs("lstm-service")
        time.sleep(1)
    raise AssertionError(f"not healthy after {timeout} s:\n{stack.logs('lstm-service')}")


def test_service_becomes_healthy_through_its_health_check(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    took = wait_healthy(stack)
    stack.report["ready_s"] = round(took, 1)
    # the check is compose's (which podman keeps whatever the image format), the same as the image's
    check = json.loads(stack.inspect("lstm-service", "{{json .Config.Healthcheck.Test}}"))
    assert "/readyz" in " ".join(check)
    with capsys.disabled():
        print(f"\n[container] healthy {took:.1f} s after compose up")


def test_both_endpoints_answer(stack: Stack) -> None:
    sentiment = httpx.post(f"{stack.service_url}/sentiment", json={"texts": ["a wonderful , moving film", "a dull , lifeless mess"]}, timeout=60)
    assert sentiment.status_code == 200, sentiment.text
    assert [r["label"] for r in sentiment.json()] == ["positive", "negative"]
    translation = httpx.post(f"{stack.service_url}/translate", json={"texts": ["A man is riding a bike."], "target": "de"}, timeout=60)
    assert translation.status_code == 200, translation.text
    assert "Mann" in translation.json()[0]["translation"]


def test_runs_as_non_root_on_a_read_only_root_filesystem(stack: Stack) -> None:
    container = stack.container("lstm-service")
    assert stack.inspect("lstm-service", "{{.HostConfig.ReadonlyRootfs}}") == "true"
    status = run([stack.engine, "exec", container, "cat", "/proc/1/status"]).stdout
    uids = next(ln.split()[1:] for ln in status.splitlines() if ln.startswith("Uid:"))
    assert set(uids) == {"10001"}  # PID 1, bentoml itself: real, effective, saved and filesystem uid
    denied = run([stack.engine, "exec", container, "touch", "/app/written"], check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    # what it writes: BentoML's home (tmpfs, mode=1777 for docker and podman alike) and /tmp
    home = run([stack.engine, "exec", container, "sh", "-c", "ls $BENTOML_HOME && touch /tmp/written"]).stdout
    assert "prometheus_multiproc_dir" in home


def prometheus(stack: Stack, path: str) -> Any:
    with urllib.request.urlopen(f"{stack.prometheus_url}{path}", timeout=5) as r:
        return json.loads(r.read())["data"]


def test_prometheus_scrapes_the_service_by_its_compose_name_and_loads_the_rules(stack: Stack) -> None:
    deadline = time.monotonic() + 90  # the first scrape comes within one scrape interval (15 s)
    target: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            targets = prometheus(stack, "/api/v1/targets")["activeTargets"]
            target = next((t for t in targets if t["labels"]["job"] == render_alerts.JOB), {})  # none until the config is loaded
            if target.get("health") == "up":
                break
        except OSError:
            pass
        time.sleep(1)
    assert target.get("health") == "up", f"{target}\n{stack.logs('prometheus')}"
    assert target["scrapeUrl"] == "http://lstm-service:3000/metrics"
    loaded = [r["name"] for g in prometheus(stack, "/api/v1/rules")["groups"] for r in g["rules"]]
    groups = yaml.safe_load(render_alerts.RULES_FILE.read_text())["groups"]
    assert sorted(loaded) == sorted(r.get("alert") or r["record"] for g in groups for r in g["rules"])


def in_progress(stack: Stack) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{stack.service_url}/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "bentoml_service_request_in_progress" and s.labels.get("endpoint") == "/translate"
    )


def test_stop_drains_in_flight_requests_and_exits_0(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    threads, answers = translations_in_flight(stack.service_url, IN_FLIGHT, lambda: in_progress(stack), 90)
    assert in_progress(stack) == IN_FLIGHT and not answers, "the requests finished before stop: make them slower"

    start = time.monotonic()
    run(stack.compose_cmd("stop", "lstm-service"), env=stack.env, timeout=GRACE_S + 60)
    took = time.monotonic() - start
    for t in threads:
        t.join(60)
    stack.report["stop_s"] = round(took, 1)
    assert_all_translated(answers, IN_FLIGHT)
    assert stack.inspect("lstm-service", "{{.State.ExitCode}}") == "0", stack.logs("lstm-service")
    assert took < GRACE_S  # drained, not killed at the end of the grace period
    log = stack.logs("lstm-service")
    assert "Traceback" not in log and "[ERROR]" not in log, log
    with capsys.disabled():
        print(f"\n[container] stop drained {IN_FLIGHT} beam-8 translations in flight, exit 0 after {took:.1f} s")
