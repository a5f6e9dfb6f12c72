"""Where the model tests run: ``DEVICE`` (default ``cpu``; ``make gpu-check`` sets ``cuda``) and ``GPU_DTYPE``.

Tests load the programs there, move their inputs to the program's device and
compare on the CPU. On CUDA, fp32 results differ from the CPU's in the last
bits (other kernels; cuDNN's LSTM may use TF32), hence the looser tolerance.
"""

from __future__ import annotations

import os

from service.inference import resolve_device

DEVICE = resolve_device(os.environ.get("DEVICE", "").strip() or "cpu")
GPU_DTYPE = os.environ.get("GPU_DTYPE", "").strip() or "float16"
ON_CUDA = DEVICE.startswith("cuda")
ATOL = 1e-3 if ON_CUDA else 1e-5  # probabilities, scores, attention weights of one program on one device
