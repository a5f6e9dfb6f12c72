"""Each model thread issues its GPU work on a CUDA stream of its own, so the two models' kernels can overlap on one GPU."""

from __future__ import annotations

import contextlib
from typing import Any


def on_own_stream(device: str) -> contextlib.AbstractContextManager[Any]:
    """A new CUDA stream on ``device`` for the calling thread; nothing on the CPU."""
    if not device.startswith("cuda"):
        return contextlib.nullcontext()
    import torch

    return torch.cuda.stream(torch.cuda.Stream(device))
