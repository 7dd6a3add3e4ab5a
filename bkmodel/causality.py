"""Causality certificate of a sequence model, and the ``bk causality`` command.

Claim (docs/conventions.md §8): the logits at position i depend on tokens <= i only. Check: draw
token ids, and for several cut positions i replace every token after i by a different
random token; the logits at positions <= i must not move ("leak"), while those after i
must (the "response" — a model insensitive to its input would pass trivially, so a zero
response makes the result inconclusive).

Tolerance: both runs do the same float operations on the unperturbed prefix, except that
batched matrix products (and the MoE's per-expert gathers) may block the rows differently
when other rows change, which moves results by a few ulps. So the leak must stay below
``64 * eps(float32) * (1 + max |logits|)``, and the response must exceed it. A causal
model typically leaks exactly 0.

The negative control is :class:`bkmodel.model.BKEncoder` with ``bk_mode="two_sided"`` (the
two-sided G_ii depends on the whole chain): it must be **refuted**, which shows the check
can fail.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bkmath.certificate import Certificate, Kind, Status, timed

__all__ = ["causality_certificate", "configure_parser", "run"]

_EPS32 = float(torch.finfo(torch.float32).eps)


def _logits_fn(model: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    def f(ids: torch.Tensor) -> torch.Tensor:
        out = model(ids)
        return out[0] if isinstance(out, tuple) else out

    return f


def causality_certificate(
    model: Any,
    *,
    vocab_size: int | None = None,
    length: int | None = None,
    batch: int = 2,
    n_cuts: int = 4,
    seed: int = 0,
    kind: Kind | str | None = None,
) -> Certificate:
    """Certificate that ``model``'s logits at positions <= i ignore tokens after i.

    Parameters
    ----------
    model : LanguageModel, BKEncoder or callable ``ids (B, T) -> logits (B, T, V)``
        (a tuple output is read as ``(logits, ...)``). Run in eval mode (dropout off).
    vocab_size, length : int, optional
        Default to ``model.config.vocab_size`` and ``min(model.config.n_seq, 64)``.
    batch, n_cuts, seed : int
        Batch size, number of cut positions (evenly spread, first and last excluded), seed.
    kind : Kind, optional
        ``theorem`` for a causal model (default), ``negative_control`` for a model known to
        be non-causal (default when ``model.config.bk_mode == "two_sided"``).

    Returns
    -------
    Certificate
        ``verified`` (leak <= tol < response), ``refuted`` with the cut, position and leak,
        or ``inconclusive`` (no response to the perturbation).
    """
    cfg = getattr(model, "config", None)
    if vocab_size is None:
        if cfg is None:
            raise ValueError("vocab_size is required for a model without .config")
        vocab_size = cfg.vocab_size
    if length is None:
        length = min(cfg.n_seq, 64) if cfg is not None else 64
    for name, val, lo in (("vocab_size", vocab_size, 2), ("length", length, 2),
                          ("batch", batch, 1), ("n_cuts", n_cuts, 1)):
        if isinstance(val, bool) or not isinstance(val, int) or val < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {val!r}")
    if kind is None:
        two_sided = cfg is not None and getattr(cfg, "bk_mode", "causal") == "two_sided"
        kind = Kind.NEGATIVE_CONTROL if two_sided else Kind.THEOREM
    kind = Kind(kind)
    f = _logits_fn(model)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    gen = torch.Generator().manual_seed(seed)
    cuts = sorted({round(k * (length - 2) / (n_cuts + 1)) for k in range(1, n_cuts + 1)})
    worst: dict[str, Any] = {"leak": 0.0}
    min_response = float("inf")
    try:
        with timed() as t, torch.no_grad():
            ids = torch.randint(0, vocab_size, (batch, length), generator=gen)
            params = getattr(model, "parameters", None)
            first = next(iter(params()), None) if callable(params) else None
            device = first.device if first is not None else torch.device("cpu")
            base = f(ids.to(device)).float()
            tol = 64 * _EPS32 * (1.0 + float(base.abs().max()))
            for i in cuts:
                shift = torch.randint(1, vocab_size, (batch, length - i - 1), generator=gen)
                pert = ids.clone()
                pert[:, i + 1:] = (ids[:, i + 1:] + shift) % vocab_size  # every token differs
                out = f(pert.to(device)).float()
                diff = (out - base).abs().amax(dim=(0, 2))  # (T,)
                leak_pos = int(diff[: i + 1].argmax())
                leak = float(diff[: i + 1].max())
                response = float(diff[i + 1:].max())
                min_response = min(min_response, response)
                if leak >= worst["leak"]:
                    worst = {"cut": i, "position": leak_pos, "leak": leak, "response": response}
    finally:
        if hasattr(model, "train"):
            model.train(was_training)
    leak = worst["leak"]
    if leak > tol:
        status = Status.REFUTED
    elif min_response <= tol:
        status = Status.INCONCLUSIVE
    else:
        status = Status.VERIFIED
    return Certificate(
        theorem="bk_causality",
        statement=("logits at positions <= i are unchanged (to float tolerance) when every "
                   "token after position i is replaced"),
        status=status,
        kind=kind,
        hypotheses={"eval mode (no dropout)": True,
                    "bk_mode": getattr(cfg, "bk_mode", "unknown")},
        inputs={"seed": seed, "batch": batch, "length": length, "vocab_size": vocab_size,
                "cuts": cuts, "model": type(model).__name__},
        value=leak,
        bound=tol,
        margin=tol - leak,
        precision="float32",
        tolerance=tol,
        tolerance_reason="64 eps(float32) (1 + max|logits|): row blocking of batched matmuls",
        counterexample=worst if status is Status.REFUTED else None,
        wall_time=t["seconds"],
        details={"min_response": min_response, "worst": worst},
    )


# --------------------------------------------------------------------------------------------
# `bk causality`
# --------------------------------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="a ResNet-BK run directory (from bk train --out), "
                        "its checkpoint file, or a directory written by save_pretrained "
                        "(default: a freshly initialised model); exit code 2 if it cannot "
                        "be loaded")
    parser.add_argument("--bk-mode", choices=("causal", "two_sided"), default="causal",
                        help="fresh model only; two_sided is the non-causal BKEncoder "
                        "(a negative control: expected to be refuted)")
    parser.add_argument("--no-control", action="store_true",
                        help="skip the negative control (a two-sided BKEncoder of the same "
                        "shape, which must be refuted)")
    parser.add_argument("--vocab-size", type=int, default=256, help="fresh model: vocabulary")
    parser.add_argument("--d-model", type=int, default=64, help="fresh model: width")
    parser.add_argument("--n-layers", type=int, default=2, help="fresh model: depth")
    parser.add_argument("--n-channels", type=int, default=8, help="fresh model: BK chains C")
    parser.add_argument("--length", type=int, default=64, help="sequence length tested")
    parser.add_argument("--batch", type=int, default=2, help="sequences per test")
    parser.add_argument("--cuts", type=int, default=4, help="number of cut positions")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and tokens")
    parser.add_argument("--json", help="also write the certificate(s) to this JSON file")


def _print(cert: Certificate, label: str) -> None:
    print(f"{label}: {cert.summary()}")
    print(f"  leak {cert.value:.3g}  tolerance {cert.tolerance:.3g}  "
          f"min response {cert.details['min_response']:.3g}")
    if cert.counterexample:
        print(f"  counterexample: {cert.counterexample}")


class _LoadError(Exception):
    """``bk causality --checkpoint``: nothing usable at the path (the message says why)."""


def _load_bk_model(path: str) -> Any:
    """The ResNet-BK :class:`~bkmodel.model.LanguageModel` at ``path``, in eval mode.

    ``path`` is a run directory of ``bk train`` (its newest good ``checkpoint.pt``, as
    ``bk eval`` and ``bk generate`` read it), a checkpoint file, or a ``save_pretrained``
    directory (``model.safetensors`` + ``config.json``, e.g. a run's ``model/``). Raises
    :class:`_LoadError` with one line for a missing path, a Transformer baseline, or files
    that do not load.
    """
    from bkmodel.checkpoint import (
        CKPT_NAME,
        CKPT_PREV,
        CheckpointError,
        load_checkpoint,
        model_from_spec,
    )
    from bkmodel.lm_base import CONFIG_NAME, WEIGHTS_NAME
    from bkmodel.model import LanguageModel

    p = Path(path)
    not_bk = (f"{p} holds a Transformer baseline; the causality certificate (and its "
              "two-sided BK negative control) is for ResNet-BK models")
    if not p.exists():
        raise _LoadError(f"{p} does not exist")
    if p.is_dir() and (p / WEIGHTS_NAME).is_file():  # save_pretrained
        try:
            meta = json.loads((p / CONFIG_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        if isinstance(meta, dict) and meta.get("model_type") == "transformer":
            raise _LoadError(not_bk)
        try:
            return LanguageModel.from_pretrained(p).eval()
        except (OSError, ValueError) as exc:
            raise _LoadError(str(exc)) from None
    if p.is_dir() and not (p / CKPT_NAME).exists() and not (p / CKPT_PREV).exists():
        raise _LoadError(f"{p} is neither a run directory ({CKPT_NAME}) nor a save_pretrained "
                         f"directory ({WEIGHTS_NAME} + {CONFIG_NAME})")
    try:
        state, _ = load_checkpoint(p)
    except CheckpointError as exc:
        raise _LoadError(str(exc)) from None
    spec = state.get("model_spec") or {}
    if spec.get("kind") == "transformer":
        raise _LoadError(not_bk)
    try:
        model = model_from_spec(spec)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise _LoadError(f"{p}: the checkpoint does not rebuild a ResNet-BK model: {exc}") from None
    return model.eval()


def run(args: argparse.Namespace) -> int:
    from bkmodel.config import ModelConfig
    from bkmodel.model import BKEncoder, LanguageModel

    torch.manual_seed(args.seed)
    if args.checkpoint:
        try:
            model = _load_bk_model(args.checkpoint)
        except _LoadError as exc:
            print(f"bk causality: {exc}", file=sys.stderr)
            return 2
        base = model.config.to_dict()
    else:
        base = ModelConfig(vocab_size=args.vocab_size, d_model=args.d_model,
                           n_layers=args.n_layers, n_channels=args.n_channels,
                           n_seq=args.length, bk_mode=args.bk_mode, init_std=0.2).to_dict()
        cls = LanguageModel if args.bk_mode == "causal" else BKEncoder
        model = cls(ModelConfig.from_dict(base))
    length = min(args.length, model.config.n_seq)
    certs = [("model", causality_certificate(model, length=length, batch=args.batch,
                                             n_cuts=args.cuts, seed=args.seed))]
    if not args.no_control and model.config.bk_mode == "causal":
        torch.manual_seed(args.seed)
        control = BKEncoder(ModelConfig.from_dict({**base, "bk_mode": "two_sided"}))
        certs.append(("negative control (two-sided G_ii)",
                      causality_certificate(control, length=length, batch=args.batch,
                                            n_cuts=args.cuts, seed=args.seed)))
    for label, cert in certs:
        _print(cert, label)
    if args.json:
        data = [c.to_dict() for _, c in certs]
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(data[0] if len(data) == 1 else data, fh, indent=1)
    return 0 if all(c.expected for _, c in certs) else 1
