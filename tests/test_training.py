"""The training, resume and export path on a tiny SST-style sample made here (seconds, not the real data)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from service.inference import load_sentiment

from .conftest import ROOT

GOOD = ["great", "wonderful", "moving", "funny", "brilliant"]
BAD = ["dull", "boring", "awful", "tedious", "clumsy"]


def write_sample(folder: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        word = rng.choice(GOOD if label else BAD)
        rows.append(f"{label}\ta {word} film , really {word} .")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.tsv").write_text("label\tsentence\n" + "\n".join(rows) + "\n")
    (folder / "dev.tsv").write_text("label\tcontent\n" + "\n".join(rows[:50]) + "\n")


def run(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_train_resume_export(tmp_path: Path) -> None:
    data, out = tmp_path / "sst2", tmp_path / "run"
    write_sample(data, 400, seed=1)
    common = ["--data-dir", str(data), "--out", str(out), "--hidden", "16", "--glove-words", "100", "--threads", "1", "--patience", "5"]
    first = run("models.sentiment.train", *common, "--epochs", "1")
    assert "epoch 1: dev accuracy" in first
    second = run("models.sentiment.train", *common, "--epochs", "3")
    assert "resumed from" in second and "epoch 1:" not in second and "epoch 3: dev accuracy" in second
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["dev_accuracy"] == 1.0  # the sample is trivially separable

    artifact = tmp_path / "art" / "sentiment-bilstm.pt"
    artifact.parent.mkdir()
    run("models.sentiment.export", "--checkpoint", str(out / "best.pt"), "--data-dir", str(data), "--out", str(artifact))
    manifest = json.loads((artifact.parent / "manifest.json").read_text())
    assert manifest["artifacts"]["sentiment-bilstm.pt"]["scores"][0]["value"] == 1.0
    clf = load_sentiment(artifact)  # verifies the sha256 just recorded
    assert [o["label"] for o in clf.predict(["a brilliant film", "a tedious film"])] == ["positive", "negative"]
