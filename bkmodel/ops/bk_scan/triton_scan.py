"""Triton kernels for the causal BK scan: forward, exact adjoint backward, fused certificates.

Mathematics (docs/conventions.md §3, ``naive.py``): for every batch row and channel c,

    g_0 (0 or the initial state),   g_i = 1 / (alpha_i - beta_i g_{i-1}),
    alpha_i = v_i - lam_c - i eta_i,   beta_i = b_i**2,

with eta and b per channel (eta_i = eta_c, beta_i = b_c**2: ``z_c = lam_c + i eta_c``) or,
in the selective scan, per token ((B, N, C) tensors; b_i links sites i-1 and i). g_i is the
Green's function at the right edge of the leading i×i block of ``tridiag(b, v, b) - lam -
i diag(eta)``. Complex numbers are carried as (re, im) pairs, the state in float32
registers (float64 for float64 input, which the tests use).

**Specialisations.** Every chunk kernel has a constexpr ``TOK``: off, the channel's eta and
beta = b**2 are loaded once per program (the per-channel kernels, unchanged); on, eta_i and
b_i are loaded with v row by row (prefetched a group ahead like v), b_i is squared in the
kernel (so the backward's recomputation repeats the forward's arithmetic), the bounds of
the fused counters are computed per token, and the backward writes deta_i and db_i instead
of summing them. A per-channel eta with a per-token b (or the reverse) is expanded to
(B, N, C) on the host. ``HAS_G0`` (carry and adjoint kernels; the forward kernel reads the
initial state as the value entering chunk 0): the initial state g_0 enters chunk 0, and the
adjoint leaving row 0, dL/dg_0 = -beta_1 A_1, is stored.

Forward, for a sequence cut into K chunks of length L (K = 1: one pass):

1. ``_fwd_chunk_map_kernel`` — each chunk's Möbius map ``g -> 1/(alpha - beta g)`` composed
   over the chunk, as the 2×2 product ``P = M_e ... M_s`` of ``M_i = [[0, 1], [-beta, alpha_i]]``
   (two complex columns, rescaled every 4 rows: only the map matters, not the scale; chunks
   of whole groups of 8 rows need no row masks);
2. ``_fwd_carry_kernel`` — the value entering each chunk, ``s_0 = 0``, ``s_{k+1} = P_k(s_k)``
   (K sequential steps per (batch, channel); the next four maps are loaded before the
   current four are applied);
3. ``_fwd_kernel`` — the exact recurrence inside every chunk from its entering value; writes
   ``Re g``, ``Im g`` and counts the runtime-certificate violations (non-finite values,
   ``Im g_i < -tol/eta_i``, ``|g_i| > (1 + tol)/eta_i``; docs/conventions.md §8) with one
   atomic add per program.

Backward: with ``G_i = dL/dRe g_i + i dL/dIm g_i`` (torch's convention for a real loss of a
complex value) the total gradient on g_i obeys the *linear* backward recurrence

    S_i = G_i + c_i,   A_i = -conj(g_i)^2 S_i   (the gradient on alpha_i),
    c_{i-1} = -beta_i A_i,

and ``dL/dv_i = Re A_i``, ``dL/dlam = -sum Re A_i``, ``dL/deta_i = -Im A_i``,
``dL/db_i = 2 b_i Re(-conj(g_{i-1}) A_i)`` (summed over batch and positions for
per-channel eta and b), ``dL/dg_0 = c_0``. The map ``c_i -> c_{s-1}`` across a chunk is
affine, ``c -> P c + Q`` with ``P = prod beta_i conj(g_i)^2``, ``Q = sum_i (prod_{j<=i}
beta_j conj(g_j)^2) G_i``, so the backward is chunked the same way: ``_bwd_chunk_map_kernel``
(P, Q per chunk, composed left to right), ``_bwd_carry_kernel`` (K steps from the right),
``_bwd_kernel`` (the exact adjoint inside each chunk; writes dv and per-program partial
sums for lam, eta, b, summed on the host: deterministic, no float atomics).

**g is recomputed, not re-read.** Both backward kernels recompute g from v with the
forward's own step (``_rec``), anchored at the stored g one row before each chunk (map
kernel) or before each group of GROUP rows (adjoint kernel, which walks the groups from
the right, recomputes a group's g forward in registers and then runs the adjoint through
it backwards). So per element the backward reads v (2 bytes in bf16) instead of g
(8 bytes), plus the stored g once per GROUP = 8 rows. The recomputed values repeat the
forward's arithmetic from the same anchor, so they equal the stored ones up to the
compiler's instruction choice (no drift: each group restarts from a stored value).

Memory traffic per element, bf16 v (fp32 v: add 2 bytes per read or write of v):
K = 1: forward read v 2 + write g 8; backward read v 2 + G 8 + g 1, write dv 2 (23 in all).
K > 1: + 2 (forward chunk maps re-read v) + 10 (backward chunk maps read v and G): 35.
Selective (bf16 v, eta, b): + 4 per pass over the inputs (eta, b next to v) and + 4 for
the writes of deta and db: 35 (K = 1) and 55 (K > 1).
Rows are processed in groups: the loads of the next group are issued before the current
group is computed (see the Kernels section). Measured on an H100 (``benchmarks/results/
bench_kernel_NVIDIA-H100-80GB-HBM3_2026-11-24.json``, 65,536 tokens × 1,024 channels, bf16
v): forward + backward 0.71-0.92 ms of GPU time at N = 2,048 ... 131,072 (CUDA-graph
replay; ``benchmarks/profile_kernel.py`` gives the per-kernel split), 0.81-0.84 of the
roof set by the measured one-way read and write bandwidths for N >= 4,096.

Tiers: ``@triton.jit`` kernels → host wrappers (allocate, launch) → ``_BKScanTriton``
(``torch.autograd.Function``) → :func:`bk_scan_triton` (validation, docstring).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from bkmodel.ops.bk_scan._validate import check_scan_args

__all__ = ["bk_scan_triton", "ScanConfig"]


# --------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------
# Every program owns BLOCK_C channels of one batch row and one chunk of the sequence and
# walks the chunk in groups of GROUP rows: the loads of the next group are issued before
# the current group is computed, and the group's rows are written out as straight-line
# code (``_*_row`` helpers), so that no register that a load is still filling is read
# before a whole group of work has been issued. Rows past the chunk are masked.


@triton.jit
def _i64(n):
    """n as an int64 scalar; n may be a runtime int32 or a constexpr (Triton specialises an
    int argument equal to 1 into a constexpr, which has no ``.to``)."""
    return n * tl.full([], 1, tl.int64)


@triton.jit
def _chunk_program(
    lam_ptr, eta_ptr, beta_ptr, N, C, L, k0,
    BLOCK_C: tl.constexpr, CDT: tl.constexpr, TOK: tl.constexpr,
):  # fmt: skip
    """What every chunk kernel starts from: program (channel block, chunk k0 + program_id(1),
    batch row), its channel offsets and mask, int64 C, the channel parameters lam, eta,
    beta in the compute dtype and the chunk's rows [start, end). With TOK (per-token eta
    and b, loaded row by row by ``_ld_eh``) eta and beta are unused placeholders."""
    pid_k = tl.program_id(1) + k0
    pid_b = tl.program_id(2)
    offs = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = offs < C
    lam = tl.load(lam_ptr + offs, mask=cm, other=0.0).to(CDT)
    if TOK:
        eta = tl.full([BLOCK_C], 1.0, CDT)
        beta = tl.zeros([BLOCK_C], CDT)
    else:
        eta = tl.load(eta_ptr + offs, mask=cm, other=1.0).to(CDT)
        beta = tl.load(beta_ptr + offs, mask=cm, other=0.0).to(CDT)
    start = pid_k * L
    end = tl.minimum(start + L, N)
    return pid_k, pid_b, offs, cm, _i64(C), lam, eta, beta, start, end


@triton.jit
def _ld_eh(eb, hb, o, ok, eta, beta, TOK: tl.constexpr):
    """Per token (TOK): (eta_i, b_i) at row offset o, as stored (the prefetch registers hold
    the input dtype); else the channel's (eta, beta), nothing loaded."""
    if TOK:
        e = tl.load(eb + o, mask=ok, other=1.0)
        h = tl.load(hb + o, mask=ok, other=0.0)
    else:
        e = eta
        h = beta
    return e, h


@triton.jit
def _eb(e, h, TOK: tl.constexpr, CDT: tl.constexpr):
    """(eta_i, beta_i) in the compute dtype from ``_ld_eh``'s pair: per token eta_i and
    b_i**2 (squared here, so the backward's recomputation squares the same value); else the
    channel's (eta, beta) unchanged."""
    if TOK:
        hc = h.to(CDT)
        ec = e.to(CDT)
        bc = hc * hc
    else:
        ec = e
        bc = h
    return ec, bc


@triton.jit
def _fwd_map_row(
    x, ok, lam, a_im, beta, p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im,
    MASKED: tl.constexpr, CDT: tl.constexpr,
):  # fmt: skip
    """(p, q; r, s) <- M_i (p, q; r, s), not renormalised (``_renorm`` every 4 rows); if
    MASKED, unchanged where not ok."""
    a_re = x.to(CDT) - lam
    nr_re = a_re * r_re - a_im * r_im - beta * p_re
    nr_im = a_re * r_im + a_im * r_re - beta * p_im
    ns_re = a_re * s_re - a_im * s_im - beta * q_re
    ns_im = a_re * s_im + a_im * s_re - beta * q_im
    if MASKED:
        nr_re = tl.where(ok, nr_re, r_re)
        nr_im = tl.where(ok, nr_im, r_im)
        ns_re = tl.where(ok, ns_re, s_re)
        ns_im = tl.where(ok, ns_im, s_im)
        r_re = tl.where(ok, r_re, p_re)
        r_im = tl.where(ok, r_im, p_im)
        s_re = tl.where(ok, s_re, q_re)
        s_im = tl.where(ok, s_im, q_im)
    return r_re, r_im, s_re, s_im, nr_re, nr_im, ns_re, ns_im


@triton.jit
def _renorm(p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im):
    """Scale the 2×2 product so that its last row has 1-norm 1 (a Möbius map is defined up
    to scale). Between two calls the entries grow by at most (|alpha| + beta)^4: no float32
    overflow for |v - z| + b^2 below ~1e9."""
    sc = 1.0 / (tl.abs(r_re) + tl.abs(r_im) + tl.abs(s_re) + tl.abs(s_im))
    return p_re * sc, p_im * sc, q_re * sc, q_im * sc, r_re * sc, r_im * sc, s_re * sc, s_im * sc


@triton.jit
def _fwd_map_rows(
    x, e, h, n, end, lam, a_im, beta, p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im, zc,
    MASKED: tl.constexpr, TOK: tl.constexpr, CDT: tl.constexpr,
):  # fmt: skip
    """``_fwd_map_row`` at row n with the row's own (eta_i, beta_i) when per token."""
    if TOK:
        ec, beta = _eb(e, h, TOK, CDT)
        a_im = -ec
    return _fwd_map_row(
        x, zc + n < end, lam, a_im, beta, p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im,
        MASKED, CDT,
    )  # fmt: skip


