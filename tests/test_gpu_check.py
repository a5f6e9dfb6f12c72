"""``make gpu-check`` (tools/gpu_check.py) where no GPU is: its plan, its exit without CUDA, its verdict from real step runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tools import gpu_check
from tools.gpu_check import NO_GPU, ROOT, Step, exit_code, main, plan, run_step, summary

PY = sys.executable


def test_the_plan_is_the_tests_on_cuda_then_a_quick_benchmark_within_8_minutes() -> None:
    bench = ("--device", "cuda", "--quick", "--only", "existing", "--systems", "bentoml", "bentoml-unbatched", "--out", "docs/benchmarks-gpu.md")
    assert plan("/py") == [
        Step(
            "tests on cuda",
            ("/py", "-m", "pytest", "-q", "tests/test_gpu.py", "tests/test_sentiment_model.py", "tests/test_translation_shipped.py"),
            210,
            {"DEVICE": "cuda"},
        ),
        Step(
            "benchmark (quick)",
            ("/py", "-m", "loadtests.bench", *bench),
            250,
        ),
    ]
    assert sum(s.timeout_s for s in plan()) < 8 * 60
    assert all((ROOT / f).is_file() for f in gpu_check.TEST_FILES)


def test_the_benchmark_knows_the_planned_options_and_systems() -> None:
    """The quick benchmark's arguments as loadtests/bench.py's own --help states them (no benchmark runs here)."""
    proc = subprocess.run([PY, "-m", "loadtests.bench", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    flags = [a for a in gpu_check.BENCH_ARGS if a.startswith("--")]
    systems = gpu_check.BENCH_ARGS[gpu_check.BENCH_ARGS.index("--systems") + 1 : gpu_check.BENCH_ARGS.index("--out")]
    assert [f for f in flags if f not in proc.stdout] == []
    assert [s for s in (*systems, "'existing'") if s not in proc.stdout] == []


@pytest.fixture
def no_cuda() -> None:
    if gpu_check.cuda_devices():
        pytest.skip("a CUDA device is visible here: main() would run the whole check")


@pytest.mark.usefixtures("no_cuda")
def test_without_cuda_it_says_so_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert capsys.readouterr().out == NO_GPU + "\n"
    proc = subprocess.run([PY, "-m", "tools.gpu_check"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout) == (0, NO_GPU + "\n")


def test_dry_run_prints_the_plan_and_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"tests on cuda (at most 210 s): DEVICE=cuda {PY} -m pytest -q tests/test_gpu.py tests/test_sentiment_model.py tests/test_translation_shipped.py",
        f"benchmark (quick) (at most 250 s): {PY} -m loadtests.bench {' '.join(gpu_check.BENCH_ARGS)}",
    ]


def test_steps_run_for_real_and_the_verdict_follows_their_exit() -> None:
    ok = run_step(Step("ok", (PY, "-c", "import os, sys; sys.exit(0 if os.environ['DEVICE'] == 'cuda' else 5)"), 60, {"DEVICE": "cuda"}))
    failed = run_step(Step("failed", (PY, "-c", "import sys; sys.exit(3)"), 60))
    slow = run_step(Step("slow", (PY, "-c", "import time; time.sleep(60)"), 1))
    assert (ok.returncode, ok.passed) == (0, True)
    assert (failed.returncode, failed.passed) == (3, False)
    assert (slow.returncode, slow.passed) == (None, False) and 1 <= slow.seconds < 30
    assert exit_code([ok]) == 0
    assert exit_code([ok, failed]) == exit_code([ok, slow]) == exit_code([]) == 1

    text = summary([ok, failed, slow], {"sentiment": {"max_abs_diff": 0.001}})
    lines = text.splitlines()
    assert lines[0] == "gpu-check summary:"
    assert lines[1].split()[:2] == ["ok", "PASS"]
    assert lines[2].split()[:4] == ["failed", "FAIL", "(exit", "3)"]
    assert lines[3].split()[:5] == ["slow", "TIMEOUT", "after", "1", "s"]
    assert lines[4] == "parity, CUDA against the CPU (test-artifacts/gpu-parity.json):"
    assert lines[5] == '  sentiment: {"max_abs_diff": 0.001}'
    assert lines[-1] == "gpu-check: FAILED"
    assert summary([ok]).splitlines()[-1] == "gpu-check: all passed"


def test_the_make_target_runs_the_script() -> None:
    proc = subprocess.run(["make", "-n", "--no-print-directory", "gpu-check"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == ".venv/bin/python -m tools.gpu_check"
