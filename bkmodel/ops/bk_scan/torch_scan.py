"""Chunked BK scan in plain torch with the exact analytic (adjoint) backward.

Forward (design.md §3; ``README.md`` in this folder has the derivation)::

    g_0 = 0,   g_i = 1 / (alpha_i - beta * g_{i-1}),   alpha_i = v_i - z_c,   beta = b_c**2.

Each step is the Möbius map of ``M_i = [[0, 1], [-beta, alpha_i]]``; a product of such
matrices maps the value entering a chunk to the value leaving it. The sequence (length N)
is cut into K chunks of length L and the scan runs in three passes, each a loop whose
every step is one vectorised op over (batch, chunk, channel):

1. per chunk, the 2×2 product ``P_k = M_{kL+L} ... M_{kL+1}`` (L steps, rows renormalised
   at every step — only the Möbius map matters, not the scale);
2. the carries ``s_{k+1} = P_k(s_k)``, ``s_0 = 0`` (K steps over (batch, channel));
3. the exact recurrence inside every chunk from its carry (L steps).

Backward: with ``G_i = dL/dRe g_i + i dL/dIm g_i`` (torch's convention for the gradient of
a real loss with respect to a complex value), the adjoint ``Gt_i`` (total gradient on g_i)
is the *linear* backward recurrence ``Gt_i = G_i + conj(beta g_{i+1}^2) Gt_{i+1}``. It is
solved chunkwise (local solution and transfer factor per chunk, L steps; carries, K steps;
one broadcast to combine), then

    dL/dv_i   = Re Ga_i,     Ga_i = -Gt_i conj(g_i^2)     (the gradient on alpha_i)
    dL/dlam_c = -sum Re Ga,  dL/deta_c = -sum Im Ga,
    dL/db_c   = 2 b_c * sum_i Re(conj(Gt_i) g_i^2 g_{i-1}).

Sequential depth: 2L + K forward, L + K backward (L ~ sqrt(N/2)) instead of N; total work
O(B·N·C). Internally the arithmetic is complex128 (the outputs are cast to float32 for
float32 input): on CPU the cost is dominated by per-op overhead at training sizes, and
float64 keeps the chunk products and the adjoint accurate in stiff cases (eta ~ 1e-4,
large potentials) where float32 Möbius products lose digits.
"""

from __future__ import annotations

import math

import torch

__all__ = ["bk_scan_torch", "bk_step", "default_chunk"]


def default_chunk(n: int) -> int:
    """Chunk length L minimising the forward's sequential depth 2L + ceil(n/L)."""
    return max(1, round(math.sqrt(n / 2.0)))


def _as_complex(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float64).to(torch.complex128)