@triton.jit
def _fwd_chunk_map_kernel(
    v_ptr, lam_ptr, eta_ptr, beta_ptr, map_ptr,
    N, C, L, K, k0,
    EVEN: tl.constexpr, GROUP: tl.constexpr, BLOCK_C: tl.constexpr, F64: tl.constexpr,
    TOK: tl.constexpr,
):  # fmt: skip
    """map[(b*K + k)*8 + j, c]: columns (p, r), (q, s) of chunk k's Möbius product
    ``M_e ... M_s`` (k = k0 + program_id(1); never the last chunk).

    EVEN (L a multiple of GROUP): every row of the chunk and of the group loaded ahead past
    its end exists (it belongs to the next chunk), so rows need neither masks nor selects —
    the kernel is then bound by memory rather than by instruction issue. TOK: eta and b
    per token ((B, N, C) at eta_ptr and beta_ptr, b squared here), else per channel
    (eta and beta = b**2, (C,))."""
    CDT: tl.constexpr = tl.float64 if F64 else tl.float32
    MASKED: tl.constexpr = not EVEN
    pid_k, pid_b, offs, cm, C64, lam, eta, beta, start, end = _chunk_program(
        lam_ptr, eta_ptr, beta_ptr, N, C, L, k0, BLOCK_C, CDT, TOK
    )
    zc = tl.zeros([BLOCK_C], tl.int32)  # vector row masks (the interpreter needs them)
    if EVEN:
        lim = N  # loads past the chunk stay inside the tensor
    else:
        lim = end
    base = pid_b.to(tl.int64) * N * C64 + offs
    vb = v_ptr + base
    eb = eta_ptr + base  # per token only
    hb = beta_ptr + base
    # M = identity: first column (p, r), second column (q, s).
    p_re = tl.full([BLOCK_C], 1.0, CDT)
    p_im = tl.zeros([BLOCK_C], CDT)
    q_re = tl.zeros([BLOCK_C], CDT)
    q_im = tl.zeros([BLOCK_C], CDT)
    r_re = tl.zeros([BLOCK_C], CDT)
    r_im = tl.zeros([BLOCK_C], CDT)
    s_re = tl.full([BLOCK_C], 1.0, CDT)
    s_im = tl.zeros([BLOCK_C], CDT)
    a_im = -eta
    x0 = tl.load(vb + start * C64, mask=cm & (zc + start < lim), other=0.0)
    x1 = tl.load(vb + (start + 1) * C64, mask=cm & (zc + start + 1 < lim), other=0.0)
    x2 = tl.load(vb + (start + 2) * C64, mask=cm & (zc + start + 2 < lim), other=0.0)
    x3 = tl.load(vb + (start + 3) * C64, mask=cm & (zc + start + 3 < lim), other=0.0)
    e0, h0 = _ld_eh(eb, hb, start * C64, cm & (zc + start < lim), eta, beta, TOK)
    e1, h1 = _ld_eh(eb, hb, (start + 1) * C64, cm & (zc + start + 1 < lim), eta, beta, TOK)
    e2, h2 = _ld_eh(eb, hb, (start + 2) * C64, cm & (zc + start + 2 < lim), eta, beta, TOK)
    e3, h3 = _ld_eh(eb, hb, (start + 3) * C64, cm & (zc + start + 3 < lim), eta, beta, TOK)
    if GROUP == 8:
        x4 = tl.load(vb + (start + 4) * C64, mask=cm & (zc + start + 4 < lim), other=0.0)
        x5 = tl.load(vb + (start + 5) * C64, mask=cm & (zc + start + 5 < lim), other=0.0)
        x6 = tl.load(vb + (start + 6) * C64, mask=cm & (zc + start + 6 < lim), other=0.0)
        x7 = tl.load(vb + (start + 7) * C64, mask=cm & (zc + start + 7 < lim), other=0.0)
        e4, h4 = _ld_eh(eb, hb, (start + 4) * C64, cm & (zc + start + 4 < lim), eta, beta, TOK)
        e5, h5 = _ld_eh(eb, hb, (start + 5) * C64, cm & (zc + start + 5 < lim), eta, beta, TOK)
        e6, h6 = _ld_eh(eb, hb, (start + 6) * C64, cm & (zc + start + 6 < lim), eta, beta, TOK)
        e7, h7 = _ld_eh(eb, hb, (start + 7) * C64, cm & (zc + start + 7 < lim), eta, beta, TOK)
    for n in range(start, end, GROUP):
        m = n + GROUP  # next group
        y0 = tl.load(vb + m * C64, mask=cm & (zc + m < lim), other=0.0)
        y1 = tl.load(vb + (m + 1) * C64, mask=cm & (zc + m + 1 < lim), other=0.0)
        y2 = tl.load(vb + (m + 2) * C64, mask=cm & (zc + m + 2 < lim), other=0.0)
        y3 = tl.load(vb + (m + 3) * C64, mask=cm & (zc + m + 3 < lim), other=0.0)
        if TOK:
            f0, k0_ = _ld_eh(eb, hb, m * C64, cm & (zc + m < lim), eta, beta, TOK)
            f1, k1_ = _ld_eh(eb, hb, (m + 1) * C64, cm & (zc + m + 1 < lim), eta, beta, TOK)
            f2, k2_ = _ld_eh(eb, hb, (m + 2) * C64, cm & (zc + m + 2 < lim), eta, beta, TOK)
            f3, k3_ = _ld_eh(eb, hb, (m + 3) * C64, cm & (zc + m + 3 < lim), eta, beta, TOK)
        if GROUP == 8:
            y4 = tl.load(vb + (m + 4) * C64, mask=cm & (zc + m + 4 < lim), other=0.0)
            y5 = tl.load(vb + (m + 5) * C64, mask=cm & (zc + m + 5 < lim), other=0.0)
            y6 = tl.load(vb + (m + 6) * C64, mask=cm & (zc + m + 6 < lim), other=0.0)
            y7 = tl.load(vb + (m + 7) * C64, mask=cm & (zc + m + 7 < lim), other=0.0)
            if TOK:
                f4, k4_ = _ld_eh(eb, hb, (m + 4) * C64, cm & (zc + m + 4 < lim), eta, beta, TOK)
                f5, k5_ = _ld_eh(eb, hb, (m + 5) * C64, cm & (zc + m + 5 < lim), eta, beta, TOK)
                f6, k6_ = _ld_eh(eb, hb, (m + 6) * C64, cm & (zc + m + 6 < lim), eta, beta, TOK)
                f7, k7_ = _ld_eh(eb, hb, (m + 7) * C64, cm & (zc + m + 7 < lim), eta, beta, TOK)
        p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _fwd_map_rows(
            x0, e0, h0, n, end, lam, a_im, beta, p_re, p_im, q_re, q_im, r_re, r_im, s_re,
            s_im, zc, MASKED, TOK, CDT,
        )  # fmt: skip
        p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _fwd_map_rows(
            x1, e1, h1, n + 1, end, lam, a_im, beta, p_re, p_im, q_re, q_im, r_re, r_im, s_re,
            s_im, zc, MASKED, TOK, CDT,
        )  # fmt: skip
        p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _fwd_map_rows(
            x2, e2, h2, n + 2, end, lam, a_im, beta, p_re, p_im, q_re, q_im, r_re, r_im, s_re,
            s_im, zc, MASKED, TOK, CDT,
        )  # fmt: skip
        p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _fwd_map_rows(
            x3, e3, h3, n + 3, end, lam, a_im, beta, p_re, p_im, q_re, q_im, r_re, r_im, s_re,
            s_im, zc, MASKED, TOK, CDT,
        )  # fmt: skip
        p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _renorm(
            p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im
        )
        if GROUP == 8:
            p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _fwd_map_rows(
                x4, e4, h4, n + 4, end, lam, a_im, beta, p_re, p_im, q_re, q_im, r_re, r_im,
                s_re, s_im, zc, MASKED, TOK, CDT,
            )  # fmt: skip
            p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _fwd_map_rows(
                x5, e5, h5, n + 5, end, lam, a_im, beta, p_re, p_im, q_re, q_im, r_re, r_im,
                s_re, s_im, zc, MASKED, TOK, CDT,
            )  # fmt: skip
            p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _fwd_map_rows(
                x6, e6, h6, n + 6, end, lam, a_im, beta, p_re, p_im, q_re, q_im, r_re, r_im,
                s_re, s_im, zc, MASKED, TOK, CDT,
            )  # fmt: skip
            p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _fwd_map_rows(
                x7, e7, h7, n + 7, end, lam, a_im, beta, p_re, p_im, q_re, q_im, r_re, r_im,
                s_re, s_im, zc, MASKED, TOK, CDT,
            )  # fmt: skip
            p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _renorm(
                p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im
            )
            x4 = y4
            x5 = y5
            x6 = y6
            x7 = y7
            if TOK:
                e4, h4, e5, h5, e6, h6, e7, h7 = f4, k4_, f5, k5_, f6, k6_, f7, k7_
        x0 = y0
        x1 = y1
        x2 = y2
        x3 = y3
        if TOK:
            e0, h0, e1, h1, e2, h2, e3, h3 = f0, k0_, f1, k1_, f2, k2_, f3, k3_
    mb = map_ptr + (pid_b.to(tl.int64) * K + pid_k) * 8 * C64 + offs
    tl.store(mb + 0 * C64, p_re, mask=cm)
    tl.store(mb + 1 * C64, p_im, mask=cm)
    tl.store(mb + 2 * C64, q_re, mask=cm)
    tl.store(mb + 3 * C64, q_im, mask=cm)
    tl.store(mb + 4 * C64, r_re, mask=cm)
    tl.store(mb + 5 * C64, r_im, mask=cm)
    tl.store(mb + 6 * C64, s_re, mask=cm)
    tl.store(mb + 7 * C64, s_im, mask=cm)


@triton.jit
def _ld_fmap(mb, k, lim, cm, zc, C64):
    """The 8 components of chunk k's forward map (identity where k >= lim)."""
    ok = cm & (zc + k < lim)
    o = mb + k * 8 * C64
    return (
        tl.load(o, mask=ok, other=1.0),
        tl.load(o + C64, mask=ok, other=0.0),
        tl.load(o + 2 * C64, mask=ok, other=0.0),
        tl.load(o + 3 * C64, mask=ok, other=0.0),
        tl.load(o + 4 * C64, mask=ok, other=0.0),
        tl.load(o + 5 * C64, mask=ok, other=0.0),
        tl.load(o + 6 * C64, mask=ok, other=1.0),
        tl.load(o + 7 * C64, mask=ok, other=0.0),
    )


@triton.jit
def _apply_fmap(m, g_re, g_im, ib, k, lim, cm, zc, C64):
    """g <- (p g + q) / (r g + s) for the map m of chunk k; stored as the value entering
    chunk k + 1 (if k < lim)."""
    p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = m
    n_re = p_re * g_re - p_im * g_im + q_re
    n_im = p_re * g_im + p_im * g_re + q_im
    d_re = r_re * g_re - r_im * g_im + s_re
    d_im = r_re * g_im + r_im * g_re + s_im
    inv = 1.0 / (d_re * d_re + d_im * d_im)
    g_re = (n_re * d_re + n_im * d_im) * inv
    g_im = (n_im * d_re - n_re * d_im) * inv
    ok = cm & (zc + k < lim)
    o = ib + (k + 1) * 2 * C64
    tl.store(o, g_re, mask=ok)
    tl.store(o + C64, g_im, mask=ok)
    return g_re, g_im


