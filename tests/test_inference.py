"""The Python API on the shipped artifact: answers, batch invariance, integrity checks, dev accuracy."""

import shutil
from pathlib import Path

import pytest

from models.manifest import ArtifactError, sha256_of
from models.sentiment.evaluate import dev_accuracy
from service.inference import load_sentiment

from .conftest import ARTIFACTS
from .devices import DEVICE

POSITIVE = ["a gorgeous, witty, seductive movie.", "I LOVED it!!! One of the best films of the year.", "a masterpiece, funny and moving"]
NEGATIVE = ["the plot is nothing but boilerplate clichés", "It doesn't work at all, a boring and pointless mess.", "the worst movie i have ever seen"]


@pytest.fixture(scope="module")
def clf():  # type: ignore[no-untyped-def]
    return load_sentiment(device=DEVICE)


def test_obvious_examples(clf) -> None:  # type: ignore[no-untyped-def]
    out = clf.predict(POSITIVE + NEGATIVE)
    assert [o["label"] for o in out] == ["positive"] * 3 + ["negative"] * 3
    for o in out:
        assert set(o) == {"label", "confidence", "probabilities"}
        assert o["confidence"] == max(o["probabilities"].values()) > 0.5
        assert abs(sum(o["probabilities"].values()) - 1) < 1e-5


def test_a_text_alone_and_in_a_padded_batch_agree(clf) -> None:  # type: ignore[no-untyped-def]
    batch = clf.predict(POSITIVE + NEGATIVE)
    for text, expected in zip(POSITIVE + NEGATIVE, batch, strict=False):
        alone = clf.predict([text])[0]
        for label in alone["probabilities"]:
            assert alone["probabilities"][label] == pytest.approx(expected["probabilities"][label], abs=1e-5)


def test_empty_input_gives_empty_output(clf) -> None:  # type: ignore[no-untyped-def]
    assert clf.predict([]) == []


def test_model_info_is_self_describing(clf) -> None:  # type: ignore[no-untyped-def]
    info = clf.info()
    assert info["sha256"] == sha256_of(ARTIFACTS / "sentiment-bilstm.pt")
    assert info["format"] == "torchscript" and info["labels"] == ["negative", "positive"]
    assert info["scores"][0]["dataset"] == "SST-2" and info["scores"][0]["metric"] == "accuracy"
    assert (ARTIFACTS / "sentiment-bilstm.pt").stat().st_size <= 20 * 2**20


def test_altered_or_missing_artifact_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "sentiment-bilstm.pt"
    shutil.copy(ARTIFACTS / "sentiment-bilstm.pt", copy)
    shutil.copy(ARTIFACTS / "manifest.json", tmp_path / "manifest.json")
    load_sentiment(copy)  # intact copy loads
    with copy.open("r+b") as f:
        f.truncate(copy.stat().st_size - 10)
    with pytest.raises(ArtifactError, match=r"does not match .*expected sha256"):
        load_sentiment(copy)
    with pytest.raises(ArtifactError, match="missing"):
        load_sentiment(tmp_path / "nope.pt")


def test_shipped_dev_accuracy(data_dir: Path, clf) -> None:  # type: ignore[no-untyped-def]
    acc = dev_accuracy(ARTIFACTS / "sentiment-bilstm.pt", data_dir / "sst2")
    recorded = clf.meta["scores"][0]["value"]
    assert acc == pytest.approx(recorded, abs=1e-4)  # the artifact's recorded score is what it scores
    assert acc >= 0.87


def test_service_refuses_to_start_on_an_altered_artifact(tmp_path: Path) -> None:
    import subprocess
    import sys

    from .conftest import ROOT

    copy = tmp_path / "sentiment-bilstm.pt"
    shutil.copy(ARTIFACTS / "sentiment-bilstm.pt", copy)
    shutil.copy(ARTIFACTS / "manifest.json", tmp_path / "manifest.json")
    with copy.open("r+b") as f:
        f.seek(1000)
        f.write(b"tampered")
    env = {"SENTIMENT_ARTIFACT": str(copy), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "bentoml", "serve", "service.service:LSTMService", "--port", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert f"artifact {copy} does not match" in proc.stderr and "expected sha256" in proc.stderr


@pytest.mark.skipif(DEVICE != "cpu", reason="oneDNN is the CPU's path; CUDA runs cuDNN")
def test_cpu_lstms_run_on_pytorchs_own_kernels(clf) -> None:  # type: ignore[no-untyped-def]
    """oneDNN's RNN op costs several times a decoder step's matrix products at a few rows
    (models/torchscript.py): after loading, neither model's LSTMs go through it."""
    from torch.profiler import profile

    from service.inference import load_translator

    tr = load_translator("en", "de")
    with profile() as p:
        clf.predict(["a gorgeous, witty, seductive movie."])
        tr.translate(["A dog runs."], beam_size=2)
    ops = {e.key for e in p.key_averages()}
    assert "aten::lstm" in ops
    assert not any("mkldnn_rnn" in op for op in ops)
