"""What the two language models share: input checks, sampling and the checkpoint format.

:class:`bkmodel.model.LanguageModel` (ResNet-BK) and :class:`bkmodel.baseline.TransformerBaseline`
differ only in the sequence-mixing layer; everything around it that the user sees (the
errors for bad token ids or bad generation arguments, how the next token is drawn, the files
written by ``save_pretrained``) is defined once here, so the two behave alike.

Checkpoint directory (``save_pretrained``)::

    model.safetensors   the state dict; a tensor stored under several names (tied
                        embeddings) is written once, under its first name
    config.json         {"model_type": ..., "class": ..., "format_version": 1,
                         "weights_sha256": <SHA-256 of model.safetensors>, "config": {...}}

Both files are written atomically (:func:`bkmath.io.atomic_write`), ``config.json`` last, so a
torn or mismatched pair is detected by the checksum when it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from bkmath.io import atomic_write

__all__ = ["CONFIG_NAME", "FORMAT_VERSION", "WEIGHTS_NAME", "check_generate_args", "check_ids",
           "load_pretrained", "sample", "save_pretrained"]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_VERSION = 1

_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8)


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------
def check_ids(ids: Any, vocab_size: int, max_len: int | None = None, name: str = "input_ids",
              *, allow_ignore: bool = False, max_len_field: str = "n_seq") -> None:
    """Raise a clear ``TypeError``/``ValueError`` unless ``ids`` is a (B, T) batch of token ids.

    ``ids`` must be an integer tensor of shape (B, T), B, T >= 1, with ``T <= max_len`` (no
    bound when ``max_len`` is None; ``max_len_field`` names the config field in the message),
    and every id in ``[0, vocab_size)``, or ``-100`` (ignored) with ``allow_ignore``.

    While a CUDA graph is being captured the values are not read (a host read is illegal
    there): the trainer checks the batch on the host before copying it into the graph's input.
    The value check costs one host synchronisation. While ``torch.compile`` traces
    (:func:`torch.compiler.is_compiling`) the host read would break the graph, so the range
    check becomes an assertion inside the graph (``torch._assert_async``): a bad id then raises
    a ``RuntimeError`` carrying the same message when the compiled graph runs, without naming
    the offending id; the shape checks stay Python errors at trace time.
    """
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(ids).__name__}")
    if ids.dtype not in _INT_DTYPES:
        raise TypeError(f"{name} must be an integer tensor (torch.long), got {ids.dtype}")
    if ids.ndim != 2:
        raise ValueError(f"{name} must have shape (B, T), got {tuple(ids.shape)}")
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(ids.shape)}")
    if max_len is not None and ids.shape[1] > max_len:
        raise ValueError(f"{name} has length T={ids.shape[1]} > {max_len_field}={max_len} "
                         f"(config.{max_len_field})")
    if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
        return  # values cannot be read inside a CUDA graph (the trainer checks on the host)
    valid = (ids >= 0) & (ids < vocab_size)
    if allow_ignore:
        valid |= ids == -100
    if torch.compiler.is_compiling():  # traced: an in-graph assertion, no host read
        torch._assert_async(valid.all(), f"{name} must lie in [0, vocab_size={vocab_size})"
                            + (" or be -100 (ignored)" if allow_ignore else ""))
        return
    if not bool(valid.all()):
        bad = ids[~valid][0].item()
        raise ValueError(f"{name} must lie in [0, vocab_size={vocab_size})"
                         + (" or be -100 (ignored)" if allow_ignore else "")
                         + f", got id {bad}")


def check_reset(reset: Any, input_ids: torch.Tensor) -> None:
    """``ValueError`` unless ``reset`` (the document-start mask of a forward: True at a
    document's first token) is a bool tensor shaped like ``input_ids`` and on its device.
    Shared by ResNet-BK's and the Transformer baseline's forward, so both say the same."""
    if not isinstance(reset, torch.Tensor) or reset.dtype != torch.bool:
        raise ValueError(f"reset must be a bool tensor (True at a document's first "
                         f"token), got {getattr(reset, 'dtype', type(reset).__name__)}")
    if reset.shape != input_ids.shape:
        raise ValueError(f"reset must have the shape of input_ids "
                         f"{tuple(input_ids.shape)}, got {tuple(reset.shape)}")
    if reset.device != input_ids.device:
        raise ValueError(f"reset must be on the device of input_ids ({input_ids.device}), "
                         f"got {reset.device}")


# --------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------
def check_generate_args(max_new_tokens: Any, temperature: Any, top_k: Any) -> None:
    """``ValueError`` naming the argument unless ``max_new_tokens`` is an int >= 0,
    ``temperature`` a finite number >= 0 and ``top_k`` None or an int >= 1 (bools refused)."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
            and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                              or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")


def sample(logits: torch.Tensor, temperature: float, top_k: int | None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Next token ids (B, 1) from the last position's logits (B, V).

    Only the ``top_k`` largest logits are kept (all when None); ``temperature = 0`` takes the
    argmax (greedy, first index on ties), otherwise one draw from ``softmax(logits / T)``.
    Computed in float32 whatever the logits' dtype (the softmax in float64).
    """
    logits = logits.float()  # (B, V)
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    # shifted to max 0 and divided in float64: a tiny temperature (1e-300) sends the other
    # logits to -inf, never the largest one to 0/0 = NaN (float32 would round T to 0)
    shifted = (logits - logits.amax(dim=-1, keepdim=True)).double()
    probs = F.softmax(shifted / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------
def _aliases(model: nn.Module) -> dict[str, str]:
    """``{name: first name}`` for every state-dict entry that is a tensor already listed
    under an earlier name (tied weights, e.g. ``lm_head.weight`` -> ``wte.weight``)."""
    first: dict[int, str] = {}
    out: dict[str, str] = {}
    for k, t in model.state_dict(keep_vars=True).items():
        if id(t) in first:
            out[k] = first[id(t)]
        else:
            first[id(t)] = k
    return out


def save_pretrained(model: nn.Module, directory: str | os.PathLike, *, model_type: str) -> Path:
    """Write ``model.safetensors`` and ``config.json`` for ``model`` into ``directory``.

    ``config.json`` holds ``model_type``, the class name, :data:`FORMAT_VERSION`, the SHA-256
    of the weights file and ``model.config.to_dict()``. Each file is written to a temporary
    name, fsynced, then renamed, the weights first. Tied weights are stored once.
    """
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tied = _aliases(model)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
             if k not in tied}
    blob = save(state, metadata={"format": "pt", "model": type(model).__name__})
    digest = hashlib.sha256(blob).hexdigest()
    atomic_write(directory / WEIGHTS_NAME, blob)
    meta = {"model_type": model_type, "class": type(model).__name__,
            "format_version": FORMAT_VERSION, "weights_sha256": digest,
            "config": model.config.to_dict()}
    atomic_write(directory / CONFIG_NAME, json.dumps(meta, indent=1))
    return directory


def load_pretrained(cls: Callable[[Any], nn.Module], directory: str | os.PathLike,
                    config_cls: Any, *, model_type: str, map_location: str = "cpu",
                    legacy_config: Callable[[dict], Any] | None = None) -> nn.Module:
    """``cls(config)`` with the weights of a directory written by :func:`save_pretrained`.

    ``config_cls.from_dict`` rebuilds the config. ``legacy_config``, when given, reads a
    ``config.json`` of ``model_type`` that has neither ``config`` nor ``format_version`` (an
    older layout without a checksum, which is then not verified) and returns its config.

    Raises
    ------
    FileNotFoundError
        If the directory or one of its two files is missing.
    ValueError
        If ``config.json`` is not JSON or not a ``model_type`` config, has another
        ``format_version``, the weights fail their SHA-256 or are not safetensors, hold a
        NaN/inf, or their names or shapes do not match the model the config describes.
    TypeError
        If ``directory`` is not a path, or the config has a field of the wrong type.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory must be a str or os.PathLike, got {type(directory).__name__}")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {directory}")
    cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint file missing: {p}")
    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{cfg_path} is not valid JSON: {exc}") from None
    not_ours = ValueError(f"{cfg_path} is not a {model_type} config (model_type/config missing)")
    if not isinstance(meta, dict) or meta.get("model_type") != model_type:
        raise not_ours
    if legacy_config is not None and "config" not in meta and "format_version" not in meta:
        config = legacy_config(meta)  # no checksum to verify in that layout
    else:
        if "config" not in meta:
            raise not_ours
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{cfg_path}: unsupported format_version "
                             f"{meta.get('format_version')!r} (expected {FORMAT_VERSION})")
        config = config_cls.from_dict(meta["config"])
        if hashlib.sha256(w_path.read_bytes()).hexdigest() != meta.get("weights_sha256"):
            raise ValueError(f"{w_path} is corrupt or does not belong to {cfg_path} "
                             "(SHA-256 mismatch)")
    try:
        state = load_file(str(w_path), device=map_location)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{w_path} could not be read as safetensors: {exc}") from None
    try:
        model = cls(config)
    except (RuntimeError, MemoryError) as exc:  # e.g. a config.json asking for d_model=10**12
        raise ValueError(f"{cfg_path}: the model it describes cannot be built "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    expected = model.state_dict()
    wrong = [f"{k}: file {tuple(t.shape)} vs config {tuple(expected[k].shape)}"
             for k, t in state.items() if k in expected and t.shape != expected[k].shape]
    if wrong:
        raise ValueError(f"{w_path} does not match the config (shape mismatch): "
                         + "; ".join(wrong[:5]))
    nonfinite = [k for k, t in state.items()
                 if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if nonfinite:
        raise ValueError(f"{w_path} holds non-finite (NaN/inf) weights: "
                         + ", ".join(nonfinite[:5]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = _aliases(model)  # a tied name is restored with the tensor it shares
    missing = [k for k in missing if not (k in tied and tied[k] in state)]
    if missing or unexpected:
        raise ValueError(f"{w_path} does not match the config: missing {missing}, "
                         f"unexpected {unexpected}")
    return model