@triton.jit
def _fwd_carry_kernel(
    map_ptr, init_ptr, C, K,
    BLOCK_C: tl.constexpr, F64: tl.constexpr, HAS_G0: tl.constexpr,
):  # fmt: skip
    """init[(b*K + k)*2 + {0,1}, c] = value entering chunk k: s_0 = g_0, s_{k+1} = P_k(s_k)
    (maps of chunks 0 .. K-2 are read, four at a time, the next four loaded before the
    current four are applied: K sequential steps, not K memory latencies). g_0 = 0, or
    with HAS_G0 the initial state the host wrote at k = 0."""
    CDT = tl.float64 if F64 else tl.float32
    pid_c = tl.program_id(0)
    pid_b = tl.program_id(1)
    offs = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = offs < C
    C64 = _i64(C)
    zc = tl.zeros([BLOCK_C], tl.int32)
    ib = init_ptr + pid_b.to(tl.int64) * K * 2 * C64 + offs
    mb = map_ptr + pid_b.to(tl.int64) * K * 8 * C64 + offs
    if HAS_G0:
        g_re = tl.load(ib, mask=cm, other=0.0).to(CDT)
        g_im = tl.load(ib + C64, mask=cm, other=0.0).to(CDT)
    else:
        g_re = tl.zeros([BLOCK_C], CDT)
        g_im = tl.zeros([BLOCK_C], CDT)
        tl.store(ib, g_re, mask=cm)
        tl.store(ib + C64, g_im, mask=cm)
    lim = K - 1
    m0 = _ld_fmap(mb, 0, lim, cm, zc, C64)
    m1 = _ld_fmap(mb, 1, lim, cm, zc, C64)
    m2 = _ld_fmap(mb, 2, lim, cm, zc, C64)
    m3 = _ld_fmap(mb, 3, lim, cm, zc, C64)
    for k in range(0, lim, 4):
        n0 = _ld_fmap(mb, k + 4, lim, cm, zc, C64)
        n1 = _ld_fmap(mb, k + 5, lim, cm, zc, C64)
        n2 = _ld_fmap(mb, k + 6, lim, cm, zc, C64)
        n3 = _ld_fmap(mb, k + 7, lim, cm, zc, C64)
        g_re, g_im = _apply_fmap(m0, g_re, g_im, ib, k, lim, cm, zc, C64)
        g_re, g_im = _apply_fmap(m1, g_re, g_im, ib, k + 1, lim, cm, zc, C64)
        g_re, g_im = _apply_fmap(m2, g_re, g_im, ib, k + 2, lim, cm, zc, C64)
        g_re, g_im = _apply_fmap(m3, g_re, g_im, ib, k + 3, lim, cm, zc, C64)
        m0 = n0
        m1 = n1
        m2 = n2
        m3 = n3


@triton.jit
def _rec(x, g_re, g_im, lam, eta, beta, CDT: tl.constexpr):
    """g <- 1/(x - lam - i eta - beta g): the forward step, shared by every kernel that
    computes or recomputes g (so that a recomputation repeats the forward's arithmetic)."""
    d_re = x.to(CDT) - lam - beta * g_re
    d_im = -eta - beta * g_im
    inv = 1.0 / (d_re * d_re + d_im * d_im)
    return d_re * inv, -d_im * inv


@triton.jit
def _fwd_row(
    x, e, h, n, end, g_re, g_im, lam, gp_re, gp_im, cm, zc,
    herg, bnd2, tol, one_tol, n_nf, n_hg, n_bd,
    STATS: tl.constexpr, TOK: tl.constexpr, CDT: tl.constexpr,
):  # fmt: skip
    """One step g <- 1/(x - lam - i eta - beta g), stored at row n (if n < end);
    certificate counts. (e, h) from ``_ld_eh``: per token the row's eta_i, b_i, whose
    bounds -tol/eta_i and ((1 + tol)/eta_i)^2 are computed here as ``scan_stats`` does;
    else the channel's eta, beta with the bounds (herg, bnd2) computed once per program."""
    eta, beta = _eb(e, h, TOK, CDT)
    g_re, g_im = _rec(x, g_re, g_im, lam, eta, beta, CDT)
    ok = cm & (zc + n < end)
    tl.store(gp_re, g_re, mask=ok)
    tl.store(gp_im, g_im, mask=ok)
    if STATS:
        if TOK:
            inv_eta = 1.0 / eta
            herg = -tol * inv_eta
            bnd = one_tol * inv_eta
            bnd2 = bnd * bnd
        bad = (g_re != g_re) | (g_im != g_im)  # NaN
        bad = bad | (tl.abs(g_re) == float("inf")) | (tl.abs(g_im) == float("inf"))
        n_nf += (ok & bad).to(tl.int32)
        n_hg += (ok & (g_im < herg)).to(tl.int32)  # Im g < -tol/eta
        n_bd += (ok & (g_re * g_re + g_im * g_im > bnd2)).to(tl.int32)  # |g| > (1+tol)/eta
    return g_re, g_im, n_nf, n_hg, n_bd


@triton.jit
def _fwd_kernel(
    v_ptr, lam_ptr, eta_ptr, beta_ptr, init_ptr, gre_ptr, gim_ptr, stats_ptr,
    N, C, L, K, tol, one_tol,
    HAS_INIT: tl.constexpr, STATS: tl.constexpr, GROUP: tl.constexpr, BLOCK_C: tl.constexpr,
    F64: tl.constexpr, TOK: tl.constexpr,
):  # fmt: skip
    """g inside chunk k from its entering value; optional fused certificate counters.
    TOK: eta and b per token ((B, N, C) at eta_ptr, beta_ptr), loaded with v row by row."""
    CDT: tl.constexpr = tl.float64 if F64 else tl.float32
    pid_k, pid_b, offs, cm, C64, lam, eta, beta, start, end = _chunk_program(
        lam_ptr, eta_ptr, beta_ptr, N, C, L, 0, BLOCK_C, CDT, TOK
    )
    zc = tl.zeros([BLOCK_C], tl.int32)
    if HAS_INIT:
        ib = init_ptr + (pid_b.to(tl.int64) * K + pid_k) * 2 * C64 + offs
        g_re = tl.load(ib, mask=cm, other=0.0).to(CDT)
        g_im = tl.load(ib + C64, mask=cm, other=0.0).to(CDT)
    else:
        g_re = tl.zeros([BLOCK_C], CDT)
        g_im = tl.zeros([BLOCK_C], CDT)
    inv_eta = 1.0 / eta
    herg = -tol * inv_eta
    bnd = one_tol * inv_eta
    bnd2 = bnd * bnd
    n_nf = tl.zeros([BLOCK_C], tl.int32)
    n_hg = tl.zeros([BLOCK_C], tl.int32)
    n_bd = tl.zeros([BLOCK_C], tl.int32)
    base = pid_b.to(tl.int64) * N * C64 + offs
    vb = v_ptr + base
    eb = eta_ptr + base  # per token only
    hb = beta_ptr + base
    pr = gre_ptr + base
    pi = gim_ptr + base
    x0 = tl.load(vb + start * C64, mask=cm & (zc + start < end), other=0.0)
    x1 = tl.load(vb + (start + 1) * C64, mask=cm & (zc + start + 1 < end), other=0.0)
    x2 = tl.load(vb + (start + 2) * C64, mask=cm & (zc + start + 2 < end), other=0.0)
    x3 = tl.load(vb + (start + 3) * C64, mask=cm & (zc + start + 3 < end), other=0.0)
    e0, h0 = _ld_eh(eb, hb, start * C64, cm & (zc + start < end), eta, beta, TOK)
    e1, h1 = _ld_eh(eb, hb, (start + 1) * C64, cm & (zc + start + 1 < end), eta, beta, TOK)
    e2, h2 = _ld_eh(eb, hb, (start + 2) * C64, cm & (zc + start + 2 < end), eta, beta, TOK)
    e3, h3 = _ld_eh(eb, hb, (start + 3) * C64, cm & (zc + start + 3 < end), eta, beta, TOK)
    if GROUP == 8:
        x4 = tl.load(vb + (start + 4) * C64, mask=cm & (zc + start + 4 < end), other=0.0)
        x5 = tl.load(vb + (start + 5) * C64, mask=cm & (zc + start + 5 < end), other=0.0)
        x6 = tl.load(vb + (start + 6) * C64, mask=cm & (zc + start + 6 < end), other=0.0)
        x7 = tl.load(vb + (start + 7) * C64, mask=cm & (zc + start + 7 < end), other=0.0)
        e4, h4 = _ld_eh(eb, hb, (start + 4) * C64, cm & (zc + start + 4 < end), eta, beta, TOK)
        e5, h5 = _ld_eh(eb, hb, (start + 5) * C64, cm & (zc + start + 5 < end), eta, beta, TOK)
        e6, h6 = _ld_eh(eb, hb, (start + 6) * C64, cm & (zc + start + 6 < end), eta, beta, TOK)
        e7, h7 = _ld_eh(eb, hb, (start + 7) * C64, cm & (zc + start + 7 < end), eta, beta, TOK)
    for n in range(start, end, GROUP):
        m = n + GROUP
        y0 = tl.load(vb + m * C64, mask=cm & (zc + m < end), other=0.0)
        y1 = tl.load(vb + (m + 1) * C64, mask=cm & (zc + m + 1 < end), other=0.0)
        y2 = tl.load(vb + (m + 2) * C64, mask=cm & (zc + m + 2 < end), other=0.0)
        y3 = tl.load(vb + (m + 3) * C64, mask=cm & (zc + m + 3 < end), other=0.0)
        if TOK:
            f0, k0_ = _ld_eh(eb, hb, m * C64, cm & (zc + m < end), eta, beta, TOK)
            f1, k1_ = _ld_eh(eb, hb, (m + 1) * C64, cm & (zc + m + 1 < end), eta, beta, TOK)
            f2, k2_ = _ld_eh(eb, hb, (m + 2) * C64, cm & (zc + m + 2 < end), eta, beta, TOK)
            f3, k3_ = _ld_eh(eb, hb, (m + 3) * C64, cm & (zc + m + 3 < end), eta, beta, TOK)
        if GROUP == 8:
            y4 = tl.load(vb + (m + 4) * C64, mask=cm & (zc + m + 4 < end), other=0.0)
            y5 = tl.load(vb + (m + 5) * C64, mask=cm & (zc + m + 5 < end), other=0.0)
            y6 = tl.load(vb + (m + 6) * C64, mask=cm & (zc + m + 6 < end), other=0.0)
            y7 = tl.load(vb + (m + 7) * C64, mask=cm & (zc + m + 7 < end), other=0.0)
            if TOK:
                f4, k4_ = _ld_eh(eb, hb, (m + 4) * C64, cm & (zc + m + 4 < end), eta, beta, TOK)
                f5, k5_ = _ld_eh(eb, hb, (m + 5) * C64, cm & (zc + m + 5 < end), eta, beta, TOK)
                f6, k6_ = _ld_eh(eb, hb, (m + 6) * C64, cm & (zc + m + 6 < end), eta, beta, TOK)
                f7, k7_ = _ld_eh(eb, hb, (m + 7) * C64, cm & (zc + m + 7 < end), eta, beta, TOK)
        o = n * C64
        g_re, g_im, n_nf, n_hg, n_bd = _fwd_row(
            x0, e0, h0, n, end, g_re, g_im, lam, pr + o, pi + o, cm, zc,
            herg, bnd2, tol, one_tol, n_nf, n_hg, n_bd, STATS, TOK, CDT,
        )  # fmt: skip
        o += C64
        g_re, g_im, n_nf, n_hg, n_bd = _fwd_row(
            x1, e1, h1, n + 1, end, g_re, g_im, lam, pr + o, pi + o, cm, zc,
            herg, bnd2, tol, one_tol, n_nf, n_hg, n_bd, STATS, TOK, CDT,
        )  # fmt: skip
        o += C64
        g_re, g_im, n_nf, n_hg, n_bd = _fwd_row(
            x2, e2, h2, n + 2, end, g_re, g_im, lam, pr + o, pi + o, cm, zc,
            herg, bnd2, tol, one_tol, n_nf, n_hg, n_bd, STATS, TOK, CDT,
        )  # fmt: skip
        o += C64
        g_re, g_im, n_nf, n_hg, n_bd = _fwd_row(
            x3, e3, h3, n + 3, end, g_re, g_im, lam, pr + o, pi + o, cm, zc,
            herg, bnd2, tol, one_tol, n_nf, n_hg, n_bd, STATS, TOK, CDT,
        )  # fmt: skip
        if GROUP == 8:
            o += C64
            g_re, g_im, n_nf, n_hg, n_bd = _fwd_row(
                x4, e4, h4, n + 4, end, g_re, g_im, lam, pr + o, pi + o, cm, zc,
                herg, bnd2, tol, one_tol, n_nf, n_hg, n_bd, STATS, TOK, CDT,
            )  # fmt: skip
            o += C64
            g_re, g_im, n_nf, n_hg, n_bd = _fwd_row(
                x5, e5, h5, n + 5, end, g_re, g_im, lam, pr + o, pi + o, cm, zc,
                herg, bnd2, tol, one_tol, n_nf, n_hg, n_bd, STATS, TOK, CDT,
            )  # fmt: skip
            o += C64
            g_re, g_im, n_nf, n_hg, n_bd = _fwd_row(
                x6, e6, h6, n + 6, end, g_re, g_im, lam, pr + o, pi + o, cm, zc,
                herg, bnd2, tol, one_tol, n_nf, n_hg, n_bd, STATS, TOK, CDT,
            )  # fmt: skip
            o += C64
            g_re, g_im, n_nf, n_hg, n_bd = _fwd_row(
                x7, e7, h7, n + 7, end, g_re, g_im, lam, pr + o, pi + o, cm, zc,
                herg, bnd2, tol, one_tol, n_nf, n_hg, n_bd, STATS, TOK, CDT,
            )  # fmt: skip
            x4 = y4
            x5 = y5
            x6 = y6
            x7 = y7
            if TOK:
                e4, h4, e5, h5, e6, h6, e7, h7 = f4, k4_, f5, k5_, f6, k6_, f7, k7_
        x0 = y0
        x1 = y1
        x2 = y2
        x3 = y3
        if TOK:
            e0, h0, e1, h1, e2, h2, e3, h3 = f0, k0_, f1, k1_, f2, k2_, f3, k3_
    if STATS:
        tl.atomic_add(stats_ptr + 0, tl.sum(n_nf, axis=0).to(tl.int64))
        tl.atomic_add(stats_ptr + 1, tl.sum(n_hg, axis=0).to(tl.int64))
        tl.atomic_add(stats_ptr + 2, tl.sum(n_bd, axis=0).to(tl.int64))


