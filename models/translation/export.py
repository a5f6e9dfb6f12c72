"""Export the trained translator (encoder, decoder and batched beam search) as one TorchScript program.

    python -m models.translation.export --run runs/translation --data-dir ../shared/data/multi30k \
        [--out models/artifacts/translator-lstm.pt]

Weights are stored in fp16 (half the size; the program is cast back to fp32 when
loaded, and the BLEU recorded here is measured after that round trip). Inside
the ``.pt``: ``spm.model`` (the subword model) and ``meta.json`` (pairs,
version, created-at, configuration, parameter count, training data, and BLEU
on test_2016_flickr: greedy and beam 4, cased and lowercase).

``--average N`` exports the mean of the weights saved at the end of the best
epoch and the N-1 epochs before it (``epoch-{n}.pt``; checkpoint averaging,
a cheap ensemble of nearby points on the same training path). Given several
values (``--average 1 3 5``) it exports the one with the best greedy BLEU on
the validation set, the same measure training selects epochs by.

``--from-artifact PATH`` rebuilds the program around the weights of an exported
artifact (no training run needed), for when the search program changes and the
weights do not: its metadata is kept, the version and scores are renewed.

    python -m models.translation.export --from-artifact models/artifacts/translator-lstm.pt --data-dir ../shared/data/multi30k
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

import torch

from models import torchscript
from models.manifest import ARTIFACTS_DIR, record
from models.training import load_checkpoint
from models.translation.data import read_pairs
from models.translation.model import Seq2SeqConfig
from models.translation.search import BeamSearch
from models.translation.tokenizer import SubwordTokenizer
from models.translation.train import bleu, build_model
from models.translation.translate import translate_all

NAME = "translator-lstm"
VERSION = "1.2.0"  # 1.1.0's weights; the program decodes continuously (start, join, advance, finish, drop)


def average_epochs(run: Path, last: int, n: int) -> dict[str, torch.Tensor]:
    """Mean of the weights saved after epochs last-n+1 .. last."""
    states = [load_checkpoint(run / f"epoch-{e}.pt")["model"] for e in range(last - n + 1, last + 1)]
    return {k: sum(s[k].float() for s in states) / n for k in states[0]}


def choose_average(run: Path, ck: dict, search: BeamSearch, tok: SubwordTokenizer, data_dir: str, candidates: list[int]) -> int:
    """The number of epochs to average whose weights score best on validation (greedy BLEU, mean over pairs)."""
    best_epoch, results = len(ck["state"]["history"]), {}
    for n in candidates:
        search.model.load_state_dict(average_epochs(run, best_epoch, n) if n > 1 else ck["model"])
        search.eval()
        scores = []
        for src, tgt in (p.split("-") for p in ck["pairs"]):
            val = read_pairs(data_dir, "val", src, tgt)
            scores.append(bleu(translate_all(search, tok, [s for s, _ in val], tgt, beam_size=1), [t for _, t in val]))
        results[n] = sum(scores) / len(scores)
        print(f"mean of epochs {best_epoch - n + 1}..{best_epoch}: val BLEU (greedy) {[round(x, 2) for x in scores]}, mean {results[n]:.2f}", flush=True)
    return max(results, key=lambda n: results[n])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/translation", help="training folder with best.pt and spm.model")
    ap.add_argument("--data-dir", required=True, help="Multi30k folder, for the test BLEU recorded in the artifact")
    ap.add_argument("--out", default=str(ARTIFACTS_DIR / f"{NAME}.pt"))
    ap.add_argument("--notes", default="")
    ap.add_argument(
        "--average", type=int, nargs="+", default=[1], help="average the last N epochs' weights, ending at the best epoch (several: the best on val)"
    )
    ap.add_argument("--from-artifact", type=Path, help="re-export the weights of this artifact (no training run) with the current search program")
    args = ap.parse_args()
    if args.from_artifact:
        return reexport(args.from_artifact, Path(args.out), args.data_dir)

    run = Path(args.run)
    ck = load_checkpoint(run / "best.pt")
    tok = SubwordTokenizer((run / "spm.model").read_bytes())
    cfg = Seq2SeqConfig(**ck["config"])
    model, search = build_model(tok, cfg)
    best_epoch = len(ck["state"]["history"])  # best.pt is written as its epoch closes
    average = args.average[0] if len(args.average) == 1 else choose_average(run, ck, search, tok, args.data_dir, args.average)
    model.load_state_dict(average_epochs(run, best_epoch, average) if average > 1 else ck["model"])
    search.eval()
    pairs = [p.split("-") for p in ck["pairs"]]
    meta: dict[str, object] = {
        "name": NAME,
        "task": "translation",
        "version": VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "format": "torchscript",
        "pairs": pairs,
        "tokenizer": f"SentencePiece unigram, {len(tok)} pieces, joint over {sorted({lang for p in pairs for lang in p})}",
        "config": cfg.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights_dtype": "float16",
        "decoding": {"len_a": search.len_a, "len_b": search.len_b, "length_penalty_alpha": search.alpha},
        "training_data": "Multi30k task 1 train (29,000 sentences per language)",
        "training": {
            "epochs": best_epoch,
            "best_val_bleu_greedy": round(ck["state"]["best_bleu"], 2),
            "averaged_epochs": list(range(best_epoch - average + 1, best_epoch + 1)),
        },
        "notes": args.notes,
        "scores": [],
    }
    save_scored(search, tok, meta, Path(args.out), args.data_dir)


def save_scored(search: BeamSearch, tok: SubwordTokenizer, meta: dict[str, Any], out: Path, data_dir: str) -> None:
    """Script ``search`` with fp16 weights, measure its test BLEU after the round trip, save it and record it in the manifest."""
    program = torchscript.script(search.half())
    torchscript.save(program, out, {"spm.model": tok.proto, "meta.json": json.dumps(meta)})

    from models.translation.evaluate import test_bleu

    meta["scores"] = test_bleu(out, data_dir)
    torchscript.save(program, out, {"spm.model": tok.proto, "meta.json": json.dumps(meta, indent=2)})
    entry = record(out, {"name": NAME, "task": "translation", "version": VERSION, "pairs": meta["pairs"], "scores": meta["scores"]})
    print(json.dumps(entry, indent=2))


def reexport(artifact: Path, out: Path, data_dir: str) -> None:
    """The weights, subword model and metadata of ``artifact`` in the current search program."""
    program, files = torchscript.load(artifact, ["spm.model", "meta.json"])
    meta = json.loads(files["meta.json"])
    tok = SubwordTokenizer(files["spm.model"])
    model, search = build_model(tok, Seq2SeqConfig(**meta["config"]))
    model.load_state_dict({k.removeprefix("model."): v.float() for k, v in program.state_dict().items()})
    search.eval()
    previous = meta["version"]
    meta.update(version=VERSION, created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), scores=[])
    meta["notes"] = f"the weights of {NAME} {previous}, re-exported with the continuous-decoding search program"
    save_scored(search, tok, meta, out, data_dir)


if __name__ == "__main__":
    main()
