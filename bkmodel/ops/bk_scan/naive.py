"""Naive reference for the causal BK scan: a sequential Python loop, differentiated by autograd.

The BK scan computes, for every batch row and channel c, the edge Green's function of the
leading i×i block of a (dissipative) Jacobi matrix. With per-channel parameters
(``eta``, ``b`` of shape (C,)) it is H = tridiag(b_c, v, b_c) at z_c = lam_c + i*eta_c:

    g_0 = 0,   g_i = 1 / (v_i - z_c - b_c**2 * g_{i-1}),   i = 1..N,

i.e. g_i = [(H_{1..i} - z_c)^{-1}]_{ii} (docs/conventions.md §3). With per-token parameters
(``eta``, ``b`` of shape (B, N, C): the selective scan) the absorption and the hopping vary
along the chain,

    alpha_i = v_i - lam_c - i*eta_i,   beta_i = b_i**2,   g_i = 1 / (alpha_i - beta_i g_{i-1}),

i.e. g_i = [(H_{1..i} - lam - i*Gamma_{1..i})^{-1}]_{ii} with H = tridiag(b, v, b), b_i the
hopping between sites i-1 and i (so b_1 acts only on the initial state g_0, which is 0
unless ``initial_state`` is given) and Gamma = diag(eta_i) > 0. It is causal (g_i depends on
the inputs at positions 1..i only) and, for real v, b, eta > 0 and Im g_0 >= 0, Herglotz:
Im g_i > 0 and |g_i| <= 1/eta_i, token by token.

This file is the readable ground truth for ``torch_scan.py`` and ``triton_scan.py``: it is
O(N) sequential Python steps, so use it only at small sizes (tests), never in training. It
does not check its arguments (:func:`bkmodel.ops.bk_scan.bk_scan` does).
"""

from __future__ import annotations

import torch

__all__ = ["bk_scan_naive"]


def bk_scan_naive(
    v: torch.Tensor,
    lam: torch.Tensor,
    eta: torch.Tensor,
    b: torch.Tensor,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal BK scan by a sequential loop in complex arithmetic.

    Parameters
    ----------
    v : (B, N, C) real tensor
        Diagonal of H (the potential plus whatever constant diagonal the model adds).
    lam : (C,) real tensor
        Re z per channel.
    eta : (C,) or (B, N, C) real tensor
        Im z per channel, or the absorption eta_i per token; must be > 0.
    b : (C,) or (B, N, C) real tensor
        Hopping per channel (H real symmetric, off-diagonal b_c), or per token: ``b[:, i]``
        links sites i-1 and i.
    initial_state : (B, C) complex tensor, optional
        g_0 (default 0); Im g_0 >= 0 keeps the scan Herglotz. Differentiable (autograd).

    Returns
    -------
    (g_re, g_im) : two (B, N, C) real tensors, dtype of ``v`` promoted to at least float32.

    Notes
    -----
    O(B·N·C) work in N sequential Python steps; autograd gives every gradient.
    """
    real = torch.promote_types(v.dtype, torch.float32)
    cplx = torch.complex128 if real == torch.float64 else torch.complex64
    if eta.ndim == 1:
        z = torch.complex(lam.to(real), eta.to(real)).to(cplx)  # (C,)
    else:  # per token: alpha_i = v_i - (lam + i eta_i)
        z = torch.complex(lam.to(real).expand(eta.shape), eta.to(real)).to(cplx)  # (B, N, C)
    beta = (b.to(real) ** 2).to(cplx)  # (C,) or (B, N, C)
    vc = v.to(real).to(cplx)
    gs = []
    g = None if initial_state is None else initial_state.to(cplx)  # (B, C)
    for i in range(v.shape[1]):
        alpha = vc[:, i, :] - (z if z.ndim == 1 else z[:, i])  # (B, C)
        beta_i = beta if beta.ndim == 1 else beta[:, i]
        g = 1.0 / alpha if g is None else 1.0 / (alpha - beta_i * g)
        gs.append(g)
    if not gs:
        empty = v.new_empty(v.shape, dtype=real)
        return empty, empty.clone()
    out = torch.stack(gs, dim=1)  # (B, N, C)
    return out.real.contiguous(), out.imag.contiguous()
