"""Start and stop servers as child processes on a free port (used by tests and benchmarks).

``ServiceProcess`` is ``bentoml serve`` of this service; ``ServerProcess`` runs any
command that serves HTTP on ``{port}`` (the benchmark's baselines). ``samples`` reads
Prometheus text (``ServerProcess.metric``: one metric of a server's ``/metrics``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

from loadtests.proctree import tree_usage
from service.config import default_workers

ROOT = Path(__file__).resolve().parents[1]


def samples(text: str, name: str, **labels: str) -> list[float]:
    """The values of the samples called ``name`` in Prometheus text ``text`` whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``cmd`` (``{port}`` replaced by a free port) in its own process group, ready once ``GET ready_path`` answers 200."""

    def __init__(self, cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = ROOT, ready_path: str = "/readyz") -> None:
        self.port = free_port()
        self.host = "127.0.0.1"
        self.url = f"http://{self.host}:{self.port}"
        self.log = log
        self.ready_path = ready_path
        log.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, "PORT": str(self.port), **(env or {})}
        self.env = full_env
        cmd = [part.replace("{port}", str(self.port)) for part in cmd]
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 180.0) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}{self.ready_path}", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log.read_text()[-4000:]}")

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the server and all its live child processes (0 once it is gone)."""
        try:
            return tree_usage(self.proc.pid).cpu_seconds
        except psutil.NoSuchProcess:
            return 0.0

    def scrape(self) -> str:
        """``GET /metrics`` now (with ``METRICS_TOKEN`` of the server's environment as bearer token, when set)."""
        token = self.env.get("METRICS_TOKEN", "")
        req = urllib.request.Request(f"{self.url}/metrics", headers={"authorization": f"Bearer {token}"} if token else {})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` (``_total``, ``_count``, ``_sum`` included) whose labels include ``labels``; 0 when absent."""
        return sum(samples(self.scrape(), name, **labels))

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the process group, SIGKILL after ``timeout``; returns the exit status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


class ServiceProcess(ServerProcess):
    """``bentoml serve service.service:LSTMService`` with extra environment (see ``service.config``).

    Each process gets its own ``BENTOML_HOME`` (a temporary folder, unless ``env``
    names one): ``bentoml serve`` empties ``$BENTOML_HOME/prometheus_multiproc_dir``
    when it starts, so two services sharing the default one would wipe each
    other's metrics. ``root`` is the checkout to serve from (default: this one),
    so a benchmark can compare the service of another working tree side by side;
    ``target`` the BentoML service to serve (default: this one).
    """

    def __init__(self, log: Path, root: Path | str = ROOT, target: str = "service.service:LSTMService", **env: str) -> None:
        self._home = None if "BENTOML_HOME" in env else tempfile.TemporaryDirectory(prefix="bentoml-home-")
        if self._home is not None:
            env["BENTOML_HOME"] = self._home.name
        cmd = [sys.executable, "-m", "bentoml", "serve", target, "--port", "{port}", "--host", "127.0.0.1"]
        super().__init__(cmd, log, env, cwd=Path(root))

    def wait_ready(self, timeout: float = 180.0) -> ServiceProcess:
        """Ready when every worker is: ``/readyz`` answers from whichever worker takes the connection, so
        then wait for ``lstm_workers_ready`` to reach ``WORKERS`` (a service without that metric: ``/readyz`` only)."""
        deadline = time.monotonic() + timeout
        super().wait_ready(timeout)
        expected = int(self.env["WORKERS"]) if self.env.get("WORKERS", "auto") != "auto" else default_workers(self.env.get("DEVICE", "auto"))
        while time.monotonic() < deadline:
            ready = samples(self.scrape(), "lstm_workers_ready")
            if not ready or sum(ready) >= expected:
                return self
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"{expected} workers not ready after {timeout}s:\n{self.log.read_text()[-4000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        code = super().stop(timeout)
        if self._home is not None:
            self._home.cleanup()
        return code
