"""Single-pass (decoupled look-back) Triton forward of the causal BK scan (issue 14).

The object is the scan of ``triton_scan.py`` / ``naive.py`` (docs/conventions.md §3): for
every batch row and channel c, from g_0 (0 or the initial state),

    g_i = 1 / (alpha_i - beta_i g_{i-1}),   alpha_i = v_i - lam_c - i eta_i,   beta_i = b_i**2,

with eta, b per channel (C,) or per token (B, N, C). :func:`bk_scan_triton` needs three
forward kernels when the sequence is cut into K > 1 chunks (chunk maps, a sequential carry,
the recurrence); :func:`bk_scan_triton_onepass` does the same work in **one** kernel launch,
forward only (inference, evaluation), with the chunk carry done by *decoupled look-back*
between the programs of one launch (Merrill & Garland, "Single-pass parallel prefix scan
with decoupled look-back", 2016), adapted to an operator that is a 2×2 complex matrix.

Programs and tickets. Program t of the launch (one chunk of L rows × BLOCK_C channels of
one batch row) takes its work from an atomic ticket counter, not from ``program_id``:
ticket t is chunk ``k = t // (B·n_cb)``, batch ``(t // n_cb) % B``, channel block
``t % n_cb``. So every chunk k - 1 of a chain has taken its ticket (is resident and
running) before any chunk k of the same chain: a program only ever waits for programs
that are already running, whatever order the hardware schedules them in — no deadlock
even when the grid is larger than what the GPU holds at once.

Look-back protocol, per chain (batch row b, channel block cb), flags ``F[k]`` (int32):

1. Chunk k composes its Möbius map ``P_k = M_e ... M_s`` (``M_i = [[0, 1], [-beta_i,
   alpha_i]]``, as in ``_fwd_chunk_map_kernel``; the last chunk needs none). If k > 0 it
   stores P_k (8 reals per channel: the *aggregate*) and sets ``F[k] = AGG``.
2. Its entering value: chunk 0 has g_0. Chunk k > 0 looks back with an accumulated map
   A (identity), from j = k - 1, a *window* of W flags ``F[j], F[j-1], ..., F[j-W+1]``
   at a time (W = one flag per thread, 32 by default; CUB's warp-wide look-back): with p
   the nearest ``INC`` in the window and q the nearest unpublished flag, if p < q then
   ``s_k = A · P_j ··· P_{j-p+1} (I_{j-p})`` (``I`` the inclusive values), stop; else
   ``A <- A · P_j ··· P_{j-q+1}`` (renormalised), j <- j - q, and look again (q = 0:
   chunk j is not published yet, poll). So the look-back advances up to W chunks per
   memory round trip instead of one — the rate at which the known prefix moves along a
   chain of N / L chunks bounds the whole launch. Chunk 0 never publishes an aggregate,
   only its inclusive value, so j never passes 0.
3. Unless last, it stores its inclusive value ``I_k = P_k(s_k)`` (the value entering
   chunk k + 1) and sets ``F[k] = INC``.
4. It runs the exact recurrence over its rows from s_k and writes Re g, Im g — the same
   ``_fwd_row`` step (and fused certificate counters) as ``_fwd_kernel``.

Memory ordering (the choice of atomics). Publication: the data are stored by every
thread, then ``tl.debug_barrier()`` (CTA barrier: all those stores are ordered before
what follows), then the flag is written by a gpu-scope *release* atomic; observation: the
flag is read by a gpu-scope *acquire* atomic, then ``tl.debug_barrier()`` before the data
loads (which also bypass L1: ``cache_modifier=".cg"``) — the pattern of CUTLASS's
``Semaphore`` (one releasing thread after ``__syncthreads()``, one acquiring thread before
it). The W flags of a look-back window are acquired element-wise (with the default W,
one flag per thread: no replicated copies of an atomic), and the decision (p, q of step 2)
is taken by ``tl.min`` reductions, whose result is the same in every thread, so every
thread takes the same path through the look-back loop, which contains barriers. Two
variants, chosen by ``rmw_flags``:

* ``True`` (default): publish ``tl.atomic_xchg(F + k, tag, sem="release")`` (a scalar
  read-modify-write is executed once per program — the lowering the spin lock of
  Triton's layer-norm tutorial relies on), poll ``tl.atomic_add(F + j - w, 0,
  sem="acquire")``;
* ``False``: ``tl.atomic_store(..., sem="release")`` and ``tl.atomic_load(...,
  sem="acquire")`` (cheaper polls, no read-modify-write; newer Triton API).

The aggregate is 8 floats per channel, too wide for a packed value+flag word, hence the
separate flag array and the fences.

Flags without a memset: the flags live in a cached int32 workspace ``[ticket, done, epoch,
spin-timeouts, F...]`` per (device, stream). A launch with epoch e writes the tags
``AGG = 2e + 1`` and ``INC = 2e + 2`` and treats every other value as "not yet published",
so stale flags of earlier launches never match. The program that finishes last (its
``done`` ticket is the last) resets ticket and done to 0 and increments the epoch: the next
launch on the stream starts clean. So a call is exactly one kernel launch (plus
``torch.empty`` for outputs and aggregates), capturable in a CUDA graph. A poll that has
not seen its flag after ``max_spin`` polls (never, unless something is broken) gives up:
the chunk's entering value becomes NaN (so is its output, and whatever looks back at it)
and ``spin-timeouts`` is incremented — a failure shows as NaN output, not as a hang.

Cost. O(B·N·C) work; K = ceil(N / L) chunks; sequential depth about ``2 L`` plus the
look-back (a few chunks in steady state), in ``B · ceil(C / BLOCK_C) · K`` programs.
From DRAM, per element: read v (eta, b per token), write g: 2 + 8 bytes for bf16 v (+ 4
for bf16 per-token eta, b), against + 2 (the chunk maps' extra read of v) and two more
launches for ``bk_scan_triton`` with K > 1. The recurrence re-reads the chunk's inputs
that the map pass has just read; chunks are short (64 rows by default,
:class:`OnepassConfig`) so that the re-read can come from L2 (to be measured:
``benchmarks/bench_scan_onepass.py``). Plus 8 + 2 floats of aggregate and inclusive
value per chunk and channel (10 floats against the chunk's 2 L of g: 8 % at L = 64), and
one int32 flag per chunk. With B·C >= 32,768 each chain is one chunk: no look-back, the
kernel is ``_fwd_kernel`` plus two atomics.

Interpreter. Under ``TRITON_INTERPRET=1`` the programs run one after the other, in grid
order, hence in ticket order: each predecessor has finished, so the look-back finds ``INC``
at once and never polls. The test-only knobs of :func:`_onepass_forward` force the other
paths: ``inc_every = m`` publishes inclusive values only for chunks with ``k % m == 0``
(the others stay at AGG, so look-back composes up to m - 1 aggregates), and
``publish_agg=False`` with ``inc_every > 1`` withholds some flags entirely, which exercises
the polling loop and its timeout. What the interpreter cannot exercise is concurrency:
the memory ordering of the fences, and programs that actually wait — that needs a GPU.

Conventions: Im z > 0 branch (``eta > 0``); complex values as (re, im) pairs; the state in
float32 registers (float64 for float64 input).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from bkmodel.ops.bk_scan._validate import check_scan_args
from bkmodel.ops.bk_scan.triton_scan import (
    _compute_dtype,
    _fwd_map_rows,
    _fwd_row,
    _i64,
    _ld_eh,
    _params,
    _renorm,
)

__all__ = ["OnepassConfig", "bk_scan_triton_onepass"]

_HEADER = 4  # ticket, done, epoch, spin timeouts
#: Whether this Triton has tl.atomic_load / tl.atomic_store (the ``rmw_flags=False``
#: variant): Triton 3.9 does, 3.6 (the lent H200's) does not.
HAS_ATOMIC_LOAD_STORE = hasattr(tl, "atomic_load") and hasattr(tl, "atomic_store")
_SPIN_DEFAULT = 1 << 18  # polls before giving up (~0.3 s on a GPU; legit waits are << 1 ms)
_HEADER_W: tl.constexpr = tl.constexpr(_HEADER)


# --------------------------------------------------------------------------------------
# Device functions
# --------------------------------------------------------------------------------------


@triton.jit
def _ld4(vb, eb, hb, m, lim, cm, zc, C64, eta, beta, TOK: tl.constexpr):
    """Rows m .. m + 3 (masked at lim): v and (``_ld_eh``) eta_i, b_i or the channel's."""
    x0 = tl.load(vb + m * C64, mask=cm & (zc + m < lim), other=0.0)
    x1 = tl.load(vb + (m + 1) * C64, mask=cm & (zc + m + 1 < lim), other=0.0)
    x2 = tl.load(vb + (m + 2) * C64, mask=cm & (zc + m + 2 < lim), other=0.0)
    x3 = tl.load(vb + (m + 3) * C64, mask=cm & (zc + m + 3 < lim), other=0.0)
    e0, h0 = _ld_eh(eb, hb, m * C64, cm & (zc + m < lim), eta, beta, TOK)
    e1, h1 = _ld_eh(eb, hb, (m + 1) * C64, cm & (zc + m + 1 < lim), eta, beta, TOK)
    e2, h2 = _ld_eh(eb, hb, (m + 2) * C64, cm & (zc + m + 2 < lim), eta, beta, TOK)
    e3, h3 = _ld_eh(eb, hb, (m + 3) * C64, cm & (zc + m + 3 < lim), eta, beta, TOK)
    return x0, x1, x2, x3, e0, h0, e1, h1, e2, h2, e3, h3


