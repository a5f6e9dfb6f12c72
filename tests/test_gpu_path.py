"""The GPU path's logic where no GPU is: GPU_DTYPE, one worker per GPU, the warm-up plan, the fp16 translator."""

from __future__ import annotations

import logging
import time

import pytest
import torch

from loadtests.texts import CAPTIONS
from models.torchscript import device_of
from models.translation.translate import translate
from service import warmup
from service.config import default_workers, load_settings, workers_warning
from service.inference import load_sentiment, load_translation_model, translation_dtype
from service.warmup import Group, Plan


def test_gpu_dtype_applies_to_the_translator_on_cuda_only() -> None:
    assert translation_dtype("cpu", "float16") == translation_dtype("cpu", "float32") == torch.float32
    assert translation_dtype("cuda", "float16") == translation_dtype("cuda:1", "float16") == torch.float16
    assert translation_dtype("cuda", "float32") == torch.float32
    with pytest.raises(ValueError, match="float16 or float32"):
        translation_dtype("cuda", "bfloat16")


def test_gpu_dtype_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPU_DTYPE", raising=False)
    assert load_settings().gpu_dtype == "float16"
    monkeypatch.setenv("GPU_DTYPE", "Float32")
    assert load_settings().gpu_dtype == "float32"
    monkeypatch.setenv("GPU_DTYPE", "fp8")
    with pytest.raises(SystemExit, match="GPU_DTYPE='fp8' must be one of float16, float32"):
        load_settings()


def test_one_worker_per_gpu_and_a_warning_for_more(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    assert default_workers("cuda") == default_workers("cuda:1") == 1
    assert workers_warning("cuda", 1) is None and workers_warning("cpu", 4) is None
    assert workers_warning("cuda:0", 2) == (
        "WORKERS=2 with DEVICE=cuda:0: each worker puts its own CUDA context and models on the same GPU "
        "and their kernels take turns; one worker (WORKERS=auto) batches all requests on a GPU"
    )
    assert (workers_warning("auto", 2) is None) == (not torch.cuda.is_available())
    monkeypatch.setenv("DEVICE", "cuda")
    monkeypatch.setenv("WORKERS", "auto")
    with caplog.at_level(logging.WARNING, logger="lstm_service"):
        assert load_settings().workers == 1
        assert caplog.records == []
        monkeypatch.setenv("WORKERS", "2")
        assert load_settings().workers == 2
    assert [r.getMessage() for r in caplog.records] == [workers_warning("cuda", 2)]


def test_the_cpu_warm_up_stays_small() -> None:
    assert warmup.plan("cpu", 4, 8, 128) == Plan(rounds=2, sentiment=[(3, 0)], decodes=[[Group(2, 0, 1), Group(2, 0, 4)]], steps=(16,), drop=True)


def test_the_cuda_warm_up_covers_the_shapes_to_come() -> None:
    p = warmup.plan("cuda", 4, 8, 128)
    assert p.rounds == 2 and p.drop
    assert {n for n, _ in p.sentiment} == {1, 4, 16, 64, 128} and {w for _, w in p.sentiment} == {1, 8, 48}
    groups = [g for d in p.decodes for g in d]
    assert {g.texts for g in groups} == {1, 8, 32}
    assert {g.beam for g in groups} == {1, 4, 8}
    assert {g.keep_attn for g in groups} == {False, True}
    assert len({g.words for g in groups}) == 3
    assert 1 in p.steps and max(p.steps) == 16  # one step (someone waits to join) and a long call (MAX_STEPS_PER_CALL)
    small = warmup.plan("cuda", 1, 1, 2)  # never more texts than MAX_BATCH_SIZE, never a beam over MAX_BEAM_SIZE
    assert max(n for n, _ in small.sentiment) == 2 and {g.texts for d in small.decodes for g in d} == {1, 2}
    assert {g.beam for d in small.decodes for g in d} == {1}


def test_both_warm_ups_run_on_the_shipped_models() -> None:
    """The CUDA plan's calls (start, join, drop, advance, finish; alignment kept) run here too, on a smaller cap."""
    torch.set_num_threads(1)
    sentiment, translation = load_sentiment(device="cpu"), load_translation_model(device="cpu")
    before = sentiment.predict(["a gorgeous , witty , seductive movie ."])
    start = time.perf_counter()
    warmup.warm_up(sentiment, translation, warmup.plan("cpu", 4, 8, 128))
    assert time.perf_counter() - start < 10  # measured 0.4 s on the 2-core development machine
    warmup.warm_up(sentiment, translation, warmup.plan("cuda", 2, 3, 2))
    assert sentiment.predict(["a gorgeous , witty , seductive movie ."]) == before


def test_the_fp16_translator_decodes_as_fp32() -> None:
    """The shipped weights in fp16, as GPU_DTYPE=float16 runs them on CUDA, here on the CPU: the search program
    runs in half precision (fp32 scores) and decodes the same tokens; CUDA's kernels are checked by make gpu-check."""
    fp32 = load_translation_model(device="cpu")
    fp16 = load_translation_model(device="cpu")
    fp16.program.to(torch.float16)
    assert (fp32.dtype, fp16.dtype, device_of(fp16.program)) == ("float32", "float16", "cpu")
    texts = CAPTIONS[:8]
    a = translate(fp32.program, fp32.tok, texts, ["de", "fr"] * 4, 4)
    b = translate(fp16.program, fp16.tok, texts, ["de", "fr"] * 4, 4, alignment=True)
    assert [x.target_tokens for x in a] == [y.target_tokens for y in b]
    assert [x.score for x in a] == pytest.approx([y.score for y in b], abs=3e-3)
