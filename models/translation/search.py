"""Beam search (greedy = beam 1) as a running decode that sentences join and leave, compiled with ``torch.jit.script``.

Every live sentence b keeps K_b hypotheses; all hypotheses of all sentences advance
together as the rows of one batch (a sentence's rows are contiguous):

    score(y_1..y_t) = sum_i log p(y_i | y_<i, x)                 ranking while searching
    final choice    = argmax_k score_k / len_k^alpha               length-normalised (alpha = 1: per-token mean)

- a hypothesis ends with ``</s>``; afterwards it only extends with padding at no cost,
- sentence b must end by ``floor(len_a * |x_b| + len_b)`` tokens (``</s>`` is forced there),
- ``<pad>``, ``<unk>``, ``<s>`` and language tokens are never produced,
- a sentence is complete when all its hypotheses have ended.

Iteration-level batching (Orca; TGI and vLLM's continuous batching) is built from
four calls, each a method of the exported program:

    start(src, src_len, langs, K, sids, keep_attn) -> Beams    encode new sentences, K hypotheses each
    join(a, b)                                     -> Beams    one running decode out of two
    advance(beams, max_steps)                      -> Beams    up to max_steps steps; returns early once a sentence completes
    finish(beams)      -> (Finished, Beams)                    take the complete sentences out
    drop(beams, sids)                              -> Beams    take sentences out unfinished (their client has gone)

Each sentence carries its own step count, length bound, beam size and target
language, so sentences that joined at different steps, with different beams and
languages, share every decoder call; the top-K choice is made per sentence
(one ``topk`` per beam size present). A sentence decodes the same tokens
whatever else shares its batch. ``forward`` is the static call (all sentences
start together, the call returns when the last completes), built from the same
methods, so evaluation, the Python API and the service run one search.
"""

# No `from __future__ import annotations`: TorchScript reads the NamedTuples' field types at run time.
from typing import NamedTuple

import torch
from torch import Tensor, nn

from models.translation.ensemble import Ensemble
from models.translation.model import Seq2Seq
from models.translation.tokenizer import BOS, EOS, PAD, UNK


class Beams(NamedTuple):
    """A running decode: R rows, the hypotheses of every live sentence; S: longest source; T: longest length bound."""

    sid: Tensor  # (R,) long: the sentence of each row (ids chosen by the caller)
    beam: Tensor  # (R,) long: that sentence's beam size K
    # widths are per model; an ensemble of M (models/translation/ensemble.py) holds its members' side by side (x M)
    memory: Tensor  # (R, S, 2He) encoder memory
    keys: Tensor  # (R, S, Hd) W_a memory
    mask: Tensor  # (R, S) bool: real source tokens
    h: Tensor  # (1, R, Hd) decoder state
    c: Tensor  # (1, R, Hd)
    o: Tensor  # (R, 1, E) last attentional state (input feeding)
    tokens: Tensor  # (R, T+1) long: the language token, then the hypothesis (padding after </s>)
    attn: Tensor  # (R, T, S) attention behind each token; (R, 0, 0) while no live sentence keeps it
    scores: Tensor  # (R,) sum of log-probabilities
    lengths: Tensor  # (R,) long: tokens up to and including </s>
    finished: Tensor  # (R,) bool: the hypothesis has ended
    step: Tensor  # (R,) long: steps the sentence has taken
    max_len: Tensor  # (R,) long: </s> is forced at this length
    keep_attn: Tensor  # (R,) bool: the caller wants this sentence's attention


class Finished(NamedTuple):
    """The chosen hypothesis of each sentence that completed."""

    sid: Tensor  # (n,) long
    tokens: Tensor  # (n, T) ending in </s> then padding
    lengths: Tensor  # (n,) long, with </s>
    scores: Tensor  # (n,) length-normalised
    attn: Tensor  # (n, T, S) of the chosen hypothesis; (n, 0, 0) when none of them kept it


