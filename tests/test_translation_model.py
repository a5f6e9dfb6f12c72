"""The translation model without data sets: a tiny model learns to reverse sequences in seconds, then decodes exactly."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from models import torchscript
from models.training import save_checkpoint
from models.translation.export import average_epochs
from models.translation.model import Seq2Seq, Seq2SeqConfig
from models.translation.search import BeamSearch
from models.translation.tokenizer import EOS, PAD, SubwordTokenizer
from models.translation.translate import pad

from .decode_schedule import alone, assert_same, continuously

LANG = 4  # plays the target-language token
SYMBOLS = list(range(6, 16))


def sample(rng: random.Random) -> list[int]:
    return [rng.choice(SYMBOLS) for _ in range(rng.randint(2, 6))]


@pytest.fixture(scope="module")
def reverser() -> BeamSearch:
    torch.manual_seed(0)
    rng = random.Random(0)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=16, embed_dim=32, enc_hidden=32, dec_hidden=64, dropout=0.0))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(800):
        seqs = [sample(rng) for _ in range(64)]
        src, src_len = pad([[*s, EOS] for s in seqs], "cpu")
        tgt, _ = pad([[LANG, *reversed(s), EOS] for s in seqs], "cpu")
        logits = model(src, src_len, tgt[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 16), tgt[:, 1:].reshape(-1), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return BeamSearch(model, banned=[LANG, 5]).eval()


def decode(search: torch.nn.Module, seqs: list[list[int]], beam: int) -> list[list[int]]:
    src, src_len = pad([[*s, EOS] for s in seqs], "cpu")
    with torch.no_grad():
        out, lengths, _, _ = search(src, src_len, torch.full((len(seqs),), LANG), beam)
    return [out[i, : int(lengths[i])].tolist() for i in range(len(seqs))]


TEST = [sample(random.Random(100 + i)) for i in range(24)]


@pytest.mark.parametrize("beam", [1, 3])
def test_learns_to_reverse_and_decodes_exactly(reverser: BeamSearch, beam: int) -> None:
    assert decode(reverser, TEST, beam) == [[*reversed(s), EOS] for s in TEST]


def test_scripted_program_gives_identical_ids(reverser: BeamSearch) -> None:
    program = torchscript.script(reverser)
    for beam in (1, 4):
        assert decode(program, TEST, beam) == decode(reverser, TEST, beam)


def test_a_batch_and_one_by_one_agree(reverser: BeamSearch) -> None:
    batched = decode(reverser, TEST, 4)
    assert [decode(reverser, [s], 4)[0] for s in TEST] == batched


@pytest.mark.parametrize("input_feeding", [False, True])
def test_teacher_forcing_and_step_by_step_decoding_compute_the_same_logits(input_feeding: bool) -> None:
    torch.manual_seed(2)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=16, embed_dim=8, enc_hidden=8, dec_hidden=12, input_feeding=input_feeding)).eval()
    src, src_len = pad([[6, 7, 8, EOS], [9, EOS]], "cpu")
    tgt = torch.tensor([[LANG, 10, 11, 12], [LANG, 13, EOS, PAD]])
    with torch.no_grad():
        forced = model(src, src_len, tgt)  # (B, T, V)
        memory, keys, mask, h, c = model.encode(src, src_len)
        o = torch.zeros(2, 1, 8)
        for t in range(tgt.size(1)):
            logits, _, o, h, c = model.step(tgt[:, t : t + 1], o, h, c, memory, keys, mask)
            torch.testing.assert_close(logits[:, 0], forced[:, t])


@pytest.mark.parametrize("input_feeding", [False, True])
@pytest.mark.parametrize("beam", [1, 4])
def test_search_scores_are_the_teacher_forced_log_probabilities_of_its_output(input_feeding: bool, beam: int) -> None:
    """Whatever the weights, the score search returns for its choice is the model's own log-probability
    of that output per token, so the decoder state (and with input feeding, o) follows each hypothesis."""
    torch.manual_seed(3)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=16, embed_dim=8, enc_hidden=8, dec_hidden=12, input_feeding=input_feeding)).eval()
    search = BeamSearch(model, banned=[LANG, 5], len_a=1.5, len_b=2).eval()
    seqs = [[6, 7, 8], [9, 10, 11, 12, 13, 14], [15, 6]]
    src, src_len = pad([[*s, EOS] for s in seqs], "cpu")
    for program in (search, torchscript.script(search)):
        with torch.no_grad():
            out, lengths, scores, _ = program(src, src_len, torch.full((3,), LANG), beam)
            for i, s in enumerate(seqs):
                y = out[i, : int(lengths[i])]
                logp = torch.log_softmax(model(src[i : i + 1, : len(s) + 1], src_len[i : i + 1], torch.cat([torch.tensor([LANG]), y[:-1]])[None]), -1)[0]
                picked = logp.gather(1, y[:, None])[:, 0]
                forced_eos = len(y) == int(1.5 * (len(s) + 1)) + 2  # </s> forced at the bound costs nothing
                expected = (picked[:-1].sum() + (0.0 if forced_eos else picked[-1])) / len(y)
                torch.testing.assert_close(scores[i], expected, rtol=1e-5, atol=1e-5)


def test_input_feeding_changes_the_decoder() -> None:
    plain, fed = (Seq2Seq(Seq2SeqConfig(vocab_size=16, embed_dim=8, enc_hidden=8, dec_hidden=12, input_feeding=f)) for f in (False, True))
    assert plain.decoder.input_size == 8 and fed.decoder.input_size == 16  # [E[y_{t-1}] ; o_{t-1}]


def test_output_is_bounded_by_source_length() -> None:
    torch.manual_seed(1)
    untrained = BeamSearch(Seq2Seq(Seq2SeqConfig(vocab_size=16, embed_dim=8, enc_hidden=8, dec_hidden=8)), banned=[LANG, 5], len_a=1.5, len_b=2).eval()
    seqs = [[6, 7], [6, 7, 8, 9, 10, 11]]
    for beam in (1, 4):
        for s, out in zip(seqs, decode(untrained, seqs, beam), strict=True):
            assert 1 <= len(out) <= int(1.5 * (len(s) + 1)) + 2
            assert out[-1] == EOS and EOS not in out[:-1] and PAD not in out and LANG not in out


def test_subword_round_trip_without_unknowns() -> None:
    rng = random.Random(0)
    words = ["A", "man", "dog", "runs", "in", "the", "park", "Ein", "Mann", "läuft", "Hund", "Un", "homme", "chien", "court", "à", "vélo"]
    corpus = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) + "." for _ in range(400)]
    tok = SubwordTokenizer.train(corpus, vocab_size=400)
    for text in ["A man runs in the park.", "Ein Hund läuft.", "Un chien court à vélo.", "Zebra 😀 Ω, 3.5%!"]:
        ids = tok.encode(text)
        assert 1 not in ids  # byte fallback: nothing is unknown
        assert tok.decode(ids) == text
    assert set(tok.lang_ids) == {"de", "fr"} and len(set(tok.lang_ids.values())) == 2


def test_checkpoint_average_is_the_mean_of_the_last_epochs(tmp_path: Path) -> None:
    for epoch, value in ((1, 100.0), (2, 1.0), (3, 3.0)):
        save_checkpoint(tmp_path / f"epoch-{epoch}.pt", {"model": {"w": torch.full((2,), value, dtype=torch.float16)}})
    averaged = average_epochs(tmp_path, last=3, n=2)
    assert averaged["w"].dtype == torch.float32 and averaged["w"].tolist() == [2.0, 2.0]


@pytest.mark.parametrize("input_feeding", [False, True])
def test_a_sentence_decodes_the_same_in_a_running_decode_that_others_join_and_leave(input_feeding: bool) -> None:
    """Continuous batching: sentences of beams 1, 2, 4 and 8 join one by one, complete ones leave at once, two are
    dropped unfinished; every other sentence gets the tokens, score and attention it gets decoded alone."""
    torch.manual_seed(5)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=40, embed_dim=16, enc_hidden=16, dec_hidden=24, input_feeding=input_feeding)).eval()
    search = BeamSearch(model, banned=[LANG, 5], len_a=1.5, len_b=3).eval()
    rng = random.Random(1)
    sentences = [([*(rng.randint(6, 39) for _ in range(rng.randint(1, 12))), EOS], LANG, rng.choice([1, 2, 4, 8]), i % 2 == 0) for i in range(30)]
    for program in (search, torchscript.script(search)):
        got = continuously(program, sentences, drop=frozenset({3, 7}))
        assert set(got) == set(range(30)) - {3, 7}
        for i, d in got.items():
            src, lang, beam, _ = sentences[i]
            assert_same(d, alone(program, src, lang, beam))


def test_the_static_call_is_the_running_decode_of_a_batch(reverser: BeamSearch) -> None:
    program = torchscript.script(reverser)
    got = continuously(program, [([*s, EOS], LANG, 4, False) for s in TEST])
    assert [got[i].tokens for i in range(len(TEST))] == decode(program, TEST, 4)