def _forward(alpha: torch.Tensor, beta: torch.Tensor, chunk: int) -> torch.Tensor:
    """g (B, N, C) complex from alpha (B, N, C) and beta (C,), chunked (see module doc)."""
    B, N, C = alpha.shape
    L = max(1, min(chunk, N))
    K = -(-N // L)
    pad = K * L - N
    if pad:
        alpha = torch.cat([alpha, alpha.new_ones(B, pad, C)], dim=1)
    a = alpha.view(B, K, L, C)  # (B, K, L, C)
    if K > 1:
        ac = a[:, :-1]  # the last chunk's map is never needed
        one = torch.ones(B, K - 1, C, dtype=alpha.dtype, device=alpha.device)
        p00, p01 = one, torch.zeros_like(one)
        p10, p11 = torch.zeros_like(one), one
        for j in range(L):
            aj = ac[:, :, j]  # (B, K-1, C)
            n10 = aj * p10 - beta * p00
            n11 = aj * p11 - beta * p01
            s = (n10.abs() + n11.abs()).reciprocal_()  # renormalise (the map is unchanged)
            p00, p01 = p10 * s, p11 * s
            p10, p11 = n10 * s, n11 * s
        carry = [torch.zeros(B, C, dtype=alpha.dtype, device=alpha.device)]
        s_k = carry[0]
        for k in range(K - 1):
            s_k = (p00[:, k] * s_k + p01[:, k]) / (p10[:, k] * s_k + p11[:, k])
            carry.append(s_k)
        g = torch.stack(carry, dim=1)  # (B, K, C)
    else:
        g = torch.zeros(B, 1, C, dtype=alpha.dtype, device=alpha.device)
    out = []
    for j in range(L):
        g = (a[:, :, j] - beta * g).reciprocal()
        out.append(g)
    return torch.stack(out, dim=2).view(B, K * L, C)[:, :N]  # (B, N, C)


def _adjoint(G: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, chunk: int) -> torch.Tensor:
    """Total gradient Gt on g: Gt_i = G_i + conj(beta g_{i+1}^2) Gt_{i+1}, Gt_N = G_N."""
    B, N, C = G.shape
    L = max(1, min(chunk, N))
    K = -(-N // L)
    pad = K * L - N
    coef = torch.zeros(B, K * L, C, dtype=G.dtype, device=G.device)
    coef[:, : N - 1] = (beta * g[:, 1:].square()).conj()  # links position i to i+1
    if pad:
        G = torch.cat([G, G.new_zeros(B, pad, C)], dim=1)
    Gc = G.view(B, K, L, C)
    cc = coef.view(B, K, L, C)
    loc = torch.zeros(B, K, C, dtype=G.dtype, device=G.device)
    q = torch.ones_like(loc)
    locs: list[torch.Tensor] = [loc] * L
    qs: list[torch.Tensor] = [q] * L
    for j in reversed(range(L)):  # local solution with nothing entering from the right
        cj = cc[:, :, j]
        loc = Gc[:, :, j] + cj * loc
        q = cj * q
        locs[j], qs[j] = loc, q
    loc_all = torch.stack(locs, dim=2)  # (B, K, L, C)
    q_all = torch.stack(qs, dim=2)  # (B, K, L, C): d g_(first of next chunk) / d g_j
    X = [torch.zeros(B, C, dtype=G.dtype, device=G.device)]  # Gt at the next chunk's start
    for k in range(K - 1, 0, -1):
        X.append(loc_all[:, k, 0] + q_all[:, k, 0] * X[-1])
    Xs = torch.stack(X[::-1], dim=1)  # (B, K, C)
    Gt = loc_all + q_all * Xs[:, :, None]
    return Gt.view(B, K * L, C)[:, :N]


class _BKScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, lam, eta, b, chunk):  # type: ignore[override]
        z = torch.complex(lam.to(torch.float64), eta.to(torch.float64))  # (C,)
        beta = _as_complex(b).square()  # (C,)
        g = _forward(_as_complex(v) - z, beta, chunk)  # (B, N, C) complex128
        ctx.save_for_backward(g, b)
        ctx.chunk = chunk
        ctx.dtypes = (v.dtype, lam.dtype, eta.dtype, b.dtype)
        out = torch.promote_types(v.dtype, torch.float32)
        return g.real.to(out), g.imag.to(out)

    @staticmethod
    def backward(ctx, grad_re, grad_im):  # type: ignore[override]
        g, b = ctx.saved_tensors
        vd, ld, ed, bd = ctx.dtypes
        G = torch.complex(grad_re.to(torch.float64), grad_im.to(torch.float64))
        beta = _as_complex(b).square()
        Gt = _adjoint(G, g, beta, ctx.chunk)
        Ga = -Gt * g.square().conj()  # gradient on alpha_i = v_i - z
        gv = gl = ge = gb = None
        if ctx.needs_input_grad[0]:
            gv = Ga.real.to(vd)
        if ctx.needs_input_grad[1]:
            gl = (-Ga.real.sum(dim=(0, 1))).to(ld)
        if ctx.needs_input_grad[2]:
            ge = (-Ga.imag.sum(dim=(0, 1))).to(ed)
        if ctx.needs_input_grad[3]:
            gprev = torch.cat([torch.zeros_like(g[:, :1]), g[:, :-1]], dim=1)
            dbeta = -(Ga * gprev.conj()).real.sum(dim=(0, 1))  # (C,)
            gb = (2.0 * b.to(torch.float64) * dbeta).to(bd)
        return gv, gl, ge, gb, None


def bk_scan_torch(
    v: torch.Tensor,
    lam: torch.Tensor,
    eta: torch.Tensor,
    b: torch.Tensor,
    *,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal BK scan ``g_i = [(H_{1..i} - z_c)^{-1}]_{ii}``, chunked, with exact backward.

    Same mathematics and signature as :func:`bkmodel.ops.bk_scan.naive.bk_scan_naive`:
    ``g_1 = 1/(v_1 - z_c)``, ``g_i = 1/(v_i - z_c - b_c**2 g_{i-1})``, ``z_c = lam_c + i eta_c``.

    Parameters
    ----------
    v : (B, N, C) real tensor
        Potentials (diagonal of the Jacobi matrix of each chain).
    lam, eta : (C,) real tensors
        Spectral parameter ``z_c = lam_c + i eta_c``; the Herglotz bounds
        ``Im g > 0``, ``|g| <= 1/eta_c`` need ``eta_c > 0`` (checked by :func:`bk_scan`).
    b : (C,) real tensor
        Hopping of each channel.
    chunk : int, optional
        Chunk length L (default :func:`default_chunk`, about sqrt(N/2)).

    Returns
    -------
    (g_re, g_im) : two (B, N, C) tensors, float32 (float64 for float64 ``v``).

    Notes
    -----
    Work O(B·N·C), sequential depth 2L + N/L forward and L + N/L backward. Gradients for
    v, lam, eta and b come from the adjoint linear recurrence (module docstring), not from
    autograd through the loop.

    Examples
    --------
    >>> import torch
    >>> v = torch.zeros(1, 3, 1, dtype=torch.float64)
    >>> one = torch.ones(1, dtype=torch.float64)
    >>> g_re, g_im = bk_scan_torch(v, 0 * one, one, one)
    >>> complex(g_re[0, 0, 0], g_im[0, 0, 0])  # 1 / (0 - i)
    1j
    """
    n = v.shape[1]
    L = default_chunk(n) if chunk is None else int(chunk)
    if L < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if n == 0:
        empty = torch.empty(v.shape, dtype=torch.promote_types(v.dtype, torch.float32))
        return empty, empty.clone()
    return _BKScan.apply(v, lam, eta, b, L)


def bk_step(
    v_t: torch.Tensor,
    lam: torch.Tensor,
    eta: torch.Tensor,
    b: torch.Tensor,
    g_prev: torch.Tensor | None,
) -> torch.Tensor:
    """One step of the causal recurrence, for incremental decoding with O(1) state.

    ``g_t = 1/(v_t - z_c - b_c**2 g_prev)`` (``g_prev = None`` at the first position).
    ``v_t`` is (B, C) real; returns complex128 (B, C), the state to carry to the next step.
    """
    z = torch.complex(lam.to(torch.float64), eta.to(torch.float64))
    alpha = _as_complex(v_t) - z
    if g_prev is None:
        return alpha.reciprocal()
    return (alpha - _as_complex(b).square() * g_prev).reciprocal()
