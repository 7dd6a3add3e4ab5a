"""``bk eval``: validation and test perplexity of a checkpoint on held-out works.

Perplexity is ``exp`` of the mean next-token cross-entropy over the held-out *works* of the
corpus the run was trained on (:mod:`bkmodel.data`: whole plays never seen in training), in
consecutive windows of the training sequence length; training loss is never reported as a
perplexity. Throughput is forward-only tokens/s over the same windows.

:func:`evaluate_stream` is the measurement (also the training loop's in-run evaluation);
:func:`evaluate_checkpoint` applies it to a saved run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bkmodel.checkpoint import CheckpointError, load_run
from bkmodel.data import SPLITS, batch_from_stream, eval_windows, load_split
from bkmodel.tokenizer import TokenizerError, encode_documents

__all__ = ["configure_parser", "evaluate_checkpoint", "evaluate_stream", "run"]


@torch.no_grad()
def evaluate_stream(
    model: nn.Module,
    tokens: np.ndarray,
    seq_len: int,
    *,
    batch_size: int = 16,
    max_tokens: int | None = None,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Mean next-token NLL (nats) and perplexity of ``model`` on a held-out token stream.

    The NLL is the cross-entropy of the logits alone (auxiliary losses excluded), so
    ``ppl = exp(NLL)`` is comparable between architectures sharing a tokenizer.

    The stream is cut into consecutive windows of ``seq_len`` predictions
    (:func:`bkmodel.data.eval_windows`); every token but the first is scored exactly once.
    Returns ``{"loss", "ppl", "tokens", "tokens_per_s"}``. O(n_tokens) forward passes' work.
    """
    was_training = model.training
    model.eval()
    starts = eval_windows(len(tokens), seq_len, max_tokens)
    device = torch.device(device)
    total, count = 0.0, 0
    t0 = time.perf_counter()
    for i in range(0, len(starts), batch_size):
        rows = torch.from_numpy(batch_from_stream(tokens, starts[i: i + batch_size], seq_len))
        rows = rows.to(device)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            logits, _ = model(rows[:, :-1])
        # pure next-token cross-entropy from the logits (a model's loss may add MoE terms)
        targets = rows[:, 1:]
        total += float(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                       targets.reshape(-1), reduction="sum"))
        count += targets.numel()
    dt = time.perf_counter() - t0
    model.train(was_training)
    mean = total / count
    return {"loss": mean, "ppl": math.exp(min(mean, 700.0)), "tokens": count,
            "tokens_per_s": count / dt if dt > 0 else float("inf")}


def evaluate_checkpoint(
    checkpoint: Path | str,
    splits: tuple[str, ...] = ("validation", "test"),
    *,
    max_tokens: int | None = None,
    batch_size: int = 16,
    device: str = "cpu",
) -> dict[str, Any]:
    """Perplexity and tokens/s of a run directory or checkpoint file on held-out splits.

    Returns ``{"params", "model", "step", "<split>": {"loss", "ppl", "tokens",
    "tokens_per_s"}, ...}``. Raises :class:`bkmodel.checkpoint.CheckpointError` for a missing
    or corrupt checkpoint and ``ValueError`` for an unknown split.
    """
    for s in splits:
        if s not in SPLITS or s == "train":
            raise ValueError(f"splits must be 'validation' and/or 'test', got {s!r}")
    model, tok, state = load_run(checkpoint, device=device)
    cfg = state["train_config"]
    out: dict[str, Any] = {"model": state["model_spec"]["kind"], "params": model.num_params(),
                           "step": state["step"], "corpus": cfg["corpus"],
                           "seq_len": cfg["seq_len"]}
    for split in splits:
        tokens = encode_documents(tok, load_split(split, cfg["corpus"]))
        out[split] = evaluate_stream(model, tokens, cfg["seq_len"], batch_size=batch_size,
                                     max_tokens=max_tokens, device=device)
    return out


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path,
                        help="run directory (from bk train --out) or checkpoint file")
    parser.add_argument("--splits", nargs="+", default=["validation", "test"],
                        choices=["validation", "test"])
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="evaluate only the first N tokens of each split (default: all)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")


def run(args: argparse.Namespace) -> int:
    try:
        res = evaluate_checkpoint(args.checkpoint, tuple(args.splits),
                                  max_tokens=args.max_tokens, batch_size=args.batch_size,
                                  device=args.device)
    except (CheckpointError, TokenizerError, ValueError) as exc:
        print(f"bk eval: {exc}", file=sys.stderr)
        return 1
    print(f"{res['model']} ({res['params']:,} params, step {res['step']}, corpus "
          f"{res['corpus']}, windows of {res['seq_len']} tokens)")
    print(f"{'split':<12}{'tokens':>10}{'loss':>10}{'ppl':>10}{'tokens/s':>12}")
    for split in args.splits:
        r = res[split]
        print(f"{split:<12}{r['tokens']:>10,}{r['loss']:>10.4f}{r['ppl']:>10.2f}"
              f"{r['tokens_per_s']:>12,.0f}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0
