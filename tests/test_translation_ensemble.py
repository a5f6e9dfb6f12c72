"""An ensemble of translators decodes as one model: the members' mean log-probability, exact in a running decode."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
import torch

from models import torchscript
from models.translation.ensemble import Ensemble
from models.translation.export import ENSEMBLE_NAME, ensemble_of, load_weights
from models.translation.model import Seq2Seq, Seq2SeqConfig
from models.translation.search import BeamSearch
from models.translation.tokenizer import EOS, SubwordTokenizer
from models.translation.translate import pad

from .decode_schedule import alone, assert_same, continuously

LANG = 4  # plays the target-language token
RNG = random.Random(3)
SENTENCES = [[*(RNG.randint(6, 39) for _ in range(RNG.randint(1, 10))), EOS] for _ in range(12)]


def tiny(seed: int, vocab: int = 40, input_feeding: bool = True, dec_hidden: int = 24) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(Seq2SeqConfig(vocab_size=vocab, embed_dim=16, enc_hidden=16, dec_hidden=dec_hidden, input_feeding=input_feeding)).eval()


def search_of(model: Seq2Seq | Ensemble) -> BeamSearch:
    return BeamSearch(model, banned=[LANG, 5], len_a=1.5, len_b=3).eval()


@pytest.mark.parametrize("beam", [1, 4])
def test_two_copies_of_one_model_decode_as_that_model(beam: int) -> None:
    model = tiny(0)
    single = torchscript.script(search_of(model))
    pair = torchscript.script(search_of(Ensemble([model, copy.deepcopy(model)])))
    for src in SENTENCES:
        assert_same(alone(pair, src, LANG, beam), alone(single, src, LANG, beam))


@pytest.mark.parametrize("input_feeding", [False, True])
def test_each_step_is_the_members_mean_log_probability_and_attention(input_feeding: bool) -> None:
    members = [tiny(1, input_feeding=input_feeding), tiny(2, input_feeding=input_feeding)]
    ens = Ensemble(members)
    src, src_len = pad(SENTENCES[:3], "cpu")
    y = torch.tensor([[LANG], [7], [9]])
    with torch.no_grad():
        memory, keys, mask, h, c = ens.encode(src, src_len)
        logp, attn, o, h2, c2 = ens.step(y, torch.zeros(3, 1, ens.feed_dim), h, c, memory, keys, mask)
        expected_logp, expected_attn, own_h = torch.zeros(3, 1, 40), torch.zeros(3, 1, src.size(1)), []
        for m in members:
            m_memory, m_keys, _, m_h, m_c = m.encode(src, src_len)
            logits, a, _, m_h2, _ = m.step(y, torch.zeros(3, 1, m.feed_dim), m_h, m_c, m_memory, m_keys, mask)
            expected_logp += torch.log_softmax(logits, -1) / 2
            expected_attn += a / 2
            own_h.append(m_h2)
    torch.testing.assert_close(logp, expected_logp)
    torch.testing.assert_close(attn, expected_attn)
    torch.testing.assert_close(h2, torch.cat(own_h, -1))  # each member's state side by side, (1, B, 2·Hd)
    assert o.shape == (3, 1, 32) and c2.shape == (1, 3, 48)


def test_a_sentence_decodes_the_same_in_a_running_ensemble_decode_that_others_join_and_leave() -> None:
    """Continuous batching with two different members: beams 1, 2, 4 and 8 join one by one, complete sentences leave,
    two are dropped unfinished; every other sentence gets the tokens, score and attention it gets decoded alone."""
    program = torchscript.script(search_of(Ensemble([tiny(3), tiny(4)])))
    rng = random.Random(2)
    sentences = [(src, LANG, rng.choice([1, 2, 4, 8]), i % 2 == 0) for i, src in enumerate(SENTENCES * 2)]
    got = continuously(program, sentences, drop=frozenset({2, 9}))
    assert set(got) == set(range(len(sentences))) - {2, 9}
    for i, d in got.items():
        src, lang, beam, _ = sentences[i]
        assert_same(d, alone(program, src, lang, beam))


def test_members_of_different_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="ensemble members must share one shape"):
        Ensemble([tiny(0), tiny(0, dec_hidden=32)])


def artifact(path: Path, model: Seq2Seq, tok: SubwordTokenizer, version: str) -> Path:
    """A single-model artifact as the export writes it (program, subword model, metadata)."""
    meta = {"name": "translator-lstm", "task": "translation", "version": version, "pairs": [["en", "de"]], "config": {}, "training": {"epochs": 1}}
    meta["config"] = {"vocab_size": len(tok), "embed_dim": 16, "enc_hidden": 16, "dec_hidden": 24, "dropout": 0.3, "input_feeding": True}
    program = torchscript.script(BeamSearch(model, banned=list(tok.lang_ids.values())).eval())
    torchscript.save(program, path, {"spm.model": tok.proto, "meta.json": json.dumps(meta)})
    return path


def test_an_exported_ensemble_keeps_its_members_and_reloads_as_an_ensemble(tmp_path: Path) -> None:
    rng = random.Random(0)
    words = ["A", "man", "dog", "runs", "Ein", "Mann", "Hund", "läuft", "Un", "homme", "chien", "court"]
    tok = SubwordTokenizer.train([" ".join(rng.choice(words) for _ in range(6)) + "." for _ in range(300)], vocab_size=300)
    a = artifact(tmp_path / "a.pt", tiny(5, vocab=len(tok)), tok, "1.1.0")
    b = artifact(tmp_path / "b.pt", tiny(6, vocab=len(tok)), tok, "0.9.0")
    search, tok2, meta = ensemble_of([a, b])
    assert meta["name"] == ENSEMBLE_NAME and [m["version"] for m in meta["members"]] == ["1.1.0", "0.9.0"]
    assert tok2.proto == tok.proto and meta["parameters"] == 2 * sum(p.numel() for p in tiny(5, vocab=len(tok)).parameters())
    out = tmp_path / "ensemble.pt"
    torchscript.save(torchscript.script(search), out, {"spm.model": tok.proto, "meta.json": json.dumps(meta)})
    model, _, _ = load_weights(out)
    assert isinstance(model, Ensemble) and model.n == 2
    reloaded = torchscript.script(BeamSearch(model, banned=list(tok.lang_ids.values())).eval())
    src = [*tok.encode("A man runs."), EOS]
    lang = tok.lang_ids["de"]
    assert_same(alone(reloaded, src, lang, 4), alone(torchscript.script(search), src, lang, 4))


def test_members_with_other_subword_models_are_refused(tmp_path: Path) -> None:
    toks = [SubwordTokenizer.train([f"{w} runs with the dog number {i}." for i in range(300)], vocab_size=300) for w in ("A man", "Ein Mann")]
    paths = [artifact(tmp_path / f"{i}.pt", tiny(i, vocab=len(t)), t, "1.0.0") for i, t in enumerate(toks)]
    with pytest.raises(SystemExit, match="share one subword model"):
        ensemble_of(paths)