@triton.jit
def _ld_row(vb, Gb_re, Gb_im, i, start, end, cm, zc, C64):
    """(v_i, Re G_i, Im G_i); zeros outside start <= i < end."""
    ok = cm & (zc + i >= start) & (zc + i < end)
    o = i * C64
    return (
        tl.load(vb + o, mask=ok, other=0.0),
        tl.load(Gb_re + o, mask=ok, other=0.0),
        tl.load(Gb_im + o, mask=ok, other=0.0),
    )


@triton.jit
def _ld_g(gb_re, gb_im, i, start, cm, zc, C64):
    """Stored g_i for start - 1 <= i (zero for i < 0: g_0 = 0 starts the recurrence)."""
    ok = cm & (zc + i >= 0) & (zc + i >= start - 1)
    o = i * C64
    return tl.load(gb_re + o, mask=ok, other=0.0), tl.load(gb_im + o, mask=ok, other=0.0)


@triton.jit
def _ld_g0(gb_re, gb_im, g0b, i, start, cm, zc, C64, HAS_G0: tl.constexpr):
    """``_ld_g``, with HAS_G0 the initial state (Re at g0b, Im at g0b + C) at i = -1."""
    g_re, g_im = _ld_g(gb_re, gb_im, i, start, cm, zc, C64)
    if HAS_G0:
        ok0 = cm & (zc + i < 0) & (zc + i >= start - 1)  # i = -1 of the first chunk only
        g_re += tl.load(g0b, mask=ok0, other=0.0)
        g_im += tl.load(g0b + C64, mask=ok0, other=0.0)
    return g_re, g_im


@triton.jit
def _ld_row_eh(eb, hb, i, start, end, cm, zc, C64, eta, beta, TOK: tl.constexpr):
    """``_ld_eh`` with ``_ld_row``'s mask: per token (eta_i, b_i), else (eta, beta)."""
    return _ld_eh(eb, hb, i * C64, cm & (zc + i >= start) & (zc + i < end), eta, beta, TOK)


@triton.jit
def _bwd_map_row(gr, gi, Gr, Gi, ok, beta, P_re, P_im, Q_re, Q_im):
    """(P, Q) <- (P m, Q + P m G) with m = beta conj(g)^2; unchanged where not ok.

    (P, Q) is the map c_i -> c_{s-1} = P c_i + Q, extended by one row to the right."""
    m_re = beta * (gr * gr - gi * gi)
    m_im = -2.0 * beta * gr * gi
    nP_re = P_re * m_re - P_im * m_im
    nP_im = P_re * m_im + P_im * m_re
    nQ_re = Q_re + nP_re * Gr - nP_im * Gi
    nQ_im = Q_im + nP_re * Gi + nP_im * Gr
    return (
        tl.where(ok, nP_re, P_re),
        tl.where(ok, nP_im, P_im),
        tl.where(ok, nQ_re, Q_re),
        tl.where(ok, nQ_im, Q_im),
    )


@triton.jit
def _bwd_map_rows(
    x, e, h, Gr, Gi, ok, g_re, g_im, lam, eta, beta, P_re, P_im, Q_re, Q_im,
    TOK: tl.constexpr, CDT: tl.constexpr,
):  # fmt: skip
    """One row of the backward chunk map: g recomputed (``_rec``), then ``_bwd_map_row``;
    per token with the row's (eta_i, beta_i)."""
    eta, beta = _eb(e, h, TOK, CDT)
    g_re, g_im = _rec(x, g_re, g_im, lam, eta, beta, CDT)
    P_re, P_im, Q_re, Q_im = _bwd_map_row(
        g_re, g_im, Gr.to(CDT), Gi.to(CDT), ok, beta, P_re, P_im, Q_re, Q_im
    )
    return g_re, g_im, P_re, P_im, Q_re, Q_im


