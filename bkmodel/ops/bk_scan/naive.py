"""Naive reference for the causal BK scan: a sequential Python loop, differentiated by autograd.

The BK scan computes, for every batch b and channel c, the edge Green's function of the
leading i×i block of the Jacobi matrix H = tridiag(b_c, v, b_c):

    g_1 = 1 / (v_1 - z_c),        g_i = 1 / (v_i - z_c - b_c**2 * g_{i-1}),   i = 2..N,

i.e. g_i = [(H_{1..i} - z_c)^{-1}]_{ii} (design.md §3), with z_c = lam_c + i*eta_c, eta_c > 0.
It is causal (g_i depends on v_1..v_i only) and, for real v, b and Im z > 0, Herglotz:
Im g_i > 0 and |g_i| <= 1/eta_c.

This file is the readable ground truth for ``torch_scan.py`` and ``triton_scan.py``: it is
O(N) sequential Python steps, so use it only at small sizes (tests), never in training.
"""

from __future__ import annotations

import torch

__all__ = ["bk_scan_naive"]


def bk_scan_naive(
    v: torch.Tensor,
    lam: torch.Tensor,
    eta: torch.Tensor,
    b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal BK scan by a sequential loop in complex arithmetic.

    Parameters
    ----------
    v : (B, N, C) real tensor
        Diagonal of H (the potential plus whatever constant diagonal the model adds).
    lam, eta : (C,) real tensors
        z_c = lam_c + i eta_c; eta must be > 0.
    b : (C,) real tensor
        Hopping of channel c (H is real symmetric, off-diagonal b_c).

    Returns
    -------
    (g_re, g_im) : two (B, N, C) real tensors, dtype of ``v`` promoted to at least float32.
    """
    real = torch.promote_types(v.dtype, torch.float32)
    cplx = torch.complex128 if real == torch.float64 else torch.complex64
    z = torch.complex(lam.to(real), eta.to(real)).to(cplx)  # (C,)
    beta = (b.to(real) ** 2).to(cplx)  # (C,)
    vc = v.to(real).to(cplx)
    gs = []
    g = None
    for i in range(v.shape[1]):
        alpha = vc[:, i, :] - z  # (B, C)
        g = 1.0 / alpha if g is None else 1.0 / (alpha - beta * g)
        gs.append(g)
    out = torch.stack(gs, dim=1)  # (B, N, C)
    return out.real.contiguous(), out.imag.contiguous()
