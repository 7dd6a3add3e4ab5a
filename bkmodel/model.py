"""The causal ResNet-BK language model.

Reads top to bottom: the two BK sequence-mixing layers, the block, the shared network, then
:class:`LanguageModel` (causal, autoregressive) and :class:`BKEncoder` (which alone accepts
the non-causal two-sided G_ii).

Block (pre-norm residual, docs/conventions.md §8)::

    x <- x + BK(LN(x))                               sequence mixing (one of the layers below)
    x <- x + FFN/MoE(LN(x))                          MLP, or MoE with a learned / arg-g gate

Classic layer (:class:`BKLayer`, ``layer="classic"``, the seeds' layout)::

    v  = W_v LN(x)                      (B, T, C)   potentials of C chains (or W_v MoE(LN(x)))
    g  = BK(v; z_c = lam_c + i eta_c, b_c)          causal edge Green's function g^L_i
    y  = W_out [eta_c Re g, eta_c Im g]             features in the unit disc (|g| <= 1/eta)

Selective layer (:class:`SelectiveBKLayer`, ``layer="selective"``): the potential v_i, the
absorption eta_i and the hopping b_i of every chain come from token i, the chains' memories
start log-uniform over 1 ... 10^4 tokens, and the features are the Cayley transform of b g,
RMS-normalised and gated (see the class). Both keep ``Im g > 0`` and ``|g_i| <= 1/eta_i``
(docs/theory.md, "Dissipative Jacobi chains").

Causality: g^L_i depends on v_1..v_i only, every other operation is per token (the optional
convolution is causal), so logits at position i depend on tokens <= i (checked by
:mod:`bkmodel.causality`). Decoding carries one complex value per (layer, chain) (and the
convolution's last inputs): O(1) state per step.

State and documents: ``LanguageModel.forward(ids, state=..., return_state=True)`` carries
that same state across segments (chunked forward with the state carried = one forward over
the concatenation; gradients flow through it), and ``reset`` (B, T) restarts every chain
at a document's first token: ``b_i = 0`` in the scan there (``g_i = 1/alpha_i``, exactly
the first step of a fresh chain) and the convolution masked (docs/tutorials/long_context.md).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from bkmodel import lm_base
from bkmodel.config import ModelConfig
from bkmodel.guards import ScanGuard
from bkmodel.lm_base import CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME  # noqa: F401 (re-exported)
from bkmodel.moe import MLP, MoE
from bkmodel.ops.bk_scan.torch_scan import bk_step
from bkmodel.ops.causal_conv import causal_conv1d
from bkmodel.ops.green_attn import (
    REAL_PAIR_BACKENDS,
    green_attention,
    green_attention_pair,
    green_step,
    resolve_green_backend,
)
from bkmodel.tt_embedding import make_token_embedding

__all__ = ["BKLayer", "SelectiveBKLayer", "GreenBKLayer", "Block", "BKEncoder",
           "LanguageModel",
           "cayley_features", "detach_state", "log_uniform_etas", "two_sided_diagonal"]


def _inv_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))  # log(exp(y) - 1), stable


def detach_state(state: Any) -> Any:
    """The model state (list of layer states: tensors or ``{"g", "conv"}`` dicts) with every
    tensor detached: carry it to the next window without backpropagating into the previous
    one (truncated backpropagation through time)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, Mapping):
        return {k: detach_state(v) for k, v in state.items()}
    return [detach_state(s) for s in state]


