"""Weight-only post-training quantization (INT8, INT4 group-wise) and INT4 QAT with torchao.

Both architectures are quantized the same way: the weights of their ``nn.Linear`` layers are
replaced by torchao quantized tensors (:func:`torchao.quantization.quantize_`); activations,
and everything that is not a linear weight, stay in float32. Schemes (:class:`QuantScheme`):

* ``bits=8``: ``Int8WeightOnlyConfig`` — symmetric int8, one scale per output row;
* ``bits=4``: ``IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(g))`` —
  symmetric int4 with one scale per ``g`` consecutive input weights (``g`` = 32 or 128).
  torchao's ``Int4WeightOnlyConfig`` has no CPU route in torchao 0.18 (``plain`` needs the
  ``mslk`` kernels, ``plain_int32`` is XPU/NPU only, ``tile_packed_to_4d`` is the CUDA
  tinygemm layout); the ``Intx`` config is torchao's CPU path. It keeps the int4 values
  unpacked, one per int8, in memory and dequantizes in the matmul; :func:`save_quantized`
  packs two int4 values per byte on disk, so the file is a real 4-bit file.

What stays in higher precision, and why (:func:`plan`; ``tests/bkmodel/test_quantize.py``
checks it):

* the BK recurrence: the scan ``g_i = 1/(v_i - lam - i eta_i - b_i^2 g_{i-1})``, its state
  ``g`` and the features run in float32 (float64 where the guards recompute) — they are
  activations, and weight-only quantization never touches them;
* the chain parameters ``lam``, ``eta_raw``, ``hop_raw`` (classic: ``lam``, ``eta_raw``,
  ``hop``): vectors of C numbers (< 0.1 % of the weights, nothing to gain) that set every
  chain's energy, absorption and memory length ``b/eta``; a rounding of ``eta`` near
  ``eta_min`` changes a chain's memory multiplicatively;
* the BK layer's input projection (selective ``in_proj``, which produces ``v``, ``eta`` and
  ``b``; classic ``v_proj``, which produces ``v``): by default. Its outputs enter the
  recurrence through ``b_i^2 g_{i-1}`` and ``1/(…)``, which amplify errors near resonance
  (``|g| ≤ 1/eta`` can be large for long-memory chains). ``QuantScheme(in_proj=True)``
  quantizes it too; ``benchmarks/quantize_compare.py`` measures the perplexity change. The
  Herglotz guarantees do not depend on it: ``eta_i = eta_min + softplus(…) ≥ eta_min`` and
  ``b_i ≥ hop_min`` hold for any weights, quantized or not;
* norms (LayerNorm, RMSNorm), biases, the depthwise convolution, MoE router gates (the
  discrete expert choice), and the token embedding with its tied output head (one tensor;
  quantizing the head would untie it or quantize the embedding as well) — the same rule for
  the Transformer baseline;
* a linear layer whose ``in_features`` has no divisor in [8, group size] (reported). One that
  the group size does not divide but a smaller one does (the matched Transformer's
  ``d_ff = 1768`` for its MLP output: 1768 = 8·13·17) is quantized with the largest such
  divisor (g128 -> 104, g32 -> 26; recorded per layer in ``quantized``), so both models have
  all their linear layers quantized at the same or finer granularity.

QAT (:func:`prepare_qat`, :func:`qat_finetune`, :func:`convert_qat`): torchao's
``QATConfig(base, step="prepare")`` replaces the same linear layers by fake-quantized ones
(int4 rounding in the forward, straight-through gradient), :func:`qat_finetune` runs a short
fine-tune (AdamW from :func:`bkmodel.optim.build_optimizer`, the learning-rate rule
:func:`bkmodel.optim.lr_at`, windows from :class:`bkmodel.data.ChunkSampler`; the same for
both architectures), then ``QATConfig(base, step="convert")`` gives the same quantized tensors
as PTQ. It is a loop of its own, not :func:`bkmodel.train.train`: that one builds a fresh
model and has no hook to start from a trained checkpoint or to transform the model.

File format of a quantized run directory (``bk quantize --out QRUN``): ``quantized.pt``
(``RESNETBK-QUANT/1`` + SHA-256 + a ``torch.save`` of plain tensors and dicts, loaded with
``weights_only=True``), ``tokenizer.json``, and ``quantized.json`` (the marker, written last;
scheme, kept/quantized layers, the weights' SHA-256). :func:`load_quantized` rebuilds the
model, applies the same torchao config and fills in the stored integer weights and scales;
:func:`bkmodel.checkpoint.load_run` (so ``bk eval``) defers to it when the marker exists.

This module does not import :mod:`bkmodel.checkpoint` (which imports it lazily); ``bk
quantize`` itself is :mod:`bkmodel.quantize_cli`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from bkmath.io import atomic_write
from bkmodel.baseline import TransformerBaseline, TransformerConfig
from bkmodel.config import ModelConfig
from bkmodel.data import ChunkSampler, batch_from_stream
from bkmodel.model import BKLayer, LanguageModel, SelectiveBKLayer
from bkmodel.moe import MoE
from bkmodel.optim import build_optimizer, lr_at
from bkmodel.presets import TrainConfig
from bkmodel.tokenizer import Tokenizer, load_tokenizer

__all__ = [
    "BITS",
    "GROUP_SIZES",
    "QUANT_MARKER",
    "QUANT_WEIGHTS",
    "QuantScheme",
    "QuantizeError",
    "convert_qat",
    "is_quantized_run",
    "load_quantized",
    "plan",
    "prepare_qat",
    "qat_finetune",
    "quantize_model",
    "require_torchao",
    "save_quantized",
]

BITS = (8, 4)
GROUP_SIZES = (32, 128)
QUANT_MARKER = "quantized.json"
QUANT_WEIGHTS = "quantized.pt"
FORMAT = "resnet-bk-quantized/1"
_MAGIC = b"RESNETBK-QUANT/1\n"


class QuantizeError(ValueError):
    """A bad quantization argument, or a quantized run that cannot be read (named)."""


def require_torchao():
    """Import torchao (quietly: its optional GPU kernels log load failures on CPU)."""
    quiet = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        import torchao  # noqa: F401
        import torchao.quantization as tq
    except ImportError as exc:
        raise ImportError("quantization needs torchao: pip install 'resnet-bk[quant]' "
                          f"(torchao>=0.10) ({exc})") from exc
    finally:
        for lg, lv in zip(quiet, levels, strict=True):
            lg.setLevel(lv)
    return tq


# ---------------------------------------------------------------------------------------------
# the scheme and what it touches
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class QuantScheme:
    """Weight-only quantization of the linear layers.

    ``bits`` 8 (per output row) or 4 (group-wise, ``group_size`` 32 or 128, default 128);
    ``in_proj`` also quantizes the BK layer's input projection (off by default, see the
    module docstring). Bad values raise :class:`QuantizeError`.
    """

    bits: int
    group_size: int | None = None
    in_proj: bool = False

    def __post_init__(self) -> None:
        if self.bits not in BITS:
            raise QuantizeError(f"bits must be 8 or 4, got {self.bits!r}")
        if self.bits == 8 and self.group_size is not None:
            raise QuantizeError("--group-size applies to --bits 4 (int8 uses one scale per "
                                f"output row), got group_size={self.group_size}")
        if self.bits == 4:
            g = 128 if self.group_size is None else self.group_size
            if g not in GROUP_SIZES:
                raise QuantizeError(f"group_size must be 32 or 128, got {self.group_size!r}")
            object.__setattr__(self, "group_size", g)

    @property
    def label(self) -> str:
        s = "int8" if self.bits == 8 else f"int4-g{self.group_size}"
        return s + ("+in_proj" if self.in_proj else "")

    def torchao_config(self, group_size: int | None = None):
        """The torchao PTQ config of this scheme (also the QAT base config); int4 with
        ``group_size`` instead of the scheme's when given (a layer :func:`plan` adapts)."""
        tq = require_torchao()
        if self.bits == 8:
            return tq.Int8WeightOnlyConfig(set_inductor_config=False)
        return tq.IntxWeightOnlyConfig(weight_dtype=torch.int4,
                                       granularity=tq.PerGroup(group_size or self.group_size))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _recurrence_input(model: nn.Module, fqn: str) -> bool:
    """Is ``fqn`` the linear map that produces a BK layer's v (and eta, b)?"""
    parent_name, _, leaf = fqn.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return (isinstance(parent, SelectiveBKLayer) and leaf == "in_proj") or \
        (isinstance(parent, BKLayer) and leaf == "v_proj")


