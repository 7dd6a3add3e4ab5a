"""``bk generate``: sample text from a trained checkpoint.

The model's own ``generate`` does the decoding (ResNet-BK: one O(1) recurrence step per layer
and token; the Transformer baseline: a forward pass over the cropped context). Sampling is
seeded (``--seed``) and leaves the global RNG untouched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

__all__ = ["configure_parser", "generate_text", "run"]


def generate_text(
    model: torch.nn.Module,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 200,
    *,
    temperature: float = 0.8,
    top_k: int | None = 40,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> str:
    """``prompt`` followed by ``max_new_tokens`` sampled tokens, decoded to text.

    An empty prompt starts from the end-of-text token. ``temperature = 0`` is greedy.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    ids = tokenizer.encode(prompt) or [tokenizer.eot_id]
    x = torch.tensor([ids], dtype=torch.long, device=device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        y = model.generate(x, max_new_tokens, temperature=temperature, top_k=top_k)
    return prompt + tokenizer.decode(y[0, len(ids):].tolist())


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path,
                        help="run directory (from bk train --out) or checkpoint file")
    parser.add_argument("--prompt", default="ROMEO.\n", help="text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=40, help="0 = no top-k filter")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from bkmodel.checkpoint import CheckpointError, load_run
    from bkmodel.evaluate import check_device
    from bkmodel.tokenizer import TokenizerError

    try:
        check_device(args.device)
    except ValueError as exc:
        print(f"bk generate: {exc}", file=sys.stderr)
        return 2
    try:
        model, tok, state = load_run(args.checkpoint, device=args.device)
    except (CheckpointError, TokenizerError) as exc:
        print(f"bk generate: {exc}", file=sys.stderr)
        return 1
    try:
        for i in range(args.num_samples):
            text = generate_text(model, tok, args.prompt, args.max_new_tokens,
                                 temperature=args.temperature, top_k=args.top_k or None,
                                 seed=args.seed + i, device=args.device)
            if args.num_samples > 1:
                print(f"--- sample {i + 1} ---")
            print(text)
    except (ValueError, TypeError) as exc:
        print(f"bk generate: {exc}", file=sys.stderr)
        return 2
    return 0
