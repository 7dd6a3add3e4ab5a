"""The BK scan in real float64 arithmetic through torch's ``scan`` higher-order op, for export.

ONNX has no complex type and no counterpart of the custom op ``bkmodel::scan_torch``
(``custom_op.py``); what it has is a ``Scan`` operator (a loop body applied along one axis
with carried values). ``torch._higher_order_ops.scan`` is the torch form of exactly that,
and the dynamo ONNX exporter translates it to ``Scan`` (``torch/onnx/.../_torchlib/ops/hop.py``),
so this function is the scan :mod:`bkmodel.export` writes. It is the sequential recurrence of
``naive.py``,

    g_i = 1 / (alpha_i - beta_i g_{i-1}),   alpha_i = v_i - lam_c - i eta_i,   beta_i = b_i**2,

written on the pair ``(Re g, Im g)``: with ``d = alpha - beta g``,
``1/d = (Re d - i Im d) / (Re d**2 + Im d**2)``. The division cannot overflow or vanish for
real inputs and ``eta > 0``: ``Im d <= -eta_i`` whenever ``Im g >= 0`` (docs/conventions.md
§3), so ``|d| >= eta_i``. Arithmetic is float64, like the complex128 of the eager backends;
the exported graph's sequence length stays symbolic (one ``Scan`` node, not an unrolled
loop). Not for training: N sequential steps, no custom backward (autograd through the op is
torch's).

Why not the chunked ``torch_scan`` or the naive loop: both are Python loops that
``torch.export`` unrolls at the example's length (a graph of O(N) or O(sqrt N) nodes fixed to
one N, with complex intermediates ONNX cannot hold).
"""

from __future__ import annotations

import torch

__all__ = ["bk_scan_real", "bk_step_real"]

_F64 = torch.float64


def _step(carry: tuple[torch.Tensor, torch.Tensor], x: tuple[torch.Tensor, ...]
          ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """One recurrence step on (B, C) slices: carry (Re g, Im g), x (Re alpha, Im alpha, beta)."""
    g_re, g_im = carry
    a_re, a_im, beta = x
    d_re = a_re - beta * g_re
    d_im = a_im - beta * g_im
    inv = (d_re * d_re + d_im * d_im).reciprocal()
    n_re, n_im = d_re * inv, -d_im * inv
    return (n_re, n_im), (n_re.clone(), n_im.clone())  # outputs may not alias the carry


def bk_scan_real(v: torch.Tensor, lam: torch.Tensor, eta: torch.Tensor, b: torch.Tensor,
                 g0_re: torch.Tensor | None = None, g0_im: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal BK scan ``(Re g, Im g)``, each (B, N, C) float64, by the ``scan`` HOP.

    Parameters
    ----------
    v : (B, N, C) real tensor
    lam : (C,) real tensor
    eta : (C,) or (B, N, C) real tensor, ``eta > 0`` (not checked: this is traced code)
    b : (C,) or (B, N, C) real tensor
    g0_re, g0_im : (B, C) real tensors, optional
        The initial state g_0 (default 0).

    Returns
    -------
    (g_re, g_im) : (B, N, C) float64 tensors, equal to :func:`~bkmodel.ops.bk_scan.bk_scan`'s
    outputs computed in float64 up to rounding (a few ulp).
    """
    vd = v.to(_F64)
    a_re = (vd - lam.to(_F64)).transpose(0, 1)  # (N, B, C)
    a_im = torch.zeros_like(vd).sub(eta.to(_F64)).transpose(0, 1)  # -eta, broadcast (N, B, C)
    beta = torch.zeros_like(vd).add(b.to(_F64).square()).transpose(0, 1)  # (N, B, C)
    if g0_re is None:
        g0_re = vd.new_zeros(v.shape[0], v.shape[2])
        g0_im = vd.new_zeros(v.shape[0], v.shape[2])
    from torch._higher_order_ops.scan import scan

    _, (g_re, g_im) = scan(_step, (g0_re.to(_F64).contiguous(), g0_im.to(_F64).contiguous()),
                           (a_re.contiguous(), a_im.contiguous(), beta.contiguous()))
    return g_re.transpose(0, 1), g_im.transpose(0, 1)  # (B, N, C)


def bk_step_real(v_t: torch.Tensor, lam: torch.Tensor, eta: torch.Tensor, b: torch.Tensor,
                 g_re: torch.Tensor, g_im: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step ``g_t = 1/(v_t - lam - i eta - b**2 g_{t-1})`` on (Re, Im) pairs.

    The real form of :func:`~bkmodel.ops.bk_scan.torch_scan.bk_step`: ``v_t`` (B, C);
    ``lam`` (C,); ``eta``, ``b`` (C,) or (B, C); ``g_re``, ``g_im`` (B, C) the previous state
    (zeros for g_0 = 0: ``1/alpha``). Returns the new state, float64.
    """
    a_re = v_t.to(_F64) - lam.to(_F64)
    a_im = -eta.to(_F64)
    (n_re, n_im), _ = _step((g_re.to(_F64), g_im.to(_F64)), (a_re, a_im, b.to(_F64).square()))
    return n_re, n_im
