"""The shipped translator: golden outputs, eager/TorchScript parity on its own weights, batch invariance, BLEU record.

On ``DEVICE`` (``tests/devices.py``), in float32 there too: these tests are about exactness; the
float16 program on CUDA is compared with the CPU's within tolerance in ``tests/test_gpu.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.manifest import sha256_of
from models.translation.model import Seq2Seq, Seq2SeqConfig
from models.translation.search import BeamSearch
from models.translation.tokenizer import EOS
from models.translation.translate import translate
from service.inference import TranslationModel, load_translation_model, load_translator

from .conftest import ARTIFACTS
from .decode_schedule import alone, assert_same, continuously
from .devices import ATOL, DEVICE, ON_CUDA

ARTIFACT = ARTIFACTS / "translator-lstm.pt"
GOLDEN = Path(__file__).with_name("golden_translations.json")  # recorded from the shipped artifact
SENTENCES = [
    "A man in a blue shirt is riding a bike.",
    "Two dogs are playing in the snow.",
    "A little girl climbing into a wooden playhouse.",
    "A woman is reading a book on a bench in the park.",
    "People are walking down a busy city street.",
]


@pytest.fixture(scope="module")
def tm() -> TranslationModel:
    return load_translation_model(device=DEVICE, gpu_dtype="float32")


def test_golden_translations(tm: TranslationModel) -> None:
    if ON_CUDA:
        pytest.skip("recorded on the CPU; on CUDA the CPU is the reference, within tolerance (tests/test_gpu.py)")
    golden = json.loads(GOLDEN.read_text())
    assert golden["sha256"] == tm.sha256, "the artifact changed: re-record tests/golden_translations.json"
    for key, expected in golden["outputs"].items():
        target, beam = key.split(":")
        assert [o["translation"] for o in tm.run(SENTENCES, [target] * len(SENTENCES), int(beam))[0]] == expected, key


def test_python_api_contract() -> None:
    tr = load_translator("en", "fr", device=DEVICE)
    out = tr.translate(["A dog runs."], beam_size=4)
    assert len(out) == 1 and set(out[0]) == {"translation"} and out[0]["translation"]
    with pytest.raises(ValueError, match="unsupported language pair en->es"):
        load_translator("en", "es")


def test_scripted_program_matches_eager_model(tm: TranslationModel) -> None:
    cfg = Seq2SeqConfig(**tm.meta["config"])
    model = Seq2Seq(cfg)
    model.load_state_dict({k.removeprefix("model."): v for k, v in tm.program.state_dict().items()})
    eager = BeamSearch(model, banned=list(tm.tok.lang_ids.values())).to(tm.device).eval()
    for beam in (1, 4):
        for target in ("de", "fr"):
            a = translate(eager, tm.tok, SENTENCES, [target] * len(SENTENCES), beam)  # eager, on DEVICE (where its weights are)
            b = translate(tm.program, tm.tok, SENTENCES, [target] * len(SENTENCES), beam)  # scripted, on DEVICE
            assert [x.target_tokens for x in a] == [x.target_tokens for x in b]
            assert [x.score for x in a] == pytest.approx([x.score for x in b], abs=ATOL)


def test_a_batch_and_one_by_one_agree(tm: TranslationModel) -> None:
    mixed = ["de", "fr", "de", "fr", "de"]
    together = tm.run(SENTENCES, mixed, 4)[0]
    assert [tm.run([s], [t], 4)[0][0] for s, t in zip(SENTENCES, mixed, strict=True)] == together


def test_artifact_is_small_self_describing_and_scored(tm: TranslationModel) -> None:
    assert ARTIFACT.stat().st_size <= 20 * 2**20
    assert tm.sha256 == sha256_of(ARTIFACT)
    pairs = {tuple(p) for p in tm.meta["pairs"]}
    assert pairs == {("en", "de"), ("en", "fr")}
    got = {(s["pair"], s["metric"], s["beam_size"]) for s in tm.meta["scores"]}
    assert got == {(p, m, b) for p in ("en-de", "en-fr") for m in ("bleu", "bleu_lowercase") for b in (1, 4)}
    assert all(s["split"] == "test_2016_flickr" for s in tm.meta["scores"])
    assert isinstance(tm.program, torch.jit.ScriptModule) and tm.meta["format"] == "torchscript"


def test_continuous_batching_decodes_each_sentence_as_alone(tm: TranslationModel) -> None:
    """The shipped program's running decode: en->de and en->fr, greedy and beam 4, with and without alignment,
    sentences joining one by one and leaving when complete, one dropped: each gets its tokens decoded alone."""
    de, fr = tm.tok.lang_ids["de"], tm.tok.lang_ids["fr"]
    sentences = [
        ([*tm.tok.encode(text), EOS], lang, beam, keep)
        for text in SENTENCES
        for lang, beam, keep in ((de, 1, False), (fr, 4, True), (de, 4, False), (fr, 1, True))
    ]
    got = continuously(tm.program, sentences, drop=frozenset({5}))
    assert set(got) == set(range(len(sentences))) - {5}
    for i, d in got.items():
        src, lang, beam, _ = sentences[i]
        assert_same(d, alone(tm.program, src, lang, beam), ATOL)