@triton.jit
def _bwd_chunk_map_kernel(
    v_ptr, gre_ptr, gim_ptr, dre_ptr, dim_ptr, lam_ptr, eta_ptr, beta_ptr, map_ptr,
    N, C, L, K, k0,
    GROUP: tl.constexpr, BLOCK_C: tl.constexpr, F64: tl.constexpr, TOK: tl.constexpr,
):  # fmt: skip
    """map[(b*K + k)*4 + j, c] = (Re P, Im P, Re Q, Im Q): the carry leaving chunk k to the
    left is P * (carry entering from the right) + Q (k = k0 + program_id(1)).

    Composed left to right while g is recomputed from v and the stored g_{s-1}: reads v and
    G (not the stored g) inside the chunk, and with TOK the per-token eta and b. Never run
    for the first chunk, so it never needs the initial state."""
    CDT: tl.constexpr = tl.float64 if F64 else tl.float32
    pid_k, pid_b, offs, cm, C64, lam, eta, beta, start, end = _chunk_program(
        lam_ptr, eta_ptr, beta_ptr, N, C, L, k0, BLOCK_C, CDT, TOK
    )
    zc = tl.zeros([BLOCK_C], tl.int32)
    base = pid_b.to(tl.int64) * N * C64 + offs
    vb = v_ptr + base
    eb = eta_ptr + base  # per token only
    hb = beta_ptr + base
    Gb_re = dre_ptr + base
    Gb_im = dim_ptr + base
    g_re, g_im = _ld_g(gre_ptr + base, gim_ptr + base, start - 1, start, cm, zc, C64)
    g_re = g_re.to(CDT)
    g_im = g_im.to(CDT)
    P_re = tl.full([BLOCK_C], 1.0, CDT)
    P_im = tl.zeros([BLOCK_C], CDT)
    Q_re = tl.zeros([BLOCK_C], CDT)
    Q_im = tl.zeros([BLOCK_C], CDT)
    x0, Gr0, Gi0 = _ld_row(vb, Gb_re, Gb_im, start, start, end, cm, zc, C64)
    x1, Gr1, Gi1 = _ld_row(vb, Gb_re, Gb_im, start + 1, start, end, cm, zc, C64)
    x2, Gr2, Gi2 = _ld_row(vb, Gb_re, Gb_im, start + 2, start, end, cm, zc, C64)
    x3, Gr3, Gi3 = _ld_row(vb, Gb_re, Gb_im, start + 3, start, end, cm, zc, C64)
    e0, h0 = _ld_row_eh(eb, hb, start, start, end, cm, zc, C64, eta, beta, TOK)
    e1, h1 = _ld_row_eh(eb, hb, start + 1, start, end, cm, zc, C64, eta, beta, TOK)
    e2, h2 = _ld_row_eh(eb, hb, start + 2, start, end, cm, zc, C64, eta, beta, TOK)
    e3, h3 = _ld_row_eh(eb, hb, start + 3, start, end, cm, zc, C64, eta, beta, TOK)
    if GROUP == 8:
        x4, Gr4, Gi4 = _ld_row(vb, Gb_re, Gb_im, start + 4, start, end, cm, zc, C64)
        x5, Gr5, Gi5 = _ld_row(vb, Gb_re, Gb_im, start + 5, start, end, cm, zc, C64)
        x6, Gr6, Gi6 = _ld_row(vb, Gb_re, Gb_im, start + 6, start, end, cm, zc, C64)
        x7, Gr7, Gi7 = _ld_row(vb, Gb_re, Gb_im, start + 7, start, end, cm, zc, C64)
        e4, h4 = _ld_row_eh(eb, hb, start + 4, start, end, cm, zc, C64, eta, beta, TOK)
        e5, h5 = _ld_row_eh(eb, hb, start + 5, start, end, cm, zc, C64, eta, beta, TOK)
        e6, h6 = _ld_row_eh(eb, hb, start + 6, start, end, cm, zc, C64, eta, beta, TOK)
        e7, h7 = _ld_row_eh(eb, hb, start + 7, start, end, cm, zc, C64, eta, beta, TOK)
    for n in range(start, end, GROUP):
        m = n + GROUP  # the next group is loaded before this one is computed
        y0, Hr0, Hi0 = _ld_row(vb, Gb_re, Gb_im, m, start, end, cm, zc, C64)
        y1, Hr1, Hi1 = _ld_row(vb, Gb_re, Gb_im, m + 1, start, end, cm, zc, C64)
        y2, Hr2, Hi2 = _ld_row(vb, Gb_re, Gb_im, m + 2, start, end, cm, zc, C64)
        y3, Hr3, Hi3 = _ld_row(vb, Gb_re, Gb_im, m + 3, start, end, cm, zc, C64)
        if TOK:
            f0, k0_ = _ld_row_eh(eb, hb, m, start, end, cm, zc, C64, eta, beta, TOK)
            f1, k1_ = _ld_row_eh(eb, hb, m + 1, start, end, cm, zc, C64, eta, beta, TOK)
            f2, k2_ = _ld_row_eh(eb, hb, m + 2, start, end, cm, zc, C64, eta, beta, TOK)
            f3, k3_ = _ld_row_eh(eb, hb, m + 3, start, end, cm, zc, C64, eta, beta, TOK)
        if GROUP == 8:
            y4, Hr4, Hi4 = _ld_row(vb, Gb_re, Gb_im, m + 4, start, end, cm, zc, C64)
            y5, Hr5, Hi5 = _ld_row(vb, Gb_re, Gb_im, m + 5, start, end, cm, zc, C64)
            y6, Hr6, Hi6 = _ld_row(vb, Gb_re, Gb_im, m + 6, start, end, cm, zc, C64)
            y7, Hr7, Hi7 = _ld_row(vb, Gb_re, Gb_im, m + 7, start, end, cm, zc, C64)
            if TOK:
                f4, k4_ = _ld_row_eh(eb, hb, m + 4, start, end, cm, zc, C64, eta, beta, TOK)
                f5, k5_ = _ld_row_eh(eb, hb, m + 5, start, end, cm, zc, C64, eta, beta, TOK)
                f6, k6_ = _ld_row_eh(eb, hb, m + 6, start, end, cm, zc, C64, eta, beta, TOK)
                f7, k7_ = _ld_row_eh(eb, hb, m + 7, start, end, cm, zc, C64, eta, beta, TOK)
        g_re, g_im, P_re, P_im, Q_re, Q_im = _bwd_map_rows(
            x0, e0, h0, Gr0, Gi0, zc + n < end, g_re, g_im, lam, eta, beta,
            P_re, P_im, Q_re, Q_im, TOK, CDT,
        )  # fmt: skip
        g_re, g_im, P_re, P_im, Q_re, Q_im = _bwd_map_rows(
            x1, e1, h1, Gr1, Gi1, zc + n + 1 < end, g_re, g_im, lam, eta, beta,
            P_re, P_im, Q_re, Q_im, TOK, CDT,
        )  # fmt: skip
        g_re, g_im, P_re, P_im, Q_re, Q_im = _bwd_map_rows(
            x2, e2, h2, Gr2, Gi2, zc + n + 2 < end, g_re, g_im, lam, eta, beta,
            P_re, P_im, Q_re, Q_im, TOK, CDT,
        )  # fmt: skip
        g_re, g_im, P_re, P_im, Q_re, Q_im = _bwd_map_rows(
            x3, e3, h3, Gr3, Gi3, zc + n + 3 < end, g_re, g_im, lam, eta, beta,
            P_re, P_im, Q_re, Q_im, TOK, CDT,
        )  # fmt: skip
        if GROUP == 8:
            g_re, g_im, P_re, P_im, Q_re, Q_im = _bwd_map_rows(
                x4, e4, h4, Gr4, Gi4, zc + n + 4 < end, g_re, g_im, lam, eta, beta,
                P_re, P_im, Q_re, Q_im, TOK, CDT,
            )  # fmt: skip
            g_re, g_im, P_re, P_im, Q_re, Q_im = _bwd_map_rows(
                x5, e5, h5, Gr5, Gi5, zc + n + 5 < end, g_re, g_im, lam, eta, beta,
                P_re, P_im, Q_re, Q_im, TOK, CDT,
            )  # fmt: skip
            g_re, g_im, P_re, P_im, Q_re, Q_im = _bwd_map_rows(
                x6, e6, h6, Gr6, Gi6, zc + n + 6 < end, g_re, g_im, lam, eta, beta,
                P_re, P_im, Q_re, Q_im, TOK, CDT,
            )  # fmt: skip
            g_re, g_im, P_re, P_im, Q_re, Q_im = _bwd_map_rows(
                x7, e7, h7, Gr7, Gi7, zc + n + 7 < end, g_re, g_im, lam, eta, beta,
                P_re, P_im, Q_re, Q_im, TOK, CDT,
            )  # fmt: skip
            x4, Gr4, Gi4 = y4, Hr4, Hi4
            x5, Gr5, Gi5 = y5, Hr5, Hi5
            x6, Gr6, Gi6 = y6, Hr6, Hi6
            x7, Gr7, Gi7 = y7, Hr7, Hi7
            if TOK:
                e4, h4, e5, h5, e6, h6, e7, h7 = f4, k4_, f5, k5_, f6, k6_, f7, k7_
        x0, Gr0, Gi0 = y0, Hr0, Hi0
        x1, Gr1, Gi1 = y1, Hr1, Hi1
        x2, Gr2, Gi2 = y2, Hr2, Hi2
        x3, Gr3, Gi3 = y3, Hr3, Hi3
        if TOK:
            e0, h0, e1, h1, e2, h2, e3, h3 = f0, k0_, f1, k1_, f2, k2_, f3, k3_
    mb = map_ptr + (pid_b.to(tl.int64) * K + pid_k) * 4 * C64 + offs
    tl.store(mb + 0 * C64, P_re, mask=cm)
    tl.store(mb + 1 * C64, P_im, mask=cm)
    tl.store(mb + 2 * C64, Q_re, mask=cm)
    tl.store(mb + 3 * C64, Q_im, mask=cm)


@triton.jit
def _ld_bmap(mb, k, lo, cm, zc, C64):
    """(Re P, Im P, Re Q, Im Q) of chunk k's backward map (identity where k < lo)."""
    ok = cm & (zc + k >= lo)
    o = mb + k * 4 * C64
    return (
        tl.load(o, mask=ok, other=1.0),
        tl.load(o + C64, mask=ok, other=0.0),
        tl.load(o + 2 * C64, mask=ok, other=0.0),
        tl.load(o + 3 * C64, mask=ok, other=0.0),
    )


@triton.jit
def _apply_bmap(m, c_re, c_im, ib, k, lo, cm, zc, C64):
    """c <- P c + Q for chunk k's map; stored as the carry entering chunk k - 1."""
    P_re, P_im, Q_re, Q_im = m
    t_re = P_re * c_re - P_im * c_im + Q_re
    c_im = P_re * c_im + P_im * c_re + Q_im
    c_re = t_re
    ok = cm & (zc + k >= lo)
    o = ib + (k - 1) * 2 * C64
    tl.store(o, c_re, mask=ok)
    tl.store(o + C64, c_im, mask=ok)
    return c_re, c_im


@triton.jit
def _bwd_carry_kernel(
    map_ptr, init_ptr, C, K,
    BLOCK_C: tl.constexpr, F64: tl.constexpr,
):  # fmt: skip
    """init[(b*K + k)*2 + {0,1}, c] = carry entering chunk k from the right (0 for the last;
    maps of chunks K-1 .. 1 are read, four at a time, the next four loaded first)."""
    CDT = tl.float64 if F64 else tl.float32
    pid_c = tl.program_id(0)
    pid_b = tl.program_id(1)
    offs = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = offs < C
    C64 = _i64(C)
    zc = tl.zeros([BLOCK_C], tl.int32)
    c_re = tl.zeros([BLOCK_C], CDT)
    c_im = tl.zeros([BLOCK_C], CDT)
    ib = init_ptr + pid_b.to(tl.int64) * K * 2 * C64 + offs
    mb = map_ptr + pid_b.to(tl.int64) * K * 4 * C64 + offs
    tl.store(ib + (K - 1) * 2 * C64, c_re, mask=cm)
    tl.store(ib + (K - 1) * 2 * C64 + C64, c_im, mask=cm)
    k = K - 1
    m0 = _ld_bmap(mb, k, 1, cm, zc, C64)
    m1 = _ld_bmap(mb, k - 1, 1, cm, zc, C64)
    m2 = _ld_bmap(mb, k - 2, 1, cm, zc, C64)
    m3 = _ld_bmap(mb, k - 3, 1, cm, zc, C64)
    for _t in range(0, K - 1, 4):
        n0 = _ld_bmap(mb, k - 4, 1, cm, zc, C64)
        n1 = _ld_bmap(mb, k - 5, 1, cm, zc, C64)
        n2 = _ld_bmap(mb, k - 6, 1, cm, zc, C64)
        n3 = _ld_bmap(mb, k - 7, 1, cm, zc, C64)
        c_re, c_im = _apply_bmap(m0, c_re, c_im, ib, k, 1, cm, zc, C64)
        c_re, c_im = _apply_bmap(m1, c_re, c_im, ib, k - 1, 1, cm, zc, C64)
        c_re, c_im = _apply_bmap(m2, c_re, c_im, ib, k - 2, 1, cm, zc, C64)
        c_re, c_im = _apply_bmap(m3, c_re, c_im, ib, k - 3, 1, cm, zc, C64)
        m0 = n0
        m1 = n1
        m2 = n2
        m3 = n3
        k -= 4


@triton.jit
def _bwd_row(
    gr, gi, Gr, Gi, g1r, g1i, ok, beta, h, c_re, c_im, s_lam, s_eta, s_beta, dvp, dep, dbp,
    TOK: tl.constexpr, CDT: tl.constexpr,
):  # fmt: skip
    """One adjoint step at a row (skipped where not ok): S = G + c, A = -conj(g)^2 S,
    dv = Re A, c <- -beta A; (g1r, g1i) is g one row earlier. Per channel the eta and beta
    gradients are summed (s_eta, s_beta); per token (TOK) they are stored at the row:
    deta_i = -Im A_i at dep and db_i = 2 b_i Re(-conj(g_{i-1}) A_i) at dbp (h = b_i)."""
    u = gr * gr - gi * gi  # conj(g)^2 = u + i w
    w = -2.0 * gr * gi
    S_re = Gr.to(CDT) + c_re
    S_im = Gi.to(CDT) + c_im
    A_re = tl.where(ok, -(u * S_re - w * S_im), 0.0)
    A_im = tl.where(ok, -(u * S_im + w * S_re), 0.0)
    tl.store(dvp, A_re.to(dvp.dtype.element_ty), mask=ok)
    s_lam -= A_re
    if TOK:
        tl.store(dep, (-A_im).to(dep.dtype.element_ty), mask=ok)
        db = -2.0 * h.to(CDT) * (g1r * A_re + g1i * A_im)
        tl.store(dbp, db.to(dbp.dtype.element_ty), mask=ok)
    else:
        s_eta -= A_im
        # Re(-conj(g_{i-1}) A_i); rows past the chunk hold recomputed garbage: masked, not * 0
        s_beta -= tl.where(ok, g1r * A_re + g1i * A_im, 0.0)
    return tl.where(ok, -beta * A_re, c_re), tl.where(ok, -beta * A_im, c_im), s_lam, s_eta, s_beta


