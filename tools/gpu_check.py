"""``make gpu-check``: the service's GPU path, checked on a machine with a CUDA device in under 8 minutes (docs/gpu.md).

    python -m tools.gpu_check [--dry-run]

Without a CUDA device it prints ``no CUDA device: nothing to check`` and exits 0
(``--dry-run`` prints the plan anyway). On a GPU it runs, each step with its own
time limit (together under 8 minutes):

1. the GPU-relevant tests with ``DEVICE=cuda`` (``tests/devices.py``): CUDA against
   the CPU for both models and the service on CUDA (``tests/test_gpu.py``), and the
   shipped models' exactness tests on the GPU (``tests/test_sentiment_model.py``,
   ``tests/test_translation_shipped.py``);
2. a short benchmark, ``python -m loadtests.bench --device cuda --quick`` (this service
   batched and unbatched, today's scenarios), which writes ``docs/benchmarks-gpu.md``;

then prints a summary, with the parity figures the tests measured
(``test-artifacts/gpu-parity.json``), and exits 1 when a step failed or ran out of time.
``GPU_DTYPE`` (float16 or float32) is passed through to the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARITY = ROOT / "test-artifacts" / "gpu-parity.json"  # written by tests/test_gpu.py
NO_GPU = "no CUDA device: nothing to check"
TEST_FILES = ("tests/test_gpu.py", "tests/test_sentiment_model.py", "tests/test_translation_shipped.py")
BENCH_ARGS = ("--device", "cuda", "--quick", "--only", "existing", "--systems", "bentoml", "bentoml-unbatched", "--out", "docs/benchmarks-gpu.md")
TESTS_TIMEOUT_S = 210
BENCH_TIMEOUT_S = 250  # with the tests', under 8 minutes


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]
    timeout_s: float
    env: dict[str, str] = field(default_factory=dict)  # added to this process's environment


@dataclass(frozen=True)
class Result:
    step: Step
    returncode: int | None  # None: stopped at its time limit
    seconds: float

    @property
    def passed(self) -> bool:
        return self.returncode == 0


def plan(python: str = sys.executable) -> list[Step]:
    """The steps run on a GPU, in order."""
    return [
        Step("tests on cuda", (python, "-m", "pytest", "-q", *TEST_FILES), TESTS_TIMEOUT_S, {"DEVICE": "cuda"}),
        Step("benchmark (quick)", (python, "-m", "loadtests.bench", *BENCH_ARGS), BENCH_TIMEOUT_S),
    ]


def cuda_devices() -> list[str]:
    """The names of the CUDA devices this process sees (none without a GPU or with a CPU build of torch)."""
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def run_step(step: Step, cwd: Path = ROOT) -> Result:
    """Run ``step`` (its output goes to this process's); at its time limit its whole process group is killed."""
    print(f"== {step.name}: {' '.join(step.argv)}", flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(step.argv, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1", **step.env}, start_new_session=True)
    try:
        code: int | None = proc.wait(step.timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        code = None
    return Result(step, code, time.monotonic() - start)


def summary(results: Sequence[Result], parity: dict[str, object] | None = None) -> str:
    """One line per step (PASS, FAIL with its exit status, or TIMEOUT at its limit), the parity figures, the verdict."""
    lines = ["gpu-check summary:"]
    for r in results:
        status = f"TIMEOUT after {r.step.timeout_s:g} s" if r.returncode is None else "PASS" if r.passed else f"FAIL (exit {r.returncode})"
        lines.append(f"  {r.step.name:<20} {status:<22} {r.seconds:6.1f} s")
    if parity:
        lines.append(f"parity, CUDA against the CPU ({PARITY.relative_to(ROOT)}):")
        lines += [f"  {key}: {json.dumps(value)}" for key, value in parity.items()]
    lines.append("gpu-check: all passed" if exit_code(results) == 0 else "gpu-check: FAILED")
    return "\n".join(lines)


def exit_code(results: Sequence[Result]) -> int:
    return 0 if results and all(r.passed for r in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="print the steps and their time limits; run nothing")
    args = ap.parse_args(argv)
    steps = plan()
    if args.dry_run:
        for s in steps:
            env = " ".join(f"{k}={v}" for k, v in s.env.items())
            print(f"{s.name} (at most {s.timeout_s:g} s): {env + ' ' if env else ''}{' '.join(s.argv)}")
        return 0
    devices = cuda_devices()
    if not devices:
        print(NO_GPU)
        return 0
    print(f"CUDA: {', '.join(devices)}; GPU_DTYPE={os.environ.get('GPU_DTYPE') or 'float16'}", flush=True)
    PARITY.unlink(missing_ok=True)
    results = [run_step(s) for s in steps]
    parity = json.loads(PARITY.read_text()) if PARITY.is_file() else None
    print(summary(results, parity))
    return exit_code(results)


if __name__ == "__main__":
    sys.exit(main())
