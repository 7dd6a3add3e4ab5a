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
from torch.autograd.function import once_differentiable

__all__ = ["bk_scan_torch", "bk_step", "default_chunk"]


def default_chunk(n: int) -> int:
    """Chunk length L minimising the forward's sequential depth 2L + ceil(n/L)."""
    return max(1, round(math.sqrt(n / 2.0)))


def _as_complex(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float64).to(torch.complex128)


_RENORM_EVERY = 4  # growth per step <= |alpha| + |beta|: 4 steps stay far inside float64


def _forward(ar: torch.Tensor, eta: torch.Tensor, beta: torch.Tensor, chunk: int) -> torch.Tensor:
    """g (B, N, C) complex128, chunked (see module doc).

    ``ar = v - lam`` (B, N, C), ``eta`` and ``beta = b**2`` (C,), all float64; so
    ``alpha = ar - i eta``. Pass 1 (chunk maps) and the carries use complex products;
    pass 3 is written in real arithmetic — complex ``reciprocal`` / ``abs`` are several
    times slower than the equivalent real ops on CPU::

        d = alpha - beta g = x - i y,  x = ar - beta Re g,  y = eta + beta Im g
        g_new = 1/d = (x + i y) / (x^2 + y^2)
    """
    B, N, C = ar.shape
    L = max(1, min(chunk, N))
    K = -(-N // L)
    pad = K * L - N
    if pad:
        ar = torch.cat([ar, ar.new_ones(B, pad, C)], dim=1)
    a = ar.view(B, K, L, C)  # (B, K, L, C)
    if K > 1:
        ac = torch.complex(a[:, :-1], (-eta).expand_as(a[:, :-1]))  # the last map is unused
        one = torch.ones(B, K - 1, C, dtype=ac.dtype, device=ac.device)
        p00, p01 = one, torch.zeros_like(one)
        p10, p11 = torch.zeros_like(one), one
        for j in range(L):
            aj = ac[:, :, j]  # (B, K-1, C)
            n10 = aj * p10 - beta * p00
            n11 = aj * p11 - beta * p01
            p00, p01, p10, p11 = p10, p11, n10, n11
            if j % _RENORM_EVERY == _RENORM_EVERY - 1:  # only the Möbius map matters
                s = (n10.real.abs() + n10.imag.abs() + n11.real.abs() + n11.imag.abs())
                s = s.reciprocal_()
                p00, p01, p10, p11 = p00 * s, p01 * s, p10 * s, p11 * s
        carry = [torch.zeros(B, C, dtype=ac.dtype, device=ac.device)]
        s_k = carry[0]
        for k in range(K - 1):
            s_k = (p00[:, k] * s_k + p01[:, k]) / (p10[:, k] * s_k + p11[:, k])
            carry.append(s_k)
        start = torch.stack(carry, dim=1)  # (B, K, C)
        gr, gi = start.real.contiguous(), start.imag.contiguous()
    else:
        gr = ar.new_zeros(B, 1, C)
        gi = ar.new_zeros(B, 1, C)
    out_r = ar.new_empty(B, K, L, C)
    out_i = ar.new_empty(B, K, L, C)
    for j in range(L):  # results written in place (out=): no copies, no stacking
        x = torch.addcmul(a[:, :, j], beta, gr, value=-1.0)
        y = torch.addcmul(eta, beta, gi)
        inv = torch.addcmul(x * x, y, y).reciprocal_()
        gr = torch.mul(x, inv, out=out_r[:, :, j])
        gi = torch.mul(y, inv, out=out_i[:, :, j])
    return torch.complex(out_r, out_i).view(B, K * L, C)[:, :N]  # (B, N, C)


def _adjoint(grad_re: torch.Tensor, grad_im: torch.Tensor, gsq: torch.Tensor,
             beta: torch.Tensor, chunk: int) -> torch.Tensor:
    """Total gradient Gt on g: Gt_i = G_i + conj(beta g_{i+1}^2) Gt_{i+1}, Gt_N = G_N.

    ``G = grad_re + i grad_im`` (B, N, C); ``gsq = g**2`` (B, N, C) complex; ``beta`` (C,).
    """
    B, N, C = grad_re.shape
    L = max(1, min(chunk, N))
    K = -(-N // L)
    buf = grad_re.new_zeros(B, K * L, C, 2, dtype=torch.float64)  # zero-padded G
    buf[:, :N, :, 0] = grad_re
    buf[:, :N, :, 1] = grad_im
    Gc = torch.view_as_complex(buf).view(B, K, L, C)
    # coef_i = conj(beta g_{i+1}^2) links position i to i+1; zero from position N on
    coef = torch.zeros(B, K * L, C, dtype=gsq.dtype, device=gsq.device)
    coef[:, : N - 1] = (beta * gsq[:, 1:]).conj()
    cc = coef.view(B, K, L, C)
    loc_all = torch.empty_like(Gc)  # local solution with nothing entering from the right
    q_all = torch.empty_like(Gc)  # d g_(first of next chunk) / d g_j
    loc = torch.zeros(B, K, C, dtype=Gc.dtype, device=Gc.device)
    q = torch.ones_like(loc)
    for j in reversed(range(L)):
        cj = cc[:, :, j]
        loc = torch.add(Gc[:, :, j], cj * loc, out=loc_all[:, :, j])
        q = torch.mul(cj, q, out=q_all[:, :, j])
    X = [torch.zeros(B, C, dtype=Gc.dtype, device=Gc.device)]  # Gt at the next chunk's start
    for k in range(K - 1, 0, -1):
        X.append(loc_all[:, k, 0] + q_all[:, k, 0] * X[-1])
    Xs = torch.stack(X[::-1], dim=1)  # (B, K, C)
    Gt = torch.addcmul(loc_all, q_all, Xs[:, :, None])
    return Gt.view(B, K * L, C)[:, :N]


class _BKScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, lam, eta, b, chunk):  # type: ignore[override]
        d = torch.float64
        ar = v.to(d) - lam.to(d)  # (B, N, C): alpha = ar - i eta
        g = _forward(ar, eta.to(d), b.to(d).square(), chunk)  # (B, N, C) complex128
        ctx.save_for_backward(g, b)
        ctx.chunk = chunk
        ctx.dtypes = (v.dtype, lam.dtype, eta.dtype, b.dtype)
        out = torch.promote_types(v.dtype, torch.float32)
        return g.real.to(out), g.imag.to(out)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_re, grad_im):  # type: ignore[override]
        g, b = ctx.saved_tensors
        vd, ld, ed, bd = ctx.dtypes
        beta = b.to(torch.float64).square()  # real (C,)
        gsq = g * g  # (complex pow is slow on CPU)
        Gt = _adjoint(grad_re, grad_im, gsq, beta, ctx.chunk)
        Ga = -Gt * gsq.conj()  # gradient on alpha_i = v_i - z
        gv = gl = ge = gb = None
        if ctx.needs_input_grad[0]:
            gv = Ga.real.to(vd)
        if ctx.needs_input_grad[1]:
            gl = (-Ga.real.sum(dim=(0, 1))).to(ld)
        if ctx.needs_input_grad[2]:
            ge = (-Ga.imag.sum(dim=(0, 1))).to(ed)
        if ctx.needs_input_grad[3]:
            # d g_i / d beta = g_i^2 g_{i-1} (g_0 = 0): sum over i >= 2
            dbeta = -(Ga[:, 1:] * g[:, :-1].conj()).real.sum(dim=(0, 1))  # (C,)
            gb = (2.0 * b.to(torch.float64) * dbeta).to(bd)
        return gv, gl, ge, gb, None


def _check_args(v, lam, eta, b) -> None:
    """TypeError / ValueError naming the argument; eta > 0 (Im z > 0) is required."""
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"v must be a torch.Tensor, got {type(v).__name__}")
    if v.ndim != 3:
        raise ValueError(f"v must have shape (B, N, C), got {tuple(v.shape)}")
    if not v.is_floating_point():
        raise TypeError(f"v must be a real floating tensor, got {v.dtype}")
    C = v.shape[2]
    for name, t in (("lam", lam), ("eta", eta), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a real floating tensor, got {t.dtype}")
        if t.shape != (C,):
            raise ValueError(f"{name} must have shape ({C},) to match v, got {tuple(t.shape)}")
    if C and not bool((eta > 0).all()):
        raise ValueError(f"eta must be > 0 (Im z > 0), got min {float(eta.min())}")


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
        Spectral parameter ``z_c = lam_c + i eta_c``, ``eta_c > 0`` (checked: a
        ``ValueError`` otherwise); then ``Im g > 0`` and ``|g| <= 1/eta_c``.
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
    _check_args(v, lam, eta, b)
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
