"""Length extrapolation: perplexity per position bucket on long streams, trained ResNet-BK
against the trained Transformer (issue 15).

For two run directories (``bk train --out``; trained at length ``seq_len``), ``--n-seqs``
sequences of ``--max-length`` consecutive tokens of a long held-out stream (the ``--splits``
plays tokenised with the run's tokenizer and concatenated, an EOT after each play; repeated
when shorter than one sequence, which the JSON records) are scored token by token, and the
next-token NLL is averaged per bucket of context length ``c`` (the number of tokens the
prediction sees from the sequence start): ``[1, b)``, ``[b, 2b)``, ``[2b, 4b)``, ... up to
``--max-length``, ``b = --bucket-base``.

* ResNet-BK, state carried: :func:`bkmodel.evaluate.evaluate_carried`, chunks of its training
  length, no resets inside the sequence unless ``--resets`` (then the chains restart after
  every EOT and the position is no longer the context length);
* Transformer, sliding window (the honest alternative): :func:`bkmodel.evaluate.evaluate_sliding`
  with its training length and stride ``--stride`` (default seq_len / 2): every token sees
  at most ``seq_len`` tokens, so its curve can only flatten;
* Transformer, direct: one forward over the first ``min(--max-length, --tf-direct-max)``
  tokens. Its positions are rotary (RoPE; no learned table), so a forward beyond the training
  length is defined and this measures how it extrapolates. (A model with learned absolute
  positions could not be evaluated this way at all; the baseline here has none.) Attention
  memory grows as the square of the length: cap it with ``--tf-direct-max``.

Usage::

    python benchmarks/length_extrapolation.py --bk runs/ext-bk --transformer runs/ext-tf \\
        --max-length 65536 --bucket-base 1024 --n-seqs 4 --device cuda --bf16

writes ``benchmarks/results/length_extrapolation_<label>_<date>.json``, drawn by
``bk figures --only 8`` (:mod:`bkpaper.long_context_figs`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bucket_edges(base: int, max_length: int) -> list[int]:
    """``[1, base, 2 base, 4 base, ..., max_length + 1]``: bucket ``j`` holds context lengths
    ``edges[j] <= c < edges[j + 1]``."""
    edges, e = [1], base
    while e < max_length:
        edges.append(e)
        e *= 2
    return edges + [max_length + 1]


def bucket_means(nll_rows: list, edges: list[int]) -> tuple[list[float | None], list[int]]:
    """Mean NLL per bucket over all sequences (entry ``i`` of a row has context ``i + 1``),
    and the number of tokens in each; None where a curve has no token in a bucket."""
    import numpy as np

    means, counts = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        parts = [r[lo - 1: hi - 1] for r in nll_rows]
        n = sum(len(p) for p in parts)
        counts.append(n)
        means.append(float(np.concatenate(parts).mean()) if n else None)
    return means, counts


def main() -> int:
    import numpy as np
    import torch

    from benchmarks._results import run_header, write_result
    from bkmodel.checkpoint import load_run
    from bkmodel.data import load_split, tile_stream
    from bkmodel.evaluate import evaluate_carried, evaluate_sliding
    from bkmodel.model import LanguageModel
    from bkmodel.tokenizer import encode_documents

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bk", type=Path, required=True, help="ResNet-BK run directory")
    ap.add_argument("--transformer", type=Path, required=True, help="Transformer run directory")
    ap.add_argument("--max-length", type=int, default=65536)
    ap.add_argument("--bucket-base", type=int, default=1024)
    ap.add_argument("--n-seqs", type=int, default=4, help="sequences averaged per bucket")
    ap.add_argument("--splits", nargs="+", default=["validation", "test"],
                    choices=["validation", "test"])
    ap.add_argument("--resets", action="store_true",
                    help="ResNet-BK: restart the chains after every EOT inside a sequence")
    ap.add_argument("--stride", type=int, default=None,
                    help="Transformer sliding-window stride (default seq_len / 2)")
    ap.add_argument("--tf-direct-max", type=int, default=None,
                    help="longest direct Transformer forward (default --max-length)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--label", default="gpu", help="name in the file and JSON (cpu-smoke, ...)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    amp = torch.bfloat16 if args.bf16 else None
    edges = bucket_edges(args.bucket_base, args.max_length)
    doc: dict = {
        "benchmark": "length_extrapolation", "label": args.label, **run_header(args),
        "buckets": [[lo, hi - 1] for lo, hi in zip(edges[:-1], edges[1:], strict=True)],
        "models": {}, "curves": {}, "tokens_per_bucket": {}, "overall_ppl": {},
        "seconds": {},
    }
    L = args.max_length
    for name, run in (("bk", args.bk), ("transformer", args.transformer)):
        model, tok, state = load_run(run, device=args.device)
        seq_len = int(state["train_config"]["seq_len"])
        corpus = state["train_config"]["corpus"]
        stream = np.concatenate([encode_documents(tok, load_split(s, corpus))
                                 for s in args.splits])
        tiled = len(stream) < L + 1
        if tiled:
            stream = tile_stream(stream, L + 1)
        starts = np.linspace(0, len(stream) - L - 1, args.n_seqs).round().astype(int)
        seqs = [stream[s: s + L + 1] for s in starts]
        info = {"run": str(run), "params": model.num_params(), "seq_len": seq_len,
                "step": state["step"], "vocab": tok.vocab_size, "stream_tokens": len(stream),
                "stream_tiled": bool(tiled), "starts": starts.tolist()}
        modes: list[tuple[str, object]] = []
        if isinstance(model, LanguageModel):
            eot = tok.eot_id if args.resets else None
            modes.append(("bk_carried", lambda q, m=model, n=seq_len, e=eot: evaluate_carried(
                m, q, n, eot_id=e, device=args.device, autocast_dtype=amp, return_nll=True)))
        else:
            info["positions"] = ("rotary (RoPE, no position table): direct evaluation beyond "
                                 "the training length is defined")
            stride = args.stride or max(1, seq_len // 2)
            direct = min(L, args.tf_direct_max or L)
            info.update(sliding_stride=stride, direct_length=direct)
            modes.append(("transformer_sliding", lambda q, m=model, n=seq_len, s=stride:
                          evaluate_sliding(m, q, n, stride=s, device=args.device,
                                           autocast_dtype=amp, return_nll=True)))
            modes.append(("transformer_direct", lambda q, m=model, d=direct: evaluate_sliding(
                m, q[: d + 1], d, stride=d, device=args.device, autocast_dtype=amp,
                return_nll=True)))
        doc["models"][name] = info
        for mode, fn in modes:
            t0 = time.perf_counter()
            rows = [fn(q)["nll"] for q in seqs]
            doc["seconds"][mode] = time.perf_counter() - t0
            means, counts = bucket_means(rows, edges)
            doc["curves"][mode] = [None if m is None else math.exp(m) for m in means]
            doc["tokens_per_bucket"][mode] = counts
            doc["overall_ppl"][mode] = math.exp(float(np.concatenate(rows).mean()))
            print(f"{mode:22s} " + " ".join("   -   " if p is None else f"{p:7.2f}"
                                            for p in doc["curves"][mode])
                  + f"   ({doc['seconds'][mode]:.1f} s)", flush=True)
        del model
    print("buckets (context length): " + ", ".join(f"{a}-{b}" for a, b in doc["buckets"]))
    out = write_result(doc, args.out, f"length_extrapolation_{args.label}_{_dt.date.today()}.json",
                       indent=1)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
