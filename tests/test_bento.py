"""BentoML's own packaging (bentofile.yaml): ``bentoml build`` makes a Bento with the code and the shipped models,
``bentoml serve <tag>`` serves it from the Bento's own copy, whose sha256 the service checks when it starts.
(``bentoml containerize`` is documented in docs/deploy.md; the container test is tests/test_container.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from loadtests.server import ROOT, ServerProcess
from models.manifest import MANIFEST, read_manifest, sha256_of

BENTOFILE = ROOT / "bentofile.yaml"
OUT = ROOT / "test-artifacts"


def bentoml(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bentoml", *args],
        cwd=ROOT,
        env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """(tag, BENTOML_HOME, the Bento's folder), built once for the module."""
    home = tmp_path_factory.mktemp("bentoml-home")
    result = bentoml("build", "-o", "tag", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    tag = re.search(r"__tag__:(\S+)", result.stdout)
    assert tag, result.stdout
    name, version = tag.group(1).split(":")
    yield tag.group(1), home, home / "bentos" / name / version


def serve(tag: str, home: Path, log: str) -> ServerProcess:
    cmd = [sys.executable, "-m", "bentoml", "serve", tag, "--port", "{port}", "--host", "127.0.0.1"]
    return ServerProcess(cmd, OUT / log, {"BENTOML_HOME": str(home), "WORKERS": "1", "TORCH_THREADS": "1"}, cwd=home)


def test_bentofile_packages_are_the_projects_dependencies() -> None:
    bentofile = yaml.safe_load(BENTOFILE.read_text())
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert bentofile["python"]["packages"] == [p.split("#")[0].strip() for p in pins]
    assert bentofile["service"] == "service.service:LSTMService"
    assert bentofile["python"]["lock_packages"] is False  # `bentoml build` resolves nothing: offline and fast


def test_bento_holds_the_code_and_the_models_as_the_manifest_records_them(bento: tuple[str, Path, Path]) -> None:
    _, _, folder = bento
    src = folder / "src"
    assert (src / "service" / "service.py").is_file() and (src / "service" / "ui" / "index.html").is_file()
    artifacts = read_manifest(MANIFEST)["artifacts"]
    assert artifacts
    for name, entry in artifacts.items():
        assert sha256_of(src / "models" / "artifacts" / name) == entry["sha256"], name
    assert not list(src.rglob("__pycache__"))
    assert yaml.safe_load((folder / "bento.yaml").read_text())["service"] == "service.service:LSTMService"


def test_bentoml_serve_serves_the_bento(bento: tuple[str, Path, Path]) -> None:
    tag, home, folder = bento
    server = serve(tag, home, "server-bento.log").wait_ready(120)
    try:
        workers = psutil.Process(server.proc.pid).children(recursive=True)
        assert workers and all(Path(w.cwd()) == folder / "src" for w in workers)  # the Bento's copy, not this checkout
        sentiment = httpx.post(f"{server.url}/sentiment", json={"texts": ["a wonderful , moving film"]}, timeout=60)
        assert sentiment.status_code == 200 and sentiment.json()[0]["label"] == "positive", sentiment.text
        translation = httpx.post(f"{server.url}/translate", json={"texts": ["A man is riding a bike."], "target": "de"}, timeout=60)
        assert translation.status_code == 200 and translation.json()[0]["translation"], translation.text
    finally:
        assert server.stop() == 0


def test_serving_a_bento_whose_model_was_altered_fails_at_start(bento: tuple[str, Path, Path]) -> None:
    tag, home, folder = bento
    name = next(iter(read_manifest(MANIFEST)["artifacts"]))
    artifact = folder / "src" / "models" / "artifacts" / name
    original = artifact.read_bytes()
    artifact.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        server = serve(tag, home, "server-bento-altered.log")
        code = server.proc.wait(120)
        assert code != 0
        log = server.log.read_text()
        assert f"artifact {artifact} does not match" in log, log[-3000:]  # the Bento's own copy is the one checked
    finally:
        artifact.write_bytes(original)
