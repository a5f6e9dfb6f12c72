"""Pieces every training command shares: length-bucketed batches and atomic, resumable checkpoints."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def batches_by_length(lengths: list[int], batch_size: int, rng: random.Random, pool_batches: int = 50) -> list[list[int]]:
    """Shuffled batches of similar-length examples: shuffle, sort within pools of ``pool_batches`` batches, shuffle batches."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    pool = pool_batches * batch_size
    chunks = [sorted(idx[i : i + pool], key=lambda j: lengths[j]) for i in range(0, len(idx), pool)]
    out = [c[i : i + batch_size] for c in chunks for i in range(0, len(c), batch_size)]
    rng.shuffle(out)
    return out


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: an interrupted save never leaves a broken checkpoint behind."""
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Checkpoints hold tensors and plain data only; nothing else is unpickled. Tensors load on the CPU
    (a run trained on a GPU exports and resumes anywhere; ``load_state_dict`` copies them to the model's device)."""
    data: dict[str, Any] = torch.load(path, weights_only=True, map_location="cpu")
    return data


def resume(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, fresh: dict[str, Any]) -> dict[str, Any]:
    """Load model and optimizer from ``path`` if it exists and return its training state; else ``fresh``."""
    if not path.exists():
        return fresh
    ck = load_checkpoint(path)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["opt"])
    state: dict[str, Any] = ck["state"]
    print(f"resumed from {path}: epoch {state['epoch'] + 1}, batch {state['batch']}", flush=True)
    return state


def end_epoch(
    state: dict[str, Any],
    out: Path,
    best_key: str,
    score: float,
    entry: dict[str, Any],
    save: Callable[[Path], None],
    on_plateau: Callable[[], None] | None = None,
) -> None:
    """Close an epoch: record ``entry``, keep ``best.pt`` when ``score`` beats ``state[best_key]`` (else count a bad
    epoch and call ``on_plateau``), then write ``last.pt`` and ``metrics.json``."""
    state["history"].append(entry)
    if score > state[best_key]:
        state[best_key], state["bad_epochs"] = score, 0
        save(out / "best.pt")
    else:
        state["bad_epochs"] += 1
        if on_plateau:
            on_plateau()
    state["epoch"], state["batch"] = state["epoch"] + 1, 0
    save(out / "last.pt")
    (out / "metrics.json").write_text(json.dumps({best_key: state[best_key], "history": state["history"]}, indent=2))
