"""Artifact integrity: ``bentoml serve`` refuses to start on a missing, truncated, altered or unlisted artifact.

The service checks every artifact's sha256 against ``models/artifacts/manifest.json``
when it is imported, before any worker starts, and exits non-zero with a
message naming the file and what the manifest expects. (The Python API's
checks are in tests/test_inference.py.) Nothing untrusted is unpickled: the
static check below keeps every ``torch.load`` at ``weights_only=True``.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from loadtests.server import free_port

from .conftest import ARTIFACTS, ROOT

MANIFEST = json.loads((ARTIFACTS / "manifest.json").read_text())["artifacts"]


def serve(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    full_env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml-home"), **env}
    cmd = [sys.executable, "-m", "bentoml", "serve", "service.service:LSTMService", "--port", str(free_port()), "--host", "127.0.0.1"]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=180)
    return proc, time.monotonic() - start


def copy_artifacts(tmp_path: Path) -> Path:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    for name in ("manifest.json", "sentiment-bilstm.pt", "translator-lstm.pt"):
        shutil.copy(ARTIFACTS / name, folder / name)
    return folder


def missing(path: Path) -> None:
    path.unlink()


def truncated(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size - 1000)


def altered(path: Path) -> None:
    with path.open("r+b") as f:  # same size, a few bytes changed
        f.seek(path.stat().st_size // 2)
        f.write(b"tampered")


CASES: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("missing sentiment", "sentiment-bilstm.pt", missing, "artifact missing: {path}; {manifest} expects sha256 {sha256} ({bytes} bytes)"),
    ("truncated translator", "translator-lstm.pt", truncated, "artifact {path} does not match {manifest}: expected sha256 {sha256} ({bytes} bytes), found "),
    ("altered translator", "translator-lstm.pt", altered, "artifact {path} does not match {manifest}: expected sha256 {sha256} ({bytes} bytes), found "),
]


@pytest.mark.parametrize(("case", "name", "damage", "message"), CASES, ids=[c[0] for c in CASES])
def test_service_refuses_to_start(tmp_path: Path, case: str, name: str, damage: Callable[[Path], None], message: str) -> None:
    folder = copy_artifacts(tmp_path)
    path = folder / name
    damage(path)
    env = {"SENTIMENT_ARTIFACT": str(folder / "sentiment-bilstm.pt"), "TRANSLATION_ARTIFACT": str(folder / "translator-lstm.pt")}
    proc, took = serve(tmp_path, **env)
    entry = MANIFEST[name]
    assert proc.returncode != 0
    assert message.format(path=path, manifest=folder / "manifest.json", sha256=entry["sha256"], bytes=entry["bytes"]) in proc.stderr, proc.stderr[-3000:]
    assert "Starting production" not in proc.stdout + proc.stderr, "it must stop before serving"
    assert took < 120


def test_service_refuses_an_artifact_the_manifest_does_not_list(tmp_path: Path) -> None:
    folder = copy_artifacts(tmp_path)
    other = folder / "sentiment-other.pt"
    shutil.copy(folder / "sentiment-bilstm.pt", other)
    proc, _ = serve(tmp_path, SENTIMENT_ARTIFACT=str(other))
    assert proc.returncode != 0
    assert f"artifact {other} has no entry in {folder / 'manifest.json'}" in proc.stderr, proc.stderr[-3000:]


def calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            out.append((ast.unparse(node.func), node))
    return out


def test_nothing_untrusted_is_unpickled() -> None:
    """Every ``torch.load`` passes ``weights_only=True``; no pickle, dill, joblib or numpy pickle loading anywhere."""
    sources = [p for folder in ("models", "service", "loadtests", "tools", "tests") for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(sources) > 20
    torch_loads = 0
    for path in sources:
        for name, call in calls(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            if name == "torch.load":
                torch_loads += 1
                weights_only = {k.arg: k.value for k in call.keywords}.get("weights_only")
                assert isinstance(weights_only, ast.Constant) and weights_only.value is True, f"{where}: torch.load without weights_only=True"
            assert name not in ("pickle.load", "pickle.loads", "dill.load", "dill.loads", "joblib.load", "cloudpickle.load", "cloudpickle.loads"), where
            if name in ("np.load", "numpy.load"):
                kwargs = {k.arg: k.value for k in call.keywords}
                assert not (isinstance(kwargs.get("allow_pickle"), ast.Constant) and kwargs["allow_pickle"].value is True), f"{where}: allow_pickle=True"
    assert torch_loads >= 2  # the training checkpoints (models/training.py) and the GloVe cache