@triton.jit
def _map4(
    x0, x1, x2, x3, e0, h0, e1, h1, e2, h2, e3, h3, n, end, lam, a_im, beta,
    p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im, zc,
    MASKED: tl.constexpr, TOK: tl.constexpr, CDT: tl.constexpr,
):  # fmt: skip
    """Four rows n .. n + 3 of the chunk map (``_fwd_map_rows``), then ``_renorm``."""
    p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _fwd_map_rows(
        x0, e0, h0, n, end, lam, a_im, beta, p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im,
        zc, MASKED, TOK, CDT,
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
    return _renorm(p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im)


@triton.jit
def _identity_map(BLOCK_C: tl.constexpr, CDT: tl.constexpr):
    """The identity Möbius map (p, q; r, s) = (1, 0; 0, 1), complex parts (re, im) each."""
    one = tl.full([BLOCK_C], 1.0, CDT)
    zero = tl.zeros([BLOCK_C], CDT)
    return one, zero, zero, zero, zero, zero, one, zero


@triton.jit
def _map_pass(
    vb, eb, hb, start, mend, lim, lam, eta, beta, cm, zc, C64,
    MASKED: tl.constexpr, GROUP: tl.constexpr, TOK: tl.constexpr, CDT: tl.constexpr,
    BLOCK_C: tl.constexpr,
):  # fmt: skip
    """The Möbius product ``M_{mend-1} ... M_start`` as (p, q; r, s) (identity when
    mend == start), rows loaded one group ahead (``_fwd_chunk_map_kernel``'s schedule)."""
    p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _identity_map(BLOCK_C, CDT)
    a_im = -eta
    x0, x1, x2, x3, e0, h0, e1, h1, e2, h2, e3, h3 = _ld4(
        vb, eb, hb, start, lim, cm, zc, C64, eta, beta, TOK
    )
    if GROUP == 8:
        x4, x5, x6, x7, e4, h4, e5, h5, e6, h6, e7, h7 = _ld4(
            vb, eb, hb, start + 4, lim, cm, zc, C64, eta, beta, TOK
        )
    for n in range(start, mend, GROUP):
        m = n + GROUP  # the next group, loaded before this one is computed
        y0, y1, y2, y3, f0, k0, f1, k1, f2, k2, f3, k3 = _ld4(
            vb, eb, hb, m, lim, cm, zc, C64, eta, beta, TOK
        )
        if GROUP == 8:
            y4, y5, y6, y7, f4, k4, f5, k5, f6, k6, f7, k7 = _ld4(
                vb, eb, hb, m + 4, lim, cm, zc, C64, eta, beta, TOK
            )
        p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _map4(
            x0, x1, x2, x3, e0, h0, e1, h1, e2, h2, e3, h3, n, mend, lam, a_im, beta,
            p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im, zc, MASKED, TOK, CDT,
        )  # fmt: skip
        if GROUP == 8:
            p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _map4(
                x4, x5, x6, x7, e4, h4, e5, h5, e6, h6, e7, h7, n + 4, mend, lam, a_im, beta,
                p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im, zc, MASKED, TOK, CDT,
            )  # fmt: skip
            x4, x5, x6, x7 = y4, y5, y6, y7
            e4, h4, e5, h5, e6, h6, e7, h7 = f4, k4, f5, k5, f6, k6, f7, k7
        x0, x1, x2, x3 = y0, y1, y2, y3
        e0, h0, e1, h1, e2, h2, e3, h3 = f0, k0, f1, k1, f2, k2, f3, k3
    return p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im


@triton.jit
def _mobius(p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im, g_re, g_im):
    """(p g + q) / (r g + s)."""
    n_re = p_re * g_re - p_im * g_im + q_re
    n_im = p_re * g_im + p_im * g_re + q_im
    d_re = r_re * g_re - r_im * g_im + s_re
    d_im = r_re * g_im + r_im * g_re + s_im
    inv = 1.0 / (d_re * d_re + d_im * d_im)
    return (n_re * d_re + n_im * d_im) * inv, (n_im * d_re - n_re * d_im) * inv


@triton.jit
def _cmul(a_re, a_im, b_re, b_im):
    return a_re * b_re - a_im * b_im, a_re * b_im + a_im * b_re


@triton.jit
def _compose(
    ap_re, ap_im, aq_re, aq_im, ar_re, ar_im, as_re, as_im,
    p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im,
):  # fmt: skip
    """The 2×2 complex product A · P (the map A applied after P), renormalised."""
    t1_re, t1_im = _cmul(ap_re, ap_im, p_re, p_im)
    t2_re, t2_im = _cmul(aq_re, aq_im, r_re, r_im)
    t3_re, t3_im = _cmul(ap_re, ap_im, q_re, q_im)
    t4_re, t4_im = _cmul(aq_re, aq_im, s_re, s_im)
    t5_re, t5_im = _cmul(ar_re, ar_im, p_re, p_im)
    t6_re, t6_im = _cmul(as_re, as_im, r_re, r_im)
    t7_re, t7_im = _cmul(ar_re, ar_im, q_re, q_im)
    t8_re, t8_im = _cmul(as_re, as_im, s_re, s_im)
    return _renorm(
        t1_re + t2_re, t1_im + t2_im, t3_re + t4_re, t3_im + t4_im,
        t5_re + t6_re, t5_im + t6_im, t7_re + t8_re, t7_im + t8_im,
    )  # fmt: skip


@triton.jit
def _vmask(cm, zc, cond):
    """cm & cond for a scalar condition, as a vector mask (the interpreter needs one)."""
    return cm & ((zc + cond.to(tl.int32)) != 0)


@triton.jit
def _publish(fp, tag, RMW_FLAGS: tl.constexpr):
    """Release the data stored before: CTA barrier, then a gpu-scope release of the flag."""
    tl.debug_barrier()
    if RMW_FLAGS:
        tl.atomic_xchg(fp, tag, sem="release", scope="gpu")
    else:
        tl.atomic_store(fp, tag, sem="release", scope="gpu")


@triton.jit
def _observe(fp, ok, RMW_FLAGS: tl.constexpr, WIN: tl.constexpr):
    """The WIN flags at fp (where ok, else 0), each acquired (gpu scope), then a CTA
    barrier before any data load (an acquire by one thread orders every thread's later
    loads through it). RMW: ``atomic_add(.., 0)``; else ``atomic_load``."""
    if RMW_FLAGS:
        f = tl.atomic_add(fp, tl.zeros([WIN], tl.int32), mask=ok, sem="acquire", scope="gpu")
    else:
        f = tl.atomic_load(fp, mask=ok, sem="acquire", scope="gpu")
    tl.debug_barrier()
    return tl.where(ok, f, 0)


@triton.jit
def _rec_pass(
    vb, eb, hb, pr, pi, start, end, g_re, g_im, lam, eta, beta, cm, zc, C64,
    herg, bnd2, tol, one_tol,
    STATS: tl.constexpr, GROUP: tl.constexpr, TOK: tl.constexpr, CDT: tl.constexpr,
    BLOCK_C: tl.constexpr,
):  # fmt: skip
    """The exact recurrence over rows [start, end) from the entering value, g written
    (``_fwd_row``, ``_fwd_kernel``'s schedule); returns the certificate counts."""
    n_nf = tl.zeros([BLOCK_C], tl.int32)
    n_hg = tl.zeros([BLOCK_C], tl.int32)
    n_bd = tl.zeros([BLOCK_C], tl.int32)
    x0, x1, x2, x3, e0, h0, e1, h1, e2, h2, e3, h3 = _ld4(
        vb, eb, hb, start, end, cm, zc, C64, eta, beta, TOK
    )
    if GROUP == 8:
        x4, x5, x6, x7, e4, h4, e5, h5, e6, h6, e7, h7 = _ld4(
            vb, eb, hb, start + 4, end, cm, zc, C64, eta, beta, TOK
        )
    for n in range(start, end, GROUP):
        m = n + GROUP
        y0, y1, y2, y3, f0, k0, f1, k1, f2, k2, f3, k3 = _ld4(
            vb, eb, hb, m, end, cm, zc, C64, eta, beta, TOK
        )
        if GROUP == 8:
            y4, y5, y6, y7, f4, k4, f5, k5, f6, k6, f7, k7 = _ld4(
                vb, eb, hb, m + 4, end, cm, zc, C64, eta, beta, TOK
            )
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
            x4, x5, x6, x7 = y4, y5, y6, y7
            e4, h4, e5, h5, e6, h6, e7, h7 = f4, k4, f5, k5, f6, k6, f7, k7
        x0, x1, x2, x3 = y0, y1, y2, y3
        e0, h0, e1, h1, e2, h2, e3, h3 = f0, k0, f1, k1, f2, k2, f3, k3
    return n_nf, n_hg, n_bd


# --------------------------------------------------------------------------------------
# The kernel
# --------------------------------------------------------------------------------------


@triton.jit
def _onepass_kernel(
    v_ptr, lam_ptr, eta_ptr, beta_ptr, g0_ptr, agg_ptr, inc_ptr, ws_ptr,
    gre_ptr, gim_ptr, stats_ptr,
    N, C, L, K, NCB, B, tol, one_tol, max_spin,
    HAS_G0: tl.constexpr, STATS: tl.constexpr, GROUP: tl.constexpr, BLOCK_C: tl.constexpr,
    F64: tl.constexpr, TOK: tl.constexpr, EVEN: tl.constexpr, INC_EVERY: tl.constexpr,
    PUBLISH_AGG: tl.constexpr, RMW_FLAGS: tl.constexpr, WIN: tl.constexpr,
):  # fmt: skip
    """One program = chunk k of L rows × BLOCK_C channels of one batch row, taken by ticket;
    map, publish, look back, publish, recurrence (module docstring). ws: int32
    [ticket, done, epoch, spin timeouts, flags (B·n_cb·K, chain-major)]; agg: (B·K·8, C)
    and inc: (B·K·2, C) in the compute dtype; g0: (B, 2, C) (Re, Im) with HAS_G0."""
    CDT: tl.constexpr = tl.float64 if F64 else tl.float32
    MASKED: tl.constexpr = not EVEN
    # ---- ticket: chunk-major, so chunk k - 1 of every chain is taken before chunk k
    t = tl.atomic_add(ws_ptr, 1, sem="relaxed", scope="gpu")
    ep = tl.load(ws_ptr + 2)
    TAG_AGG = 2 * ep + 1
    TAG_INC = 2 * ep + 2
    per_k = NCB * B
    pid_k = t // per_k
    rest = t - pid_k * per_k
    pid_b = rest // NCB
    pid_c = rest - pid_b * NCB
    offs = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = offs < C
    C64 = _i64(C)
    zc = tl.zeros([BLOCK_C], tl.int32)
    lam = tl.load(lam_ptr + offs, mask=cm, other=0.0).to(CDT)
    if TOK:
        eta = tl.full([BLOCK_C], 1.0, CDT)
        beta = tl.zeros([BLOCK_C], CDT)
    else:
        eta = tl.load(eta_ptr + offs, mask=cm, other=1.0).to(CDT)
        beta = tl.load(beta_ptr + offs, mask=cm, other=0.0).to(CDT)
    start = pid_k * L
    end = tl.minimum(start + L, N)
    not_last = pid_k < K - 1
    mend = tl.where(not_last, end, start)  # the last chunk's map is never needed
    if EVEN:
        lim = N  # whole groups: rows loaded past the chunk exist (next chunk)
    else:
        lim = mend
    base = pid_b.to(tl.int64) * N * C64 + offs
    vb = v_ptr + base
    eb = eta_ptr + base  # per token only
    hb = beta_ptr + base
    chain = pid_b.to(tl.int64) * NCB + pid_c
    fb = ws_ptr + _HEADER_W + chain * K  # this chain's flags
    bk = pid_b.to(tl.int64) * K  # chunk 0 of batch row b
    ab = agg_ptr + bk * 8 * C64 + offs  # chunk k's aggregate at ab + k * 8 * C
    ib = inc_ptr + bk * 2 * C64 + offs  # chunk k's inclusive value at ib + k * 2 * C
    # ---- 1. the chunk's map; publish it as the aggregate (chunks 0 < k < K - 1)
    p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im = _map_pass(
        vb, eb, hb, start, mend, lim, lam, eta, beta, cm, zc, C64,
        MASKED, GROUP, TOK, CDT, BLOCK_C,
    )  # fmt: skip
    if PUBLISH_AGG:
        pub = not_last & (pid_k > 0)
        o = ab + pid_k * 8 * C64
        sm = _vmask(cm, zc, pub)
        tl.store(o, p_re, mask=sm)
        tl.store(o + C64, p_im, mask=sm)
        tl.store(o + 2 * C64, q_re, mask=sm)
        tl.store(o + 3 * C64, q_im, mask=sm)
        tl.store(o + 4 * C64, r_re, mask=sm)
        tl.store(o + 5 * C64, r_im, mask=sm)
        tl.store(o + 6 * C64, s_re, mask=sm)
        tl.store(o + 7 * C64, s_im, mask=sm)
        if pub:
            _publish(fb + pid_k, TAG_AGG, RMW_FLAGS)
    # ---- 2. the entering value: g_0 for chunk 0, else by look-back
    if HAS_G0:
        g0b = g0_ptr + pid_b.to(tl.int64) * 2 * C64 + offs
        first = _vmask(cm, zc, pid_k == 0)
        g_re = tl.load(g0b, mask=first, other=0.0).to(CDT)
        g_im = tl.load(g0b + C64, mask=first, other=0.0).to(CDT)
    else:
        g_re = tl.zeros([BLOCK_C], CDT)
        g_im = tl.zeros([BLOCK_C], CDT)
    # accumulated map A of the chunks looked back over (identity)
    ap_re, ap_im, aq_re, aq_im, ar_re, ar_im, as_re, as_im = _identity_map(BLOCK_C, CDT)
    j = pid_k - 1  # the nearest chunk not looked at yet
    go = pid_k > 0
    spins = pid_k * 0
    ow = tl.arange(0, WIN)
    while go:
        # one window: the flags of chunks j, j-1, ..., j-WIN+1, acquired together
        fv = _observe(fb + j - ow, (j - ow) >= 0, RMW_FLAGS, WIN)
        inc = fv == TAG_INC
        rdy = inc | (fv == TAG_AGG)
        p_i = tl.min(tl.where(inc, ow, WIN), axis=0)  # nearest INC (WIN: none)
        q_i = tl.min(tl.where(rdy, WIN, ow), axis=0)  # nearest unpublished (WIN: none)
        done = p_i < q_i  # an INC with only AGGs between it and us
        n_agg = tl.minimum(p_i, q_i)  # A <- A · P_j · P_{j-1} ... over n_agg aggregates
        # a runtime loop over the n_agg aggregates: unrolled over all WIN (tl.static_range)
        # it made Triton 3.6's make_ttgir run for minutes at WIN = 32 on the H200 (3.7 s at
        # WIN = 4), which looked like a hang (2026-12-04)
        for i in range(0, n_agg):
            oa = ab + (j - i) * 8 * C64
            b_p_re = tl.load(oa, mask=cm, other=1.0, cache_modifier=".cg").to(CDT)
            b_p_im = tl.load(oa + C64, mask=cm, other=0.0, cache_modifier=".cg").to(CDT)
            b_q_re = tl.load(oa + 2 * C64, mask=cm, other=0.0, cache_modifier=".cg").to(CDT)
            b_q_im = tl.load(oa + 3 * C64, mask=cm, other=0.0, cache_modifier=".cg").to(CDT)
            b_r_re = tl.load(oa + 4 * C64, mask=cm, other=0.0, cache_modifier=".cg").to(CDT)
            b_r_im = tl.load(oa + 5 * C64, mask=cm, other=0.0, cache_modifier=".cg").to(CDT)
            b_s_re = tl.load(oa + 6 * C64, mask=cm, other=1.0, cache_modifier=".cg").to(CDT)
            b_s_im = tl.load(oa + 7 * C64, mask=cm, other=0.0, cache_modifier=".cg").to(CDT)
            ap_re, ap_im, aq_re, aq_im, ar_re, ar_im, as_re, as_im = _compose(
                ap_re, ap_im, aq_re, aq_im, ar_re, ar_im, as_re, as_im,
                b_p_re, b_p_im, b_q_re, b_q_im, b_r_re, b_r_im, b_s_re, b_s_im,
            )  # fmt: skip
        # INC found: the entering value is A(I_{j - p})
        mi = _vmask(cm, zc, done)
        oi = ib + (j - p_i) * 2 * C64
        i_re = tl.load(oi, mask=mi, other=0.0, cache_modifier=".cg").to(CDT)
        i_im = tl.load(oi + C64, mask=mi, other=0.0, cache_modifier=".cg").to(CDT)
        e_re, e_im = _mobius(ap_re, ap_im, aq_re, aq_im, ar_re, ar_im, as_re, as_im, i_re, i_im)
        g_re = tl.where(done, e_re, g_re)
        g_im = tl.where(done, e_im, g_im)
        j = j - n_agg
        # nothing usable in the window (chunk j unpublished): poll again; after max_spin
        # polls give up with NaN
        spins += ((n_agg == 0) & ~done).to(tl.int32)
        timeout = spins > max_spin
        g_re = tl.where(timeout, float("nan"), g_re)
        g_im = tl.where(timeout, float("nan"), g_im)
        go = ~(done | timeout)
    tl.atomic_add(ws_ptr + 3, (spins > max_spin).to(tl.int32), sem="relaxed", scope="gpu")
    # ---- 3. the inclusive value P_k(s_k) = value entering chunk k + 1
    if not_last:
        n_re, n_im = _mobius(p_re, p_im, q_re, q_im, r_re, r_im, s_re, s_im, g_re, g_im)
        o = ib + pid_k * 2 * C64
        tl.store(o, n_re, mask=cm)
        tl.store(o + C64, n_im, mask=cm)
        if pid_k % INC_EVERY == 0:
            _publish(fb + pid_k, TAG_INC, RMW_FLAGS)
    # ---- 4. the exact recurrence inside the chunk
    inv_eta = 1.0 / eta
    herg = -tol * inv_eta
    bnd = one_tol * inv_eta
    bnd2 = bnd * bnd
    n_nf, n_hg, n_bd = _rec_pass(
        vb, eb, hb, gre_ptr + base, gim_ptr + base, start, end, g_re, g_im, lam, eta, beta,
        cm, zc, C64, herg, bnd2, tol, one_tol, STATS, GROUP, TOK, CDT, BLOCK_C,
    )  # fmt: skip
    if STATS:
        tl.atomic_add(stats_ptr + 0, tl.sum(n_nf, axis=0).to(tl.int64))
        tl.atomic_add(stats_ptr + 1, tl.sum(n_hg, axis=0).to(tl.int64))
        tl.atomic_add(stats_ptr + 2, tl.sum(n_bd, axis=0).to(tl.int64))
    # ---- the last program to finish resets the ticket and opens the next epoch
    d = tl.atomic_add(ws_ptr + 1, 1, sem="acq_rel", scope="gpu")
    if d == per_k * K - 1:
        tl.atomic_xchg(ws_ptr, 0, sem="relaxed", scope="gpu")
        tl.atomic_xchg(ws_ptr + 1, 0, sem="relaxed", scope="gpu")
        tl.atomic_xchg(ws_ptr + 2, ep + 1, sem="release", scope="gpu")



# --------------------------------------------------------------------------------------
# Host side
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OnepassConfig:
    """Launch shape of the one-pass kernel.

    ``block_c`` channels per program, ``num_warps`` warps per program, ``group`` rows loaded
    one group ahead (4 or 8), ``chunk`` rows per program when the sequence is cut (rounded
    up to whole groups), ``wide``: at B·C >= wide every chain is one chunk (enough programs
    without cutting the sequence; no look-back, no second read of v). ``lookback``: flags
    examined per look-back step, a power of 2 (None: one per thread, 32 · num_warps, so
    that no thread holds a replicated copy of a flag atomic).

    Why short chunks: the recurrence re-reads the rows the map pass has just read, which
    should come from L2. The bytes in flight are (resident programs) × chunk × block_c ×
    2 (bf16 v): about 2,000 one-warp programs × 64 × 64 × 2 = 16 MiB at the default, inside
    an H100/H200's 50 MB L2; chunks of 512 rows would not be.
    """

    block_c: int = 64
    num_warps: int = 1
    group: int = 8
    chunk: int = 64
    wide: int = 32768
    lookback: int | None = None


# Untuned starting points (benchmarks/bench_scan_onepass.py --sweep measures others); the
# wide threshold is triton_scan's (_WIDE_FWD: one chunk is fastest at B·C >= 32,768).
_GPU = OnepassConfig()
# The interpreter runs one program at a time: few, wide programs (one chunk per chain).
_CPU = OnepassConfig(block_c=128, wide=0, lookback=4)


def _plan_onepass(
    B: int, N: int, C: int, cfg: OnepassConfig, chunk: int | None
) -> tuple[int, int, int]:
    """(BLOCK_C, L, K): channel block, chunk length, number of chunks."""
    if cfg.group not in (4, 8):
        raise ValueError(f"group must be 4 or 8, got {cfg.group}")
    lb = cfg.lookback
    if lb is not None and (lb < 1 or lb & (lb - 1)):
        raise ValueError(f"lookback must be a power of 2, got {lb}")
    block_c = min(cfg.block_c, triton.next_power_of_2(max(C, 1)))
    if chunk is not None:
        L = min(int(chunk), N)
    elif B * C >= cfg.wide:
        L = N
    else:
        L = min(N, triton.cdiv(max(cfg.chunk, 1), cfg.group) * cfg.group)
    L = max(L, 1)
    return block_c, L, triton.cdiv(N, L)


_WORKSPACES: dict[tuple, torch.Tensor] = {}


def _ws_key(device: torch.device) -> tuple:
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        return (device.type, index, torch.cuda.current_stream(index).cuda_stream)
    return (device.type, device.index)


def _workspace(device: torch.device, n_flags: int) -> torch.Tensor:
    """The cached int32 workspace [ticket, done, epoch, timeouts, flags] of (device, current
    stream), grown (re-zeroed) when a launch needs more flags. Programs of one launch on one
    stream reset it for the next launch (module docstring); launches on different streams
    must not share it, hence the stream in the key."""
    key = _ws_key(device)
    ws = _WORKSPACES.get(key)
    need = _HEADER + max(n_flags, 1)
    if ws is None or ws.numel() < need:
        ws = torch.zeros(max(need, 2 * (0 if ws is None else ws.numel())), dtype=torch.int32,
                         device=device)
        _WORKSPACES[key] = ws
    return ws


def _workspace_header(device: torch.device) -> list[int] | None:
    """[ticket, done, epoch, spin timeouts] of the current stream's workspace (a host read),
    None before the first launch. Between launches ticket = done = 0; ``spin timeouts`` is
    cumulative over launches and nonzero only if some look-back gave up (NaN output)."""
    ws = _WORKSPACES.get(_ws_key(device))
    return None if ws is None else ws[:_HEADER].tolist()


def _onepass_forward(
    v: torch.Tensor,
    lam: torch.Tensor,
    eta: torch.Tensor,
    beta: torch.Tensor,
    *,
    stats: bool = False,
    tol: float = 1e-3,
    chunk: int | None = None,
    cfg: OnepassConfig | None = None,
    g0: tuple[torch.Tensor, torch.Tensor] | None = None,
    inc_every: int = 1,
    publish_agg: bool = True,
    rmw_flags: bool = True,
    max_spin: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the one-pass kernel (unchecked). Returns g_re, g_im, stats counters.

    ``eta``, ``beta`` as in ``triton_scan._scan_forward``: per channel (C,) eta and the
    hopping squared; per token (B, N, C) eta and the hopping b itself (squared in-kernel).
    ``g0``: (Re, Im) of the initial state, (B, C). Test-only knobs: ``inc_every``,
    ``publish_agg`` (module docstring, "Interpreter"); ``rmw_flags`` (flag atomics by
    read-modify-write, the default; False: atomic load/store) and ``max_spin`` (polls
    before a look-back gives up) are also for trying variants on a GPU."""
    B, N, C = v.shape
    dev = v.device
    cfg = cfg or (_GPU if dev.type == "cuda" else _CPU)
    if inc_every < 1:
        raise ValueError(f"inc_every must be >= 1, got {inc_every}")
    if not rmw_flags and not HAS_ATOMIC_LOAD_STORE:
        raise ValueError(f"rmw_flags=False needs tl.atomic_load / tl.atomic_store, which this "
                         f"Triton ({triton.__version__}) does not have; use rmw_flags=True")
    cdt = _compute_dtype(v)
    lam, eta, beta, tok = _params(lam, eta, beta, cdt)
    v = v.contiguous()
    g_re = torch.empty((B, N, C), dtype=cdt, device=dev)
    g_im = torch.empty((B, N, C), dtype=cdt, device=dev)
    counts = torch.zeros(3, dtype=torch.int64, device=dev)
    if B * N * C == 0:
        return g_re, g_im, counts
    block_c, L, K = _plan_onepass(B, N, C, cfg, chunk)
    win = cfg.lookback or 32 * cfg.num_warps
    n_cb = triton.cdiv(C, block_c)
    if B * n_cb * K >= 2**31:
        raise ValueError(f"chunk: the grid of {B * n_cb * K} programs is too large; use a "
                         "longer chunk")
    agg = inc = g_re  # placeholder pointers when K == 1 (never read or written)
    if K > 1:
        agg = torch.empty((B * K * 8, C), dtype=cdt, device=dev)
        inc = torch.empty((B * K * 2, C), dtype=cdt, device=dev)
    g0_buf = g_re  # placeholder without initial state
    if g0 is not None:
        g0_buf = torch.stack([g0[0], g0[1]], dim=1).to(cdt).contiguous()  # (B, 2, C)
    ws = _workspace(dev, B * n_cb * K)
    if max_spin is None:
        max_spin = _SPIN_DEFAULT if dev.type == "cuda" else 64
    try:
        _onepass_kernel[(B * n_cb * K,)](
            v, lam, eta, beta, g0_buf, agg, inc, ws, g_re, g_im, counts,
            N, C, L, K, n_cb, B, float(tol), float(1 + tol), int(max_spin),
            HAS_G0=g0 is not None, STATS=stats, GROUP=cfg.group, BLOCK_C=block_c,
            F64=cdt == torch.float64, TOK=tok, EVEN=L % cfg.group == 0,
            INC_EVERY=int(inc_every), PUBLISH_AGG=bool(publish_agg), RMW_FLAGS=bool(rmw_flags),
            WIN=win,
            num_warps=cfg.num_warps,
        )  # fmt: skip
    except BaseException:  # an interrupted launch (interpreter) leaves the header dirty
        _WORKSPACES.clear()
        raise
    return g_re, g_im, counts


def bk_scan_triton_onepass(
    v: torch.Tensor,
    lam: torch.Tensor,
    eta: torch.Tensor,
    b: torch.Tensor,
    *,
    initial_state: torch.Tensor | None = None,
    chunk: int | None = None,
    return_stats: bool = False,
    tol: float = 1e-3,
    validate: bool | None = None,
) -> tuple[torch.Tensor, ...]:
    """Causal BK scan, forward only, by one Triton kernel launch (decoupled look-back).

    Computes, for every batch row and channel c, from g_0 (0 or ``initial_state``)
    ``g_i = 1/(v_i - lam_c - i eta_i - b_i**2 g_{i-1})``, i.e. ``g_i = [(H_{1..i} - lam -
    i Gamma_{1..i})^{-1}]_{ii}`` for ``H = tridiag(b, v, b)``, ``Gamma = diag(eta_i)``
    (docs/conventions.md §3; the Im z > 0 branch: ``eta > 0``), with eta and b per channel
    (C,) or per token (B, N, C). Same maths, shapes, dtypes and argument checks as
    :func:`bkmodel.ops.bk_scan.triton_scan.bk_scan_triton`, without autograd: for
    inference and evaluation.

    Parameters
    ----------
    v : (B, N, C) tensor, float32 or bfloat16 (float16, float64 also accepted)
        Potentials; CUDA tensor, or CPU under ``TRITON_INTERPRET=1``.
    lam : (C,) real tensor
        Re z per channel.
    eta : (C,) or (B, N, C) real tensor
        Im z per channel or the absorption per token; must be > 0.
    b : (C,) or (B, N, C) real tensor
        Hopping per channel, or per token (``b[:, i]`` links sites i-1 and i).
    initial_state : (B, C) complex tensor, optional
        g_0 (default 0), ``Im g_0 >= 0``.
    chunk : int, optional
        Force the chunk length L (default on a GPU: one chunk per chain when B·C >= 32,768,
        else chunks of 64 rows (:class:`OnepassConfig`); one chunk in the interpreter).
    return_stats : bool
        Also return the int64 (3,) certificate counters of ``bk_scan_triton``
        (fused; equal to :func:`bkmodel.ops.bk_scan.scan_stats` of the output).
    tol : float
        Relative tolerance of the counters, finite and >= 0.
    validate : bool, optional
        Value checks as in ``bk_scan_triton`` (None: CPU tensors only).

    Returns
    -------
    ``(g_re, g_im)`` or ``(g_re, g_im, stats)``: (B, N, C) float32 (float64 for float64
    ``v``), not attached to any autograd graph.

    Raises
    ------
    TypeError, ValueError
        From ``check_scan_args`` (the message names the argument); ValueError also when
        grad mode is on and an input requires grad (this function has no backward: use
        ``bk_scan_triton``, or call it under ``torch.no_grad()``).

    Notes
    -----
    O(B·N·C) work; one kernel launch of ``B · ceil(C / BLOCK_C) · K`` programs, each a
    chunk of L rows: its chunk map (2×2 complex product), published for the chunks after
    it; its entering value by look-back over the published aggregates and inclusive values
    of the chunks before it (flags with release/acquire atomics, chunk order from an atomic
    ticket counter; module docstring); then the exact recurrence, writing g. Memory traffic
    from DRAM: read v (and per-token eta, b) once, write g; the chunk's inputs are read a
    second time (L2, if the chunk fits). In the interpreter the programs run in order, so
    the look-back protocol is exercised but not its concurrency.
    """
    check_scan_args(
        v, lam, eta, b, initial_state=initial_state, tol=tol, chunk=chunk, values=validate,
        backend="triton",
    )  # fmt: skip
    if torch.is_grad_enabled():
        for name, t in (("v", v), ("lam", lam), ("eta", eta), ("b", b),
                        ("initial_state", initial_state)):  # fmt: skip
            if t is not None and t.requires_grad:
                raise ValueError(
                    f"{name} requires grad, but bk_scan_triton_onepass is forward only (no "
                    "backward): use bk_scan_triton, or call it under torch.no_grad()"
                )
    with torch.no_grad():
        if (eta.ndim == 3) != (b.ndim == 3):  # the kernel takes both per token: expand
            eta = eta.expand(v.shape) if eta.ndim == 1 else eta
            b = b.expand(v.shape) if b.ndim == 1 else b
        tok = eta.ndim == 3
        hop = b if tok else b.to(_compute_dtype(v)).square()  # per token: squared in-kernel
        g0 = None if initial_state is None else (initial_state.real, initial_state.imag)
        g_re, g_im, counts = _onepass_forward(
            v, lam, eta, hop, stats=return_stats, tol=tol, chunk=chunk, g0=g0
        )
    if return_stats:
        return g_re, g_im, counts
    return g_re, g_im