@triton.jit
def _bwd_kernel(
    v_ptr, gre_ptr, gim_ptr, dre_ptr, dim_ptr, lam_ptr, eta_ptr, beta_ptr, init_ptr, dv_ptr,
    part_ptr, g0_ptr, deta_ptr, db_ptr, dg0_ptr, N, C, L, K,
    HAS_INIT: tl.constexpr, GROUP: tl.constexpr, BLOCK_C: tl.constexpr, F64: tl.constexpr,
    TOK: tl.constexpr, HAS_G0: tl.constexpr,
):  # fmt: skip
    """Exact adjoint inside chunk k; dv and partial sums part[(b*K + k)*3 + {lam, eta, beta}].

    The chunk is walked from the right in groups of GROUP rows. For each group the stored
    g one row before it is read and the group's g are recomputed from v (the forward's own
    arithmetic, ``_rec``), then the adjoint runs through the group from its last row: the
    stored g is read once per GROUP rows, v and G once per row.

    TOK: per-token eta and b ((B, N, C) at eta_ptr, beta_ptr) read row by row, their
    gradients written per token (deta_ptr, db_ptr; the eta and beta partial sums stay 0).
    HAS_G0: the initial state g_0 (g0_ptr, (B, 2, C)) is the g before row 0, and the
    first chunk writes the adjoint that leaves it, dL/dg_0 = -beta_1 A_1, to dg0_ptr."""
    CDT: tl.constexpr = tl.float64 if F64 else tl.float32
    pid_k, pid_b, offs, cm, C64, lam, eta, beta, start, end = _chunk_program(
        lam_ptr, eta_ptr, beta_ptr, N, C, L, 0, BLOCK_C, CDT, TOK
    )
    zc = tl.zeros([BLOCK_C], tl.int32)
    row = pid_b.to(tl.int64) * K + pid_k
    if HAS_INIT:
        ib = init_ptr + row * 2 * C64 + offs
        c_re = tl.load(ib, mask=cm, other=0.0).to(CDT)
        c_im = tl.load(ib + C64, mask=cm, other=0.0).to(CDT)
    else:
        c_re = tl.zeros([BLOCK_C], CDT)
        c_im = tl.zeros([BLOCK_C], CDT)
    s_lam = tl.zeros([BLOCK_C], CDT)
    s_eta = tl.zeros([BLOCK_C], CDT)
    s_beta = tl.zeros([BLOCK_C], CDT)
    base = pid_b.to(tl.int64) * N * C64 + offs
    vb = v_ptr + base
    eb = eta_ptr + base  # per token only
    hb = beta_ptr + base
    gb_re = gre_ptr + base
    gb_im = gim_ptr + base
    Gb_re = dre_ptr + base
    Gb_im = dim_ptr + base
    dvb = dv_ptr + base
    deb = deta_ptr + base  # per token only
    dbb = db_ptr + base
    g0b = g0_ptr + pid_b.to(tl.int64) * 2 * C64 + offs  # HAS_G0 only
    T = tl.cdiv(end - start, GROUP)
    n = start + (T - 1) * GROUP  # first row of the last group
    pr, pi = _ld_g0(gb_re, gb_im, g0b, n - 1, start, cm, zc, C64, HAS_G0)
    x0, Gr0, Gi0 = _ld_row(vb, Gb_re, Gb_im, n, start, end, cm, zc, C64)
    x1, Gr1, Gi1 = _ld_row(vb, Gb_re, Gb_im, n + 1, start, end, cm, zc, C64)
    x2, Gr2, Gi2 = _ld_row(vb, Gb_re, Gb_im, n + 2, start, end, cm, zc, C64)
    x3, Gr3, Gi3 = _ld_row(vb, Gb_re, Gb_im, n + 3, start, end, cm, zc, C64)
    e0, h0 = _ld_row_eh(eb, hb, n, start, end, cm, zc, C64, eta, beta, TOK)
    e1, h1 = _ld_row_eh(eb, hb, n + 1, start, end, cm, zc, C64, eta, beta, TOK)
    e2, h2 = _ld_row_eh(eb, hb, n + 2, start, end, cm, zc, C64, eta, beta, TOK)
    e3, h3 = _ld_row_eh(eb, hb, n + 3, start, end, cm, zc, C64, eta, beta, TOK)
    if GROUP == 8:
        x4, Gr4, Gi4 = _ld_row(vb, Gb_re, Gb_im, n + 4, start, end, cm, zc, C64)
        x5, Gr5, Gi5 = _ld_row(vb, Gb_re, Gb_im, n + 5, start, end, cm, zc, C64)
        x6, Gr6, Gi6 = _ld_row(vb, Gb_re, Gb_im, n + 6, start, end, cm, zc, C64)
        x7, Gr7, Gi7 = _ld_row(vb, Gb_re, Gb_im, n + 7, start, end, cm, zc, C64)
        e4, h4 = _ld_row_eh(eb, hb, n + 4, start, end, cm, zc, C64, eta, beta, TOK)
        e5, h5 = _ld_row_eh(eb, hb, n + 5, start, end, cm, zc, C64, eta, beta, TOK)
        e6, h6 = _ld_row_eh(eb, hb, n + 6, start, end, cm, zc, C64, eta, beta, TOK)
        e7, h7 = _ld_row_eh(eb, hb, n + 7, start, end, cm, zc, C64, eta, beta, TOK)
    for _t in range(0, T):
        m = n - GROUP  # the group to the left is loaded before this one is computed
        qr, qi = _ld_g0(gb_re, gb_im, g0b, m - 1, start, cm, zc, C64, HAS_G0)
        y0, Hr0, Hi0 = _ld_row(vb, Gb_re, Gb_im, m, start, end, cm, zc, C64)
        y1, Hr1, Hi1 = _ld_row(vb, Gb_re, Gb_im, m + 1, start, end, cm, zc, C64)
        y2, Hr2, Hi2 = _ld_row(vb, Gb_re, Gb_im, m + 2, start, end, cm, zc, C64)
        y3, Hr3, Hi3 = _ld_row(vb, Gb_re, Gb_im, m + 3, start, end, cm, zc, C64)
        if TOK:
            f0, k0_ = _ld_row_eh(eb, hb, m, start, end, cm, zc, C64, eta, beta, TOK)
            f1, k1_ = _ld_row_eh(eb, hb, m + 1, start, end, cm, zc, C64, eta, beta, TOK)
            f2, k2_ = _ld_row_eh(eb, hb, m + 2, start, end, cm, zc, C64, eta, beta, TOK)
            f3, k3_ = _ld_row_eh(eb, hb, m + 3, start, end, cm, zc, C64, eta, beta, TOK)
        if GROUP == 8:
            y4, Hr4, Hi4 = _ld_row(vb, Gb_re, Gb_im, m + 4, start, end, cm, zc, C64)
            y5, Hr5, Hi5 = _ld_row(vb, Gb_re, Gb_im, m + 5, start, end, cm, zc, C64)
            y6, Hr6, Hi6 = _ld_row(vb, Gb_re, Gb_im, m + 6, start, end, cm, zc, C64)
            y7, Hr7, Hi7 = _ld_row(vb, Gb_re, Gb_im, m + 7, start, end, cm, zc, C64)
            if TOK:
                f4, k4_ = _ld_row_eh(eb, hb, m + 4, start, end, cm, zc, C64, eta, beta, TOK)
                f5, k5_ = _ld_row_eh(eb, hb, m + 5, start, end, cm, zc, C64, eta, beta, TOK)
                f6, k6_ = _ld_row_eh(eb, hb, m + 6, start, end, cm, zc, C64, eta, beta, TOK)
                f7, k7_ = _ld_row_eh(eb, hb, m + 7, start, end, cm, zc, C64, eta, beta, TOK)
        # g of this group, recomputed from the stored g one row before it
        pr = pr.to(CDT)
        pi = pi.to(CDT)
        ec0, bc0 = _eb(e0, h0, TOK, CDT)
        ec1, bc1 = _eb(e1, h1, TOK, CDT)
        ec2, bc2 = _eb(e2, h2, TOK, CDT)
        ec3, bc3 = _eb(e3, h3, TOK, CDT)
        g0r, g0i = _rec(x0, pr, pi, lam, ec0, bc0, CDT)
        g1r, g1i = _rec(x1, g0r, g0i, lam, ec1, bc1, CDT)
        g2r, g2i = _rec(x2, g1r, g1i, lam, ec2, bc2, CDT)
        g3r, g3i = _rec(x3, g2r, g2i, lam, ec3, bc3, CDT)
        if GROUP == 8:
            ec4, bc4 = _eb(e4, h4, TOK, CDT)
            ec5, bc5 = _eb(e5, h5, TOK, CDT)
            ec6, bc6 = _eb(e6, h6, TOK, CDT)
            ec7, bc7 = _eb(e7, h7, TOK, CDT)
            g4r, g4i = _rec(x4, g3r, g3i, lam, ec4, bc4, CDT)
            g5r, g5i = _rec(x5, g4r, g4i, lam, ec5, bc5, CDT)
            g6r, g6i = _rec(x6, g5r, g5i, lam, ec6, bc6, CDT)
            g7r, g7i = _rec(x7, g6r, g6i, lam, ec7, bc7, CDT)
            c_re, c_im, s_lam, s_eta, s_beta = _bwd_row(
                g7r, g7i, Gr7, Gi7, g6r, g6i, cm & (zc + n + 7 < end), bc7, h7,
                c_re, c_im, s_lam, s_eta, s_beta, dvb + (n + 7) * C64, deb + (n + 7) * C64,
                dbb + (n + 7) * C64, TOK, CDT,
            )  # fmt: skip
            c_re, c_im, s_lam, s_eta, s_beta = _bwd_row(
                g6r, g6i, Gr6, Gi6, g5r, g5i, cm & (zc + n + 6 < end), bc6, h6,
                c_re, c_im, s_lam, s_eta, s_beta, dvb + (n + 6) * C64, deb + (n + 6) * C64,
                dbb + (n + 6) * C64, TOK, CDT,
            )  # fmt: skip
            c_re, c_im, s_lam, s_eta, s_beta = _bwd_row(
                g5r, g5i, Gr5, Gi5, g4r, g4i, cm & (zc + n + 5 < end), bc5, h5,
                c_re, c_im, s_lam, s_eta, s_beta, dvb + (n + 5) * C64, deb + (n + 5) * C64,
                dbb + (n + 5) * C64, TOK, CDT,
            )  # fmt: skip
            c_re, c_im, s_lam, s_eta, s_beta = _bwd_row(
                g4r, g4i, Gr4, Gi4, g3r, g3i, cm & (zc + n + 4 < end), bc4, h4,
                c_re, c_im, s_lam, s_eta, s_beta, dvb + (n + 4) * C64, deb + (n + 4) * C64,
                dbb + (n + 4) * C64, TOK, CDT,
            )  # fmt: skip
            x4, Gr4, Gi4 = y4, Hr4, Hi4
            x5, Gr5, Gi5 = y5, Hr5, Hi5
            x6, Gr6, Gi6 = y6, Hr6, Hi6
            x7, Gr7, Gi7 = y7, Hr7, Hi7
            if TOK:
                e4, h4, e5, h5, e6, h6, e7, h7 = f4, k4_, f5, k5_, f6, k6_, f7, k7_
        c_re, c_im, s_lam, s_eta, s_beta = _bwd_row(
            g3r, g3i, Gr3, Gi3, g2r, g2i, cm & (zc + n + 3 < end), bc3, h3,
            c_re, c_im, s_lam, s_eta, s_beta, dvb + (n + 3) * C64, deb + (n + 3) * C64,
            dbb + (n + 3) * C64, TOK, CDT,
        )  # fmt: skip
        c_re, c_im, s_lam, s_eta, s_beta = _bwd_row(
            g2r, g2i, Gr2, Gi2, g1r, g1i, cm & (zc + n + 2 < end), bc2, h2,
            c_re, c_im, s_lam, s_eta, s_beta, dvb + (n + 2) * C64, deb + (n + 2) * C64,
            dbb + (n + 2) * C64, TOK, CDT,
        )  # fmt: skip
        c_re, c_im, s_lam, s_eta, s_beta = _bwd_row(
            g1r, g1i, Gr1, Gi1, g0r, g0i, cm & (zc + n + 1 < end), bc1, h1,
            c_re, c_im, s_lam, s_eta, s_beta, dvb + (n + 1) * C64, deb + (n + 1) * C64,
            dbb + (n + 1) * C64, TOK, CDT,
        )  # fmt: skip
        c_re, c_im, s_lam, s_eta, s_beta = _bwd_row(
            g0r, g0i, Gr0, Gi0, pr, pi, cm & (zc + n < end), bc0, h0,
            c_re, c_im, s_lam, s_eta, s_beta, dvb + (n) * C64, deb + (n) * C64,
            dbb + (n) * C64, TOK, CDT,
        )  # fmt: skip
        x0, Gr0, Gi0 = y0, Hr0, Hi0
        x1, Gr1, Gi1 = y1, Hr1, Hi1
        x2, Gr2, Gi2 = y2, Hr2, Hi2
        x3, Gr3, Gi3 = y3, Hr3, Hi3
        if TOK:
            e0, h0, e1, h1, e2, h2, e3, h3 = f0, k0_, f1, k1_, f2, k2_, f3, k3_
        pr, pi = qr, qi
        n = m
    pb = part_ptr + row * 3 * C64 + offs
    tl.store(pb, s_lam, mask=cm)
    tl.store(pb + C64, s_eta, mask=cm)
    tl.store(pb + 2 * C64, s_beta, mask=cm)
    if HAS_G0:  # the first chunk's adjoint leaving row 0: dL/dg_0
        ok0 = cm & (zc + pid_k == 0)
        tl.store(dg0_ptr + pid_b.to(tl.int64) * 2 * C64 + offs, c_re, mask=ok0)
        tl.store(dg0_ptr + pid_b.to(tl.int64) * 2 * C64 + C64 + offs, c_im, mask=ok0)


