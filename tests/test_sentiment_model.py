"""The BiLSTM: shapes, padding invariance, and eager/TorchScript parity (random weights and shipped weights)."""

from pathlib import Path

import torch

from models import torchscript
from models.sentiment.model import BiLSTMClassifier, BiLSTMConfig, pad_batch
from service.inference import load_sentiment

from .devices import ATOL, DEVICE

SEQS = [[5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15, 16], [17], [18, 19, 20, 21]]


def small_model() -> BiLSTMClassifier:
    torch.manual_seed(0)
    return BiLSTMClassifier(BiLSTMConfig(vocab_size=50, embed_dim=8, hidden_dim=16, mlp_dim=16)).eval()


def test_shapes() -> None:
    ids, lengths = pad_batch(SEQS)
    assert ids.shape == (4, 9) and lengths.tolist() == [3, 9, 1, 4]
    assert small_model()(ids, lengths).shape == (4, 2)
    assert torch.allclose(small_model().probabilities(ids, lengths).sum(-1), torch.ones(4))


def test_padding_never_changes_a_result() -> None:
    model = small_model()
    ids, lengths = pad_batch(SEQS)
    batched = model.probabilities(ids, lengths)
    for i, seq in enumerate(SEQS):
        alone = model.probabilities(*pad_batch([seq]))
        assert torch.allclose(alone[0], batched[i], atol=1e-6)
    # more padding than needed changes nothing either
    wide = torch.cat([ids, torch.zeros(4, 7, dtype=torch.long)], dim=1)
    assert torch.allclose(model.probabilities(wide, lengths), batched, atol=1e-6)


def test_scripted_matches_eager(tmp_path: Path) -> None:
    model = small_model()
    path = tmp_path / "m.pt"
    torchscript.save(torchscript.script(model), path, {"meta.json": "{}"})
    program, files = torchscript.load(path, ["meta.json"])
    ids, lengths = pad_batch(SEQS)
    assert files["meta.json"] == b"{}"
    assert torch.allclose(program.probabilities(ids, lengths), model.probabilities(ids, lengths), atol=1e-5)


def test_shipped_artifact_matches_its_eager_model() -> None:
    """The shipped program on DEVICE against the eager model with its weights, on the same device."""
    clf = load_sentiment(device=DEVICE)
    cfg = BiLSTMConfig(**clf.meta["config"])
    eager = BiLSTMClassifier(cfg).to(clf.device).eval()
    eager.load_state_dict(clf.program.state_dict())
    texts = ["a gorgeous , witty , seductive movie .", "bad", "the plot is nothing but boilerplate clichés , and it drags on and on"]
    ids, lengths = (t.to(clf.device) for t in pad_batch(clf.encode(texts)))
    with torch.no_grad():
        scripted, expected = clf.program.probabilities(ids, lengths).cpu(), eager.probabilities(ids, lengths).cpu()
    torch.testing.assert_close(scripted, expected, atol=ATOL, rtol=0)
