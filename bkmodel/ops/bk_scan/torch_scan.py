"""Chunked BK scan in plain torch with the exact analytic (adjoint) backward.

Forward (docs/conventions.md §3; ``README.md`` in this folder has the derivation)::

    g_0 (0 or the initial state),   g_i = 1 / (alpha_i - beta_i g_{i-1}),
    alpha_i = v_i - lam_c - i eta_i,   beta_i = b_i**2,

with ``eta``, ``b`` per channel (C,) (then eta_i = eta_c, beta_i = b_c**2) or per token
(B, N, C) (the selective scan; b_i links sites i-1 and i). Each step is the Möbius map of
``M_i = [[0, 1], [-beta_i, alpha_i]]``; a product of such matrices maps the value entering
a chunk to the value leaving it. The sequence (length N) is cut into K chunks of length L
and the scan runs in three passes, each a loop whose every step is one vectorised op over
(batch, chunk, channel):

1. per chunk, the 2×2 product ``P_k = M_{kL+L} ... M_{kL+1}`` (L steps, rows renormalised
   every 4 steps — only the Möbius map matters, not the scale);
2. the carries ``s_{k+1} = P_k(s_k)``, ``s_0 = g_0`` (K steps over (batch, channel));
3. the exact recurrence inside every chunk from its carry (L steps).

Backward: with ``G_i = dL/dRe g_i + i dL/dIm g_i`` (torch's convention for the gradient of
a real loss with respect to a complex value), the adjoint ``Gt_i`` (total gradient on g_i)
is the *linear* backward recurrence ``Gt_i = G_i + conj(beta_{i+1} g_{i+1}^2) Gt_{i+1}``. It
is solved chunkwise (local solution and transfer factor per chunk, L steps; carries, K
steps; one broadcast to combine), then, with ``Ga_i = -Gt_i conj(g_i^2)`` the gradient on
alpha_i,

    dL/dv_i = Re Ga_i,   dL/dlam_c = -sum Re Ga,   dL/deta_i = -Im Ga_i,
    dL/db_i = -2 b_i Re(Ga_i conj(g_{i-1})),   dL/dg_0 = conj(beta_1 g_1^2) Gt_1 = -beta_1 Ga_1,

per token (summed over batch and positions for (C,) parameters).

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

from bkmodel.ops.bk_scan._validate import check_scan_args

__all__ = ["bk_scan_torch", "bk_step", "default_chunk"]


def default_chunk(n: int) -> int:
    """Chunk length L minimising the forward's sequential depth 2L + ceil(n/L)."""
    return max(1, round(math.sqrt(n / 2.0)))


def _as_complex(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float64).to(torch.complex128)


_RENORM_EVERY = 4  # growth per step <= |alpha| + |beta|: 4 steps stay far inside float64


def _chunked(t: torch.Tensor, pad: int, fill: float, K: int, L: int) -> torch.Tensor:
    """A per-token (B, N, C) tensor padded with ``fill`` to (B, K, L, C); a (C,) one as is."""
    if t.ndim == 1:
        return t
    B, _, C = t.shape
    if pad:
        t = torch.cat([t, t.new_full((B, pad, C), fill)], dim=1)
    return t.view(B, K, L, C)


