"""Bidirectional LSTM sentiment classifier.

For a sentence of T word ids x_1..x_T:

    e_t           = E[x_t]                                  (embedding, GloVe-initialised)
    h_t^fwd       = LSTM_fwd(e_t, h_{t-1}^fwd)              (left to right)
    h_t^bwd       = LSTM_bwd(e_t, h_{t+1}^bwd)              (right to left)
    h_t           = [h_t^fwd ; h_t^bwd]                     (2H)
    u             = [max_t h_t ; mean_t h_t]                (4H, over the T real tokens only)
    logits        = W_2 relu(W_1 u + b_1) + b_2             (2)

The LSTM runs over packed sequences and the pooling is masked, so the padding
of a batch never changes a sentence's result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


@dataclass
class BiLSTMConfig:
    vocab_size: int
    embed_dim: int = 50
    hidden_dim: int = 256
    mlp_dim: int = 256
    num_classes: int = 2
    dropout: float = 0.3
    pad_id: int = 0

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


class BiLSTMClassifier(nn.Module):
    def __init__(self, cfg: BiLSTMConfig) -> None:
        super().__init__()
        self.pad_id = cfg.pad_id
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=cfg.pad_id)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_dim, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(cfg.dropout)
        self.fc1 = nn.Linear(4 * cfg.hidden_dim, cfg.mlp_dim)
        self.fc2 = nn.Linear(cfg.mlp_dim, cfg.num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids (B, T) int64 padded with pad_id, lengths (B,) int64 >= 1 -> logits (B, C)."""
        e = self.drop(self.embed(ids))  # (B, T, E)
        packed = pack_padded_sequence(e, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        h, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.size(1))  # (B, T, 2H), zeros past length
        mask = (torch.arange(ids.size(1), device=ids.device)[None, :] < lengths[:, None]).unsqueeze(-1)  # (B, T, 1)
        h_max = h.masked_fill(~mask, float("-inf")).max(dim=1).values  # (B, 2H)
        h_mean = h.sum(dim=1) / lengths[:, None].to(h.dtype)  # (B, 2H)
        u = self.drop(torch.cat([h_max, h_mean], dim=-1))  # (B, 4H)
        return self.fc2(self.drop(torch.relu(self.fc1(u))))  # (B, C)

    @torch.jit.export
    def probabilities(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Softmax over classes (B, C); what the service returns."""
        return torch.softmax(self.forward(ids, lengths), dim=-1)


def pad_batch(seqs: list[list[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists into (B, T) ids and (B,) lengths. Empty lists become one pad token of length 1."""
    lengths = [max(1, len(s)) for s in seqs]
    ids = torch.full((len(seqs), max(lengths)), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, torch.tensor(lengths, dtype=torch.long)