def _group_for(in_features: int, g: int) -> int | None:
    """``g`` if it divides ``in_features``, else the largest divisor in [8, g] (or None)."""
    return next((k for k in range(g, 7, -1) if in_features % k == 0), None)


def plan(model: nn.Module, scheme: QuantScheme) -> tuple[dict[str, int | None], dict[str, str]]:
    """``({linear layer to quantize: its int4 group size (None for int8)}, {linear layer
    kept in float: why})`` of ``model``.

    A layer whose ``in_features`` the group size does not divide (the matched Transformer's
    ``d_ff = 1768``) gets the largest divisor of ``in_features`` below the group size (finer
    groups: at least as precise), never a silent fp32 fallback.
    """
    tied = {id(p) for name, m in model.named_modules() if isinstance(m, nn.Embedding)
            for p in m.parameters()}
    quantized: dict[str, int | None] = {}
    kept: dict[str, str] = {}
    for fqn, m in model.named_modules():
        if not isinstance(m, nn.Linear):
            continue
        parent_name = fqn.rpartition(".")[0]
        parent = model.get_submodule(parent_name) if parent_name else model
        g = _group_for(m.in_features, scheme.group_size) if scheme.bits == 4 else None
        if id(m.weight) in tied:
            kept[fqn] = "tied to the token embedding (embedding and head stay float32)"
        elif isinstance(parent, MoE) and fqn.endswith(".gate"):
            kept[fqn] = "MoE router gate (discrete expert choice)"
        elif _recurrence_input(model, fqn) and not scheme.in_proj:
            kept[fqn] = "BK input projection: produces the recurrence's v, eta, b"
        elif scheme.bits == 4 and g is None:
            kept[fqn] = f"in_features {m.in_features} has no divisor in [8, {scheme.group_size}]"
        else:
            quantized[fqn] = g
    return quantized, kept