def two_sided_diagonal(
    v: torch.Tensor, lam: torch.Tensor, eta: torch.Tensor, b: torch.Tensor, scan
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-sided resolvent diagonal G_ii of the whole chain — **non-causal**.

    ``G_ii = 1 / (alpha_i - beta g^L_{i-1} - beta g^R_{i+1})`` (docs/conventions.md §3) with
    the left scan g^L and the right scan g^R (the left scan of the reversed chain). G_ii depends on
    every token of the sequence, future ones included. ``scan(v, lam, eta, b)`` is the
    (guarded) causal scan.
    """
    gl_re, gl_im = scan(v, lam, eta, b)
    gr_re, gr_im = scan(v.flip(1), lam, eta, b)
    gl = torch.complex(gl_re, gl_im)
    gr = torch.complex(gr_re, gr_im).flip(1)
    zero = torch.zeros_like(gl[:, :1])
    gl_prev = torch.cat([zero, gl[:, :-1]], dim=1)
    gr_next = torch.cat([gr[:, 1:], zero], dim=1)
    z = torch.complex(lam.to(gl_re.dtype), eta.to(gl_re.dtype))
    beta = b.to(gl_re.dtype).square()
    G = (v.to(gl_re.dtype) - z - beta * (gl_prev + gr_next)).reciprocal()
    return G.real, G.imag


def _check_complex_state(g: Any, shape: tuple[int, ...], device: torch.device, name: str
                         ) -> None:
    """``ValueError`` naming ``name`` unless ``g`` is a complex tensor of ``shape`` on
    ``device`` (a BK layer's carried g_0)."""
    if not isinstance(g, torch.Tensor):
        raise ValueError(f"{name} must be a complex tensor of shape {shape}, got "
                         f"{type(g).__name__}")
    if not g.is_complex():
        raise ValueError(f"{name} must be a complex tensor (g_0 of the BK chains), got "
                         f"dtype {g.dtype}")
    if tuple(g.shape) != shape:
        raise ValueError(f"{name} must have shape (B, chains) = {shape}, got {tuple(g.shape)}")
    if g.device != device:
        raise ValueError(f"{name} must be on the device of input_ids ({device}), got "
                         f"{g.device}")


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------
class _GuardedLayer(nn.Module):
    """A BK layer's binding to the model's shared :class:`~bkmodel.guards.ScanGuard` and its
    name in guard reports (a fresh guard of ``config.guard`` when used alone)."""

    def __init__(self, config: ModelConfig, guard: ScanGuard | None, name: str) -> None:
        super().__init__()
        self.config = config
        self.guard = guard if guard is not None else ScanGuard(config.guard,
                                                               backend=config.scan_backend)
        self.name = name


class BKLayer(_GuardedLayer):
    """C independent BK chains: potentials from LN(x), Green's function features back to d."""

    def __init__(self, config: ModelConfig, guard: ScanGuard | None = None,
                 name: str = "0") -> None:
        super().__init__(config, guard, name)
        d, C = config.d_model, config.n_channels
        self.v_moe = None
        if config.potential == "moe":
            self.v_moe = MoE(d, config.ffn_mult * d, d, num_experts=config.num_experts,
                             top_k=config.top_k, router="learned", bias=config.bias,
                             dropout=config.dropout, dispatch=config.moe_dispatch)
        self.v_proj = nn.Linear(d, C, bias=config.bias)
        r, c0 = config.lam_init_range, config.lam_init_center
        lam0 = torch.linspace(c0 - r, c0 + r, C) if C > 1 else torch.full((1,), float(c0))
        self.lam = nn.Parameter(lam0)
        self.eta_raw = nn.Parameter(
            torch.full((C,), _inv_softplus(config.eta_init - config.eta_min))
        )
        self.hop = nn.Parameter(torch.full((C,), float(config.hop_init)))
        self.out = nn.Linear(2 * C, d, bias=config.bias)

    @property
    def eta(self) -> torch.Tensor:
        """Im z_c = eta_min + softplus(raw_c) > 0, shape (C,)."""
        return self.config.eta_min + F.softplus(self.eta_raw)

    def potentials(self, h: torch.Tensor) -> tuple[torch.Tensor, Any, torch.Tensor | None]:
        """(v (…, C), potential-MoE stats or None, residual term or None) from LN(x) (…, d).

        The residual term is the potential MoE's output when ``potential_moe_residual``.
        """
        if self.v_moe is None:
            return self.v_proj(h), None, None
        u, stats = self.v_moe(h)  # (…, d)
        return self.v_proj(u), stats, (u if self.config.potential_moe_residual else None)

    def features(self, g_re: torch.Tensor, g_im: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([g_re * eta, g_im * eta], dim=-1))  # (…, d)

    def _scan(self, *args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.guard.scan(*args, layer=self.name)

    def check_state(self, state: Any, batch: int, device: torch.device, name: str = "state"
                    ) -> None:
        """``ValueError`` naming ``name`` unless ``state`` is None or a complex (B, C) g_0 on
        ``device``."""
        if state is not None:
            _check_complex_state(state, (batch, self.config.n_channels), device, name)

    def forward(self, h: torch.Tensor, *, state: torch.Tensor | None = None,
                reset: torch.Tensor | None = None, return_state: bool = False):
        """(y (B, T, d), g_re (B, T, C), g_im (B, T, C), potential-MoE stats or None), and
        with ``return_state`` the decoding state g_T (B, C) complex128 last.

        ``state``: the g_0 (B, C) complex entering the chain (the previous segment's g_T;
        gradients flow through it), None for a fresh chain. ``reset`` (B, T) bool: True at
        the first token of a document, where the chain restarts (b_i = 0 at that token:
        ``g_i = 1/alpha_i`` exactly, nothing before it is seen). Both need ``bk_mode='causal'``.
        """
        v, aux, u = self.potentials(h)  # (B, T, C)
        eta = self.eta
        if self.config.bk_mode == "causal":
            b = self.hop
            if reset is not None:  # per-token hopping, 0 where a document starts
                b = b.expand_as(v) * (~reset)[..., None].to(b.dtype)
            g_re, g_im = self.guard.scan(v, self.lam, eta, b, layer=self.name,
                                         initial_state=state)
        else:
            if state is not None or reset is not None:
                raise ValueError("state and reset need bk_mode='causal' (the two-sided G_ii "
                                 "sees the whole sequence: it has no left-to-right state)")
            g_re, g_im = two_sided_diagonal(v, self.lam, eta, self.hop, self._scan)
        y = self.features(g_re, g_im, eta.to(g_re.dtype))  # (B, T, d)
        out = ((y if u is None else y + u), g_re, g_im, aux)
        if return_state:
            return *out, torch.complex(g_re[:, -1].double(), g_im[:, -1].double())
        return out

    def step(self, h: torch.Tensor, state: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """One decoding step: h (B, d) -> (y (B, d), new state g (B, C) complex128, aux)."""
        v, aux, u = self.potentials(h)  # (B, C)
        eta = self.eta
        g = bk_step(v, self.lam, eta, self.hop, state)
        self.guard.check_step(g, eta, layer=self.name)
        g_re, g_im = g.real.to(v.dtype), g.imag.to(v.dtype)
        y = self.features(g_re, g_im, eta.to(v.dtype))  # (B, d)
        return (y if u is None else y + u), g, aux


def _spread_permutation(n: int) -> torch.Tensor:
    """A fixed permutation of 0..n-1 by a stride coprime with n (near the golden ratio·n),
    so that neighbouring chains (neighbouring lam_c) get far-apart timescales."""
    stride = max(1, round(0.618 * n))
    while math.gcd(stride, n) != 1:
        stride += 1
    return (torch.arange(n) * stride) % n


def log_uniform_etas(n: int, eta_lo: float, eta_hi: float) -> torch.Tensor:
    """n absorptions ``eta_hi (eta_lo/eta_hi)^(k/(n-1))``, k = 0..n-1, in a spread order.

    At the centre of the band a chain with hopping b and absorption eta forgets its past as
    ``exp(-eta t / b)`` (contraction ``|b g|^2 = 1 - eta/b + O(eta^2)`` per token), so these
    chains' memory lengths ``b/eta`` are log-uniform on ``[b/eta_hi, b/eta_lo]``.
    """
    if n == 1:
        return torch.tensor([math.sqrt(eta_lo * eta_hi)])
    k = torch.arange(n, dtype=torch.float64) / (n - 1)
    etas = eta_hi * (eta_lo / eta_hi) ** k
    return etas[_spread_permutation(n)].float()


def cayley_features(w_re: torch.Tensor, w_im: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cayley transform ``c = (w - i)/(w + i)`` of ``w = w_re + i w_im``, as (Re c, Im c).

    It maps the closed upper half-plane onto the closed unit disc (``|c| <= 1`` iff
    ``Im w >= 0``), so for the Herglotz ``w = b g`` the features are bounded by 1 whatever
    the size of g; ``|w + i| >= 1`` there, so the map and its derivative
    ``2i/(w + i)^2`` are bounded too. In real arithmetic::

        c = (|w|^2 - 1 - 2i Re w) / (Re w^2 + (Im w + 1)^2)
    """
    den = (w_re.square() + (w_im + 1.0).square()).reciprocal()
    return (w_re.square() + w_im.square() - 1.0) * den, -2.0 * w_re * den


class SelectiveBKLayer(_GuardedLayer):
    """C chains whose Jacobi operator is selected by the tokens (``layer="selective"``).

    Per token i and chain c (``u = conv(W_in LN(x))``, a depthwise causal convolution)::

        v_i   = u^v_i                                  potential (diagonal of H)
        eta_i = eta_min + softplus(u^eta_i + e_c)      absorption, z_i = lam_c + i eta_i
        b_i   = hop_min + softplus(u^b_i + h_c)        hopping between sites i-1 and i
        g_i   = 1 / (v_i - lam_c - i eta_i - b_i^2 g_{i-1})     (the BK scan, g_0 = 0)
        f_i   = [Re c_i, Im c_i],  c_i = (b_i g_i - i)/(b_i g_i + i)   (Cayley: |c_i| <= 1)
        y_i   = W_out (RMSNorm(f_i) * silu(W_g LN(x)_i))

    ``g_i = [(H_{1..i} - lam_c - i Gamma_{1..i})^{-1}]_{ii}`` is the edge Green's function of
    the dissipative Jacobi operator ``H = tridiag(b, v, b)``, ``Gamma = diag(eta) > 0``: it
    depends on tokens <= i (causal) and is Herglotz with ``|g_i| <= 1/eta_i`` (per token;
    docs/theory.md states and proves it, ``proofs_checks`` certifies it and the runtime
    guards check it). The biases ``e_c`` start at log-uniform absorptions on
    ``[eta_init_min, eta_init]`` (:func:`log_uniform_etas`): the chains' memories spread over
    ``~1 ... 10^4`` tokens. With ``selective=False`` eta and b are per-chain constants.

    Cost per token O(d·C) (projections) + O(C) (scan); decoding state per layer: g (B, C)
    and the convolution's last ``conv_size - 1`` inputs.
    """

    def __init__(self, config: ModelConfig, guard: ScanGuard | None = None,
                 name: str = "0") -> None:
        super().__init__(config, guard, name)
        d, C = config.d_model, config.n_channels
        m = config.n_energies
        S = C * m  # scanned chains: C operators, each at m spectral points
        self.n_in = 3 * C if config.selective else C  # (v, eta, b) or v alone
        self.in_proj = nn.Linear(d, self.n_in, bias=config.bias)
        k = config.conv_size
        self.conv = nn.Conv1d(self.n_in, self.n_in, k, groups=self.n_in, padding=k - 1) \
            if k > 0 else None
        r, c0 = config.lam_init_range, config.lam_init_center
        # chain c's m energies are lam[c*m : (c+1)*m]: spread over the band (every C-th point)
        lam0 = (torch.linspace(c0 - r, c0 + r, S) if S > 1 else torch.full((1,), float(c0)))
        self.lam = nn.Parameter(lam0.view(m, C).t().reshape(S).contiguous())
        if config.timescales == "log_uniform":
            eta0 = log_uniform_etas(S, config.eta_init_min, config.eta_init)
        else:
            eta0 = torch.full((S,), float(config.eta_init))
        self.eta_raw = nn.Parameter(
            torch.tensor([_inv_softplus(float(e) - config.eta_min) for e in eta0]))
        self.hop_raw = nn.Parameter(
            torch.full((C,), _inv_softplus(config.hop_init - config.hop_min)))
        self.norm = nn.RMSNorm(2 * S) if config.out_norm else None
        self.gate = nn.Linear(d, 2 * S, bias=config.bias) if config.output_gate else None
        self.out = nn.Linear(2 * S, d, bias=config.bias)

    # -- per-token operator ----------------------------------------------------------------
    def _operator(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(v, eta, b) of the S = C·m scanned chains from the convolved projections u
        (…, n_in); eta and b at least float32, per token (…, S), or (S,) without
        selectivity. The m energies of an operator share its v and b."""
        cfg, C, m = self.config, self.config.n_channels, self.config.n_energies
        dt = torch.promote_types(u.dtype, torch.float32)  # never below float32 (bf16 autocast)

        def per_energy(t: torch.Tensor) -> torch.Tensor:  # (…, C) -> (…, C·m)
            return t if m == 1 else t.repeat_interleave(m, dim=-1)

        if not cfg.selective:
            eta = cfg.eta_min + F.softplus(self.eta_raw.to(dt))
            b = cfg.hop_min + F.softplus(self.hop_raw.to(dt))
            return per_energy(u), eta, per_energy(b)
        v, e, h = u.split(C, dim=-1)
        eta = cfg.eta_min + F.softplus(per_energy(e.to(dt)) + self.eta_raw.to(dt))  # (…, S)
        b = cfg.hop_min + F.softplus(h.to(dt) + self.hop_raw.to(dt))  # (…, C)
        return per_energy(v), eta, per_energy(b)

    def _features(self, h: torch.Tensor, g_re: torch.Tensor, g_im: torch.Tensor,
                  eta: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.config.feature_map == "cayley":
            b = b.to(g_re.dtype)
            f_re, f_im = cayley_features(b * g_re, b * g_im)
        else:
            eta = eta.to(g_re.dtype)
            f_re, f_im = eta * g_re, eta * g_im
        f = torch.cat([f_re, f_im], dim=-1).to(h.dtype)  # (…, 2C)
        if self.norm is not None:
            f = self.norm(f)
        if self.gate is not None:
            f = f * F.silu(self.gate(h))
        return self.out(f)  # (…, d)

    def check_state(self, state: Any, batch: int, device: torch.device, name: str = "state"
                    ) -> None:
        """``ValueError`` naming ``name`` unless ``state`` is None or ``{"g": complex (B, S),
        "conv": None or (B, n_in, conv_size - 1)}`` on ``device``."""
        if state is None:
            return
        if not isinstance(state, Mapping) or "g" not in state:
            raise ValueError(f"{name} must be a dict {{'g': (B, S) complex, 'conv': tail or "
                             f"None}} (a selective layer's state), got {type(state).__name__}")
        S = self.config.n_channels * self.config.n_energies
        _check_complex_state(state["g"], (batch, S), device, f"{name}['g']")
        tail = state.get("conv")
        k = self.config.conv_size
        if tail is None:
            return
        want = (batch, self.n_in, max(k - 1, 0))
        if not isinstance(tail, torch.Tensor) or not tail.is_floating_point():
            raise ValueError(f"{name}['conv'] must be a real floating tensor of shape {want} "
                             f"or None, got {getattr(tail, 'dtype', type(tail).__name__)}")
        if tuple(tail.shape) != want:
            raise ValueError(f"{name}['conv'] must have shape (B, n_in, conv_size - 1) = "
                             f"{want}, got {tuple(tail.shape)}")
        if tail.device != device:
            raise ValueError(f"{name}['conv'] must be on {device}, got {tail.device}")

    def _conv_fresh(self, u: torch.Tensor) -> torch.Tensor:
        """The causal depthwise convolution of u (B, T, n_in) from zeros, channels-last
        (:func:`bkmodel.ops.causal_conv.causal_conv1d`): its Triton kernels on CUDA (and with
        ``scan_backend="triton"``, in the interpreter on CPU), else ``F.conv1d`` on the
        transposed view. On the H200 (2026-12-04, bf16, B 8, T 2,048, 792 channels, K 4) the
        kernels took 0.118 ms of GPU time forward + backward against 0.720 ms for
        ``nn.Conv1d`` with its transposes (``benchmarks/bench_causal_conv.py``)."""
        sb = self.config.scan_backend
        backend = "naive" if sb in ("torch", "naive") or self.config.conv_size > 8 else (
            "triton" if sb == "triton" else "auto")
        return causal_conv1d(u, self.conv.weight, self.conv.bias, backend=backend)

    def _conv(self, u: torch.Tensor, tail: torch.Tensor | None, reset: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The causal depthwise convolution of u (B, T, n_in) continuing from ``tail`` (the
        previous segment's last k - 1 inputs, zeros when None), masked at document starts:
        an output never sees inputs before its document's first token. Returns (x (B, T,
        n_in), new tail (B, n_in, k - 1) or None); the new tail is zero before the last
        document start, so the next segment continues the last document only."""
        k, T = self.config.conv_size, u.shape[1]
        ut = u.transpose(1, 2)  # (B, n_in, T)
        if tail is None:
            tail = ut.new_zeros(ut.shape[0], self.n_in, k - 1)
        full = torch.cat([tail.to(ut.dtype), ut], dim=-1)  # (B, n_in, k - 1 + T)
        w = self.conv.weight
        if reset is None:
            x = F.conv1d(full, w, self.conv.bias, groups=self.n_in)  # (B, n_in, T)
            new_tail = full[..., T:] if k > 1 else None
            return x.transpose(1, 2), new_tail
        seg = reset.long().cumsum(1)  # (B, T): document index inside this segment
        seg_full = torch.cat([seg.new_zeros(seg.shape[0], k - 1), seg], dim=1)
        x = 0.0
        for j in range(k):  # w[:, 0, j] weighs the input at position t - (k - 1) + j
            same = (seg_full[:, j: j + T] == seg)[:, None, :].to(ut.dtype)  # (B, 1, T)
            x = x + w[:, 0, j, None] * full[..., j: j + T] * same
        if self.conv.bias is not None:
            x = x + self.conv.bias[:, None]
        new_tail = None
        if k > 1:
            keep = (seg_full[:, T:] == seg[:, -1:])[:, None, :].to(ut.dtype)
            new_tail = full[..., T:] * keep
        return x.transpose(1, 2), new_tail

    def forward(self, h: torch.Tensor, *, state: dict | None = None,
                reset: torch.Tensor | None = None, return_state: bool = False):
        """(y (B, T, d), g_re (B, T, S), g_im (B, T, S), None[, state]); S = C·n_energies.

        ``state`` (what ``return_state`` returned for the previous segment, gradients flow
        through it): ``g`` (B, S) complex entering the scan and ``conv`` the convolution's
        last inputs. ``reset`` (B, T) bool: True at the first token of a document: the scan
        restarts there (``b_i = 0`` in the scan only, ``g_i = 1/alpha_i`` exactly; the
        features keep ``b_i >= hop_min``) and the convolution does not look past it.
        """
        u = self.in_proj(h)  # (B, T, n_in)
        x = u
        k = self.config.conv_size
        tail = None
        carried = state is not None or reset is not None
        if self.conv is not None:
            if carried:
                x, tail = self._conv(u, None if state is None else state.get("conv"), reset)
            else:
                x = self._conv_fresh(u)  # causal (B, T, n_in)
        v, eta, b = self._operator(x)
        b_scan = b
        if reset is not None:  # the hopping into a document's first token is 0 (scan only)
            b_scan = b.expand_as(v) * (~reset)[..., None].to(b.dtype)
        g_re, g_im = self.guard.scan(v, self.lam, eta, b_scan, layer=self.name,
                                     initial_state=None if state is None else state["g"])
        y = self._features(h, g_re, g_im, eta, b)
        if not return_state:
            return y, g_re, g_im, None
        if k > 1 and not carried:
            tail = u[:, -(k - 1):].transpose(1, 2)  # (B, n_in, <= k-1)
            if tail.shape[-1] < k - 1:
                tail = F.pad(tail, (k - 1 - tail.shape[-1], 0))
        g = torch.complex(g_re[:, -1].double(), g_im[:, -1].double())
        return y, g_re, g_im, None, {"g": g, "conv": tail}

    def _step_input(self, h: torch.Tensor, state: dict | None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One token's convolved projections x (B, n_in) and the new convolution tail
        (B, n_in, k - 1) (None without a convolution), continuing ``state["conv"]``."""
        u = self.in_proj(h)  # (B, n_in)
        if self.conv is None:
            return u, None
        prev = (state or {}).get("conv")
        if prev is None:
            prev = u.new_zeros(u.shape[0], self.n_in, self.config.conv_size - 1)
        window = torch.cat([prev, u[:, :, None]], dim=-1)  # (B, n_in, k)
        x = (window * self.conv.weight[:, 0]).sum(-1)
        if self.conv.bias is not None:
            x = x + self.conv.bias
        return x, window[:, :, 1:]

    def step(self, h: torch.Tensor, state: dict | None) -> tuple[torch.Tensor, dict, Any]:
        """One decoding step: h (B, d) -> (y (B, d), new state, None); the state holds
        ``g`` (B, S) complex128 and the convolution's last inputs ``conv`` (B, n_in, k-1)."""
        x, tail = self._step_input(h, state)
        v, eta, b = self._operator(x)
        g = bk_step(v, self.lam, eta, b, None if state is None else state["g"])
        self.guard.check_step(g, eta.expand_as(v), layer=self.name)
        g_re, g_im = g.real.to(h.dtype), g.imag.to(h.dtype)
        y = self._features(h, g_re, g_im, eta, b)
        return y, {"g": g, "conv": tail}, None


class GreenBKLayer(SelectiveBKLayer):
    """Green's-function attention over selective BK chains (``layer="green"``).

    H = ``n_channels`` heads; head h carries one dissipative Jacobi chain whose operator is
    selected by the tokens exactly as in :class:`SelectiveBKLayer` (v_i, eta_i >= eta_min,
    b_i >= hop_min from ``u = conv(W_in LN(x))``), and the entries of its truncated
    resolvent weight the values::

        g_i     = 1 / (v_i - lam_h - i eta_i - b_i^2 g_{i-1})       (the BK scan)
        G(i, j) = [(H_{1..i} - lam_h - i Gamma)^{-1}]_{ij} = g_j prod_{k=j+1..i} (-b_k g_k)
        y_i     = sum_{j <= i} G(i, j) (q_i . k_j) v_j / sqrt(dk)     (complex, (H, dv))
        out_i   = W_out (RMSNorm_h([Re y_i, Im y_i]) * silu(W_g LN(x)_i))

    q, k, v are per-head slices of ``u``; with ``qkv_act="silu"`` they are SiLU of them and
    with ``qk_norm`` q and k are L2-normalised per head (both off by default; README: on the
    CPU tiny preset both together took the green layer from 49.8 to 47.4 mean val ppl).

    ``y_i`` is the chain's response at its end i to the sources ``k_j v_j^T`` injected at
    sites j <= i, read out by ``q_i``; ``|G(i, j)| <= ||(H_{1..i} - z)^{-1}|| <= 1/eta_min``
    (docs/theory.md). The transfer factor ``-b_k g_k`` is complex: a damped rotation whose
    modulus (memory) and phase (frequency, set by lam_h and the local potential) depend on
    the whole prefix, not on token k alone. Computed by the chunked matmul form
    (:mod:`bkmodel.ops.green_attn`, O(T L (dk + dv) + T dk dv) per head); decoding carries
    g (B, H) and the state ``S`` (B, H, dk, dv) per layer: O(1) in the position.
    """

    def __init__(self, config: ModelConfig, guard: ScanGuard | None = None,
                 name: str = "0") -> None:
        super().__init__(config, guard, name)
        d, H = config.d_model, config.n_channels
        self.dk = config.key_dim or d // H
        self.dv = config.value_dim or d // H
        self.n_op = 3 * H if config.selective else H
        self.n_in = self.n_op + H * (2 * self.dk + self.dv)
        self.in_proj = nn.Linear(d, self.n_in, bias=config.bias)
        k = config.conv_size
        self.conv = nn.Conv1d(self.n_in, self.n_in, k, groups=self.n_in, padding=k - 1) \
            if k > 0 else None
        n_feat = 2 * H * self.dv
        self.norm_weight = nn.Parameter(torch.ones(H, 2 * self.dv)) if config.out_norm else None
        self.norm = None
        self.gate = nn.Linear(d, H * self.dv, bias=config.bias) if config.output_gate else None
        self.out = nn.Linear(n_feat, d, bias=config.bias)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(operator inputs (…, n_op), q, k (…, H, dk), v (…, H, dv)) of the convolved u."""
        H, dk, dv = self.config.n_channels, self.dk, self.dv
        op, q, k, v = x.split([self.n_op, H * dk, H * dk, H * dv], dim=-1)
        sh = x.shape[:-1]
        q, k, v = q.reshape(*sh, H, dk), k.reshape(*sh, H, dk), v.reshape(*sh, H, dv)
        if self.config.qkv_act == "silu":
            q, k, v = F.silu(q), F.silu(k), F.silu(v)
        if self.config.qk_norm:  # in float32, back to q's dtype: CUDA autocast runs the
            # norm in float32 and would otherwise hand the kernel float32 q, k with bf16 v
            # (H200, 2026-12-04: 179k instead of ~660k training tokens/s)
            q = F.normalize(q.float(), dim=-1, eps=1e-6).to(q.dtype)
            k = F.normalize(k.float(), dim=-1, eps=1e-6).to(k.dtype)
        return op, q * dk ** -0.5, k, v

    def _mix_out(self, h: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """f = [Re y, Im y] (…, H, 2 dv) -> (…, d): per-head RMSNorm, gate, projection."""
        if self.norm_weight is not None:
            f = F.rms_norm(f, (f.shape[-1],), eps=1e-6) * self.norm_weight  # (H, 2 dv)
        f = f.to(h.dtype)
        if self.gate is not None:  # the same gate on the real and the imaginary half
            gt = F.silu(self.gate(h)).unflatten(-1, (self.config.n_channels, 1, self.dv))
            f = (f.unflatten(-1, (2, self.dv)) * gt).flatten(-2)
        return self.out(f.flatten(-2))

    def check_state(self, state: Any, batch: int, device: torch.device, name: str = "state"
                    ) -> None:
        """As :meth:`SelectiveBKLayer.check_state`, plus ``"S"``: complex (B, H, dk, dv)."""
        super().check_state(state, batch, device, name)
        if state is None:
            return
        want = (batch, self.config.n_channels, self.dk, self.dv)
        _check_complex_state(state.get("S"), want, device, f"{name}['S']")

    def forward(self, h: torch.Tensor, *, state: dict | None = None,
                reset: torch.Tensor | None = None, return_state: bool = False):
        """(out (B, T, d), g_re (B, T, H), g_im (B, T, H), None[, state]).

        ``state``: ``{"g": (B, H), "S": (B, H, dk, dv), "conv": tail}`` from the previous
        segment; ``reset`` (B, T) bool restarts every chain (and S) at a document start.
        """
        u = self.in_proj(h)
        x, tail = u, None
        carried = state is not None or reset is not None
        k_conv = self.config.conv_size
        if self.conv is not None:
            if carried:
                x, tail = self._conv(u, None if state is None else state.get("conv"), reset)
            else:
                x = self._conv_fresh(u)
        op, q, k, v = self._split(x)
        pot, eta, b = self._operator(op)
        b_scan = b.expand_as(pot)
        if reset is not None:
            b_scan = b_scan * (~reset)[..., None].to(b.dtype)
        g_re, g_im = self.guard.scan(pot, self.lam, eta, b_scan, layer=self.name,
                                     initial_state=None if state is None else state["g"])
        backend = resolve_green_backend(self.config.scan_backend, h.device,
                                        (q.shape[-1], v.shape[-1], self.config.chunk_size))
        s0 = None if state is None else state["S"]
        if backend in REAL_PAIR_BACKENDS:  # real and imaginary parts straight to the
            # kernels and from them into the features: no complex tensors in between (on the
            # H200 their packing, unpacking and complex autograd were ~8 strided copies of
            # (B, T, H, dv) per layer and step)
            rdt = torch.float64 if g_re.dtype == torch.float64 else torch.float32
            gr, gi, bs = g_re.to(rdt), g_im.to(rdt), b_scan.to(rdt)
            y_re, y_im, S_pair = green_attention_pair(
                q, k, v, gr, gi, -bs * gr, -bs * gi, reset=reset,
                initial_state=None if s0 is None else (s0.real, s0.imag), backend=backend,
                chunk_size=self.config.chunk_size)
            f = torch.cat([y_re, y_im], dim=-1)
            S = torch.complex(*S_pair) if return_state else None
        else:
            g = torch.complex(g_re.float(), g_im.float()) if g_re.dtype != torch.float64 \
                else torch.complex(g_re, g_im)
            a = -b_scan.to(g.real.dtype) * g
            y, S = green_attention(q, k, v, g, a, reset=reset, initial_state=s0,
                                   chunk_size=self.config.chunk_size, backend=backend)
            f = torch.cat([y.real, y.imag], dim=-1)
        out = self._mix_out(h, f)
        if not return_state:
            return out, g_re, g_im, None
        if k_conv > 1 and not carried:
            tail = u[:, -(k_conv - 1):].transpose(1, 2)
            if tail.shape[-1] < k_conv - 1:
                tail = F.pad(tail, (k_conv - 1 - tail.shape[-1], 0))
        g_last = torch.complex(g_re[:, -1].double(), g_im[:, -1].double())
        return out, g_re, g_im, None, {"g": g_last, "S": S, "conv": tail}

    def step(self, h: torch.Tensor, state: dict | None) -> tuple[torch.Tensor, dict, Any]:
        """One decoding step h (B, d) -> (out (B, d), new state, None)."""
        x, tail = self._step_input(h, state)
        op, q, k, v = self._split(x)
        pot, eta, b = self._operator(op)
        b = b.expand_as(pot)
        g = bk_step(pot, self.lam, eta, b, None if state is None else state["g"])
        self.guard.check_step(g, eta.expand_as(pot), layer=self.name)
        a = -b.to(g.real.dtype) * g
        y, S = green_step(q, k, v, g, a, None if state is None else state["S"])
        out = self._mix_out(h, torch.cat([y.real, y.imag], dim=-1))
        return out, {"g": g, "S": S, "conv": tail}, None


def _phase(g_re: torch.Tensor, g_im: torch.Tensor) -> torch.Tensor:
    """arg of sum_c g_c, in (0, pi) for Herglotz g: (…, C) -> (…)."""
    return torch.atan2(g_im.sum(-1), g_re.sum(-1))


class Block(nn.Module):
    """Pre-norm residual block: BK sequence mixing, then MLP / MoE feed-forward.

    ``guard`` (shared by the model's blocks) and ``name`` (the layer's name in guard
    reports) are bound here, so ``forward(x, stats)`` reads like a plain pre-norm block.
    """

    def __init__(self, config: ModelConfig, guard: ScanGuard | None = None,
                 name: str = "0") -> None:
        super().__init__()
        d = config.d_model
        self.ln_1 = nn.LayerNorm(d, bias=config.bias)
        layer = {"selective": SelectiveBKLayer, "green": GreenBKLayer}.get(config.layer, BKLayer)
        self.bk = layer(config, guard, name)
        self.drop = nn.Dropout(config.dropout)
        self.ln_2 = None
        self.ffn: nn.Module | None = None
        if config.ffn != "none":
            self.ln_2 = nn.LayerNorm(d, bias=config.bias)
            if config.ffn == "moe":
                self.ffn = MoE(d, config.ffn_mult * d, d, num_experts=config.num_experts,
                               top_k=config.top_k, router=config.router, bias=config.bias,
                               dropout=config.dropout, dispatch=config.moe_dispatch)
            else:
                self.ffn = MLP(d, config.ffn_mult * d, d, bias=config.bias,
                               dropout=config.dropout)

    def _ffn(self, x: torch.Tensor, g_re: torch.Tensor, g_im: torch.Tensor,
             stats: list) -> torch.Tensor:
        if self.ffn is None:
            return x
        h = self.ln_2(x)
        if isinstance(self.ffn, MoE):
            y, st = self.ffn(h, phase=_phase(g_re, g_im))
            stats.append(st)
        else:
            y = self.ffn(h)
        return x + self.drop(y)

    def forward(self, x: torch.Tensor, stats: list, *, state: Any = None,
                reset: torch.Tensor | None = None, return_state: bool = False):
        """x (B, T, d) -> x (B, T, d); MoE statistics are appended to ``stats``. With
        ``return_state`` also the layer's decoding state after the last token; ``state``
        (the previous segment's) and ``reset`` (document starts) go to the BK layer."""
        y, g_re, g_im, aux, *state = self.bk(self.ln_1(x), state=state, reset=reset,
                                             return_state=return_state)
        if aux is not None:
            stats.append(aux)
        x = x + self.drop(y)  # (B, T, d)
        x = self._ffn(x, g_re, g_im, stats)
        return (x, state[0]) if return_state else x

    def step(self, x: torch.Tensor, state) -> tuple[torch.Tensor, Any]:
        """One decoding step: x (B, d), state -> (x (B, d), new state)."""
        y, new_state, _ = self.bk.step(self.ln_1(x), state)
        x = x + y  # (B, d)
        g = new_state["g"] if isinstance(new_state, dict) else new_state
        x = self._ffn(x, g.real.to(x.dtype), g.imag.to(x.dtype), [])
        return x, new_state


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------
def _resolve_config(config: ModelConfig | None, kwargs: dict[str, Any]) -> ModelConfig:
    if config is None:
        return ModelConfig(**kwargs)
    if kwargs:
        raise TypeError("pass either a ModelConfig or keyword fields, not both")
    if isinstance(config, dict):
        return ModelConfig.from_dict(config)
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    return config


class _BKNetwork(nn.Module):
    """Embedding, blocks, final norm and head, shared by the LM and the encoder."""

    def __init__(self, config: ModelConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        config = _resolve_config(config, kwargs)
        self.config = config
        self.wte = make_token_embedding(config.embedding, config.vocab_size, config.d_model,
                                        config.tt_rank)  # nn.Embedding, or TT (never tied)
        self.drop = nn.Dropout(config.dropout)
        self.guard = ScanGuard(config.guard, backend=config.scan_backend)
        self.blocks = nn.ModuleList(Block(config, self.guard, str(i))
                                    for i in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings and config.embedding == "dense":
            self.lm_head.weight = self.wte.weight
        self.last_aux: Mapping[str, Any] = {}
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # scaled residual projections (GPT-2)
            if name.endswith("bk.out.weight") or name.endswith("proj.weight"):
                nn.init.normal_(p, 0.0, config.init_std / math.sqrt(2 * config.n_layers))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, self.config.init_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, self.config.init_std)

    # -- accounting ------------------------------------------------------------------------
    def num_params(self, trainable_only: bool = False) -> int:
        """Number of (unique: tied weights count once) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def guard_report(self) -> dict[str, int]:
        """Guard event counters (see :class:`bkmodel.guards.ScanGuard`)."""
        return self.guard.report()

    # -- input checks ----------------------------------------------------------------------
    def _check_ids(self, ids: Any, name: str = "input_ids", *, allow_ignore: bool = False
                   ) -> None:
        """:func:`bkmodel.lm_base.check_ids` with this model's vocabulary and ``n_seq``."""
        lm_base.check_ids(ids, self.config.vocab_size, self.config.n_seq, name,
                          allow_ignore=allow_ignore)

    # -- forward ---------------------------------------------------------------------------
    def _check_state(self, state: Any, input_ids: torch.Tensor) -> None:
        """``ValueError`` naming the entry unless ``state`` is a list of ``n_layers`` layer
        states (each None or what ``return_state`` returned) matching ``input_ids``."""
        n = self.config.n_layers
        if not isinstance(state, (list, tuple)) or len(state) != n:
            got = (f"a {type(state).__name__} of length {len(state)}"
                   if isinstance(state, (list, tuple)) else type(state).__name__)
            raise ValueError(f"state must be a list of n_layers={n} layer states (what "
                             f"forward(..., return_state=True) returned), got {got}")
        for i, (block, s) in enumerate(zip(self.blocks, state, strict=True)):
            block.bk.check_state(s, input_ids.shape[0], input_ids.device, f"state[{i}]")

    _check_reset = staticmethod(lm_base.check_reset)

    def _hidden(self, input_ids: torch.Tensor, *, state: Any = None,
                reset: torch.Tensor | None = None, return_state: bool = False):
        """(LN_f(x) (B, T, d), MoE stats[, new state: list of n_layers layer states])."""
        self._check_ids(input_ids)
        if state is not None:
            self._check_state(state, input_ids)
        if reset is not None:
            self._check_reset(reset, input_ids)
        self.guard.begin_forward()
        x = self.drop(self.wte(input_ids.long()))  # (B, T, d)
        stats: list = []
        if state is None and reset is None and not return_state:
            for block in self.blocks:
                x = block(x, stats)
            return self.ln_f(x), stats
        states = [None] * len(self.blocks) if state is None else list(state)
        new: list = []
        for block, s in zip(self.blocks, states, strict=True):
            out = block(x, stats, state=s, reset=reset, return_state=return_state)
            if return_state:
                x, s = out
                new.append(s)
            else:
                x = out
        x = self.ln_f(x)
        return (x, stats, new) if return_state else (x, stats)

    def _aux(self, stats: list) -> tuple[torch.Tensor, _LazyInfo]:
        aux_loss = sum((s["aux_loss"] for s in stats), torch.zeros(()))
        aux_loss = aux_loss / max(len(stats), 1)
        loads = [s["load"] for s in stats]
        a = aux_loss.detach()
        info = _LazyInfo(
            aux_loss=lambda: float(a),
            moe_load=lambda: [p.tolist() for p in loads],
            moe_max_load=lambda: max((float(p.max()) for p in loads), default=1.0),
            moe_load_entropy=lambda: _mean_normalised_entropy(loads),
            guard=self.guard.report,
            skip_step=lambda: self.guard.skip_requested,
        )
        return aux_loss, info

    def configure_optimizers(self, weight_decay: float = 0.1, lr: float = 1e-3,
                             betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.AdamW:
        """AdamW; weight decay on matrices (>= 2-D) only, not on biases, norms or z_c, b_c.

        The groups are :func:`bkmodel.optim.param_groups`, the rule ``bk train`` uses.
        """
        from bkmodel.optim import param_groups

        return torch.optim.AdamW(param_groups(self, weight_decay), lr=lr, betas=betas)

    # -- checkpoints -----------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into ``directory``, atomically.

        Each file is written to a temporary name, fsynced, then renamed; ``config.json``
        (written last) records the SHA-256 of the weights file, so a torn or mismatched pair
        is detected by :meth:`from_pretrained`. Tied weights are stored once. The format is
        :mod:`bkmodel.lm_base`'s, shared with the Transformer baseline.
        """
        return lm_base.save_pretrained(self, directory, model_type="resnet-bk")

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, *, map_location: str = "cpu"):
        """Load a model written by :meth:`save_pretrained`; clear errors for bad files."""
        return lm_base.load_pretrained(cls, directory, ModelConfig, model_type="resnet-bk",
                                       map_location=map_location)


class _LazyInfo(Mapping):
    """Read-only mapping of per-forward statistics whose values may be zero-argument
    callables, evaluated (and cached) on first access: reading a statistic that lives on the
    GPU synchronises with the device, so the forward itself never does; training reads
    ``skip_step`` every step and the rest only when it logs."""

    def __init__(self, **items: Any) -> None:
        self._items = dict(items)
        self._orig = dict(items)

    def refresh(self) -> None:
        """Forget the cached values (a CUDA-graph replay rewrote the tensors behind them)."""
        self._items = dict(self._orig)

    def __setitem__(self, key: str, value: Any) -> None:
        self._items[key] = self._orig[key] = value

    def __getitem__(self, key: str) -> Any:
        v = self._items[key]
        if callable(v):
            v = self._items[key] = v()
        return v

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"_LazyInfo({dict(self)!r})"


def _mean_normalised_entropy(loads: list[torch.Tensor]) -> float:
    """Mean over MoEs of H(load)/log E: 1 for a uniform load, 0 when one expert takes all."""
    vals = []
    for p in loads:
        if p.numel() < 2:
            continue
        p = p.double()
        h = -(p * p.clamp_min(1e-300).log()).sum()
        vals.append(float(h) / math.log(p.numel()))
    return sum(vals) / len(vals) if vals else 1.0


class LanguageModel(_BKNetwork):
    """Causal ResNet-BK language model.

    ``LanguageModel(config)`` or ``LanguageModel(vocab_size=..., d_model=..., ...)``
    (fields of :class:`bkmodel.config.ModelConfig`).

    ``forward(input_ids, targets=None) -> (logits (B, T, V), loss or None)``: the loss is the
    mean cross-entropy (targets of -100 are ignored) plus ``aux_loss_weight`` times the mean
    MoE load-balance loss. ``self.last_aux`` holds ``ce_loss``, ``aux_loss``, ``moe_load``
    (per MoE, fraction of token slots per expert), ``moe_max_load``, ``moe_load_entropy``
    (mean H(load)/log E, 1 = balanced), ``guard`` (counters) and ``skip_step`` (True when a
    guard with action ``skip_step`` fired: the trainer should not apply this step).

    Cost per token and layer O(d·C + d²) (no attention); decoding state O(n_layers · C).

    Examples
    --------
    >>> import torch
    >>> m = LanguageModel(vocab_size=32, d_model=16, n_layers=1, n_seq=8, n_channels=2)
    >>> ids = torch.zeros(1, 8, dtype=torch.long)
    >>> logits, loss = m(ids, ids)
    >>> tuple(logits.shape), loss.ndim
    ((1, 8, 32), 0)
    >>> m.generate(ids[:, :3], 4, temperature=0).shape
    torch.Size([1, 7])
    """

    def __init__(self, config: ModelConfig | None = None, **kwargs: Any) -> None:
        cfg = _resolve_config(config, kwargs)
        if cfg.bk_mode != "causal":
            raise ValueError(
                f"bk_mode={cfg.bk_mode!r} uses the two-sided G_ii, which depends on future "
                "tokens: it is not causal and cannot be used by an autoregressive "
                "LanguageModel (use bk_mode='causal', or BKEncoder for non-causal analysis)"
            )
        super().__init__(cfg)

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor | None = None, *,
                state: list | None = None, return_state: bool = False,
                reset: torch.Tensor | None = None):
        """``(logits (B, T, V), loss or None)``, and with ``return_state`` the new state last.

        ``state``: a list of ``n_layers`` layer states, the previous segment's
        ``return_state`` output (classic layer: g (B, C) complex; selective layer:
        ``{"g": (B, S) complex, "conv": (B, n_in, conv_size - 1) or None}``); the segment
        then continues that stream exactly: forward on consecutive chunks with the state
        carried equals one forward on their concatenation. Gradients flow through the state
        (truncated BPTT: detach it between windows, :func:`detach_state`). ``reset`` (B, T)
        bool: True at the first token of a document; every layer's chain (and convolution)
        restarts there, so no document sees the one before it.
        """
        if targets is not None:  # checked before any work is queued: the check's host
            # synchronisation then waits for nothing (only the batch's copy to the device)
            self._check_ids(targets, "targets", allow_ignore=True)
            if targets.shape != input_ids.shape:
                raise ValueError(f"targets must have the shape of input_ids "
                                 f"{tuple(input_ids.shape)}, got {tuple(targets.shape)}")
        new_state = None
        if return_state:
            x, stats, new_state = self._hidden(input_ids, state=state, reset=reset,
                                               return_state=True)
        else:
            x, stats = self._hidden(input_ids, state=state, reset=reset)
        logits = self.lm_head(x)  # (B, T, V)
        aux_loss, info = self._aux(stats)
        loss = None
        if targets is not None:
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                 targets.reshape(-1).long(), ignore_index=-100)
            # without MoE the aux loss is the constant 0: leave it out of the graph (adding a
            # constant zero made Inductor (torch 2.13) return a loss without grad_fn)
            loss = ce + self.config.aux_loss_weight * aux_loss if stats else ce
            c = ce.detach()
            info["ce_loss"] = lambda: float(c)
        self.last_aux = info
        if return_state:
            return logits, loss, new_state
        return logits, loss

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, *, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Autoregressive sampling with O(1) state per step.

        The prompt runs once through the parallel scan; its last g per (layer, channel) is
        the state; every new token then costs one recurrence step per layer
        (``g_t = 1/(v_t - z - b^2 g_{t-1})``), never re-running the prefix. The recurrence has
        no length limit, so generation may continue past ``n_seq`` (the model then
        extrapolates beyond its training length). A prompt longer than ``n_seq`` is
        prefilled in chunks of ``n_seq`` with the state carried (:meth:`forward`'s
        ``state``), which is exact.

        ``temperature = 0`` is greedy decoding; ``top_k`` keeps the k most likely tokens.
        Returns (B, T + max_new_tokens) token ids. Runs in eval mode (restored afterwards).
        """
        lm_base.check_generate_args(max_new_tokens, temperature, top_k)
        was_training = self.training
        self.eval()
        try:
            states = self._prefill(input_ids)
            logits = states.pop("logits")
            B, T = input_ids.shape
            # one preallocated output: memory per generated token is its id, nothing else
            try:
                out = input_ids.new_empty(B, T + max_new_tokens, dtype=torch.long)
            except (RuntimeError, MemoryError):
                raise ValueError(f"max_new_tokens={max_new_tokens}: the output of "
                                 f"{B} x {T + max_new_tokens} token ids cannot be "
                                 "allocated") from None
            out[:, :T] = input_ids
            for i in range(max_new_tokens):
                nxt = self._sample(logits, temperature, top_k, generator)  # (B, 1)
                out[:, T + i] = nxt[:, 0]
                logits = self._decode_step(nxt[:, 0], states)
            return out
        finally:
            self.train(was_training)

    def _prefill(self, input_ids: torch.Tensor) -> dict[str, Any]:
        """Run the prompt; return the last logits and the per-layer states (``str(i)``).

        The prompt goes through :meth:`forward`'s state path in chunks of ``n_seq`` tokens
        (one chunk for a prompt of at most ``n_seq``), so a prompt of any length costs memory
        of one chunk."""
        lm_base.check_ids(input_ids, self.config.vocab_size, None)
        n = self.config.n_seq
        state = None
        for s in range(0, input_ids.shape[1], n):
            x, _, state = self._hidden(input_ids[:, s: s + n], state=state, return_state=True)
        states: dict[str, Any] = {str(i): st for i, st in enumerate(state)}
        states["logits"] = self.lm_head(x[:, -1])  # (B, V)
        return states

    def _decode_step(self, token: torch.Tensor, states: dict[str, Any]) -> torch.Tensor:
        x = self.wte(token)  # (B, d)
        for i, block in enumerate(self.blocks):
            x, states[str(i)] = block.step(x, states[str(i)])
        return self.lm_head(self.ln_f(x))  # (B, V)

    @staticmethod
    def _sample(logits: torch.Tensor, temperature: float, top_k: int | None,
                generator: torch.Generator | None) -> torch.Tensor:
        return lm_base.sample(logits, temperature, top_k, generator)  # (B, 1)


class BKEncoder(_BKNetwork):
    """The same network without the causal restriction: accepts ``bk_mode='two_sided'``.

    ``forward(input_ids) -> logits (B, T, V)``. With the two-sided G_ii every output depends
    on the whole sequence (an encoder for analysis, e.g. the negative control of the
    causality certificate); it has no ``generate``.
    """

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x, stats = self._hidden(input_ids)
        _, self.last_aux = self._aux(stats)
        return self.lm_head(x)

