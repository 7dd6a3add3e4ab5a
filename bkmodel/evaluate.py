"""``bk eval``: validation and test perplexity of a checkpoint on held-out works.

Perplexity is ``exp`` of the mean next-token cross-entropy over the held-out *works* of the
corpus the run was trained on (:mod:`bkmodel.data`: whole plays never seen in training), in
consecutive windows of the training sequence length; training loss is never reported as a
perplexity. Throughput is forward-only tokens/s over the same windows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["configure_parser", "evaluate_checkpoint", "run"]


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
    "tokens_per_s"}, ...}``. Raises :class:`bkmodel.train.CheckpointError` for a missing or
    corrupt checkpoint and ``ValueError`` for an unknown split.
    """
    from bkmodel.data import SPLITS, load_split
    from bkmodel.tokenizer import encode_documents
    from bkmodel.train import evaluate_stream, load_run

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
    from bkmodel.tokenizer import TokenizerError
    from bkmodel.train import CheckpointError

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