def _by_group(quantized: dict[str, int | None]) -> dict[int | None, Callable]:
    """``{group size: filter_fn selecting the layers of that group size}``."""
    groups: dict[int | None, frozenset[str]] = {}
    for g in set(quantized.values()):
        groups[g] = frozenset(f for f, gf in quantized.items() if gf == g)
    return {g: (lambda m, fqn, names=names: fqn in names) for g, names in groups.items()}


@torch.no_grad()
def quantize_model(model: nn.Module, scheme: QuantScheme,
                   quantized: dict[str, int | None] | None = None) -> dict[str, Any]:
    """Quantize ``model``'s linear weights in place (PTQ); returns the plan as a dict
    ``{"scheme", "quantized", "kept"}``. ``quantized`` (default :func:`plan`'s) names the
    layers and their group sizes."""
    tq = require_torchao()
    kept: dict[str, str] = {}
    if quantized is None:
        quantized, kept = plan(model, scheme)
    model.eval()
    for g, keep in _by_group(quantized).items():
        tq.quantize_(model, scheme.torchao_config(g), filter_fn=keep)
    return {"scheme": scheme.to_dict(), "quantized": dict(quantized), "kept": kept}


def prepare_qat(model: nn.Module, scheme: QuantScheme) -> dict[str, Any]:
    """Swap the linear layers :func:`plan` picks for torchao fake-quantized ones (in place);
    returns the plan (pass it to :func:`convert_qat`)."""
    tq = require_torchao()
    from torchao.quantization.qat import QATConfig

    quantized, kept = plan(model, scheme)
    for g, keep in _by_group(quantized).items():
        tq.quantize_(model, QATConfig(scheme.torchao_config(g), step="prepare"),
                     filter_fn=keep)
    return {"scheme": scheme.to_dict(), "quantized": quantized, "kept": kept}


@torch.no_grad()
def convert_qat(model: nn.Module, report: dict[str, Any]) -> None:
    """The fake-quantized layers of :func:`prepare_qat` (its ``report``) become real
    quantized weights, the same tensors as PTQ's."""
    tq = require_torchao()
    from torchao.quantization.qat import QATConfig

    scheme = QuantScheme(**report["scheme"])
    model.eval()
    for g, keep in _by_group(report["quantized"]).items():
        tq.quantize_(model, QATConfig(scheme.torchao_config(g), step="convert"),
                     filter_fn=keep)


