"""Batched beam search (greedy = beam 1), written to compile with ``torch.jit.script``.

All B sentences x K hypotheses advance together as one (B*K)-row batch:

    score(y_1..y_t) = sum_i log p(y_i | y_<i, x)                 ranking while searching
    final choice    = argmax_k score_k / len_k^alpha               length-normalised (alpha = 1: per-token mean)

- a hypothesis ends with ``</s>``; afterwards it only extends with padding at no cost,
- sentence b must end by ``floor(len_a * |x_b| + len_b)`` tokens (``</s>`` is forced there),
- ``<pad>``, ``<unk>``, ``<s>`` and language tokens are never produced,
- the loop stops as soon as every hypothesis has ended.

Each row's language token comes in ``langs``, so one call can translate into
several target languages; all rows share one beam size.
"""

from __future__ import annotations

import torch
from torch import nn

from models.translation.model import Seq2Seq
from models.translation.tokenizer import BOS, EOS, PAD, UNK


class BeamSearch(nn.Module):
    def __init__(self, model: Seq2Seq, banned: list[int], len_a: float = 1.5, len_b: int = 10, alpha: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.len_a = len_a
        self.len_b = len_b
        self.alpha = alpha
        self.pad_id, self.eos_id = PAD, EOS  # module attributes: TorchScript cannot read Python globals
        self.banned_ids = sorted({PAD, UNK, BOS, *banned})

    def forward(
        self, src: torch.Tensor, src_len: torch.Tensor, langs: torch.Tensor, beam_size: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """src (B, S), src_len (B,), langs (B,) language-token ids ->
        tokens (B, T) ending in </s> then padding, lengths (B,) with </s>, scores (B,) normalised,
        attention (B, T, S) of the chosen hypothesis."""
        B, K = src.size(0), beam_size
        memory, keys, mask, h, c = self.model.encode(src, src_len)
        memory, keys, mask = memory.repeat_interleave(K, 0), keys.repeat_interleave(K, 0), mask.repeat_interleave(K, 0)
        h, c = h.repeat_interleave(K, 1), c.repeat_interleave(K, 1)
        max_len = (src_len.to(torch.float32) * self.len_a).floor().long().add(self.len_b).repeat_interleave(K)  # (BK,)
        T = int(max_len.max().item())
        BK = B * K

        scores = torch.zeros(B, K, device=src.device)
        scores[:, 1:] = float("-inf")  # at the start only the first hypothesis of each sentence is alive
        scores = scores.view(BK)
        tokens = torch.full((BK, T + 1), self.pad_id, dtype=torch.long, device=src.device)
        tokens[:, 0] = langs.repeat_interleave(K)
        attn = torch.zeros(BK, T, src.size(1), device=src.device)
        lengths = torch.zeros(BK, dtype=torch.long, device=src.device)
        finished = torch.zeros(BK, dtype=torch.bool, device=src.device)
        base = torch.arange(B, device=src.device) * K
        ended_row = torch.full((self.model.embed.num_embeddings,), float("-inf"), device=src.device)
        ended_row[self.pad_id] = 0.0
        eos_row = torch.full_like(ended_row, float("-inf"))
        eos_row[self.eos_id] = 0.0

        banned = torch.tensor(self.banned_ids, dtype=torch.long, device=src.device)
        o = memory.new_zeros(BK, 1, self.model.embed.embedding_dim)  # previous attentional state (input feeding)
        steps = 0
        for t in range(T):
            logits, a, o, h, c = self.model.step(tokens[:, t : t + 1], o, h, c, memory, keys, mask)
            logp = torch.log_softmax(logits[:, 0].float(), dim=-1)  # (BK, V)
            logp[:, banned] = float("-inf")
            logp = torch.where((t + 1 >= max_len)[:, None], eos_row[None, :], logp)
            logp = torch.where(finished[:, None], ended_row[None, :], logp)
            V = logp.size(1)
            top, idx = (scores[:, None] + logp).view(B, K * V).topk(K, dim=1)  # (B, K)
            sel = (base[:, None] + torch.div(idx, V, rounding_mode="floor")).view(BK)
            tok = (idx % V).view(BK)
            tokens = tokens[sel]
            tokens[:, t + 1] = tok
            attn = attn[sel]
            attn[:, t] = a[sel, 0].float()
            h, c, o = h[:, sel], c[:, sel], o[sel]
            was_finished = finished[sel]
            lengths = lengths[sel] + (~was_finished).long()
            finished = was_finished | (tok == self.eos_id)
            scores = top.view(BK)
            steps = t + 1
            if bool(finished.all()):
                break

        norm = scores / lengths.clamp(min=1).to(torch.float32).pow(self.alpha)
        best = base + norm.view(B, K).argmax(dim=1)
        return tokens[best, 1 : steps + 1], lengths[best], norm[best], attn[best, :steps]
