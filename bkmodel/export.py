"""ONNX export of the inference path, checked with onnxruntime; ``bk export RUN --format onnx``.

Optional: ``pip install resnet-bk[export]`` (onnx, onnxscript, onnxruntime). Uses the dynamo
exporter (``torch.onnx.export(..., dynamo=True)``).

What is written
---------------
* **Transformer baseline**: ``forward.onnx``, ``input_ids (B, T) -> logits (B, T, V)`` at the
  example's shape (onnxruntime agrees with eager to ~1e-7). It has no KV cache, so there is no
  decode function to export: a new token is a forward over the context.
* **ResNet-BK** (``layer="classic"``, ``"selective"`` and ``"green"``, with or without
  ``conv_size``):

  - ``forward.onnx``: ``input_ids (B, T) -> logits (B, T, V)`` and the decoding state after
    the prompt (what :meth:`~bkmodel.model.LanguageModel._prefill` carries);
  - ``decode.onnx``: ``token (B,)`` and the state -> ``logits (B, V)`` and the new state (one
    :meth:`~bkmodel.model.LanguageModel._decode_step`).

  Batch B and length T are symbolic: one graph serves every prompt length. ONNX has no
  complex type, so each layer's complex state ``g`` (B, S) is two float64 tensors,
  ``state.{i}.g_re`` and ``state.{i}.g_im`` (the eager state is complex128), plus
  ``state.{i}.conv`` (B, n_in, conv_size - 1) float32 for a selective or green layer with
  ``conv_size > 1``, and for a green layer its complex chain state ``S`` (B, H, dk, dv) as
  ``state.{i}.S_re``, ``state.{i}.S_im`` float64; the outputs carry the same names with
  ``new_state.`` in front.
  :func:`state_names` lists them, :func:`state_to_onnx` / :func:`state_from_onnx` convert
  from and to the eager state, :class:`OnnxBK` runs the pair with onnxruntime.

The scan
--------
Under ``torch.export`` the eager scan is the custom op ``bkmodel::scan_torch``, which has no
ONNX translation, and its chunked or naive Python loops would be unrolled at the example's
length in complex arithmetic. The exported path instead calls
:func:`~bkmodel.ops.bk_scan.export_scan.bk_scan_real`: the same recurrence on (Re g, Im g) in
float64 through torch's ``scan`` higher-order op, which the exporter writes as one ONNX
``Scan`` node (length symbolic; the decode step is a few elementwise ops). Choosing a
decomposition into plain torch ops over an onnxscript translation of the custom op keeps one
source of the maths in torch (tested against ``bk_scan_naive``) and needs no hand-written ONNX.

The green layer
---------------
Its Green's-function attention (``S_i = a_i S_{i-1} + g_i k_i v_i^T``, ``y_i = q_i^T S_i``,
complex ``g``, ``a = -b g``) is written by
:mod:`~bkmodel.ops.green_attn.export_green` in real arithmetic: the prompt in the exact
quadratic (T x T) masked form, O(T^2) per head (fine for an inference graph; training keeps
the O(T) chunked form), one token as the recurrence. Both run in float64 (the prefill's
``arg a`` through float32 ``Atan`` plus one float64 Newton step: onnxruntime has no float64
``Atan``); in float32, onnxruntime's ``CumSum`` of the phases (it accumulates in float32,
torch's CPU cumsum in double) lost up to 7e-5 of ``S`` on a model layer at T = 512. The
layer's output map is the layer's own ``_mix_out`` (given the features [Re y, Im y]).

The exported layers are written here from the layers' own pieces (``potentials``,
``features``, ``_operator``, ``_features``, ``_split``, ``_mix_out``, the convolution's
weights, ``Block._ffn``) for the
two paths that matter for inference (a fresh prompt, one step), because the eager layers
carry complex state; the test compares both graphs with eager outputs. The runtime guards
are not in the graph (they read counters on the host); the MoE runs its dense dispatch (the
same values up to rounding; sparse dispatch reads gather sizes on the host); token ids are
not range-checked (onnxruntime's Gather rejects out-of-range ids).

The token-id value check of the baseline's forward (:func:`bkmodel.lm_base.check_ids`, a
host read) is replaced by a shape-only check for the duration of its export.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from bkmodel import lm_base

__all__ = ["EXPORT_LAYERS", "OnnxBK", "check_onnx", "export_onnx", "export_onnx_decode",
           "export_run", "state_from_onnx", "state_names", "state_to_onnx"]

EXPORT_LAYERS = ("classic", "selective", "green")  # BK layers with an exported inference path
META_NAME = "onnx_export.json"
_F64 = torch.float64


# --------------------------------------------------------------------------------------------
# what can be exported
# --------------------------------------------------------------------------------------------
def _architecture(model: Any) -> str:
    """``"transformer"`` or ``"bk"``; ``ValueError`` naming what cannot be exported."""
    from bkmodel.baseline import TransformerBaseline
    from bkmodel.model import LanguageModel

    if isinstance(model, TransformerBaseline):
        return "transformer"
    if isinstance(model, LanguageModel):
        layer = model.config.layer
        if layer not in EXPORT_LAYERS:
            raise ValueError(f"ONNX export of ResNet-BK supports layer in {EXPORT_LAYERS}, "
                             f"got layer={layer!r}")
        return "bk"
    raise ValueError(f"unknown architecture {type(model).__name__} for ONNX export (ResNet-BK "
                     "LanguageModel or TransformerBaseline)")


def _layer_state_names(cfg: Any, i: int) -> list[str]:
    names = [f"state.{i}.g_re", f"state.{i}.g_im"]
    if cfg.layer == "green":
        names += [f"state.{i}.S_re", f"state.{i}.S_im"]
    if cfg.layer in ("selective", "green") and cfg.conv_size > 1:
        names.append(f"state.{i}.conv")
    return names


def state_names(model: nn.Module) -> list[str]:
    """Names of the exported decoding state of a ResNet-BK model, in signature order:
    ``state.{i}.g_re``, ``state.{i}.g_im`` (float64 (B, S)), for a green layer
    ``state.{i}.S_re``, ``state.{i}.S_im`` (float64 (B, H, dk, dv)) and, for a selective or
    green layer with ``conv_size > 1``, ``state.{i}.conv`` (float32 (B, n_in,
    conv_size - 1)), per layer i."""
    _architecture(model)
    return [n for i in range(model.config.n_layers)
            for n in _layer_state_names(model.config, i)]


def _state_shapes(model: nn.Module, batch: int) -> dict[str, tuple[int, ...]]:
    cfg = model.config
    out: dict[str, tuple[int, ...]] = {}
    for i, block in enumerate(model.blocks):
        bk = block.bk
        S = cfg.n_channels * (cfg.n_energies if cfg.layer == "selective" else 1)
        out[f"state.{i}.g_re"] = out[f"state.{i}.g_im"] = (batch, S)
        if cfg.layer == "green":
            out[f"state.{i}.S_re"] = out[f"state.{i}.S_im"] = (batch, S, bk.dk, bk.dv)
        if f"state.{i}.conv" in _layer_state_names(cfg, i):
            out[f"state.{i}.conv"] = (batch, bk.n_in, cfg.conv_size - 1)
    return out


def state_to_onnx(model: nn.Module, state: Any, batch: int) -> dict[str, np.ndarray]:
    """The eager decoding state (a list of ``n_layers`` layer states, as
    ``forward(..., return_state=True)`` returns) as the exported signature's named arrays.

    Raises ``ValueError`` naming the entry for a state of another model or the wrong shape
    (the layers' own ``check_state``); a layer state of None (a fresh chain) becomes zeros.
    """
    _architecture(model)
    model._check_state(state, torch.zeros(batch, 1, dtype=torch.long))
    shapes = _state_shapes(model, batch)
    out: dict[str, np.ndarray] = {}
    for i, s in enumerate(state):
        g = s["g"] if isinstance(s, Mapping) else s
        tail = s.get("conv") if isinstance(s, Mapping) else None
        if g is None:
            g = torch.zeros(shapes[f"state.{i}.g_re"], dtype=torch.complex128)
        out[f"state.{i}.g_re"] = g.real.to(_F64).numpy(force=True)
        out[f"state.{i}.g_im"] = g.imag.to(_F64).numpy(force=True)
        if f"state.{i}.S_re" in shapes:
            chain = s.get("S") if isinstance(s, Mapping) else None
            if chain is None:
                chain = torch.zeros(shapes[f"state.{i}.S_re"], dtype=torch.complex128)
            out[f"state.{i}.S_re"] = chain.real.to(_F64).numpy(force=True)
            out[f"state.{i}.S_im"] = chain.imag.to(_F64).numpy(force=True)
        if f"state.{i}.conv" in shapes:
            if tail is None:
                tail = torch.zeros(shapes[f"state.{i}.conv"])
            out[f"state.{i}.conv"] = tail.float().numpy(force=True)
    return out


def state_from_onnx(model: nn.Module, arrays: Mapping[str, np.ndarray]) -> list:
    """The eager state (list of layer states) from the named arrays of :func:`state_names`
    (``state.`` or ``new_state.`` prefixed): complex128 ``g``, and for the selective layer
    ``{"g": g, "conv": tail or None}``, for the green layer also ``"S"`` (complex128)."""
    cfg = model.config
    pre = "new_state." if any(k.startswith("new_state.") for k in arrays) else "state."
    out: list = []
    for i in range(cfg.n_layers):
        g = torch.complex(torch.from_numpy(np.asarray(arrays[f"{pre}{i}.g_re"])),
                          torch.from_numpy(np.asarray(arrays[f"{pre}{i}.g_im"])))
        if cfg.layer in ("selective", "green"):
            tail = arrays.get(f"{pre}{i}.conv")
            st = {"g": g, "conv": None if tail is None else torch.from_numpy(np.asarray(tail))}
            if cfg.layer == "green":
                st["S"] = torch.complex(torch.from_numpy(np.asarray(arrays[f"{pre}{i}.S_re"])),
                                        torch.from_numpy(np.asarray(arrays[f"{pre}{i}.S_im"])))
            out.append(st)
        else:
            out.append(g)
    return out


# --------------------------------------------------------------------------------------------
# the exported ResNet-BK paths (real arithmetic)
# --------------------------------------------------------------------------------------------
def _classic_prefill(bk: nn.Module, h: torch.Tensor):
    """BKLayer.forward from a fresh chain, real form: (y, g_re, g_im, [g_T re, im])."""
    from bkmodel.ops.bk_scan.export_scan import bk_scan_real

    v, _, u = bk.potentials(h)  # (B, T, C)
    eta = bk.eta
    out_dt = torch.promote_types(v.dtype, torch.float32)
    g_re, g_im = (t.to(out_dt) for t in bk_scan_real(v, bk.lam, eta, bk.hop))
    y = bk.features(g_re, g_im, eta.to(out_dt))
    y = y if u is None else y + u
    return y, g_re, g_im, [g_re[:, -1].to(_F64), g_im[:, -1].to(_F64)]


def _classic_step(bk: nn.Module, h: torch.Tensor, state: list[torch.Tensor]):
    """BKLayer.step, real form: (y, g_re, g_im (x's dtype), new state)."""
    from bkmodel.ops.bk_scan.export_scan import bk_step_real

    v, _, u = bk.potentials(h)  # (B, C)
    eta = bk.eta
    n_re, n_im = bk_step_real(v, bk.lam, eta, bk.hop, *state)
    g_re, g_im = n_re.to(v.dtype), n_im.to(v.dtype)
    y = bk.features(g_re, g_im, eta.to(v.dtype))
    return (y if u is None else y + u), g_re, g_im, [n_re, n_im]


def _conv_prefill(bk: nn.Module, u: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A selective or green layer's causal convolution of a fresh prompt u (B, T, n_in):
    (x (B, T, n_in), [tail (B, n_in, k - 1)] or [] when ``conv_size <= 1``)."""
    T, k = u.shape[1], bk.config.conv_size
    x = u
    if bk.conv is not None:
        x = bk.conv(u.transpose(1, 2))[..., :T].transpose(1, 2)  # causal (B, T, n_in)
    if k <= 1:
        return x, []
    ut = u.transpose(1, 2)  # (B, n_in, T): the last k - 1 inputs, zeros left of a short prompt
    return x, [torch.cat([ut.new_zeros(ut.shape[0], bk.n_in, k - 1), ut], dim=-1)[..., -(k - 1):]]


def _conv_step(bk: nn.Module, u: torch.Tensor, prev: torch.Tensor | None
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One token u (B, n_in) through the convolution continuing ``prev`` (B, n_in, k - 1):
    (x (B, n_in), [new tail] or [])."""
    k = bk.config.conv_size
    if bk.conv is None:
        return u, []
    if prev is None:
        prev = u.new_zeros(u.shape[0], bk.n_in, 0)
    window = torch.cat([prev.to(u.dtype), u[:, :, None]], dim=-1)  # (B, n_in, k)
    x = (window * bk.conv.weight[:, 0]).sum(-1)
    if bk.conv.bias is not None:
        x = x + bk.conv.bias
    return x, ([window[:, :, 1:]] if k > 1 else [])


def _selective_prefill(bk: nn.Module, h: torch.Tensor):
    """SelectiveBKLayer.forward from a fresh chain (no reset), real form."""
    from bkmodel.ops.bk_scan.export_scan import bk_scan_real

    x, tail = _conv_prefill(bk, bk.in_proj(h))  # (B, T, n_in)
    v, eta, b = bk._operator(x)
    out_dt = torch.promote_types(v.dtype, torch.float32)
    g_re, g_im = (t.to(out_dt) for t in bk_scan_real(v, bk.lam, eta, b))
    y = bk._features(h, g_re, g_im, eta, b)
    return y, g_re, g_im, [g_re[:, -1].to(_F64), g_im[:, -1].to(_F64), *tail]


def _selective_step(bk: nn.Module, h: torch.Tensor, state: list[torch.Tensor]):
    """SelectiveBKLayer.step, real form."""
    from bkmodel.ops.bk_scan.export_scan import bk_step_real

    x, tail = _conv_step(bk, bk.in_proj(h), state[2] if len(state) > 2 else None)
    v, eta, b = bk._operator(x)
    n_re, n_im = bk_step_real(v, bk.lam, eta, b, state[0], state[1])
    g_re, g_im = n_re.to(h.dtype), n_im.to(h.dtype)
    y = bk._features(h, g_re, g_im, eta, b)
    return y, g_re, g_im, [n_re, n_im, *tail]


def _green_prefill(bk: nn.Module, h: torch.Tensor):
    """GreenBKLayer.forward from a fresh chain (no reset), real form: the BK scan and the
    quadratic masked form of the Green's-function attention
    (:func:`~bkmodel.ops.green_attn.export_green.green_prefill_real`) in float64; the layer's
    output map and the g passed on to the feed-forward in float32, as in the eager layer."""
    from bkmodel.ops.bk_scan.export_scan import bk_scan_real
    from bkmodel.ops.green_attn.export_green import green_prefill_real

    x, tail = _conv_prefill(bk, bk.in_proj(h))  # (B, T, n_in)
    op, q, k, v = bk._split(x)
    pot, eta, b = bk._operator(op)
    b = b.expand_as(pot)
    g_re, g_im = bk_scan_real(pot, bk.lam, eta, b)  # (B, T, H) float64
    nb = -b.to(_F64)
    y_re, y_im, s_re, s_im = green_prefill_real(q.to(_F64), k.to(_F64), v.to(_F64), g_re,
                                                g_im, nb * g_re, nb * g_im)
    out = bk._mix_out(h, torch.cat([y_re.to(h.dtype), y_im.to(h.dtype)], dim=-1))
    out_dt = torch.promote_types(pot.dtype, torch.float32)
    state = [g_re[:, -1], g_im[:, -1], s_re, s_im]
    return out, g_re.to(out_dt), g_im.to(out_dt), [*state, *tail]


def _green_step(bk: nn.Module, h: torch.Tensor, state: list[torch.Tensor]):
    """GreenBKLayer.step, real form, float64 like the eager step (g complex128)."""
    from bkmodel.ops.bk_scan.export_scan import bk_step_real
    from bkmodel.ops.green_attn.export_green import green_step_real

    x, tail = _conv_step(bk, bk.in_proj(h), state[4] if len(state) > 4 else None)
    op, q, k, v = bk._split(x)
    pot, eta, b = bk._operator(op)
    b = b.expand_as(pot)
    n_re, n_im = bk_step_real(pot, bk.lam, eta, b, state[0], state[1])  # (B, H) float64
    nb = -b.to(_F64)
    y_re, y_im, s_re, s_im = green_step_real(q, k, v, n_re, n_im, nb * n_re, nb * n_im,
                                             state[2], state[3])
    out = bk._mix_out(h, torch.cat([y_re, y_im], dim=-1))
    return out, n_re.to(h.dtype), n_im.to(h.dtype), [n_re, n_im, s_re, s_im, *tail]


_PREFILL = {"classic": _classic_prefill, "selective": _selective_prefill,
            "green": _green_prefill}
_STEP = {"classic": _classic_step, "selective": _selective_step, "green": _green_step}


class _BKForward(nn.Module):
    """``input_ids -> (logits, *state)`` of a ResNet-BK model, exportable."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.prefill = _PREFILL[model.config.layer]

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        x = m.wte(input_ids.long())  # (B, T, d)
        state: list[torch.Tensor] = []
        for block in m.blocks:
            y, g_re, g_im, s = self.prefill(block.bk, block.ln_1(x))
            x = block._ffn(x + y, g_re, g_im, [])
            state += s
        return (m.lm_head(m.ln_f(x)), *state)  # (B, T, V), state


class _BKDecode(nn.Module):
    """``(token, *state) -> (logits, *new state)``: one decoding step, exportable."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.step = _STEP[model.config.layer]
        self.sizes = [len(_layer_state_names(model.config, i))
                      for i in range(model.config.n_layers)]

    def forward(self, token: torch.Tensor, state: tuple[torch.Tensor, ...]
                ) -> tuple[torch.Tensor, ...]:
        m = self.model
        x = m.wte(token.long())  # (B, d)
        new: list[torch.Tensor] = []
        pos = 0
        for block, n in zip(m.blocks, self.sizes, strict=True):
            y, g_re, g_im, s = self.step(block.bk, block.ln_1(x), list(state[pos: pos + n]))
            pos += n
            x = x + y
            x = block._ffn(x, g_re.to(x.dtype), g_im.to(x.dtype), [])
            new += s
        return (m.lm_head(m.ln_f(x)), *new)  # (B, V), state


class _Logits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids)
        return out[0] if isinstance(out, tuple) else out  # (B, T, V)


@contextlib.contextmanager
def _shape_only_id_check() -> Iterator[None]:
    orig = lm_base.check_ids

    def check(ids, vocab_size, max_len=None, name="input_ids", **kw):
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2:
            raise ValueError(f"{name} must be a (B, T) integer tensor")

    lm_base.check_ids = check
    try:
        yield
    finally:
        lm_base.check_ids = orig


@contextlib.contextmanager
def _dense_moe(model: nn.Module) -> Iterator[None]:
    """Every MoE of ``model`` on its dense dispatch (no host read of gather sizes)."""
    from bkmodel.moe import MoE

    moes = [m for m in model.modules() if isinstance(m, MoE)]
    saved = [m.dispatch for m in moes]
    for m in moes:
        m.dispatch = "dense"
    try:
        yield
    finally:
        for m, d in zip(moes, saved, strict=True):
            m.dispatch = d


def _save(module: nn.Module, args: tuple, path: Path, *, input_names: list[str],
          output_names: list[str], dynamic_shapes: Any = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with torch.no_grad():
        prog = torch.onnx.export(module, args, dynamo=True, verbose=False,
                                 input_names=input_names, output_names=output_names,
                                 dynamic_shapes=dynamic_shapes)
    prog.save(str(path))
    return path


def export_onnx(model: nn.Module, path: str | os.PathLike,
                example_ids: torch.Tensor | None = None) -> Path:
    """Write ``model``'s forward to ``path`` (ONNX, eval mode).

    ResNet-BK: ``input_ids`` (B, T) ``-> logits`` (B, T, V) and the state after the prompt
    (:func:`state_names` with ``new_state.`` in front), B and T symbolic (``example_ids`` is
    not needed). Transformer baseline: ``input_ids -> logits`` at the shape of
    ``example_ids`` (required).

    Raises
    ------
    ValueError
        For an architecture or BK layer that has no exported path (:data:`EXPORT_LAYERS`), or
        a baseline without ``example_ids``.
    """
    arch = _architecture(model)
    model.eval()
    path = Path(path)
    if arch == "transformer":
        if example_ids is None:
            raise ValueError("example_ids (B, T) is needed to export the Transformer baseline "
                             "(its graph has the example's shape)")
        with _shape_only_id_check():
            return _save(_Logits(model), (example_ids,), path, input_names=["input_ids"],
                         output_names=["logits"])
    B, T = torch.export.Dim("batch"), torch.export.Dim("seq")
    ids = torch.zeros(2, 3, dtype=torch.long)  # sizes 0/1 would be specialised
    names = ["new_" + n for n in state_names(model)]
    with _dense_moe(model):
        return _save(_BKForward(model), (ids,), path, input_names=["input_ids"],
                     output_names=["logits", *names], dynamic_shapes=({0: B, 1: T},))


def export_onnx_decode(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write a ResNet-BK model's single decoding step to ``path`` (ONNX, eval mode):
    ``token`` (B,) int64 and the state (:func:`state_names`) ``-> logits`` (B, V) and the new
    state (``new_state.`` names), B symbolic. ``ValueError`` for another architecture (the
    Transformer baseline has no cache to step)."""
    if _architecture(model) != "bk":
        raise ValueError("the Transformer baseline has no decoding state (no KV cache): only "
                         "its forward is exported")
    model.eval()
    names = state_names(model)
    shapes = _state_shapes(model, 2)
    B = torch.export.Dim("batch")
    state = tuple(torch.zeros(shapes[n], dtype=torch.float32 if n.endswith("conv") else _F64)
                  for n in names)
    with _dense_moe(model):
        return _save(_BKDecode(model), (torch.zeros(2, dtype=torch.long), state), Path(path),
                     input_names=["token", *names],
                     output_names=["logits", *("new_" + n for n in names)],
                     dynamic_shapes=({0: B}, tuple({0: B} for _ in names)))


# --------------------------------------------------------------------------------------------
# running the exported graphs
# --------------------------------------------------------------------------------------------
def _session(path: str | os.PathLike):
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file missing: {path}")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


class OnnxBK:
    """A ResNet-BK export (``forward.onnx`` + ``decode.onnx``) run with onnxruntime.

    ``prefill(ids) -> (logits (B, T, V), state)`` and ``step(token, state) -> (logits (B, V),
    state)``, the state a dict of the named arrays of :func:`state_names`; ``generate`` is
    greedy decoding. ``step`` checks the state against the graph's inputs first: a missing
    or unexpected entry, a wrong dtype or shape (e.g. a state from another model) is a
    ``ValueError`` naming the entry.
    """

    def __init__(self, forward: str | os.PathLike, decode: str | os.PathLike) -> None:
        for p in (forward, decode):
            if not Path(p).is_file():
                raise FileNotFoundError(f"ONNX file missing: {p}")
        self.fwd = _session(forward)
        self.dec = _session(decode)
        self.inputs = {i.name: i for i in self.dec.get_inputs()}
        self.names = [i.name for i in self.dec.get_inputs()][1:]  # after "token"

    @classmethod
    def from_directory(cls, directory: str | os.PathLike) -> OnnxBK:
        """Load what :func:`export_run` (``bk export``) wrote for a ResNet-BK run."""
        d = Path(directory)
        return cls(d / "forward.onnx", d / "decode.onnx")

    def _outputs(self, sess, out: list[np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        names = [o.name for o in sess.get_outputs()]
        return out[0], {n.removeprefix("new_"): a for n, a in zip(names[1:], out[1:],
                                                                    strict=True)}

    def prefill(self, input_ids: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits of every prompt position and the state after the prompt."""
        ids = np.asarray(input_ids)
        if ids.ndim != 2 or ids.shape[0] < 1 or ids.shape[1] < 1 or ids.dtype.kind not in "iu":
            raise ValueError(f"input_ids must be a non-empty (B, T) integer array, got shape "
                             f"{ids.shape}, dtype {ids.dtype}")
        return self._outputs(self.fwd, self.fwd.run(None, {"input_ids": ids.astype(np.int64)}))

    def check_state(self, state: Mapping[str, np.ndarray], batch: int) -> None:
        """``ValueError`` naming the entry unless ``state`` matches the decode graph."""
        if not isinstance(state, Mapping):
            raise ValueError(f"state must be a dict of arrays {self.names}, got "
                             f"{type(state).__name__}")
        missing = [n for n in self.names if n not in state]
        extra = [n for n in state if n not in self.inputs or n == "token"]
        if missing or extra:
            raise ValueError(f"state does not belong to this model: missing {missing}, "
                             f"unexpected {extra} (expected {self.names})")
        for n in self.names:
            a, spec = np.asarray(state[n]), self.inputs[n]
            want = (batch, *spec.shape[1:])
            dtype = np.float64 if spec.type == "tensor(double)" else np.float32
            if a.shape != want:
                raise ValueError(f"state[{n!r}] must have shape {want} (batch {batch}), got "
                                 f"{a.shape}")
            if a.dtype != dtype:
                raise ValueError(f"state[{n!r}] must be {np.dtype(dtype).name}, got {a.dtype}")

    def step(self, token: np.ndarray, state: Mapping[str, np.ndarray]
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits (B, V) after ``token`` (B,) and the new state."""
        tok = np.asarray(token)
        if tok.ndim != 1 or tok.shape[0] < 1 or tok.dtype.kind not in "iu":
            raise ValueError(f"token must be a (B,) integer array, got shape {tok.shape}, "
                             f"dtype {tok.dtype}")
        self.check_state(state, tok.shape[0])
        feed = {"token": tok.astype(np.int64), **{n: state[n] for n in self.names}}
        return self._outputs(self.dec, self.dec.run(None, feed))

    def generate(self, input_ids: np.ndarray, max_new_tokens: int) -> np.ndarray:
        """Greedy decoding: (B, T + max_new_tokens) ids (first index on ties, as eager)."""
        logits, state = self.prefill(input_ids)
        out = [np.asarray(input_ids, dtype=np.int64)]
        last = logits[:, -1]
        for _ in range(max_new_tokens):
            nxt = last.argmax(-1).astype(np.int64)  # (B,)
            out.append(nxt[:, None])
            last, state = self.step(nxt, state)
        return np.concatenate(out, axis=1)


def check_onnx(path: str | os.PathLike, model: nn.Module, input_ids: torch.Tensor) -> float:
    """Max |onnxruntime logits - eager logits| of an exported forward on ``input_ids``."""
    sess = _session(path)
    got = sess.run(None, {sess.get_inputs()[0].name: input_ids.numpy()})[0]
    with torch.no_grad():
        ref = _Logits(model.eval())(input_ids).numpy()
    return float(abs(got - ref).max())


# --------------------------------------------------------------------------------------------
# bk export
# --------------------------------------------------------------------------------------------
def export_run(run: str | os.PathLike, out: str | os.PathLike, *, fmt: str = "onnx",
               seq_len: int | None = None) -> dict[str, Any]:
    """Export a run directory (or checkpoint file) to ``out``; returns what was written.

    ResNet-BK: ``forward.onnx`` and ``decode.onnx``; Transformer: ``forward.onnx`` at shape
    (1, ``seq_len``) (default ``max_seq_len``); both with the run's ``tokenizer.json``.
    ``onnx_export.json`` records the
    architecture, the signature and, for each graph, the largest difference between
    onnxruntime and eager logits on random ids (checked before anything is kept).

    Raises ``CheckpointError`` for a missing or corrupt run, ``ValueError`` for an unknown
    format or architecture.
    """
    from bkmodel.checkpoint import load_run

    if fmt != "onnx":
        raise ValueError(f"unknown export format {fmt!r} (supported: onnx; for Hugging Face "
                         "use bk export-hf)")
    from bkmodel.tokenizer import save_tokenizer

    model, tok, _ = load_run(run)
    arch = _architecture(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tok, out / "tokenizer.json")  # the ids the graphs take
    V = model.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    meta: dict[str, Any] = {"architecture": arch, "format": "onnx",
                            "torch": torch.__version__, "run": str(run)}
    if arch == "transformer":
        T = seq_len or model.config.max_seq_len
        ids = torch.randint(0, V, (1, T), generator=gen)
        p = export_onnx(model, out / "forward.onnx", ids)
        meta["forward"] = {"file": p.name, "inputs": [f"input_ids (1, {T}) int64"],
                           "outputs": [f"logits (1, {T}, {V}) float32"],
                           "max_abs_diff_logits": check_onnx(p, model, ids)}
    else:
        T = seq_len or min(model.config.n_seq, 64)
        pf = export_onnx(model, out / "forward.onnx")
        pd = export_onnx_decode(model, out / "decode.onnx")
        ids = torch.randint(0, V, (2, T), generator=gen)
        diff_f, diff_d = _bk_differences(model, OnnxBK(pf, pd), ids)
        meta["state"] = state_names(model)
        meta["forward"] = {"file": pf.name, "max_abs_diff_logits": diff_f,
                           "inputs": ["input_ids (B, T) int64"],
                           "outputs": ["logits (B, T, V) float32",
                                       *("new_" + n for n in meta["state"])]}
        meta["decode"] = {"file": pd.name, "max_abs_diff_logits": diff_d,
                          "inputs": ["token (B,) int64", *meta["state"]],
                          "outputs": ["logits (B, V) float32",
                                      *("new_" + n for n in meta["state"])]}
    (out / META_NAME).write_text(json.dumps(meta, indent=1))
    return meta


def _bk_differences(model: nn.Module, sess: OnnxBK, ids: torch.Tensor,
                    steps: int = 4) -> tuple[float, float]:
    """Max |logits difference| of prefill on ``ids`` and of ``steps`` greedy decode steps."""
    with torch.no_grad():
        states = model.eval()._prefill(ids)
        ref = model(ids)[0].numpy()
        got, st = sess.prefill(ids.numpy())
        diff_f = float(abs(got - ref).max())
        diff_d = 0.0
        tok = states.pop("logits").argmax(-1)
        for _ in range(steps):
            ref_l = model._decode_step(tok, states).numpy()
            got_l, st = sess.step(tok.numpy(), st)
            diff_d = max(diff_d, float(abs(got_l - ref_l).max()))
            tok = torch.from_numpy(ref_l).argmax(-1)
    return diff_f, diff_d


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory (or checkpoint.pt) of a ResNet-BK or Transformer "
                               "model")
    p.add_argument("--format", default="onnx", choices=["onnx"], dest="fmt",
                   help="export format (onnx: forward, and the decode step for ResNet-BK)")
    p.add_argument("--out", default=None, help="output directory (default RUN/onnx)")
    p.add_argument("--seq-len", type=int, default=None,
                   help="Transformer: the exported graph's sequence length (default "
                        "max_seq_len); ResNet-BK: the check's prompt length (graphs are "
                        "length-independent)")


def run(args: argparse.Namespace) -> int:
    from bkmodel.checkpoint import CheckpointError
    from bkmodel.tokenizer import TokenizerError

    out = args.out
    if out is None:
        base = Path(args.run)
        out = (base if base.is_dir() else base.parent) / "onnx"
    try:
        meta = export_run(args.run, out, fmt=args.fmt, seq_len=args.seq_len)
    except (CheckpointError, TokenizerError, FileNotFoundError, ValueError) as exc:
        print(f"bk export: {exc}", file=sys.stderr)
        return 1
    for key in ("forward", "decode"):
        if key in meta:
            print(f"wrote {Path(out) / meta[key]['file']} (max |onnxruntime - eager| logits "
                  f"{meta[key]['max_abs_diff_logits']:.2e})")
    return 0