def _forward(ar: torch.Tensor, eta: torch.Tensor, beta: torch.Tensor, chunk: int,
             g0: torch.Tensor | None = None) -> torch.Tensor:
    """g (B, N, C) complex128, chunked (see module doc).

    ``ar = v - lam`` (B, N, C); ``eta`` and ``beta = b**2``, each (C,) or (B, N, C); all
    float64; so ``alpha = ar - i eta``. ``g0``: (B, C) complex128 or None (zero). Pass 1
    (chunk maps) and the carries use complex products; pass 3 is written in real
    arithmetic — complex ``reciprocal`` / ``abs`` are several times slower than the
    equivalent real ops on CPU::

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
    e4 = _chunked(eta, pad, 1.0, K, L)  # (C,) or (B, K, L, C)
    b4 = _chunked(beta, pad, 0.0, K, L)
    if K > 1:
        # the last map is unused
        if e4.ndim == 1:
            ac = torch.complex(a[:, :-1], (-eta).expand_as(a[:, :-1]))
        else:
            ac = torch.complex(a[:, :-1], -e4[:, :-1])
        one = torch.ones(B, K - 1, C, dtype=ac.dtype, device=ac.device)
        p00, p01 = one, torch.zeros_like(one)
        p10, p11 = torch.zeros_like(one), one
        for j in range(L):
            aj = ac[:, :, j]  # (B, K-1, C)
            bj = beta if b4.ndim == 1 else b4[:, :-1, j]
            n10 = aj * p10 - bj * p00
            n11 = aj * p11 - bj * p01
            p00, p01, p10, p11 = p10, p11, n10, n11
            if j % _RENORM_EVERY == _RENORM_EVERY - 1:  # only the Möbius map matters
                s = (n10.real.abs() + n10.imag.abs() + n11.real.abs() + n11.imag.abs())
                s = s.reciprocal_()
                p00, p01, p10, p11 = p00 * s, p01 * s, p10 * s, p11 * s
        carry = [torch.zeros(B, C, dtype=ac.dtype, device=ac.device) if g0 is None else g0]
        s_k = carry[0]
        for k in range(K - 1):
            s_k = (p00[:, k] * s_k + p01[:, k]) / (p10[:, k] * s_k + p11[:, k])
            carry.append(s_k)
        start = torch.stack(carry, dim=1)  # (B, K, C)
        gr, gi = start.real.contiguous(), start.imag.contiguous()
    elif g0 is None:
        gr = ar.new_zeros(B, 1, C)
        gi = ar.new_zeros(B, 1, C)
    else:
        gr = g0.real.reshape(B, 1, C).contiguous()
        gi = g0.imag.reshape(B, 1, C).contiguous()
    out_r = ar.new_empty(B, K, L, C)
    out_i = ar.new_empty(B, K, L, C)
    for j in range(L):  # results written in place (out=): no copies, no stacking
        bj = beta if b4.ndim == 1 else b4[:, :, j]
        ej = eta if e4.ndim == 1 else e4[:, :, j]
        x = torch.addcmul(a[:, :, j], bj, gr, value=-1.0)
        y = torch.addcmul(ej, bj, gi)
        inv = torch.addcmul(x * x, y, y).reciprocal_()
        gr = torch.mul(x, inv, out=out_r[:, :, j])
        gi = torch.mul(y, inv, out=out_i[:, :, j])
    return torch.complex(out_r, out_i).view(B, K * L, C)[:, :N]  # (B, N, C)


def _adjoint(grad_re: torch.Tensor, grad_im: torch.Tensor, gsq: torch.Tensor,
             beta: torch.Tensor, chunk: int) -> torch.Tensor:
    """Total gradient Gt on g: Gt_i = G_i + conj(beta_{i+1} g_{i+1}^2) Gt_{i+1}, Gt_N = G_N.

    ``G = grad_re + i grad_im`` (B, N, C); ``gsq = g**2`` (B, N, C) complex; ``beta`` (C,)
    or (B, N, C).
    """
    B, N, C = grad_re.shape
    L = max(1, min(chunk, N))
    K = -(-N // L)
    buf = grad_re.new_zeros(B, K * L, C, 2, dtype=torch.float64)  # zero-padded G
    buf[:, :N, :, 0] = grad_re
    buf[:, :N, :, 1] = grad_im
    Gc = torch.view_as_complex(buf).view(B, K, L, C)
    # coef_i = conj(beta_{i+1} g_{i+1}^2) links position i to i+1; zero from position N on
    coef = torch.zeros(B, K * L, C, dtype=gsq.dtype, device=gsq.device)
    beta_next = beta if beta.ndim == 1 else beta[:, 1:]
    coef[:, : N - 1] = (beta_next * gsq[:, 1:]).conj()
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
    def forward(ctx, v, lam, eta, b, g0_re, g0_im, chunk):  # type: ignore[override]
        d = torch.float64
        ar = v.to(d) - lam.to(d)  # (B, N, C): alpha = ar - i eta
        g0 = None if g0_re is None else torch.complex(g0_re.to(d), g0_im.to(d))  # (B, C)
        g = _forward(ar, eta.to(d), b.to(d).square(), chunk, g0)  # (B, N, C) complex128
        ctx.save_for_backward(g, b, g0)
        ctx.chunk = chunk
        ctx.eta_tok = eta.ndim == 3
        ctx.dtypes = (v.dtype, lam.dtype, eta.dtype, b.dtype,
                      None if g0_re is None else g0_re.dtype)
        out = torch.promote_types(v.dtype, torch.float32)
        return g.real.to(out), g.imag.to(out)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_re, grad_im):  # type: ignore[override]
        g, b, g0 = ctx.saved_tensors
        vd, ld, ed, bd, sd = ctx.dtypes
        beta = b.to(torch.float64).square()  # real, (C,) or (B, N, C)
        gsq = g * g  # (complex pow is slow on CPU)
        Gt = _adjoint(grad_re, grad_im, gsq, beta, ctx.chunk)
        Ga = -Gt * gsq.conj()  # gradient on alpha_i = v_i - lam - i eta_i
        gv = gl = ge = gb = gs_re = gs_im = None
        need = ctx.needs_input_grad
        if need[0]:
            gv = Ga.real.to(vd)
        if need[1]:
            gl = (-Ga.real.sum(dim=(0, 1))).to(ld)
        if need[2]:
            ge = (-Ga.imag if ctx.eta_tok else -Ga.imag.sum(dim=(0, 1))).to(ed)
        if need[3]:
            # d g_i / d beta_i = g_i^2 g_{i-1}: dL/dbeta_i = -Re(Ga_i conj(g_{i-1}))
            prod = (Ga[:, 1:] * g[:, :-1].conj()).real  # (B, N-1, C), positions 2..N
            first = None if g0 is None else (Ga[:, 0] * g0.conj()).real  # position 1
            if b.ndim == 1:
                dbeta = -prod.sum(dim=(0, 1))  # (C,)
                if first is not None:
                    dbeta = dbeta - first.sum(dim=0)
            else:
                dbeta = torch.zeros_like(beta)
                dbeta[:, 1:] = -prod
                if first is not None:
                    dbeta[:, 0] = -first
            gb = (2.0 * b.to(torch.float64) * dbeta).to(bd)
        if g0 is not None and (need[4] or need[5]):
            dg0 = -(beta if beta.ndim == 1 else beta[:, 0]) * Ga[:, 0]  # (B, C) complex
            gs_re, gs_im = dg0.real.to(sd), dg0.imag.to(sd)
        return gv, gl, ge, gb, gs_re, gs_im, None


def _bk_scan_torch(v, lam, eta, b, chunk, initial_state):
    """:func:`bk_scan_torch` without the argument checks (the dispatcher has done them)."""
    n = v.shape[1]
    L = default_chunk(n) if chunk is None else int(chunk)
    if n == 0:
        empty = torch.empty(v.shape, dtype=torch.promote_types(v.dtype, torch.float32),
                            device=v.device)
        return empty, empty.clone()
    g0_re = g0_im = None
    if initial_state is not None:
        g0_re, g0_im = initial_state.real, initial_state.imag  # autograd maps their grads back
    return _BKScan.apply(v, lam, eta, b, g0_re, g0_im, L)


def bk_scan_torch(
    v: torch.Tensor,
    lam: torch.Tensor,
    eta: torch.Tensor,
    b: torch.Tensor,
    *,
    chunk: int | None = None,
    initial_state: torch.Tensor | None = None,
    validate: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal BK scan ``g_i = [(H_{1..i} - lam - i Gamma_{1..i})^{-1}]_{ii}``, chunked, with
    exact backward.

    Same mathematics as :func:`bkmodel.ops.bk_scan.naive.bk_scan_naive`:
    ``g_i = 1/(v_i - lam_c - i eta_i - b_i**2 g_{i-1})`` from ``g_0`` (0 or
    ``initial_state``), with eta and b per channel or per token.

    Parameters
    ----------
    v : (B, N, C) real tensor
        Potentials (diagonal of the Jacobi matrix of each chain).
    lam : (C,) real tensor
        Re z per channel.
    eta : (C,) or (B, N, C) real tensor
        Im z per channel or the absorption per token, ``> 0`` (a ``ValueError`` otherwise);
        then ``Im g > 0`` and ``|g_i| <= 1/eta_i``.
    b : (C,) or (B, N, C) real tensor
        Hopping per channel, or per token (``b[:, i]`` links sites i-1 and i).
    chunk : int, optional
        Chunk length L (default :func:`default_chunk`, about sqrt(N/2)).
    initial_state : (B, C) complex tensor, optional
        g_0 (default 0), ``Im g_0 >= 0``; differentiable.
    validate : bool, optional
        Check values (``eta > 0``, finite parameters): None (default) for CPU tensors only,
        True always (a host sync on CUDA), False never. Shapes are always checked
        (``bkmodel/ops/bk_scan/_validate.py``).

    Returns
    -------
    (g_re, g_im) : two (B, N, C) tensors, float32 (float64 for float64 ``v``).

    Notes
    -----
    Work O(B·N·C), sequential depth 2L + N/L forward and L + N/L backward. Gradients for
    v, lam, eta, b and the initial state come from the adjoint linear recurrence (module
    docstring), not from autograd through the loop; per-token eta and b get per-token
    gradients, per-channel ones the sums over batch and positions.

    Examples
    --------
    >>> import torch
    >>> v = torch.zeros(1, 3, 1, dtype=torch.float64)
    >>> one = torch.ones(1, dtype=torch.float64)
    >>> g_re, g_im = bk_scan_torch(v, 0 * one, one, one)
    >>> complex(g_re[0, 0, 0], g_im[0, 0, 0])  # 1 / (0 - i)
    1j
    """
    check_scan_args(v, lam, eta, b, initial_state=initial_state, chunk=chunk, values=validate)
    return _bk_scan_torch(v, lam, eta, b, chunk, initial_state)


def bk_step(
    v_t: torch.Tensor,
    lam: torch.Tensor,
    eta: torch.Tensor,
    b: torch.Tensor,
    g_prev: torch.Tensor | None,
) -> torch.Tensor:
    """One step of the causal recurrence, for incremental decoding with O(1) state.

    ``g_t = 1/(v_t - lam - i eta - b**2 g_prev)`` (``g_prev = None``: g_0 = 0 at the first
    position). ``v_t`` is (B, C) real; ``lam`` (C,); ``eta`` and ``b`` (C,) (per channel) or
    (B, C) (per token: this position's absorption and its hopping to the previous site).
    Returns complex128 (B, C), the state to carry to the next step. O(B·C).
    """
    z = torch.complex(lam.to(torch.float64).expand(eta.shape), eta.to(torch.float64))
    alpha = _as_complex(v_t) - z
    if g_prev is None:
        return alpha.reciprocal()
    return (alpha - _as_complex(b).square() * g_prev).reciprocal()
