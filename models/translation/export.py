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

``--ensemble A.pt B.pt ...`` exports one program that decodes with all of the
given artifacts' models at once (``models/translation/ensemble.py``: the beam
search ranks by their mean log-probability), as ``translator-lstm-ensemble.pt``;
the members must share one subword model.

    python -m models.translation.export --ensemble models/artifacts/translator-lstm.pt runs/seed11.pt \
        --data-dir ../shared/data/multi30k --out models/artifacts/translator-lstm-ensemble.pt

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
from models.manifest import ARTIFACTS_DIR, record, sha256_of
from models.training import load_checkpoint
from models.translation.data import read_pairs
from models.translation.ensemble import Ensemble
from models.translation.model import Seq2Seq, Seq2SeqConfig
from models.translation.search import BeamSearch
from models.translation.tokenizer import SubwordTokenizer
from models.translation.train import bleu, build_model, search_of
from models.translation.translate import translate_all

NAME = "translator-lstm"
VERSION = "1.2.0"  # 1.1.0's weights; the program decodes continuously (start, join, advance, finish, drop)
ENSEMBLE_NAME, ENSEMBLE_VERSION = "translator-lstm-ensemble", "1.0.0"


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
    ap.add_argument("--ensemble", type=Path, nargs="+", help="export one program decoding with these artifacts' models together")
    args = ap.parse_args()
    if args.from_artifact:
        return reexport(args.from_artifact, Path(args.out), args.data_dir)
    if args.ensemble:
        out = Path(args.out) if args.out != ap.get_default("out") else ARTIFACTS_DIR / f"{ENSEMBLE_NAME}.pt"
        return save_scored(*ensemble_of(args.ensemble, args.notes), out, args.data_dir)

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
    entry = record(out, {"name": meta["name"], "task": "translation", "version": meta["version"], "pairs": meta["pairs"], "scores": meta["scores"]})
    print(json.dumps(entry, indent=2))


def load_weights(artifact: Path) -> tuple[Seq2Seq | Ensemble, SubwordTokenizer, dict[str, Any]]:
    """The eager model of an exported artifact (one model or an ensemble), in fp32, with its subword model and metadata."""
    program, files = torchscript.load(artifact, ["spm.model", "meta.json"])
    meta = json.loads(files["meta.json"])
    cfg = Seq2SeqConfig(**meta["config"])
    members = len(meta.get("members", [])) or 1
    model: Seq2Seq | Ensemble = Seq2Seq(cfg) if members == 1 else Ensemble([Seq2Seq(cfg) for _ in range(members)])
    model.load_state_dict({k.removeprefix("model."): v.float() for k, v in program.state_dict().items()})
    return model, SubwordTokenizer(files["spm.model"]), meta


def reexport(artifact: Path, out: Path, data_dir: str) -> None:
    """The weights, subword model and metadata of ``artifact`` in the current search program."""
    model, tok, meta = load_weights(artifact)
    search = search_of(model, tok).eval()
    previous = meta["version"]
    meta.update(version=VERSION if meta["name"] == NAME else ENSEMBLE_VERSION, created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), scores=[])
    meta["notes"] = f"the weights of {meta['name']} {previous}, re-exported with the current search program"
    save_scored(search, tok, meta, out, data_dir)


def ensemble_of(artifacts: list[Path], notes: str = "") -> tuple[BeamSearch, SubwordTokenizer, dict[str, Any]]:
    """One search program over the models of ``artifacts`` (single models sharing one subword model), and its metadata."""
    loaded = [load_weights(a) for a in artifacts]
    members = [m for m, _, _ in loaded if isinstance(m, Seq2Seq)]
    if len(members) != len(loaded):
        raise SystemExit("--ensemble takes single-model artifacts")
    tok, first = loaded[0][1], loaded[0][2]
    if any(t.proto != tok.proto for _, t, _ in loaded):
        raise SystemExit("the ensemble's members must share one subword model (spm.model)")
    search = search_of(Ensemble(members), tok).eval()
    meta = {
        **first,
        "name": ENSEMBLE_NAME,
        "version": ENSEMBLE_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "parameters": sum(p.numel() for p in search.parameters()),
        "members": [
            {"file": a.name, "sha256": sha256_of(a), "version": m["version"], "training": m.get("training", {})}
            for a, (_, _, m) in zip(artifacts, loaded, strict=True)
        ],
        "training": {},
        "notes": notes or f"ensemble of {len(members)} models: the beam search ranks by their mean log-probability",
        "scores": [],
    }
    return search, tok, meta


if __name__ == "__main__":
    main()
