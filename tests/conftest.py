"""Shared fixtures: a real ``bentoml serve`` process on a free port, the data folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.server import ROOT, ServiceProcess

DATA_DIR = Path(os.environ.get("DATA_DIR", ROOT.parent / "shared" / "data"))
ARTIFACTS = ROOT / "models" / "artifacts"
OUT = ROOT / "test-artifacts"

Server = ServiceProcess


def start_server(name: str, **env: str) -> ServiceProcess:
    return ServiceProcess(OUT / f"server-{name}.log", TORCH_THREADS="1", **env).wait_ready()


@pytest.fixture(scope="session")
def server() -> Iterator[ServiceProcess]:
    """The service as users run it, with the shipped artifacts."""
    s = start_server("main")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "sst2" / "dev.tsv").is_file():
        pytest.skip(f"data sets not found at {DATA_DIR} (set DATA_DIR)")
    return DATA_DIR
