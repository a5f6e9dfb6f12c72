"""The translator's recipe end to end at a tiny size on a sample made here (seconds, not the real data):
train (the GPU recipe's command, on the CPU), resume, export with averaging chosen on val, distil, ensemble."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

from service.inference import load_translation_model

from .conftest import ROOT

WORDS = {  # en: (de, fr)
    "a": ("ein", "un"),
    "man": ("Mann", "homme"),
    "dog": ("Hund", "chien"),
    "runs": ("läuft", "court"),
    "sleeps": ("schläft", "dort"),
    "big": ("großer", "grand"),
    "small": ("kleiner", "petit"),
}


def write_sample(folder: Path) -> None:
    """Multi30k-shaped files: word-for-word sentences, 400 for training, 20 each for val and test."""
    rng = random.Random(0)
    folder.mkdir(parents=True)
    for split, n in (("train", 400), ("val", 20), ("test_2016_flickr", 20)):
        en = [["a", rng.choice(["big", "small"]), rng.choice(["man", "dog"]), rng.choice(["runs", "sleeps"])] for _ in range(n)]
        for lang, column in (("en", None), ("de", 0), ("fr", 1)):
            lines = [" ".join(w if column is None else WORDS[w][column] for w in s) + " ." for s in en]
            with gzip.open(folder / f"{split}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")


def run(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_gpu_recipe_is_the_training_command_with_a_device() -> None:
    proc = subprocess.run(["make", "-n", "--no-print-directory", "train-translation-gpu"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    train, export = proc.stdout.splitlines()[-2:]
    assert train.startswith(".venv/bin/python -m models.translation.train ") and "--device cuda" in train and "--out runs/translation-gpu" in train
    assert export.startswith(".venv/bin/python -m models.translation.export --run runs/translation-gpu ")


def test_train_resume_export_distil_ensemble(tmp_path: Path) -> None:
    data, out = tmp_path / "multi30k", tmp_path / "run"
    write_sample(data)
    common = ["--data-dir", str(data), "--out", str(out), "--device", "cpu", "--threads", "1", "--vocab-size", "300"]
    common += ["--embed", "16", "--enc-hidden", "16", "--dec-hidden", "24", "--input-feeding", "--batch-size", "32", "--lr", "1e-2", "--patience", "9"]
    first = run("models.translation.train", *common, "--epochs", "1")
    assert "epoch 1: train loss" in first
    second = run("models.translation.train", *common, "--epochs", "3")
    assert "resumed from" in second and "epoch 1:" not in second and "epoch 3: train loss" in second
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3] and history[-1]["train_loss"] < history[0]["train_loss"]

    single = tmp_path / "art" / "translator-lstm.pt"
    single.parent.mkdir()
    exported = run("models.translation.export", "--run", str(out), "--data-dir", str(data), "--average", "1", "2", "--out", str(single))
    assert "mean of epochs 3..3: val BLEU (greedy)" in exported and "mean of epochs 2..3: val BLEU (greedy)" in exported
    entry = json.loads((single.parent / "manifest.json").read_text())["artifacts"]["translator-lstm.pt"]
    assert {(s["pair"], s["beam_size"]) for s in entry["scores"]} == {("en-de", 1), ("en-de", 4), ("en-fr", 1), ("en-fr", 4)}

    distilled = tmp_path / "distilled"
    run("models.translation.distill", "--teacher", str(single), "--data-dir", str(data), "--out", str(distilled), "--chunk", "150", "--threads", "1")
    teacher = load_translation_model(single)  # verified against the manifest the export wrote
    sources = gzip.decompress((data / "train.en.gz").read_bytes()).decode().splitlines()
    targets = gzip.decompress((distilled / "train.de.gz").read_bytes()).decode().splitlines()
    assert len(targets) == 400 and targets[:5] == teacher.translate_all(sources[:5], "de", 4)
    assert sorted(p.name for p in (distilled / "chunks").iterdir()) == [f"{lang}-{n:04d}.txt" for lang in ("de", "fr") for n in range(3)]
    assert (distilled / "val.de.gz").read_bytes() == (data / "val.de.gz").read_bytes()  # students select on the real references

    pair = tmp_path / "art" / "translator-lstm-ensemble.pt"
    run("models.translation.export", "--ensemble", str(single), str(single), "--data-dir", str(data), "--out", str(pair))
    ensemble = load_translation_model(pair)
    assert [m["sha256"] for m in ensemble.meta["members"]] == [entry["sha256"]] * 2
    assert ensemble.translate_all(sources[:5], "fr", 4) == teacher.translate_all(sources[:5], "fr", 4)  # two copies decode as one
