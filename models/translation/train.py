"""Train the attention seq2seq LSTM on Multi30k: English -> German and French in one model.

    python -m models.translation.train --data-dir ../shared/data/multi30k --out runs/translation

One model serves both pairs: the decoder starts from a target-language token
(``<2de>``/``<2fr>``), the encoder (always English) sees twice the data, and one
artifact holds both directions. ``--pairs en-de`` trains a single pair instead.

Each epoch reports validation loss and greedy validation BLEU per pair
(sacreBLEU, cased); early stopping follows the mean validation BLEU. Resumable:
``{out}/last.pt`` is written every ``--checkpoint-minutes`` (mid-epoch included)
and rerunning the same command continues from it. ``{out}/best.pt`` holds the
best-BLEU weights, ``{out}/metrics.json`` the history, ``{out}/spm.model`` the
subword model (trained once, first).

``--init models/artifacts/translator-lstm.pt`` starts from an exported artifact's
weights, configuration and subword model instead of from scratch (continued
training; the fp16 weights are cast back to fp32).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.training import batches_by_length, end_epoch, resume, save_checkpoint
from models.translation.data import read_lines, read_pairs
from models.translation.ensemble import Ensemble
from models.translation.model import Seq2Seq, Seq2SeqConfig
from models.translation.search import BeamSearch
from models.translation.tokenizer import EOS, PAD, SubwordTokenizer
from models.translation.translate import pad, translate_all


def bleu(hyps: list[str], refs: list[str], lowercase: bool = False) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(hyps, [refs], lowercase=lowercase).score)


def load_or_train_tokenizer(out: Path, data_dir: str, langs: list[str], vocab_size: int) -> SubwordTokenizer:
    path = out / "spm.model"
    if path.exists():
        return SubwordTokenizer(path.read_bytes())
    print(f"training a {vocab_size}-piece SentencePiece model on train.{{{','.join(langs)}}}", flush=True)
    tok = SubwordTokenizer.train((s for lang in langs for s in read_lines(data_dir, "train", lang)), vocab_size)
    path.write_bytes(tok.proto)
    return tok


def load_artifact(path: Path) -> tuple[dict[str, torch.Tensor], Seq2SeqConfig, bytes]:
    """Weights (fp32), configuration and subword model of an exported translator."""
    import json

    from models import torchscript

    program, files = torchscript.load(path, ["meta.json", "spm.model"])
    config = json.loads(files["meta.json"])["config"]
    return program.float().state_dict(), Seq2SeqConfig(**config), files["spm.model"]


def search_of(model: Seq2Seq | Ensemble, tok: SubwordTokenizer) -> BeamSearch:
    """The beam search over ``model`` that never emits ``tok``'s language tokens."""
    return BeamSearch(model, banned=list(tok.lang_ids.values()))