# --------------------------------------------------------------------------------------
# Host wrappers
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanConfig:
    """Launch parameters of one direction (tuned on an H100 by ``benchmarks/bench_kernel.py``).

    ``block_c`` channels per program, ``num_warps`` warps per program, ``group`` rows
    loaded one group ahead of use (4 or 8; the backward chunk-map kernel uses 4). The number of
    chunks K is chosen so that about ``target_programs`` programs run, with chunks at least
    ``min_chunk`` long, unless a chunk length is forced.
    """

    block_c: int = 128
    num_warps: int = 1
    target_programs: int = 4096
    min_chunk: int = 64
    group: int = 4


# Measured on an H100 (benchmarks/results/bench_kernel_*NVIDIA-H100-80GB-HBM3_2026-11-24.json,
# 65,536 tokens × 1,024 channels, sweeps over these parameters): with enough independent
# chains (batch × channels >= 32,768) one chunk is fastest (no second pass over the data);
# with fewer, chunks of the sequence fill the GPU at the price of one extra read of v
# (forward) and of (v, dG) (backward: 10 of its 13 bytes per element for bf16 v).
_WIDE_FWD = 32768
_WIDE_BWD = 32768
_FWD_WIDE = ScanConfig(block_c=64, target_programs=1, group=8)
_FWD_LONG = ScanConfig(block_c=128, target_programs=1024, group=8)
_BWD_WIDE = ScanConfig(block_c=64, target_programs=1, group=8)
_BWD_LONG = ScanConfig(block_c=64, target_programs=1024, group=8)
# Per-token (selective) kernels: the same shapes until measured otherwise (benchmarks/
# bench_kernel.py prints the selective rows; --sweep-tok sweeps their launch grid).
_FWD_WIDE_TOK = _FWD_WIDE
_FWD_LONG_TOK = _FWD_LONG
_BWD_WIDE_TOK = _BWD_WIDE
_BWD_LONG_TOK = _BWD_LONG
# The interpreter runs one program at a time: as few, wide programs as possible.
_CPU = (
    ScanConfig(block_c=128, target_programs=1, min_chunk=1),
    ScanConfig(block_c=128, target_programs=1, min_chunk=1),
)


def _default_config(
    device: torch.device, B: int, C: int, per_token: bool = False
) -> tuple[ScanConfig, ScanConfig]:
    """(forward, backward) launch configurations for a (B, ·, C) problem on ``device``,
    per channel or per token (the selective kernels hold two more inputs per row)."""
    if device.type != "cuda":
        return _CPU
    if per_token:
        return (
            _FWD_WIDE_TOK if B * C >= _WIDE_FWD else _FWD_LONG_TOK,
            _BWD_WIDE_TOK if B * C >= _WIDE_BWD else _BWD_LONG_TOK,
        )
    return (
        _FWD_WIDE if B * C >= _WIDE_FWD else _FWD_LONG,
        _BWD_WIDE if B * C >= _WIDE_BWD else _BWD_LONG,
    )


_MAX_GRID_YZ = 65535


