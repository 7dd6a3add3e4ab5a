"""Training checkpoints: the file format, the atomic verified write, and loading a run.

File format (``checkpoint.pt``)::

    b"RESNETBK-CKPT/1\\n" + sha256(payload).hexdigest() + b"\\n" + payload

where ``payload`` is a ``torch.save`` of a plain dict (loaded with ``weights_only=True``):
``model`` and ``optimizer`` state dicts, ``step``, ``skip``, ``tokens``, the loss windows,
``counters``, ``guard_totals``, ``rng``, ``train_config`` (:meth:`TrainConfig.to_dict`),
``model_spec`` (:func:`model_spec`: architecture and its config, enough to rebuild the model
without the training configuration), ``tokenizer`` (its JSON document) and ``n_params``.

A write goes to a temporary file, is fsynced, read back and verified, then renamed over the
old file, which is kept as ``checkpoint.prev.pt``; so a torn or altered file is detected by
its SHA-256 and :func:`load_checkpoint` falls back to the previous good one.

Fault injection (tests only): ``BK_FAULT_KILL_IN_CKPT_WRITE=n`` sends SIGKILL to the process
half-way through writing its ``n``-th checkpoint (a torn temporary file is left behind).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from bkmath.io import atomic_write
from bkmodel.baseline import TransformerBaseline, TransformerConfig
from bkmodel.config import ModelConfig
from bkmodel.model import LanguageModel
from bkmodel.tokenizer import Tokenizer, load_tokenizer

__all__ = [
    "CKPT_NAME",
    "CKPT_PREV",
    "CheckpointError",
    "load_checkpoint",
    "load_run",
    "model_from_spec",
    "model_spec",
    "write_checkpoint",
]

CKPT_MAGIC = b"RESNETBK-CKPT/1\n"
CKPT_NAME = "checkpoint.pt"
CKPT_PREV = "checkpoint.prev.pt"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt or incompatible (the message names it)."""


# ---------------------------------------------------------------------------------------------
# the model inside a checkpoint
# ---------------------------------------------------------------------------------------------


def model_spec(model: nn.Module) -> dict[str, Any]:
    """``{"kind": "bk" | "transformer", "config": <the model's config as a dict>}``."""
    kind = "transformer" if type(model).__name__ == "TransformerBaseline" else "bk"
    kind = getattr(model, "arch_kind", kind)  # "peer": bkmodel.peers.FlaPeerLM
    conf = model.config
    conf_d = dataclasses.asdict(conf) if dataclasses.is_dataclass(conf) else dict(vars(conf))
    return {"kind": kind, "config": conf_d}


def model_from_spec(spec: dict[str, Any]) -> nn.Module:
    """A freshly initialised model of the architecture and config :func:`model_spec` gave."""
    if spec["kind"] == "transformer":
        return TransformerBaseline(TransformerConfig.from_dict(spec["config"]))
    if spec["kind"] == "peer":
        from bkmodel.peers import FlaPeerLM, PeerConfig
        return FlaPeerLM(PeerConfig.from_dict(spec["config"]))
    return LanguageModel(ModelConfig.from_dict(spec["config"]))


# ---------------------------------------------------------------------------------------------
# the file
# ---------------------------------------------------------------------------------------------

_CKPT_WRITES = 0  # checkpoints written by this process (for the fault injection)


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic, verified write: temp file + fsync + rename; the old file becomes ``.prev``.

    Raises
    ------
    CheckpointError
        If the file read back from the disk fails its check (the old file is untouched).
    """
    global _CKPT_WRITES
    _CKPT_WRITES += 1
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    blob = CKPT_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    kill_at = os.environ.get("BK_FAULT_KILL_IN_CKPT_WRITE")
    if kill_at is not None and int(kill_at) == _CKPT_WRITES:  # fault injection: a torn temp
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(blob[: len(blob) // 2])
            fh.flush()
            os.fsync(fh.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    # verify what reached the disk before it replaces anything
    atomic_write(path, blob, keep_previous=CKPT_PREV, verify=_read_checkpoint_file)


def _read_checkpoint_file(path: Path) -> dict[str, Any]:
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint missing: {path}") from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint unreadable: {path}: {exc}") from exc
    head = len(CKPT_MAGIC) + 65
    if not blob.startswith(CKPT_MAGIC) or len(blob) < head:
        raise CheckpointError(f"checkpoint corrupt: {path} is not a ResNet-BK checkpoint "
                              f"(bad header, {len(blob)} bytes)")
    digest, payload = blob[len(CKPT_MAGIC): head - 1].decode("ascii", "replace"), blob[head:]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"checkpoint corrupt: {path} fails its SHA-256 check "
                              f"(truncated or altered; {len(blob)} bytes)")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is corruption
        raise CheckpointError(f"checkpoint corrupt: {path}: {exc}") from exc
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint corrupt: {path} has no model state")
    return state


def load_checkpoint(path: Path | str, *, fallback: bool = True) -> tuple[dict[str, Any], Path]:
    """The newest good checkpoint at ``path`` (a run directory or a checkpoint file).

    With ``fallback``, a missing or corrupt ``checkpoint.pt`` falls back to
    ``checkpoint.prev.pt`` (with a warning on stderr). Returns ``(state, file used)``.

    Raises
    ------
    CheckpointError
        If no usable checkpoint exists; the message names every file tried and why.
    """
    path = Path(path)
    if path.is_dir():
        candidates = [path / CKPT_NAME] + ([path / CKPT_PREV] if fallback else [])
    elif path.exists() or not fallback:
        candidates = [path]
    else:
        candidates = [path, path.with_name(CKPT_PREV)]
    errors = []
    for cand in candidates:
        try:
            state = _read_checkpoint_file(cand)
        except CheckpointError as exc:
            errors.append(str(exc))
            continue
        if errors:
            print(f"warning: {errors[-1]}; using {cand}", file=sys.stderr)
        return state, cand
    if not path.exists():
        raise CheckpointError(f"checkpoint missing: {path} does not exist")
    raise CheckpointError("no usable checkpoint: " + "; ".join(errors))


def load_run(path: Path | str, device: str = "cpu") -> tuple[nn.Module, Tokenizer, dict]:
    """Model (eval mode), tokenizer and checkpoint state of a run directory or checkpoint.

    The tokenizer is the run directory's ``tokenizer.json`` when there is one, else the copy
    embedded in the checkpoint (so a checkpoint file alone is enough). A ``bk quantize``
    output (its ``quantized.json`` marker) is read by :func:`bkmodel.quantize.load_quantized`.
    """
    if (Path(path) / "quantized.json").is_file():
        from bkmodel.quantize import load_quantized

        return load_quantized(path, device=device)
    state, _ = load_checkpoint(path)
    model = model_from_spec(state["model_spec"])
    model.load_state_dict(state["model"])
    model.to(device).eval()
    tok_path = Path(path) / "tokenizer.json" if Path(path).is_dir() else None
    if tok_path is not None and tok_path.exists():
        tok = load_tokenizer(tok_path)
    else:
        tok = _tokenizer_from_doc(state["tokenizer"])
    return model, tok, state


def _tokenizer_from_doc(doc: str) -> Tokenizer:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "tokenizer.json"
        p.write_text(doc)
        return load_tokenizer(p)