def qat_finetune(
    model: nn.Module,
    train_config: dict[str, Any],
    tokens: np.ndarray,
    *,
    steps: int,
    lr: float,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[float]:
    """Fine-tune ``model`` (fake-quantized or not) for ``steps`` AdamW steps; the losses.

    The run's training configuration with ``max_steps=steps``, peak ``lr``, warm-up
    ``steps // 10`` and the cosine decay of :func:`bkmodel.optim.lr_at`; batches of the run's
    ``batch_size`` windows of ``seq_len`` tokens drawn by a :class:`ChunkSampler` seeded with
    ``seed``; gradient clipping at the run's ``grad_clip``. A step with a non-finite loss, or
    one the BK guards mark ``skip_step``, is not applied.
    """
    if steps < 1:
        raise QuantizeError(f"QAT steps must be >= 1, got {steps}")
    cfg = TrainConfig.from_dict({**TrainConfig.migrate(train_config), "max_steps": steps,
                                 "lr": lr, "warmup_steps": max(1, steps // 10)})
    torch.manual_seed(seed)
    sampler = ChunkSampler(len(tokens), cfg.seq_len, seed)
    opt = build_optimizer(model, cfg)
    model.train()
    losses = []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        rows = torch.from_numpy(batch_from_stream(
            tokens, sampler.starts(step * cfg.batch_size, cfg.batch_size), cfg.seq_len))
        _, loss = model(rows[:, :-1], rows[:, 1:])
        aux = getattr(model, "last_aux", None) or {}
        if not torch.isfinite(loss) or aux.get("skip_step", False):
            opt.zero_grad(set_to_none=True)
            continue
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
        if log is not None and (step + 1) % max(1, steps // 5) == 0:
            log(f"qat step {step + 1}/{steps}: loss {losses[-1]:.4f}")
    model.eval()
    return losses


# ---------------------------------------------------------------------------------------------
# the quantized run directory
# ---------------------------------------------------------------------------------------------


def _inner(w: torch.Tensor) -> tuple[list[str], dict[str, Any]]:
    names, ctx = w.__tensor_flatten__()
    return list(names), ctx


def _pack4(q: torch.Tensor) -> torch.Tensor:
    """int8 values in [-8, 7] (even count) -> two per uint8 byte, low nibble first."""
    u = (q.reshape(-1).to(torch.int16) + 8).to(torch.uint8)
    return u[0::2] | (u[1::2] << 4)


def _unpack4(p: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    lo = (p & 0x0F).to(torch.int16) - 8
    hi = (p >> 4).to(torch.int16) - 8
    return torch.stack([lo, hi], dim=1).reshape(shape).to(torch.int8)


def _frame(payload: bytes) -> bytes:
    return _MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def _read_weights(path: Path) -> tuple[dict[str, Any], str]:
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise QuantizeError(f"quantized run unreadable: {path}: {exc}") from exc
    head = len(_MAGIC) + 65
    if not blob.startswith(_MAGIC) or len(blob) < head:
        raise QuantizeError(f"quantized weights corrupt: {path} (bad header)")
    digest, payload = blob[len(_MAGIC): head - 1].decode("ascii", "replace"), blob[head:]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise QuantizeError(f"quantized weights corrupt: {path} fails its SHA-256 check")
    state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    return state, digest


def save_quantized(model: nn.Module, out: Path | str, *, report: dict[str, Any],
                   source: dict[str, Any], tokenizer_doc: str) -> Path:
    """Write the quantized ``model`` as a run directory ``out`` (atomic, checksummed).

    ``report`` is :func:`quantize_model`'s (plus anything to record, e.g. QAT settings);
    ``source`` holds the fp32 run's ``model_spec``, ``train_config`` and ``step``. Quantized
    weights are stored as their integer data and scales (4-bit values two per byte), the
    rest of the state dict as float tensors. Returns the weights file.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bits = report["scheme"]["bits"]
    qstate: dict[str, dict[str, Any]] = {}
    for fqn in report["quantized"]:
        w = model.get_submodule(fqn).weight
        names, _ = _inner(w)
        entry: dict[str, Any] = {}
        for n in names:
            t = getattr(w, n).detach().cpu()
            if n == "qdata" and bits == 4 and t.numel() % 2 == 0:
                entry["qdata_packed4"] = _pack4(t)
                entry["qdata_shape"] = list(t.shape)
            else:
                entry[n] = t.clone()
        qstate[fqn] = entry
    skip = {f"{fqn}.weight" for fqn in report["quantized"]}
    fstate, copies = {}, {}
    for k, v in model.state_dict().items():  # tied tensors (embedding = head) stored once
        if k not in skip:
            key = (v.data_ptr(), v.dtype, tuple(v.shape), v.stride())
            fstate[k] = copies.setdefault(key, v.detach().cpu().clone())
    state = {"format": FORMAT, "model_spec": source["model_spec"],
             "train_config": source["train_config"], "step": source["step"],
             "quant": json.loads(json.dumps(report)), "quantized_state": qstate,
             "float_state": fstate}
    buf = io.BytesIO()
    torch.save(state, buf)
    blob = _frame(buf.getvalue())
    weights = out / QUANT_WEIGHTS
    atomic_write(weights, blob, verify=_read_weights)
    atomic_write(out / "tokenizer.json", tokenizer_doc)
    marker = {"format": FORMAT, "weights": QUANT_WEIGHTS,
              "sha256": hashlib.sha256(blob[len(_MAGIC) + 65:]).hexdigest(),
              "bytes": len(blob), **{k: v for k, v in report.items()}}
    atomic_write(out / QUANT_MARKER, json.dumps(marker, indent=2) + "\n")  # written last
    return weights


def is_quantized_run(path: Path | str) -> bool:
    """Does ``path`` hold a ``bk quantize`` output (its marker file)?"""
    return (Path(path) / QUANT_MARKER).is_file()


def _model_from_spec(spec: dict[str, Any]) -> nn.Module:
    # the rule of bkmodel.checkpoint.model_from_spec (not imported: checkpoint imports us)
    if spec["kind"] == "transformer":
        return TransformerBaseline(TransformerConfig.from_dict(spec["config"]))
    return LanguageModel(ModelConfig.from_dict(spec["config"]))


@torch.no_grad()
def load_quantized(path: Path | str, device: str = "cpu"
                   ) -> tuple[nn.Module, Tokenizer, dict[str, Any]]:
    """Model (eval mode), tokenizer and state of a quantized run directory.

    ``state`` has the keys :func:`bkmodel.evaluate.evaluate_checkpoint` reads
    (``model_spec``, ``train_config``, ``step``) and ``quant`` (the scheme and the layer
    lists). Raises :class:`QuantizeError` for a missing, torn or mismatched directory.
    """
    path = Path(path)
    try:
        marker = json.loads((path / QUANT_MARKER).read_text())
    except (OSError, ValueError) as exc:
        raise QuantizeError(f"not a quantized run: {path / QUANT_MARKER}: {exc}") from exc
    if marker.get("format") != FORMAT:
        raise QuantizeError(f"{path}: unknown quantized format {marker.get('format')!r}")
    state, digest = _read_weights(path / marker["weights"])
    if digest != marker["sha256"]:
        raise QuantizeError(f"{path}: {QUANT_MARKER} does not match {marker['weights']} "
                            "(a torn or mixed write); re-run bk quantize")
    quant = state["quant"]
    scheme = QuantScheme(**quant["scheme"])
    model = _model_from_spec(state["model_spec"])
    quantize_model(model, scheme, quantized=dict(quant["quantized"]))
    missing, unexpected = model.load_state_dict(state["float_state"], strict=False)
    expected = {f"{fqn}.weight" for fqn in quant["quantized"]}
    if set(missing) != expected or unexpected:
        raise QuantizeError(f"{path}: state does not fit the model (missing "
                            f"{sorted(set(missing) - expected)}, unexpected {unexpected})")
    for fqn, entry in state["quantized_state"].items():
        w = model.get_submodule(fqn).weight
        for n in _inner(w)[0]:
            dst = getattr(w, n)
            src = (_unpack4(entry["qdata_packed4"], torch.Size(entry["qdata_shape"]))
                   if n == "qdata" and "qdata_packed4" in entry else entry[n])
            if src.shape != dst.shape or src.dtype != dst.dtype:
                raise QuantizeError(f"{path}: {fqn}.{n} is {src.dtype}{tuple(src.shape)}, "
                                    f"the model wants {dst.dtype}{tuple(dst.shape)}")
            dst.copy_(src)
    model.to(device).eval()
    tok = load_tokenizer(path / "tokenizer.json")
    return model, tok, state