def _plan(B: int, N: int, C: int, cfg: ScanConfig, chunk: int | None) -> tuple[int, int, int]:
    """(BLOCK_C, L, K): channel block, chunk length and number of chunks."""
    block_c = min(cfg.block_c, triton.next_power_of_2(max(C, 1)))
    n_cb = triton.cdiv(C, block_c)
    if chunk is None:
        want = max(1, math.ceil(cfg.target_programs / (B * n_cb)))
        k_max = max(1, N // max(cfg.min_chunk, 1))
        L = triton.cdiv(N, min(want, k_max))
        if L < N:  # whole groups of 8 rows: the chunk-map kernel then needs no row masks
            L = min(N, triton.cdiv(L, 8) * 8)
    else:
        L = min(int(chunk), N)
    K = triton.cdiv(N, L)
    if K > _MAX_GRID_YZ or B > _MAX_GRID_YZ:  # CUDA limits grid dimensions y and z
        raise ValueError(
            f"the launch grid needs {K} chunks × {B} batch rows; both must be <= "
            f"{_MAX_GRID_YZ} (use a longer chunk, or split the batch)"
        )
    return block_c, L, K


def _compute_dtype(v: torch.Tensor) -> torch.dtype:
    return torch.float64 if v.dtype == torch.float64 else torch.float32


def _params(lam, eta, hop, cdt):
    """Kernel operands: per channel (C,) in the compute dtype; per token (B, N, C) as given
    (contiguous; the kernels convert on load). Returns (lam, eta, hop, per_token)."""
    tok = eta.ndim == 3
    if tok != (hop.ndim == 3):
        raise ValueError("eta and b must be both per channel or both per token here "
                         "(bk_scan_triton expands a per-channel one)")
    lam = lam.to(cdt).contiguous()
    if tok:
        return lam, eta.contiguous(), hop.contiguous(), True
    return lam, eta.to(cdt).contiguous(), hop.to(cdt).contiguous(), False


def _scan_forward(
    v: torch.Tensor,
    lam: torch.Tensor,
    eta: torch.Tensor,
    beta: torch.Tensor,
    *,
    stats: bool,
    tol: float,
    chunk: int | None = None,
    cfg: ScanConfig | None = None,
    g0: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the forward kernels. Returns g_re, g_im, stats.

    Per channel, ``eta`` and ``beta`` are (C,) and ``beta`` is the hopping squared (any real
    sign: the tests pass beta < 0 to make the certificate counters fire). Per token they are
    (B, N, C) and ``beta`` is the hopping b itself (squared in the kernels, so the backward's
    recomputation squares the same value). ``g0``: (Re, Im) of the initial state, (B, C)."""
    B, N, C = v.shape
    cfg = cfg or _default_config(v.device, B, C, eta.ndim == 3)[0]
    cdt = _compute_dtype(v)
    f64 = cdt == torch.float64
    lam, eta, beta, tok = _params(lam, eta, beta, cdt)
    g_re = torch.empty((B, N, C), dtype=cdt, device=v.device)
    g_im = torch.empty((B, N, C), dtype=cdt, device=v.device)
    counts = torch.zeros(3, dtype=torch.int64, device=v.device)
    if B * N * C == 0:
        return g_re, g_im, counts
    block_c, L, K = _plan(B, N, C, cfg, chunk)
    n_cb = triton.cdiv(C, block_c)
    if cfg.group not in (4, 8):
        raise ValueError(f"group must be 4 or 8, got {cfg.group}")
    kw = dict(GROUP=cfg.group, BLOCK_C=block_c, F64=f64, num_warps=cfg.num_warps, TOK=tok)
    init = v  # placeholder pointer when K == 1 and no initial state (never read)
    if K > 1 or g0 is not None:
        init = torch.empty((B * K * 2, C), dtype=cdt, device=v.device)
        if g0 is not None:  # the value entering chunk 0
            init.view(B, K, 2, C)[:, 0] = torch.stack([g0[0], g0[1]], dim=1).to(cdt)
    if K > 1:
        maps = torch.empty((B * K * 8, C), dtype=cdt, device=v.device)
        grid = (n_cb, K - 1, B)  # the last chunk's map is never needed
        _fwd_chunk_map_kernel[grid](
            v, lam, eta, beta, maps, N, C, L, K, 0, EVEN=L % cfg.group == 0, **kw
        )
        _fwd_carry_kernel[(n_cb, B)](
            maps, init, C, K, BLOCK_C=block_c, F64=f64, HAS_G0=g0 is not None,
            num_warps=cfg.num_warps,
        )  # fmt: skip
    args = (v, lam, eta, beta, init, g_re, g_im, counts, N, C, L, K, float(tol), float(1 + tol))
    has_init = K > 1 or g0 is not None
    _fwd_kernel[(n_cb, K, B)](*args, HAS_INIT=has_init, STATS=stats, **kw)
    return g_re, g_im, counts


def _scan_backward(
    v: torch.Tensor,
    lam: torch.Tensor,
    eta: torch.Tensor,
    beta: torch.Tensor,
    g_re: torch.Tensor,
    g_im: torch.Tensor,
    G_re: torch.Tensor,
    G_im: torch.Tensor,
    *,
    chunk: int | None = None,
    cfg: ScanConfig | None = None,
    g0: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Launch the backward kernels for the forward ``(g_re, g_im) = scan(v, lam, eta, beta)``
    (``eta``, ``beta`` as in :func:`_scan_forward`).

    Returns ``(dv, d_lam, d_eta, d_beta, dg0)``: dv (dtype of ``v``) and the (C,) sum
    ``-sum Re A`` (d lam); per channel the (C,) sums ``-sum Im A`` (d eta) and
    ``sum Re(-conj(g_{i-1}) A_i)`` (d beta); per token (B, N, C) d eta and **d b**
    (``2 b_i dL/dbeta_i``, in the dtypes of eta and b); dg0 = dL/dg_0 as a (B, 2, C) pair
    (Re, Im), or None without initial state. The kernels recompute g from v in groups of
    ``cfg.group`` rows and read the stored g only one row before each group."""
    B, N, C = g_re.shape
    cfg = cfg or _default_config(g_re.device, B, C, eta.ndim == 3)[1]
    cdt = g_re.dtype
    f64 = cdt == torch.float64
    dev = g_re.device
    eta_dtype, b_dtype = eta.dtype, beta.dtype
    lam, eta, beta, tok = _params(lam, eta, beta, cdt)
    v = v.contiguous()
    G_re = G_re.to(cdt).contiguous()
    G_im = G_im.to(cdt).contiguous()
    dv = torch.empty((B, N, C), dtype=v.dtype, device=dev)
    deta = db = dv  # placeholder pointers unless per token (never written)
    if tok:
        deta = torch.empty((B, N, C), dtype=eta_dtype, device=dev)
        db = torch.empty((B, N, C), dtype=b_dtype, device=dev)
    dg0 = None
    g0_buf = dg0_buf = g_re  # placeholder pointers without initial state
    if g0 is not None:
        g0_buf = torch.stack([g0[0], g0[1]], dim=1).to(cdt).contiguous()  # (B, 2, C)
        dg0 = dg0_buf = torch.empty((B, 2, C), dtype=cdt, device=dev)
    if B * N * C == 0:
        z = torch.zeros(C, dtype=cdt, device=dev)
        if dg0 is not None:
            dg0.zero_()
        if tok:
            return dv, z, deta, db, dg0
        return dv, z, z.clone(), z.clone(), dg0
    block_c, L, K = _plan(B, N, C, cfg, chunk)
    n_cb = triton.cdiv(C, block_c)
    if cfg.group not in (4, 8):
        raise ValueError(f"group must be 4 or 8, got {cfg.group}")
    kw = dict(GROUP=cfg.group, BLOCK_C=block_c, F64=f64, num_warps=cfg.num_warps, TOK=tok)
    init = g_re  # placeholder pointer when K == 1 (never read)
    if K > 1:
        maps = torch.empty((B * K * 4, C), dtype=cdt, device=dev)
        init = torch.empty((B * K * 2, C), dtype=cdt, device=dev)
        grid = (n_cb, K - 1, B)  # the first chunk's map is never needed
        _bwd_chunk_map_kernel[grid](
            v, g_re, g_im, G_re, G_im, lam, eta, beta, maps, N, C, L, K, 1, **kw
        )
        _bwd_carry_kernel[(n_cb, B)](
            maps, init, C, K, BLOCK_C=block_c, F64=f64, num_warps=cfg.num_warps
        )
    part = torch.empty((B * K, 3, C), dtype=cdt, device=dev)
    args = (v, g_re, g_im, G_re, G_im, lam, eta, beta, init, dv, part, g0_buf, deta, db,
            dg0_buf, N, C, L, K)  # fmt: skip
    _bwd_kernel[(n_cb, K, B)](*args, HAS_INIT=K > 1, HAS_G0=g0 is not None, **kw)
    if tok:  # only the lam sums are needed
        return dv, part[:, 0].sum(dim=0), deta, db, dg0
    sums = part.sum(dim=0)  # (3, C)
    return dv, sums[0], sums[1], sums[2], dg0


# --------------------------------------------------------------------------------------
# Autograd
# --------------------------------------------------------------------------------------


class _BKScanTriton(torch.autograd.Function):
    """(v, lam, eta, b, stats, tol, chunk, cfg[, g0_re, g0_im]) -> (g_re, g_im, counts);
    eta and b both (C,) or both (B, N, C)."""

    @staticmethod
    def forward(ctx, v, lam, eta, b, stats, tol, chunk, cfg, g0_re=None, g0_im=None):  # type: ignore[override]
        tok = eta.ndim == 3
        hop = b if tok else b.to(_compute_dtype(v)).square()  # per token: squared in-kernel
        cfg_f, cfg_b = cfg if cfg is not None else (None, None)
        g0 = None if g0_re is None else (g0_re, g0_im)
        g_re, g_im, counts = _scan_forward(
            v, lam, eta, hop, stats=stats, tol=tol, chunk=chunk, cfg=cfg_f, g0=g0
        )
        ctx.save_for_backward(v, lam, eta, b, g_re, g_im, g0_re, g0_im)
        ctx.lam_dtype = lam.dtype
        ctx.eta_dtype = eta.dtype
        ctx.chunk = chunk
        ctx.cfg = cfg_b
        ctx.mark_non_differentiable(counts)
        return g_re, g_im, counts

    @staticmethod
    @torch.autograd.function.once_differentiable  # the kernels are not differentiated again
    def backward(ctx, G_re, G_im, _counts):  # type: ignore[override]
        v, lam, eta, b, g_re, g_im, g0_re, g0_im = ctx.saved_tensors
        tok = eta.ndim == 3
        g0 = None if g0_re is None else (g0_re, g0_im)
        bc = b.to(g_re.dtype)
        dv, s_lam, s_eta, s_b, dg0 = _scan_backward(
            v, lam, eta, b if tok else bc.square(), g_re, g_im, G_re, G_im, chunk=ctx.chunk,
            cfg=ctx.cfg, g0=g0,
        )  # fmt: skip
        need = ctx.needs_input_grad
        if need[3] and not tok:
            s_b = (2.0 * bc * s_b).to(b.dtype)  # per token the kernel wrote 2 b dL/dbeta
        d_re = d_im = None
        if dg0 is not None:
            d_re, d_im = dg0[:, 0].to(g0_re.dtype), dg0[:, 1].to(g0_im.dtype)
        grads = (
            dv if need[0] else None,
            s_lam.to(ctx.lam_dtype) if need[1] else None,
            s_eta.to(ctx.eta_dtype) if need[2] else None,
            s_b if need[3] else None,
            None,
            None,
            None,
            None,
            d_re,
            d_im,
        )
        return grads[: len(need)]  # 8 inputs without an initial state, 10 with


# --------------------------------------------------------------------------------------
# Public function
# --------------------------------------------------------------------------------------

def bk_scan_triton(
    v: torch.Tensor,
    lam: torch.Tensor,
    eta: torch.Tensor,
    b: torch.Tensor,
    *,
    return_stats: bool = False,
    tol: float = 1e-3,
    chunk: int | None = None,
    validate: bool | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, ...]:
    """Causal BK scan by Triton kernels, differentiable (exact adjoint backward kernels).

    Computes, for every batch row and channel c, from g_0 (0 or ``initial_state``)
    ``g_i = 1/(v_i - lam_c - i eta_i - b_i**2 g_{i-1})``, i.e.
    ``g_i = [(H_{1..i} - lam - i Gamma_{1..i})^{-1}]_{ii}`` for ``H = tridiag(b, v, b)``,
    ``Gamma = diag(eta_i)`` (docs/conventions.md §3), with eta and b per channel (C,) or per
    token (B, N, C) (the selective scan). For real v, b, ``eta > 0`` and ``Im g_0 >= 0``
    every g_i is Herglotz: ``Im g_i > 0``, ``|g_i| <= 1/eta_i``.

    Parameters
    ----------
    v : (B, N, C) tensor, float32 or bfloat16 (float16, float64 also accepted)
        Potentials; channels contiguous. CUDA tensor, or CPU under ``TRITON_INTERPRET=1``.
    lam : (C,) real tensor
        Re z per channel.
    eta : (C,) or (B, N, C) real tensor
        Im z per channel or the absorption per token (any float dtype, bf16 too; loaded
        and converted in the kernel); must be > 0.
    b : (C,) or (B, N, C) real tensor
        Hopping per channel, or per token (``b[:, i]`` links sites i-1 and i).
    return_stats : bool
        Also return the int64 (3,) counters ``[non-finite, Im g_i < -tol/eta_i,
        |g_i| > (1 + tol)/eta_i]``, counted inside the forward kernel (no extra pass); they
        equal :func:`bkmodel.ops.bk_scan.scan_stats` of the outputs.
    tol : float
        Relative tolerance of the counters, finite and >= 0.
    chunk : int, optional
        Force the chunk length of the sequence-parallel scan (default: chosen from the
        shape so that the GPU is full; one chunk when batch × channels suffices).
    validate : bool, optional
        Check the values (``eta > 0``, finite (C,) parameters, ``Im g_0 >= 0``;
        ``ValueError`` otherwise; ``bkmodel/ops/bk_scan/_validate.py``).
        On CUDA this costs a host-device synchronisation (0.3-0.5 ms per forward + backward
        in ``benchmarks/bench_kernel.py``), so the default (None) checks CPU tensors only,
        like :func:`bkmodel.ops.bk_scan.bk_scan`: on the GPU the model keeps
        ``eta = eta_min + softplus(.) > 0`` and the fused counters flag non-finite output.
        True / False: always / never. Shapes, dtypes and devices are always checked.
    initial_state : (B, C) complex tensor, optional
        g_0 (default 0); differentiable.

    Returns
    -------
    ``(g_re, g_im)`` or ``(g_re, g_im, stats)``: (B, N, C) float32 (float64 for float64
    ``v``); gradients flow to v, lam, eta, b (per token for per-token ones) and the
    initial state.

    Notes
    -----
    O(B·N·C) work; sequential depth ``L + K`` with K chunks of length L. State arithmetic in
    float32 (float64 for float64 input). One forward + backward moves about 23 bytes per
    element for bf16 v with one chunk (read v, write g; read v and dg and every 8th g,
    write dv: the backward recomputes g from v), and about 35 with several chunks; the
    selective scan (bf16 eta, b) 35 and 55.
    On CUDA every call launches 2 (one chunk) or 6 kernels plus a few small torch ops;
    for short sequences that host overhead can exceed the GPU time, and capturing the
    training step in a CUDA graph removes it (``benchmarks/bench_kernel.py`` times both).

    Examples
    --------
    >>> import torch
    >>> v = torch.zeros(1, 2, 1, dtype=torch.float64)
    >>> one = torch.ones(1, dtype=torch.float64)
    >>> g_re, g_im = bk_scan_triton(v, 0 * one, one, one)  # doctest: +SKIP
    >>> complex(g_re[0, 0, 0], g_im[0, 0, 0])  # 1 / (0 - i)  # doctest: +SKIP
    1j
    """
    check_scan_args(
        v, lam, eta, b, initial_state=initial_state, tol=tol, chunk=chunk, values=validate,
        backend="triton",
    )  # fmt: skip
    g_re, g_im, counts = _bk_scan_triton(
        v, lam, eta, b, return_stats=return_stats, tol=tol, chunk=chunk,
        initial_state=initial_state,
    )  # fmt: skip
    if return_stats:
        return g_re, g_im, counts
    return g_re, g_im


def _bk_scan_triton(v, lam, eta, b, *, return_stats, tol, chunk=None, initial_state=None):
    """:func:`bk_scan_triton` without the argument checks: (g_re, g_im, counts)."""
    if (eta.ndim == 3) != (b.ndim == 3):
        # one per token, one per channel: the kernels take both per token; expanding the
        # per-channel one (a copy) lets autograd sum its per-token gradient back to (C,)
        shape = v.shape
        eta = eta.expand(shape).contiguous() if eta.ndim == 1 else eta
        b = b.expand(shape).contiguous() if b.ndim == 1 else b
    g0 = () if initial_state is None else (initial_state.real, initial_state.imag)
    return _BKScanTriton.apply(
        v.contiguous(), lam, eta, b, bool(return_stats), float(tol), chunk, None, *g0
    )
