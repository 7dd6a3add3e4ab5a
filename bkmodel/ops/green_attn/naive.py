"""Reference (sequential) Green's-function attention — the oracle of ``chunk.py``.

For one BK chain (per batch row and head) with diagonal Green's functions ``g_i`` and hoppings
``b_i`` of the dissipative Jacobi operator ``H = tridiag(b, v, b) - i Gamma`` (see
:class:`bkmodel.model.GreenBKLayer`), the entries of the truncated resolvent below the
diagonal are products (docs/theory.md, "Green's-function attention")::

    G(i, j) = [(H_{1..i} - lam)^{-1}]_{ij} = g_j * prod_{k=j+1..i} a_k,   a_k = -b_k g_k.

The layer's output is the chain's response at its end to matrix-valued sources
``s_j = k_j v_j^T`` read out by ``q_i``::

    y_i = q_i^T S_i,    S_i = sum_{j<=i} G(i, j) k_j v_j^T = a_i S_{i-1} + g_i k_i v_i^T.

This module runs that recurrence token by token: O(T * dk * dv) per head, sequential.
"""

from __future__ import annotations

import torch


def green_attention_naive(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    a: torch.Tensor,
    *,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``y_i = q_i^T S_i`` with ``S_i = a_i S_{i-1} + g_i k_i v_i^T`` (sequential reference).

    Parameters
    ----------
    q, k : Tensor (B, T, H, dk), real
    v : Tensor (B, T, H, dv), real
    g, a : Tensor (B, T, H), complex
        Diagonal Green's functions and transfer factors ``a_i = -b_i g_i`` of each head's
        chain (``a_i = 0`` restarts the chain at a document start).
    initial_state : Tensor (B, H, dk, dv), complex, optional
        ``S_0`` (zeros when None).

    Returns
    -------
    y : Tensor (B, T, H, dv), complex
    state : Tensor (B, H, dk, dv), complex — ``S_T``.

    Complexity O(B T H dk dv) time, O(B H dk dv) memory besides the output.
    """
    B, T, H, dk = q.shape
    dv = v.shape[-1]
    cdt = torch.promote_types(g.dtype, torch.complex64)
    S = (torch.zeros(B, H, dk, dv, dtype=cdt, device=q.device) if initial_state is None
         else initial_state.to(cdt))
    ys = []
    for i in range(T):
        kv = k[:, i, :, :, None].to(cdt) * v[:, i, :, None, :].to(cdt)  # (B, H, dk, dv)
        S = a[:, i, :, None, None].to(cdt) * S + g[:, i, :, None, None].to(cdt) * kv
        ys.append(torch.einsum("bhk,bhkv->bhv", q[:, i].to(cdt), S))
    return torch.stack(ys, dim=1), S
