"""Tensor-train token embedding against the dense one: compression and perplexity on CPU.

Two parts.

1. Counting (no training): for vocabularies 1024 / 4096 / 8192 / 32768 / 50257 at
   ``d_model`` 128 and 512 and TT-ranks 4, 8, 16, 32 (and the phase encoding at rank 8), the
   embedding's parameters and compression ratio (:class:`bkmodel.tt_embedding.TTEmbedding`),
   its lookup FLOPs per token, and the compression of the whole tiny ResNet-BK model, against
   the dense *tied* model (the preset: embedding and head one matrix) and against a dense
   *untied* one (the TT model's head is its own dense V × d matrix).
2. Training: ResNet-BK from the ``tiny`` preset at vocabularies ``--vocabs`` (BPE trained on
   the training split), ``--steps`` steps of ``--batch-size`` windows with the project's loop
   (:func:`act_curve.train_without_final_eval`),
   for each row of ``--rows``: ``dense`` (tied, the preset), ``dense_untied`` (the control
   for untying), ``tt`` (rank ``--rank``) and ``tt_phase``; then validation perplexity on
   ``--max-tokens`` tokens (windows spread evenly) with
   :func:`bkmodel.evaluate.evaluate_stream`. ``--models`` adds ``transformer`` (same rows;
   its ``d_ff`` is fixed to the dense run's parameter-matched width so that only the
   embedding differs). ``--seeds`` (comma-separated) repeats every run with each seed of
   :class:`bkmodel.presets.TrainConfig` (model initialisation and data order; the BPE
   vocabulary and the held-out tokens do not depend on it).

Usage::

    nice python benchmarks/tt_embedding_compare.py     # minutes on 2 shared CPU cores
    nice python benchmarks/tt_embedding_compare.py --steps 400 --batch-size 16 \
        --vocabs 4096 --rows dense,tt,tt_phase --models bk,transformer \
        --seeds 1337,1338 --max-tokens 65536 --tag long

Writes ``benchmarks/results/tt_embedding_tiny[_<tag>]_<date>.json`` (a file of the same name
keeps the rows not run this time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from act_curve import train_without_final_eval  # noqa: E402  (benchmarks/ is on the path)

from bkmodel.checkpoint import load_run  # noqa: E402
from bkmodel.data import load_split  # noqa: E402
from bkmodel.evaluate import evaluate_stream  # noqa: E402
from bkmodel.factory import transformer_config  # noqa: E402
from bkmodel.model import LanguageModel  # noqa: E402
from bkmodel.presets import TrainConfig  # noqa: E402
from bkmodel.tokenizer import encode_documents  # noqa: E402
from bkmodel.tt_embedding import TTEmbedding  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ROW_OPTIONS = {"dense": {}, "dense_untied": {"tie_embeddings": False},
               "tt": {"embedding": "tt"}, "tt_phase": {"embedding": "tt_phase"}}


def _machine() -> dict:
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "device": "cpu", "loadavg": list(os.getloadavg())}


def counting() -> list[dict]:
    rows = []
    state = torch.get_rng_state()
    base = TrainConfig.from_preset("tiny")
    for d in (128, 512):
        for V in (1024, 4096, 8192, 32768, 50257):
            for rank, phase in ((4, False), (8, False), (16, False), (32, False), (8, True)):
                e = TTEmbedding(V, d, rank, phase=phase)
                row = {"vocab": V, "d_model": d, "rank": rank, "phase": phase,
                       "vocab_factors": e.vocab_factors, "dim_factors": e.dim_factors,
                       "dense_params": V * d, "tt_params": e.num_params(),
                       "embedding_compression_ratio": e.compression(),
                       "embedding_compression_pct": 100 * (1 - 1 / e.compression()),
                       "lookup_flops_per_token": e.lookup_flops()}
                if d == base.d_model:  # the whole tiny model (2 blocks, d = 128)
                    opts = {**base.model_options, "vocab_size": V, "d_model": d,
                            "n_layers": base.n_layers, "n_seq": base.seq_len}
                    tied = LanguageModel(**opts).num_params()
                    untied = LanguageModel(**opts, tie_embeddings=False).num_params()
                    tt_model = untied - V * d + e.num_params()
                    row.update({"model_params_dense_tied": tied,
                                "model_params_dense_untied": untied,
                                "model_params_tt": tt_model,
                                "model_compression_vs_tied_pct": 100 * (1 - tt_model / tied),
                                "model_compression_vs_untied_pct":
                                    100 * (1 - tt_model / untied)})
                rows.append(row)
    torch.set_rng_state(state)
    return rows


def _run(kind: str, row: str, vocab: int, args, d_ff: int | None, seed: int) -> dict:
    run = Path(args.out_dir) / f"{kind}-v{vocab}-{row}-n{args.steps}x{args.batch_size}-s{seed}"
    opts = {**TrainConfig.from_preset("tiny").model_options, **ROW_OPTIONS[row]}
    if row.startswith("tt"):
        opts["tt_rank"] = args.rank
    over = dict(model=kind, vocab_size=vocab, max_steps=args.steps,
                batch_size=args.batch_size, warmup_steps=max(1, args.steps // 10),
                eval_every=args.steps, ckpt_every=args.steps, eval_tokens=8192,
                device="cpu", seed=seed, model_options=opts)
    if kind == "transformer":
        if "tie_embeddings" in opts:
            raise ValueError("the Transformer baseline is always tied when dense")
        over["d_ff"] = d_ff
    cfg = TrainConfig.from_preset("tiny", **over)
    info: dict = {"row": row, "vocab": vocab, "model": kind, "seed": seed,
                  "run_dir": str(run)}
    # None: ``run`` already held the trained checkpoint (an earlier invocation trained it)
    info["train_wall_s"] = train_without_final_eval(cfg, run) or None
    model, tok, _ = load_run(run)
    tokens = encode_documents(tok, load_split("validation", "shakespeare"))
    seq_len = cfg.seq_len
    ev = evaluate_stream(model, tokens, seq_len=seq_len, max_tokens=args.max_tokens)
    emb = model.wte if kind == "bk" else model.embed
    info.update({"params": model.num_params(), "embedding_params":
                 sum(p.numel() for p in emb.parameters()),
                 "val_ppl": ev["ppl"], "val_loss": ev["loss"], "val_tokens": ev["tokens"]})
    print(f"{kind:12s} V={vocab:5d} {row:13s} seed {seed}  params {info['params']:>10,}  embedding "
          f"{info['embedding_params']:>9,}  val ppl {info['val_ppl']:.2f}", flush=True)
    return info


def _write(result: dict, args) -> None:
    tag = f"{args.tag}_" if args.tag else ""
    out = Path(args.results) / f"tt_embedding_tiny_{tag}{result['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = dict(result)
    if out.exists():  # the same file's other rows (run separately) are kept
        old = json.loads(out.read_text())

        def key(r: dict) -> tuple:
            return r["model"], r["vocab"], r["row"], r.get("seed", TrainConfig.seed)

        done = {key(r) for r in result["runs"]}
        result["runs"] = [r for r in old.get("runs", [])
                          if key(r) not in done] + result["runs"]
        result["commands"] = sorted({*old.get("commands", [old.get("command", "")]),
                                     result["command"]})
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vocabs", default="4096,8192")
    p.add_argument("--rows", default="dense,tt")
    p.add_argument("--models", default="bk")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=16384)
    p.add_argument("--seeds", default=str(TrainConfig.seed),
                   help="comma-separated TrainConfig seeds (init and data order)")
    p.add_argument("--tag", default="", help="results file tt_embedding_tiny_<tag>_<date>.json")
    p.add_argument("--out-dir", default="runs/tt")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    result: dict = {"benchmark": "tt_embedding_compare", "preset": "tiny",
                    "date": dt.date.today().isoformat(),
                    "command": "python benchmarks/tt_embedding_compare.py "
                               + " ".join(argv or sys.argv[1:]),
                    "machine": _machine(), "settings": vars(args), "counting": counting(),
                    "runs": []}
    for kind in args.models.split(","):
        for vocab in (int(v) for v in args.vocabs.split(",")):
            d_ff = None
            if kind == "transformer":  # matched to the dense ResNet-BK model, then fixed
                base = TrainConfig.from_preset("tiny", vocab_size=vocab)
                d_ff = transformer_config(base, vocab).d_ff
            for seed in (int(s) for s in args.seeds.split(",")):
                for row in args.rows.split(","):
                    if kind == "transformer" and row == "dense_untied":
                        continue
                    result["runs"].append(_run(kind, row, vocab, args, d_ff, seed))
                    result["wall_s"] = time.perf_counter() - t0
                    _write(result, args)  # after every run: an interrupted sweep keeps its rows
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
