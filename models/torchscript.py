"""TorchScript save/load, the serving format.

PyTorch 2.13 marks ``torch.jit`` deprecated in favour of ``torch.export``. We keep
TorchScript on purpose: the translator's batched beam search is data-dependent
control flow (a loop that stops when every hypothesis has ended), which
``torch.jit.script`` compiles into the artifact and ``torch.export`` does not, and
a ``.pt`` program loads without the model's Python code. The deprecation warning
is therefore silenced here, in the one place we call ``torch.jit``, instead of
being shown to every user of the service.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        yield


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    with _quiet():
        return torch.jit.script(module)  # type: ignore[no-any-return]


def save(program: torch.jit.ScriptModule, path: str | Path, extra_files: dict[str, str | bytes]) -> None:
    with _quiet():
        torch.jit.save(program, str(path), _extra_files=extra_files)


def use_native_lstm_kernels() -> None:
    """Run LSTMs on the CPU with PyTorch's own kernels, not oneDNN's (``torch.backends.mkldnn``, process-wide).

    oneDNN's RNN primitive costs much more per call at a few rows: the translator calls its decoder LSTM once per
    step, and a one-row step took 4.6 ms in ``aten::mkldnn_rnn_layer`` against 0.9 ms in PyTorch's ``aten::lstm``
    (torch.profiler). Model time, one thread, own / oneDNN
    (``python -m experiments.lstm_kernels``, 6 December 2026): a 13-word caption greedy 0.34, beam 4 0.70;
    8 captions at beam 4 0.61; 32 captions 0.92. The sentiment BiLSTM runs a whole review per call: the same time
    from 8 reviews up, 1.17 for one review (0.94 against 0.81 ms); the flag is process-wide, so the translator
    decides. CUDA is not affected (cuDNN).
    """
    torch.backends.mkldnn.enabled = False  # type: ignore[assignment]  # a ContextProp: assignment sets the flag


def load(path: str | Path, extra_files: list[str], device: str = "cpu") -> tuple[torch.jit.ScriptModule, dict[str, bytes]]:
    """Load a program and the named extra files stored inside it; on the CPU, its LSTMs then run on PyTorch's
    own kernels (``use_native_lstm_kernels``)."""
    if device == "cpu":
        use_native_lstm_kernels()
    files: dict[str, bytes | str] = {name: "" for name in extra_files}
    with _quiet():
        program = torch.jit.load(str(path), map_location=device, _extra_files=files)
    return program, {k: v if isinstance(v, bytes) else v.encode() for k, v in files.items()}


def device_of(program: object) -> str:
    """Where a program's (or an eager module's) weights are, e.g. ``cpu`` or ``cuda:0``: its inputs go there.
    ``cpu`` for a callable without weights."""
    parameters = getattr(program, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    return "cpu" if first is None else str(first.device)
