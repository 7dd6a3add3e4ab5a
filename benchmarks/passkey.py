"""Passkey retrieval: accuracy vs depth x length for trained ResNet-BK and Transformer runs
(issue 15; the task, scores and fine-tune are :mod:`bkmodel.passkey`'s).

For each run directory (``bk train --out``): zero-shot, then after a short fine-tune
(:func:`bkmodel.passkey.finetune_passkey`, the same steps, data and seed for both models) on
passkey prompts mixed with language-model windows at ``--finetune-length``, the grid of
``--lengths`` x ``--depths`` with ``--samples`` prompts per cell (the same prompts for every
model). Scores: exact match of the greedy answer, and the fraction of prompts whose true key
has the highest answer likelihood among ``--candidates`` keys (chance ``1/candidates``).
ResNet-BK reads every prompt with its state carried (chunks of its training length); the
Transformer reads the whole prompt directly (RoPE: no position table, so beyond its training
length it extrapolates), and with ``--tf-window`` also only the last ``seq_len`` tokens (its
training window; a key deeper than that is invisible to it).

Usage::

    python benchmarks/passkey.py --bk runs/small-bk --transformer runs/small-transformer \\
        --lengths 256 1024 4096 16384 --depths 0 0.25 0.5 0.75 1 --samples 20 \\
        --finetune-steps 200 --finetune-length 1024 --device cuda --bf16

writes ``benchmarks/results/passkey_<label>_<date>.json`` and prints one table per model and
stage (rows: depth, columns: length).
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _table(rows: list[dict], key: str) -> str:
    lengths = sorted({r["length"] for r in rows})
    depths = sorted({r["depth"] for r in rows})
    cell = {(r["length"], r["depth"]): r[key] for r in rows}
    out = ["depth \\ length " + "".join(f"{n:>9}" for n in lengths)]
    for d in depths:
        out.append(f"{d:>15.2f}" + "".join(f"{cell[(n, d)]:>9.2f}" for n in lengths))
    return "\n".join(out)


def main() -> int:
    import numpy as np
    import torch

    from benchmarks._results import run_header, write_result
    from bkmodel.checkpoint import load_run
    from bkmodel.data import load_split
    from bkmodel.model import LanguageModel
    from bkmodel.passkey import evaluate_passkey, filler_stream, finetune_passkey
    from bkmodel.presets import TrainConfig
    from bkmodel.tokenizer import encode_documents

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bk", type=Path, required=True, help="ResNet-BK run directory")
    ap.add_argument("--transformer", type=Path, required=True, help="Transformer run directory")
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096])
    ap.add_argument("--depths", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    ap.add_argument("--samples", type=int, default=20, help="prompts per (length, depth)")
    ap.add_argument("--candidates", type=int, default=10, help="keys ranked by likelihood")
    ap.add_argument("--finetune-steps", type=int, default=200, help="0: zero-shot only")
    ap.add_argument("--finetune-length", type=int, default=None,
                    help="prompt length of the fine-tune (default the smallest --lengths)")
    ap.add_argument("--finetune-batch", type=int, default=8)
    ap.add_argument("--finetune-lr", type=float, default=None,
                    help="peak learning rate (default the run's lr / 3)")
    ap.add_argument("--tf-window", action="store_true",
                    help="also score the Transformer on its last seq_len tokens only")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label", default="gpu",
                    help="name in the output file and JSON (e.g. cpu-smoke)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    amp = torch.bfloat16 if args.bf16 else None
    say = lambda m: print(m, flush=True)  # noqa: E731
    t_start = time.perf_counter()
    doc = {"benchmark": "passkey", "label": args.label, **run_header(args),
           "task": "5-digit key at depth d in held-out filler (validation plays); fine-tune "
                   "filler from the training plays", "models": {}, "rows": [], "finetune": {}}
    ft_length = args.finetune_length or min(args.lengths)
    for name, run in (("bk", args.bk), ("transformer", args.transformer)):
        model, tok, state = load_run(run, device=args.device)
        cfg = TrainConfig.from_dict(state["train_config"])
        eval_filler = filler_stream(tok, "validation", cfg.corpus)
        doc["models"][name] = {"run": str(run), "params": model.num_params(),
                               "seq_len": cfg.seq_len, "step": state["step"],
                               "preset": cfg.preset, "vocab": tok.vocab_size}
        modes = [("direct", None)]
        if name == "transformer" and args.tf_window:
            modes.append(("window", cfg.seq_len))
        stages = [("zero-shot", model)]
        if args.finetune_steps:
            tuned = copy.deepcopy(model)
            train_docs = load_split("train", cfg.corpus)
            lm = encode_documents(tok, train_docs)
            ft_filler = lm[lm != tok.eot_id]  # = filler_stream(tok, "train"), encoded once
            ft_cfg = TrainConfig.from_dict({**cfg.to_dict(),
                                            "lr": args.finetune_lr or cfg.lr / 3})
            t0 = time.perf_counter()
            hist = finetune_passkey(tuned, tok, lm, ft_filler, ft_cfg, length=ft_length,
                                    steps=args.finetune_steps, batch_size=args.finetune_batch,
                                    seed=args.seed, device=args.device, autocast_dtype=amp,
                                    log=lambda m, n=name: say(f"[{n}] {m}"))
            doc["finetune"][name] = {"length": ft_length, "steps": args.finetune_steps,
                                     "batch": args.finetune_batch, "lr": ft_cfg.lr,
                                     "seconds": time.perf_counter() - t0,
                                     "first": hist[0], "last": hist[-1]}
            stages.append(("fine-tuned", tuned))
        for stage, m in stages:
            for mode, ctx in modes:
                say(f"[{name}] {stage}, {mode}"
                    + (" (state carried)" if isinstance(m, LanguageModel) else ""))
                t0 = time.perf_counter()
                rows = evaluate_passkey(m, tok, eval_filler, args.lengths, args.depths,
                                        n_samples=args.samples, n_candidates=args.candidates,
                                        seed=args.seed, max_context=ctx, device=args.device,
                                        autocast_dtype=amp, progress=say)
                for r in rows:
                    r.update(model=name, stage=stage, mode=mode,
                             seconds=(time.perf_counter() - t0) / len(rows))
                doc["rows"].extend(rows)
        del model
    doc["seconds"] = time.perf_counter() - t_start
    for name in ("bk", "transformer"):
        for stage in ("zero-shot", "fine-tuned"):
            for mode in ("direct", "window"):
                rows = [r for r in doc["rows"] if (r["model"], r["stage"], r["mode"])
                        == (name, stage, mode)]
                if not rows:
                    continue
                for key in ("exact_match", "rank1"):
                    print(f"\n{name} {stage} {mode}: {key} "
                          f"(chance rank1 {rows[0]['chance_rank1']:.2f})")
                    print(_table(rows, key))
    out = write_result(doc, args.out, f"passkey_{args.label}_{_dt.date.today().isoformat()}.json",
                       indent=1, default=lambda x: x.item() if isinstance(x, np.generic)
                       else str(x))
    print(f"\nwrote {out} ({doc['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
