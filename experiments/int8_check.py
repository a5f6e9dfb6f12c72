"""Would int8 dynamic quantization pay? Quality and model time of the shipped models, fp32 against int8, in one process.

    python -m experiments.int8_check --data-dir ../shared/data [--sentences 300] [--threads 1]

Rebuilds each eager model from its TorchScript artifact's weights, applies
``torch.ao.quantization.quantize_dynamic`` (int8 weights for ``nn.LSTM`` and
``nn.Linear``; the translator's output layer, tied to the embedding, stays
fp32), scripts it, and compares with the shipped program:

- sentiment: SST-2 dev accuracy (all 872 sentences);
- translation: lowercase sacreBLEU, beam 4, on the first ``--sentences`` sentences of Multi30k test_2016_flickr, per pair;
- speed: the two programs called in turn on the same batches for a few seconds
  (so machine noise hits both alike); the ratio int8 / fp32 model time is what to read.

Nothing here changes the shipped artifacts: it measures whether an int8 export would be worth making.
Everything runs on the CPU, also where a GPU is visible: dynamic quantization is a CPU feature.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from loadtests.texts import CAPTIONS, REVIEWS


def quantized(module: nn.Module) -> torch.jit.ScriptModule:
    q = torch.ao.quantization.quantize_dynamic(module, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    return torch.jit.script(q)


def alternate(calls: dict[str, Callable[[], object]], seconds: float) -> dict[str, float]:
    """Milliseconds per call of each function, called in turn for ``seconds`` after one warm-up call each."""
    for f in calls.values():
        f()
    total = dict.fromkeys(calls, 0.0)
    rounds = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or rounds < 2:
        for name, f in calls.items():
            t0 = time.perf_counter()
            f()
            total[name] += time.perf_counter() - t0
        rounds += 1
    return {name: 1000 * t / rounds for name, t in total.items()}


def sentiment(data_dir: Path, seconds: float) -> None:
    from models.sentiment.data import read_split
    from models.sentiment.model import BiLSTMClassifier, BiLSTMConfig, pad_batch
    from service.inference import load_sentiment

    clf = load_sentiment(device="cpu")
    eager = BiLSTMClassifier(BiLSTMConfig(**clf.meta["config"]))
    eager.load_state_dict(clf.program.state_dict())
    programs = {"fp32": clf.program, "int8": quantized(eager.eval())}
    dev = read_split(data_dir / "sst2", "dev")
    with torch.inference_mode():
        for name, prog in programs.items():
            correct = 0
            for s in range(0, len(dev), 128):
                chunk = dev[s : s + 128]
                ids, lengths = pad_batch(clf.encode([e.text for e in chunk]))
                pred = prog.probabilities(ids, lengths).argmax(-1).tolist()
                correct += sum(p == e.label for p, e in zip(pred, chunk, strict=True))
            print(f"sentiment {name}: SST-2 dev accuracy {correct / len(dev):.4f} ({len(dev)} sentences)", flush=True)
        for size in (1, 32, 128):
            ids, lengths = pad_batch(clf.encode((REVIEWS * 4)[:size]))
            ms = alternate({n: functools.partial(p.probabilities, ids, lengths) for n, p in programs.items()}, seconds)
            print(f"sentiment batch {size}: fp32 {ms['fp32']:.2f} ms, int8 {ms['int8']:.2f} ms, int8/fp32 {ms['int8'] / ms['fp32']:.2f}", flush=True)


def translation(data_dir: Path, sentences: int, seconds: float) -> None:
    import sacrebleu

    from models.translation.data import read_pairs
    from models.translation.model import Seq2SeqConfig
    from models.translation.train import build_model
    from models.translation.translate import translate, translate_all
    from service.inference import load_translation_model

    tm = load_translation_model(device="cpu")
    _, search = build_model(tm.tok, Seq2SeqConfig(**tm.meta["config"]))
    search.load_state_dict(tm.program.state_dict())
    programs = {"fp32": tm.program, "int8": quantized(search.float().eval())}
    for source, target in tm.pairs:
        data = read_pairs(data_dir / "multi30k", "test", source, target)[:sentences]
        srcs, refs = [s for s, _ in data], [t for _, t in data]
        for name, prog in programs.items():
            hyps = translate_all(prog, tm.tok, srcs, target, 4)
            bleu = sacrebleu.corpus_bleu(hyps, [refs], lowercase=True).score
            print(f"translation {source}->{target} {name}: lowercase BLEU {bleu:.2f} (beam 4, first {len(srcs)} test sentences)", flush=True)
    for size in (1, 16):
        texts = (CAPTIONS * 2)[:size]
        langs = [("de", "fr")[i % 2] for i in range(size)]
        ms = alternate({n: functools.partial(translate, p, tm.tok, texts, langs, 4) for n, p in programs.items()}, seconds)
        print(f"translation beam 4, batch {size}: fp32 {ms['fp32']:.1f} ms, int8 {ms['int8']:.1f} ms, int8/fp32 {ms['int8'] / ms['fp32']:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True, help="folder with sst2/ and multi30k/")
    ap.add_argument("--sentences", type=int, default=300, help="Multi30k test sentences per pair for BLEU")
    ap.add_argument("--seconds", type=float, default=8.0, help="per speed comparison")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sentiment(args.data_dir, args.seconds)
    translation(args.data_dir, args.sentences, args.seconds)


if __name__ == "__main__":
    main()