def _resize(x: Tensor, dim: int, size: int, value: float) -> Tensor:
    """``x`` cut or padded with ``value`` to ``size`` along ``dim``."""
    if x.size(dim) >= size:
        return x.narrow(dim, 0, size)
    shape = list(x.shape)
    shape[dim] = size - x.size(dim)
    return torch.cat([x, torch.full(shape, value, dtype=x.dtype, device=x.device)], dim)


class BeamSearch(nn.Module):
    def __init__(self, model: Seq2Seq | Ensemble, banned: list[int], len_a: float = 1.5, len_b: int = 10, alpha: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.len_a = len_a
        self.len_b = len_b
        self.alpha = alpha
        self.pad_id, self.eos_id = PAD, EOS  # module attributes: TorchScript cannot read Python globals
        self.banned_ids = sorted({PAD, UNK, BOS, *banned})

    @torch.jit.export
    def start(self, src: Tensor, src_len: Tensor, langs: Tensor, beam_size: int, sids: Tensor, keep_attn: Tensor) -> Beams:
        """New sentences: src (B, S), src_len (B,), langs (B,) language-token ids, sids (B,), keep_attn (B,) bool."""
        B, K, S = src.size(0), beam_size, src.size(1)
        memory, keys, mask, h, c = self.model.encode(src, src_len)
        max_len = (src_len.to(torch.float32) * self.len_a).floor().long().add(self.len_b)  # (B,)
        T = int(max_len.max().item())
        scores = torch.zeros(B, K, device=src.device)
        scores[:, 1:] = float("-inf")  # at the start only the first hypothesis of each sentence is alive
        tokens = torch.full((B * K, T + 1), self.pad_id, dtype=torch.long, device=src.device)
        tokens[:, 0] = langs.repeat_interleave(K)
        keep = keep_attn.repeat_interleave(K)
        attn = torch.zeros(B * K, T, S, device=src.device) if bool(keep.any()) else torch.zeros(B * K, 0, 0, device=src.device)
        zeros = torch.zeros(B * K, dtype=torch.long, device=src.device)
        return Beams(
            sids.repeat_interleave(K),
            torch.full((B * K,), K, dtype=torch.long, device=src.device),
            memory.repeat_interleave(K, 0),
            keys.repeat_interleave(K, 0),
            mask.repeat_interleave(K, 0),
            h.repeat_interleave(K, 1),
            c.repeat_interleave(K, 1),
            memory.new_zeros(B * K, 1, self.model.feed_dim),
            tokens,
            attn,
            scores.view(B * K),
            zeros,
            torch.zeros(B * K, dtype=torch.bool, device=src.device),
            zeros.clone(),
            max_len.repeat_interleave(K),
            keep,
        )

    @torch.jit.export
    def join(self, a: Beams, b: Beams) -> Beams:
        """One running decode holding the rows of ``a`` then those of ``b`` (padded to the longer source and bound)."""
        S = max(a.memory.size(1), b.memory.size(1))
        T = max(a.tokens.size(1), b.tokens.size(1)) - 1
        keep = bool(a.keep_attn.any()) or bool(b.keep_attn.any())
        fa, fb = self._fit(a, S, T, keep), self._fit(b, S, T, keep)
        return Beams(
            torch.cat([a.sid, b.sid]),
            torch.cat([a.beam, b.beam]),
            torch.cat([fa[0], fb[0]]),
            torch.cat([fa[1], fb[1]]),
            torch.cat([fa[2], fb[2]]),
            torch.cat([a.h, b.h], 1),
            torch.cat([a.c, b.c], 1),
            torch.cat([a.o, b.o]),
            torch.cat([fa[3], fb[3]]),
            torch.cat([fa[4], fb[4]]),
            torch.cat([a.scores, b.scores]),
            torch.cat([a.lengths, b.lengths]),
            torch.cat([a.finished, b.finished]),
            torch.cat([a.step, b.step]),
            torch.cat([a.max_len, b.max_len]),
            torch.cat([a.keep_attn, b.keep_attn]),
        )

    def _fit(self, x: Beams, S: int, T: int, keep: bool) -> list[Tensor]:
        """memory, keys, mask, tokens and attention of ``x`` padded to source length S and length bound T."""
        attn = _resize(_resize(x.attn, 1, T, 0.0), 2, S, 0.0) if keep else x.attn.new_zeros(x.attn.size(0), 0, 0)
        return [
            _resize(x.memory, 1, S, 0.0),
            _resize(x.keys, 1, S, 0.0),
            _resize(x.mask, 1, S, 0.0),
            _resize(x.tokens, 1, T + 1, float(self.pad_id)),
            attn,
        ]

    def _groups(self, beam: Tensor) -> list[tuple[int, Tensor]]:
        """(K, rows) per beam size present: the rows of its sentences, in order (each sentence's K rows contiguous)."""
        groups: list[tuple[int, Tensor]] = []
        if beam.numel() == 0:
            return groups
        for k in range(1, int(beam.max().item()) + 1):
            rows = (beam == k).nonzero().squeeze(1)
            if rows.numel() > 0:
                groups.append((k, rows))
        return groups

    def _complete(self, x: Beams, groups: list[tuple[int, Tensor]]) -> Tensor:
        """(R,) bool: the row's sentence is complete (all its hypotheses have ended)."""
        done = torch.zeros_like(x.finished)
        for k, rows in groups:
            whole = x.finished[rows].view(-1, k).all(dim=1)  # per sentence
            done[rows] = whole.repeat_interleave(k)
        return done

    def _step(self, x: Beams, groups: list[tuple[int, Tensor]], banned: Tensor) -> Beams:
        R = x.sid.size(0)
        y = x.tokens.gather(1, x.step[:, None])  # (R, 1) each row's last token
        logits, a, o, h, c = self.model.step(y, x.o, x.h, x.c, x.memory, x.keys, x.mask)
        logp = torch.log_softmax(logits[:, 0].float(), dim=-1)  # (R, V)
        V = logp.size(1)
        logp[:, banned] = float("-inf")
        eos_row = torch.full((V,), float("-inf"), device=logp.device)
        eos_row[self.eos_id] = 0.0
        ended_row = torch.full((V,), float("-inf"), device=logp.device)
        ended_row[self.pad_id] = 0.0
        logp = torch.where((x.step + 1 >= x.max_len)[:, None], eos_row[None, :], logp)
        logp = torch.where(x.finished[:, None], ended_row[None, :], logp)
        cand = x.scores[:, None] + logp  # (R, V)

        sel = torch.empty(R, dtype=torch.long, device=logp.device)  # the row each new hypothesis extends
        tok = torch.empty(R, dtype=torch.long, device=logp.device)
        scores = torch.empty(R, device=logp.device)
        for k, rows in groups:  # top K of K x V candidates, per sentence
            top, idx = cand[rows].view(-1, k * V).topk(k, dim=1)  # (n, K)
            sel[rows] = rows.view(-1, k).gather(1, torch.div(idx, V, rounding_mode="floor")).view(-1)
            tok[rows] = (idx % V).view(-1)
            scores[rows] = top.view(-1)

        tokens = x.tokens[sel]
        tokens.scatter_(1, (x.step + 1)[:, None], tok[:, None])
        attn = x.attn
        if attn.size(1) > 0:
            attn = attn[sel]
            attn.scatter_(1, x.step[:, None, None].expand(R, 1, attn.size(2)), a[sel].float())
        was_finished = x.finished[sel]
        return Beams(
            x.sid,
            x.beam,
            x.memory,
            x.keys,
            x.mask,
            h[:, sel],
            c[:, sel],
            o[sel],
            tokens,
            attn,
            scores,
            x.lengths[sel] + (~was_finished).long(),
            was_finished | (tok == self.eos_id),
            x.step + 1,
            x.max_len,
            x.keep_attn,
        )

    @torch.jit.export
    def advance(self, x: Beams, max_steps: int) -> Beams:
        """Up to ``max_steps`` decoder steps for every live row; returns after the step in which a sentence completes."""
        groups = self._groups(x.beam)
        banned = torch.tensor(self.banned_ids, dtype=torch.long, device=x.sid.device)
        for _ in range(max_steps):
            if x.sid.numel() == 0:
                break
            x = self._step(x, groups, banned)
            if bool(self._complete(x, groups).any()):
                break
        return x

    def _select(self, x: Beams, rows: Tensor) -> Beams:
        """The decode of ``rows`` only, cut to their longest source and length bound."""
        n = rows.numel()
        S = int(x.mask[rows].sum(1).max().item()) if n > 0 else 0
        T = int(x.max_len[rows].max().item()) if n > 0 else 0
        keep = bool(x.keep_attn[rows].any())
        attn = x.attn[rows]
        attn = _resize(_resize(attn, 1, T, 0.0), 2, S, 0.0) if keep else attn.new_zeros(n, 0, 0)
        return Beams(
            x.sid[rows],
            x.beam[rows],
            x.memory[rows, :S],
            x.keys[rows, :S],
            x.mask[rows, :S],
            x.h[:, rows],
            x.c[:, rows],
            x.o[rows],
            x.tokens[rows, : T + 1],
            attn,
            x.scores[rows],
            x.lengths[rows],
            x.finished[rows],
            x.step[rows],
            x.max_len[rows],
            x.keep_attn[rows],
        )

    @torch.jit.export
    def finish(self, x: Beams) -> tuple[Finished, Beams]:
        """The complete sentences' chosen hypotheses (argmax of score / length^alpha), and the decode without them."""
        groups = self._groups(x.beam)
        done = self._complete(x, groups)
        norm = x.scores / x.lengths.clamp(min=1).to(torch.float32).pow(self.alpha)
        best: list[Tensor] = []
        for k, rows in groups:
            sentences = rows.view(-1, k)
            chosen = sentences.gather(1, norm[sentences].argmax(dim=1, keepdim=True)).squeeze(1)  # (n,)
            best.append(chosen[done[chosen]])
        rows = torch.cat(best) if len(best) > 0 else x.sid.new_zeros(0)
        T = int(x.lengths[rows].max().item()) if rows.numel() > 0 else 0
        keep = bool(x.keep_attn[rows].any())
        attn = x.attn[rows, :T] if keep else x.attn.new_zeros(rows.numel(), 0, 0)
        out = Finished(x.sid[rows], x.tokens[rows, 1 : T + 1], x.lengths[rows], norm[rows], attn)
        if rows.numel() == 0:
            return out, x
        return out, self._select(x, (~done).nonzero().squeeze(1))

    @torch.jit.export
    def drop(self, x: Beams, sids: Tensor) -> Beams:
        """The decode without the sentences ``sids`` (finished or not)."""
        gone = (x.sid[:, None] == sids[None, :]).any(dim=1)
        return self._select(x, (~gone).nonzero().squeeze(1))

    def forward(self, src: Tensor, src_len: Tensor, langs: Tensor, beam_size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """All sentences at once: src (B, S), src_len (B,), langs (B,) language-token ids ->
        tokens (B, T) ending in </s> then padding, lengths (B,) with </s>, scores (B,) normalised,
        attention (B, T, S) of the chosen hypothesis."""
        B, S = src.size(0), src.size(1)
        sids = torch.arange(B, device=src.device)
        x = self.start(src, src_len, langs, beam_size, sids, torch.ones(B, dtype=torch.bool, device=src.device))
        T = x.tokens.size(1) - 1
        tokens = torch.full((B, T), self.pad_id, dtype=torch.long, device=src.device)
        lengths = torch.zeros(B, dtype=torch.long, device=src.device)
        scores = torch.zeros(B, device=src.device)
        attn = torch.zeros(B, T, S, device=src.device)
        width = 0
        while x.sid.numel() > 0:
            x = self.advance(x, T + 1)
            done, x = self.finish(x)
            n = done.tokens.size(1)
            width = max(width, n)
            tokens[done.sid, :n] = done.tokens
            lengths[done.sid] = done.lengths
            scores[done.sid] = done.scores
            attn[done.sid, :n, : done.attn.size(2)] = done.attn
        return tokens[:, :width], lengths, scores, attn[:, :width]
