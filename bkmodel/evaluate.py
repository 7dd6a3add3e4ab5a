"""``bk eval``: validation and test perplexity of a checkpoint on held-out works.

Perplexity is ``exp`` of the mean next-token cross-entropy over the held-out *works* of the
corpus the run was trained on (:mod:`bkmodel.data`: whole plays never seen in training), in
consecutive windows of the training sequence length; training loss is never reported as a
perplexity. Throughput is forward-only tokens/s over the same windows.

:func:`evaluate_stream` is the measurement (also the training loop's in-run evaluation);
:func:`evaluate_checkpoint` applies it to a saved run.

``bk eval --stream`` scores each split as *one* stream instead (:func:`evaluate_long`):
ResNet-BK reads it in chunks of the training length with its O(1) state carried
(:func:`evaluate_carried`; every token sees its whole document, memory flat in the stream
length), the Transformer through a sliding window of its training length
(:func:`evaluate_sliding`; every token sees up to ``seq_len`` tokens, at ``seq_len/stride``
times the cost). ``--stream-tokens`` repeats the split's plays to a given length.
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
from bkmodel.data import SPLITS, batch_from_stream, eval_windows, load_split, tile_stream
from bkmodel.tokenizer import TokenizerError, encode_documents

__all__ = ["check_device", "configure_parser", "evaluate_carried", "evaluate_checkpoint",
           "evaluate_long", "evaluate_sliding", "evaluate_stream", "run"]


def check_device(spec: str) -> str:
    """``spec`` if this torch can use that device (``"auto"`` too), else ``ValueError``.

    Called by ``bk train``, ``bk eval`` and ``bk generate`` before they load or write
    anything, so ``--device cuda`` on a CPU-only torch is one line, not an ``AssertionError``
    from deep inside ``.to()``. The message names the device and why it cannot be used.
    """
    if spec == "auto":
        return spec
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {spec!r}: not a torch device (cpu, cuda, cuda:N, mps, "
                         "or auto)") from None
    if dev.type == "cuda":
        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            raise ValueError(f"--device {spec}: this torch ({torch.__version__}) was built "
                             "without CUDA; use --device cpu or install a CUDA build of torch")
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"--device {spec}: no CUDA device is available (driver or "
                             "CUDA_VISIBLE_DEVICES); use --device cpu")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"--device {spec}: only {n} CUDA device(s) visible "
                             f"(cuda:0..cuda:{n - 1})")
        return spec
    if dev.type == "cpu":
        return spec
    try:  # other backends (mps, xpu, ...): can a tensor be placed there?
        torch.empty(0, device=dev)
    except (AssertionError, RuntimeError) as exc:
        raise ValueError(f"--device {spec}: not available in this torch: {exc}") from None
    return spec


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


def _nll_sum(logits: torch.Tensor, targets: np.ndarray, keep: list | None = None) -> float:
    """Summed next-token NLL; with ``keep`` the per-token NLLs (float64) are appended to it."""
    y = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int64)).to(logits.device)
    nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                          reduction="none")
    if keep is not None:
        keep.append(nll.double().cpu().numpy())
    return float(nll.sum())


def _stream_result(total: float, count: int, dt: float, **extra: Any) -> dict[str, Any]:
    mean = total / count
    return {"loss": mean, "ppl": math.exp(min(mean, 700.0)), "tokens": count,
            "tokens_per_s": count / dt if dt > 0 else float("inf"), **extra}


def _n_predictions(tokens: np.ndarray, max_tokens: int | None) -> int:
    n = len(tokens) - 1
    if n < 1:
        raise ValueError(f"the held-out stream ({len(tokens)} tokens) needs at least 2 tokens")
    return n if max_tokens is None else max(1, min(n, int(max_tokens)))


@torch.no_grad()
def evaluate_carried(
    model: nn.Module,
    tokens: np.ndarray,
    chunk_len: int,
    *,
    eot_id: int | None = None,
    max_tokens: int | None = None,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    return_nll: bool = False,
) -> dict[str, Any]:
    """Perplexity of a ResNet-BK :class:`~bkmodel.model.LanguageModel` on a whole stream, read
    as one sequence in chunks of ``chunk_len`` (<= ``n_seq``) with the model state carried.

    Every token but the first is scored once, with everything before it as context (from its
    document's start when ``eot_id`` is given: the chains restart at the token after each
    ``EOT``, the model's ``reset``). The result does not depend on ``chunk_len`` (up to
    rounding; ``tests/bkmodel/test_state.py``). Memory is one chunk's activations plus
    the O(n_layers · C) state, flat in the stream length; time O(n_tokens). Returns
    ``{"loss", "ppl", "tokens", "tokens_per_s", "mode": "carried", "chunk_len", "resets"}``,
    and with ``return_nll`` also ``"nll"``: the per-token NLLs (float64 (tokens,), entry ``i``
    for the prediction of ``tokens[i + 1]``; the per-position curves of
    ``benchmarks/length_extrapolation.py``).
    """
    if not isinstance(chunk_len, int) or isinstance(chunk_len, bool) or chunk_len < 1:
        raise ValueError(f"chunk_len must be a positive int, got {chunk_len!r}")
    n = _n_predictions(tokens, max_tokens)
    was_training = model.training
    model.eval()
    device = torch.device(device)
    state, total = None, 0.0
    keep: list | None = [] if return_nll else None
    t0 = time.perf_counter()
    for s in range(0, n, chunk_len):
        e = min(s + chunk_len, n)
        x = torch.from_numpy(np.asarray(tokens[s:e], dtype=np.int64))[None].to(device)
        reset = None
        if eot_id is not None:  # True at a document's first token (the one after an EOT)
            r = np.empty(e - s, dtype=bool)
            r[0] = s == 0 or tokens[s - 1] == eot_id
            r[1:] = tokens[s: e - 1] == eot_id
            reset = torch.from_numpy(r)[None].to(device)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            logits, _, state = model(x, state=state, reset=reset, return_state=True)
        total += _nll_sum(logits, tokens[s + 1: e + 1], keep)
    dt = time.perf_counter() - t0
    model.train(was_training)
    extra = {"nll": np.concatenate(keep)} if keep is not None else {}
    return _stream_result(total, n, dt, mode="carried", chunk_len=chunk_len,
                          resets=eot_id is not None, **extra)


@torch.no_grad()
def evaluate_sliding(
    model: nn.Module,
    tokens: np.ndarray,
    window: int,
    *,
    stride: int | None = None,
    max_tokens: int | None = None,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    return_nll: bool = False,
) -> dict[str, Any]:
    """Sliding-window perplexity of any causal LM (the Transformer's honest long-stream
    evaluation): windows of ``window`` tokens (its training length) advancing by ``stride``
    (default ``window // 2``), each scoring only the tokens the previous window did not.

    Every token but the first is scored once; after the first window each has at least
    ``window - stride + 1`` and at most ``window`` tokens of context (no resets: documents
    before it inside the window are visible, as in a run trained without
    ``reset_at_documents``). Cost ``window / stride`` times
    the non-overlapping evaluation's forward work (2x at the default stride; attention
    O(window^2) per window); memory one window, flat in the stream length. Returns
    ``{"loss", "ppl", "tokens", "tokens_per_s", "mode": "sliding", "window", "stride"}``,
    and with ``return_nll`` the per-token NLLs ``"nll"`` (as :func:`evaluate_carried`).
    ``window >= len(tokens) - 1`` is the direct evaluation: one forward over the whole
    stream (beyond the training length for a model trained on shorter windows).
    """
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    stride = max(1, window // 2) if stride is None else stride
    if not isinstance(stride, int) or isinstance(stride, bool) or not 1 <= stride <= window:
        raise ValueError(f"stride must be an int in [1, window={window}], got {stride!r}")
    n = _n_predictions(tokens, max_tokens)
    was_training = model.training
    model.eval()
    device = torch.device(device)
    total, scored_to = 0.0, 0
    keep: list | None = [] if return_nll else None
    t0 = time.perf_counter()
    for begin in range(0, n, stride):
        end = min(begin + window, n)
        x = torch.from_numpy(np.asarray(tokens[begin:end], dtype=np.int64))[None].to(device)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            logits, _ = model(x)
        first = scored_to - begin  # positions already scored by the previous window
        total += _nll_sum(logits[:, first:], tokens[scored_to + 1: end + 1], keep)
        scored_to = end
        if end == n:
            break
    dt = time.perf_counter() - t0
    model.train(was_training)
    extra = {"nll": np.concatenate(keep)} if keep is not None else {}
    return _stream_result(total, n, dt, mode="sliding", window=window, stride=stride, **extra)


def evaluate_long(
    model: nn.Module,
    tokens: np.ndarray,
    seq_len: int,
    *,
    eot_id: int | None = None,
    stride: int | None = None,
    max_tokens: int | None = None,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """``bk eval --stream``: :func:`evaluate_carried` (chunks of ``seq_len``, resets at
    ``eot_id``) for ResNet-BK, :func:`evaluate_sliding` (window ``seq_len``) for any other
    model (the Transformer baseline)."""
    from bkmodel.model import LanguageModel

    if isinstance(model, LanguageModel):
        return evaluate_carried(model, tokens, seq_len, eot_id=eot_id, max_tokens=max_tokens,
                                device=device, autocast_dtype=autocast_dtype)
    return evaluate_sliding(model, tokens, seq_len, stride=stride, max_tokens=max_tokens,
                            device=device, autocast_dtype=autocast_dtype)


def evaluate_checkpoint(
    checkpoint: Path | str,
    splits: tuple[str, ...] = ("validation", "test"),
    *,
    max_tokens: int | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    stream: bool = False,
    stream_tokens: int | None = None,
    stride: int | None = None,
    resets: bool = True,
) -> dict[str, Any]:
    """Perplexity and tokens/s of a run directory or checkpoint file on held-out splits.

    Returns ``{"params", "model", "step", "<split>": {"loss", "ppl", "tokens",
    "tokens_per_s"}, ...}``. Raises :class:`bkmodel.checkpoint.CheckpointError` for a missing
    or corrupt checkpoint and ``ValueError`` for an unknown split.

    ``stream``: the whole split as one stream (:func:`evaluate_long`: ResNet-BK with carried
    state, resetting at every document start unless ``resets=False``; the Transformer with a
    sliding window of its training length, ``stride``); ``stream_tokens`` repeats the
    split's documents to that many tokens (:func:`bkmodel.data.tile_stream`).
    """
    for s in splits:
        if s not in SPLITS or s == "train":
            raise ValueError(f"splits must be 'validation' and/or 'test', got {s!r}")
    model, tok, state = load_run(checkpoint, device=device)
    cfg = state["train_config"]
    out: dict[str, Any] = {"model": state["model_spec"]["kind"], "params": model.num_params(),
                           "step": state["step"], "corpus": cfg["corpus"],
                           "seq_len": cfg["seq_len"]}
    if stream:
        out["stream"] = True
    for split in splits:
        tokens = encode_documents(tok, load_split(split, cfg["corpus"]))
        if stream and stream_tokens is not None:
            tokens = tile_stream(tokens, stream_tokens)
        if stream:
            out[split] = evaluate_long(model, tokens, cfg["seq_len"],
                                       eot_id=tok.eot_id if resets else None, stride=stride,
                                       max_tokens=max_tokens, device=device)
        else:
            out[split] = evaluate_stream(model, tokens, cfg["seq_len"],
                                         batch_size=batch_size, max_tokens=max_tokens,
                                         device=device)
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
    parser.add_argument("--stream", action="store_true",
                        help="score each split as one stream: ResNet-BK in chunks of seq_len "
                             "with its state carried (memory flat in the length), the "
                             "Transformer with a sliding window of seq_len")
    parser.add_argument("--stream-tokens", type=int, default=None,
                        help="with --stream: repeat the split's documents to N tokens")
    parser.add_argument("--stride", type=int, default=None,
                        help="with --stream, Transformer: window stride (default seq_len/2)")
    parser.add_argument("--no-resets", action="store_true",
                        help="with --stream, ResNet-BK: do not restart the chains at "
                             "document boundaries")


def run(args: argparse.Namespace) -> int:
    try:
        check_device(args.device)
    except ValueError as exc:
        print(f"bk eval: {exc}", file=sys.stderr)
        return 2
    try:
        res = evaluate_checkpoint(args.checkpoint, tuple(args.splits),
                                  max_tokens=args.max_tokens, batch_size=args.batch_size,
                                  device=args.device, stream=args.stream,
                                  stream_tokens=args.stream_tokens, stride=args.stride,
                                  resets=not args.no_resets)
    except (CheckpointError, TokenizerError, ValueError) as exc:
        print(f"bk eval: {exc}", file=sys.stderr)
        return 1
    how = f"windows of {res['seq_len']} tokens"
    if args.stream:
        r0 = res[args.splits[0]]
        how = (f"one stream, chunks of {res['seq_len']} with the state carried"
               + (", resets at documents" if r0.get("resets") else "")
               if r0["mode"] == "carried" else
               f"one stream, sliding window {r0['window']}, stride {r0['stride']}")
    print(f"{res['model']} ({res['params']:,} params, step {res['step']}, corpus "
          f"{res['corpus']}, {how})")
    print(f"{'split':<12}{'tokens':>10}{'loss':>10}{'ppl':>10}{'tokens/s':>12}")
    for split in args.splits:
        r = res[split]
        print(f"{split:<12}{r['tokens']:>10,}{r['loss']:>10.4f}{r['ppl']:>10.2f}"
              f"{r['tokens_per_s']:>12,.0f}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0
