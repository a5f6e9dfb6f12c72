"""Start and stop ``bentoml serve`` as a child process on a free port (used by tests and benchmarks)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    """``bentoml serve service.service:LSTMService`` with extra environment (see ``service.config``)."""

    def __init__(self, log: Path, **env: str) -> None:
        self.port = free_port()
        self.host = "127.0.0.1"
        self.url = f"http://{self.host}:{self.port}"
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, "PORT": str(self.port), **env}
        cmd = [sys.executable, "-m", "bentoml", "serve", "service.service:LSTMService", "--port", str(self.port), "--host", self.host]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 180.0) -> ServiceProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"service not ready after {timeout}s:\n{self.log.read_text()[-4000:]}")

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