def build_model(tok: SubwordTokenizer, cfg: Seq2SeqConfig) -> tuple[Seq2Seq, BeamSearch]:
    model = Seq2Seq(cfg)
    return model, search_of(model, tok)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="folder with Multi30k {train,val}.{en,de,fr}.gz")
    ap.add_argument("--out", default="runs/translation")
    ap.add_argument("--pairs", nargs="+", default=["en-de", "en-fr"])
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--embed", type=int, default=256)
    ap.add_argument("--enc-hidden", type=int, default=256)
    ap.add_argument("--dec-hidden", type=int, default=512)
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--input-feeding", action="store_true", help="feed the last attentional state back into the decoder (Luong)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--max-tokens", type=int, default=64, help="skip training pairs longer than this (subwords)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--checkpoint-minutes", type=float, default=3.0)
    ap.add_argument("--limit", type=int, default=0, help="first N training pairs per language pair (smoke tests)")
    ap.add_argument("--init", default="", help="start from this exported artifact's weights, config and subword model")
    ap.add_argument("--val-limit", type=int, default=0, help="first N validation sentences per pair")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine (make train-translation-gpu)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = [tuple(p.split("-")) for p in args.pairs]
    init = load_artifact(Path(args.init)) if args.init else None
    if init and not (out / "spm.model").exists():
        (out / "spm.model").write_bytes(init[2])
    tok = load_or_train_tokenizer(out, args.data_dir, sorted({lang for p in pairs for lang in p}), args.vocab_size)

    examples: list[tuple[list[int], list[int]]] = []  # (source ids + </s>, <2xx> + target ids + </s>)
    val: dict[str, tuple[list[str], list[str]]] = {}
    for src_lang, tgt_lang in pairs:
        train = read_pairs(args.data_dir, "train", src_lang, tgt_lang)
        train = train[: args.limit] if args.limit else train
        for s, t in train:
            src, tgt = [*tok.encode(s), EOS], [tok.lang_ids[tgt_lang], *tok.encode(t), EOS]
            if len(src) <= args.max_tokens and len(tgt) <= args.max_tokens:
                examples.append((src, tgt))
        v = read_pairs(args.data_dir, "val", src_lang, tgt_lang)
        v = v[: args.val_limit] if args.val_limit else v
        val[tgt_lang] = ([s for s, _ in v], [t for _, t in v])

    cfg = init[1] if init else Seq2SeqConfig(len(tok), args.embed, args.enc_hidden, args.dec_hidden, args.dropout, args.input_feeding)
    torch.manual_seed(args.seed)
    model, search = build_model(tok, cfg)
    if init:
        search.load_state_dict(init[0])
        print(f"initialised from {args.init}", flush=True)
    model.to(args.device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{len(examples)} training pairs, vocab {len(tok)}, {n_params:,} parameters", flush=True)

    last = out / "last.pt"
    state = resume(last, model, opt, {"epoch": 0, "batch": 0, "best_bleu": -1.0, "bad_epochs": 0, "lr": args.lr, "history": []})

    def save(path: Path) -> None:
        save_checkpoint(path, {"model": model.state_dict(), "opt": opt.state_dict(), "state": state, "config": cfg.to_dict(), "pairs": args.pairs})

    lengths = [len(s) + len(t) for s, t in examples]
    total = math.ceil(len(examples) / args.batch_size)
    while state["epoch"] < args.epochs and state["bad_epochs"] < args.patience:
        epoch = state["epoch"]
        for g in opt.param_groups:
            g["lr"] = state["lr"]
        batches = batches_by_length(lengths, args.batch_size, random.Random(args.seed * 1000 + epoch))
        torch.manual_seed(args.seed * 1000 + epoch + state["batch"])
        model.train()
        bar = tqdm(total=total, initial=state["batch"], desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch", mininterval=5)
        t_saved, loss_sum, n = time.monotonic(), 0.0, 0
        for b in batches[state["batch"] :]:
            src_ids, src_len = pad([examples[j][0] for j in b], args.device)
            tgt_ids, _ = pad([examples[j][1] for j in b], args.device)
            logits = model(src_ids, src_len, tgt_ids[:, :-1])  # (B, T-1, V)
            gold = tgt_ids[:, 1:].reshape(-1)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), gold, ignore_index=PAD, label_smoothing=args.label_smoothing)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            state["batch"] += 1
            loss_sum, n = loss_sum + loss.item(), n + 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / n:.3f}", refresh=False)
            if time.monotonic() - t_saved > 60 * args.checkpoint_minutes:
                save(last)
                t_saved = time.monotonic()
        bar.close()

        model.eval()
        scores = {}
        for lang, (srcs, refs) in val.items():
            hyps = translate_all(search, tok, srcs, lang, beam_size=1, device=args.device)
            scores[lang] = bleu(hyps, refs)
        mean_bleu = sum(scores.values()) / len(scores)
        entry = {"epoch": epoch + 1, "train_loss": loss_sum / max(n, 1), "val_bleu_greedy": scores, "lr": state["lr"]}
        save_checkpoint(out / f"epoch-{epoch + 1}.pt", {"model": model.state_dict()})  # for checkpoint averaging at export
        end_epoch(state, out, "best_bleu", mean_bleu, entry, save, on_plateau=lambda: state.update(lr=state["lr"] * 0.5))  # halve lr on a plateau
        print(f"epoch {epoch + 1}: train loss {loss_sum / max(n, 1):.3f}, val BLEU (greedy) {scores}", flush=True)
    print(f"done: best mean val BLEU {state['best_bleu']:.2f}; weights in {out / 'best.pt'}")


if __name__ == "__main__":
    main()
