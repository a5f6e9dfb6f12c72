"""Sentiment explanations and translation alignments through the Python API, on the shipped artifacts.

What each number means (README, ``service.schemas``): ``occlusion[i]`` is the
confidence minus the probability of the same label for the text without token i;
``trajectory[t]`` is the probability of the label for the text's first t + 1 tokens.
These tests recompute both from plain predictions of the edited texts.
"""

from __future__ import annotations

import pytest
import torch

from models.sentiment.explain import score_rows, variants
from service.inference import SentimentClassifier, TranslationModel, load_sentiment, load_translation_model

from .devices import DEVICE, GPU_DTYPE

TEXTS = [
    "I liked this product at first. But the battery dies after an hour, the screen scratches easily and the support never answered my emails.",
    "a gorgeous, witty, seductive movie.",
    "the plot is nothing but boilerplate clichés",
    "Zyzzyvaqx blorf!",  # unknown words
    "ok",
]


@pytest.fixture(scope="module")
def clf() -> SentimentClassifier:
    torch.set_num_threads(1)
    return load_sentiment(device=DEVICE)


@pytest.fixture(scope="module")
def tm() -> TranslationModel:
    return load_translation_model(device=DEVICE, gpu_dtype=GPU_DTYPE)


def label_probability(clf: SentimentClassifier, text: str, label: str) -> float:
    return float(clf.predict([text])[0]["probabilities"][label])


def test_variants_are_the_occluded_texts_then_the_prefixes() -> None:
    assert variants([5, 6, 7]) == [[6, 7], [5, 7], [5, 6], [5], [5, 6]]
    assert variants([9]) == [[]]
    assert variants([]) == []


def test_chunked_scoring_equals_one_call(clf: SentimentClassifier) -> None:
    rows = variants(clf.encode([TEXTS[0]])[0])
    whole = score_rows(clf.program.probabilities, rows, clf.device)
    chunked = score_rows(clf.program.probabilities, rows, clf.device, chunk_tokens=64)  # many calls, shortest rows first
    assert whole.shape == (len(rows), 2)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)


def test_shapes_and_invariants(clf: SentimentClassifier) -> None:
    plain = clf.predict(TEXTS)
    explained = clf.predict(TEXTS, explain=True)
    for p, e in zip(plain, explained, strict=True):
        x = e["explanation"]
        assert {k: v for k, v in e.items() if k != "explanation"} == p  # the prediction itself is untouched
        n = len(x["tokens"])
        assert n > 0
        assert set(x) == {"tokens", "in_vocabulary", "label", "occlusion", "trajectory"}
        assert len(x["in_vocabulary"]) == len(x["occlusion"]) == len(x["trajectory"]) == n
        assert x["label"] == p["label"]
        assert x["trajectory"][-1] == p["confidence"]  # the last prefix is the text: exactly the prediction
        assert all(-1 <= v <= 1 for v in x["occlusion"]) and all(0 <= v <= 1 for v in x["trajectory"])
    assert explained[0]["explanation"]["tokens"][:5] == ["i", "liked", "this", "product", "at"]
    assert explained[3]["explanation"]["in_vocabulary"] == [False, False, True]  # "zyzzyvaqx", "blorf" are <unk>, "!" is known


def test_numbers_are_what_the_docs_say(clf: SentimentClassifier) -> None:
    """Recompute every occlusion and trajectory value from plain predictions of the edited texts."""
    for text in TEXTS[1:3]:
        (r,) = clf.predict([text], explain=True)
        x = r["explanation"]
        words, label = x["tokens"], x["label"]
        for i in range(len(words)):
            without = " ".join(words[:i] + words[i + 1 :]) or "\x00"  # no tokens left: the model sees one pad token either way
            assert x["occlusion"][i] == pytest.approx(r["confidence"] - label_probability(clf, without, label), abs=2e-5)
            assert x["trajectory"][i] == pytest.approx(label_probability(clf, " ".join(words[: i + 1]), label), abs=2e-5)


def test_the_story_of_the_long_review(clf: SentimentClassifier) -> None:
    """The article's example: positive while the text is only the opening, negative once the faults come."""
    (r,) = clf.predict([TEXTS[0]], explain=True)
    x = r["explanation"]
    assert r["label"] == "negative"
    flip = x["tokens"].index("dies")
    assert max(x["trajectory"][:flip]) < 0.1  # P(negative) while the text is "i liked this product at first . but the battery"
    assert min(x["trajectory"][flip:]) > 0.9
    top = sorted(range(len(x["tokens"])), key=lambda i: -x["occlusion"][i])[:3]
    assert {x["tokens"][i] for i in top} == {"but", "dies", "scratches"}


def test_mixed_flags_in_one_batch(clf: SentimentClassifier) -> None:
    flags = [True, False, True, False, False]
    results, stats = clf.run(TEXTS, flags)
    plain, _ = clf.run(TEXTS)
    assert ["explanation" in r for r in results] == flags
    assert [{k: v for k, v in r.items() if k != "explanation"} for r in results] == plain
    assert results[2] == clf.predict([TEXTS[2]], explain=True)[0]
    assert stats.items == len(TEXTS)


def test_text_without_tokens(clf: SentimentClassifier) -> None:
    (r,) = clf.predict(["\x00"], explain=True)
    assert r["explanation"]["tokens"] == [] and r["explanation"]["occlusion"] == [] and r["explanation"]["trajectory"] == []


def test_alignment_shapes_and_rows(tm: TranslationModel) -> None:
    texts = ["A man in a blue shirt is riding a bike.", "Two dogs play in the snow.", "A dog runs."]
    for beam in (1, 4):
        plain, _ = tm.run(texts, ["de", "fr", "de"], beam)
        out, stats = tm.run(texts, ["de", "fr", "de"], beam, alignment=[True, False, True])
        assert [r["translation"] for r in out] == [r["translation"] for r in plain]
        assert out[1] == plain[1] and set(plain[0]) == {"translation"}
        for r in (out[0], out[2]):
            a = r["alignment"]
            assert a["source_tokens"][-1] == "</s>" and a["target_tokens"][-1] == "</s>"
            assert len(a["weights"]) == len(a["target_tokens"])
            assert all(len(row) == len(a["source_tokens"]) for row in a["weights"])
            assert all(abs(sum(row) - 1) < 1e-4 and min(row) >= 0 for row in a["weights"])
            detok = "".join(a["target_tokens"][:-1]).replace("▁", " ").strip()
            assert detok == r["translation"]
        assert stats.output_tokens[0] == len(out[0]["alignment"]["target_tokens"])
    (r,) = tm.run(["A dog runs."], ["de"], 4, alignment=True)[0]
    assert r["alignment"]["source_tokens"] == ["▁A", "▁dog", "▁runs", ".", "</s>"]
    # Of the source words (this model parks much attention on </s>), "Hund" looks most at "dog", "rennt" at "runs".
    for target, source in (("▁Hund", "▁dog"), ("▁rennt", "▁runs")):
        row = r["alignment"]["weights"][r["alignment"]["target_tokens"].index(target)][:-1]
        assert max(range(len(row)), key=row.__getitem__) == r["alignment"]["source_tokens"].index(source)


def test_translator_python_api(tm: TranslationModel) -> None:
    from service.inference import Translator

    tr = Translator(tm, "en", "fr")
    (r,) = tr.translate(["A dog runs."], beam_size=2, alignment=True)
    assert set(r) == {"translation", "alignment"}
    assert tr.translate(["A dog runs."], beam_size=2) == [{"translation": r["translation"]}]
