"""Compiled O(N) kernels for tridiagonal operators (numba, private).

Every kernel works on one chain ("row"); a batched driver runs rows ``[r0, r1)`` without the
GIL, and :func:`run_rows` splits the rows over threads (one per core). A ``nogil`` driver
compiles ~3x faster than the same driver with ``parallel=True``/``prange`` (0.25 s vs
0.76 s CPU measured here, cold) and the split over rows is the same. Arithmetic is float64
(inputs are float64 / complex128; the callers widen float32, so no float32 specialisations
are compiled). Complex numbers are carried as pairs of reals, so the hot loops use one real
division per complex reciprocal:
``1/(x + iy) = (x - iy) / (x² + y²)``, with Smith's scaled formula as a fallback when
``x² + y²`` would over- or underflow.

Notation (design.md §3): ``alpha_i = a_i - z`` (minus the lead self-energy ``sigma`` at the
two end sites for the transparent boundary), ``beta_i = b_i c_i``.

* ``rd_*``  — resolvent diagonal (left ratios g^L, right ratios g^R, or the two-sided G_ii);
* ``ld_*``  — log det(H - z) by scaled continuants with winding count for the argument;
* ``sturm_*`` — Sturm count of negative pivots of H - lam (real symmetric H).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# x² + y² is trusted inside (_LO, _HI); outside, Smith's formula avoids over/underflow.
_LO = 2.0**-960
_HI = 2.0**960
# Continuant pairs are renormalised by a power of two when they leave [_SMALL, _BIG].
_BIG = 2.0**400
_SMALL = 2.0**-400
# Relative size that replaces an exactly zero Sturm continuant (the "+pivmin" convention).
_PIVREL = 2.0**-500


@njit(cache=True, inline="always", error_model="numpy")
def _recip(x, y):
    """(u, v) with u + iv = 1 / (x + iy)."""
    r2 = x * x + y * y
    if r2 > _LO and r2 < _HI:
        s = 1.0 / r2
        return x * s, -y * s
    # Smith's algorithm (also gives inf/nan for an exact zero, which the caller detects)
    if abs(x) >= abs(y):
        if x == 0.0:
            return 1.0 / x, 0.0 * y
        r = y / x
        d = x + y * r
        return 1.0 / d, -r / d
    r = x / y
    d = x * r + y
    return r / d, -1.0 / d


# --------------------------------------------------------------------------------------
# resolvent diagonal: real a, real beta (real symmetric or Hermitian H), complex z
# --------------------------------------------------------------------------------------


@njit(cache=True, inline="always", error_model="numpy")
def _div(px, py, qx, qy):
    """(u, v) with u + iv = (px + i py) / (qx + i qy)."""
    r2 = qx * qx + qy * qy
    if r2 > _LO and r2 < _HI:
        s = 1.0 / r2
        return (px * qx + py * qy) * s, (py * qx - px * qy) * s
    ux, uy = _recip(qx, qy)
    return px * ux - py * uy, px * uy + py * ux


@njit(cache=True, inline="always", error_model="numpy")
def _renorm(tx, ty, px, py):
    """Rescale the continuant pair by a power of two when it leaves [_SMALL, _BIG].

    Returns (tx, ty, px, py, k, ok): the pair times 2**-k; ok=False on inf/nan or a zero pair.
    """
    m = max(abs(tx), abs(ty))
    if m > _BIG or m < _SMALL:
        m = max(m, max(abs(px), abs(py)))
        if m > _BIG or m < _SMALL:
            if m == 0.0 or not (m < math.inf):
                return tx, ty, px, py, 0, False
            k = math.frexp(m)[1]
            s = math.ldexp(1.0, -k)
            return tx * s, ty * s, px * s, py * s, k, True
    return tx, ty, px, py, 0, True


# One-sided sweeps run the continuant recursion (a complex multiply-add on the dependency
# chain, no division) and form each ratio g = theta_{i-1} / theta_i off the chain. Scaling the
# pair by a power of two leaves the ratio unchanged, so no exponent is kept. The edge sites
# (lead self-energy) are peeled out of the loops: a data-dependent edge test inside the hot
# loop costs a factor ~2 here.


@njit(cache=True, inline="always", error_model="numpy")
def _cont_step(ax, ay, btr, bti, tx, ty, px, py, o, i):
    """theta_i = alpha theta_{i-1} - beta theta_{i-2}; store g = theta_{i-1}/theta_i in o[i]."""
    nx = ax * tx - ay * ty - (btr * px - bti * py)
    ny = ax * ty + ay * tx - (btr * py + bti * px)
    gx, gy = _div(tx, ty, nx, ny)
    o[i, 0] = gx
    o[i, 1] = gy
    tx, ty, px, py, k, ok = _renorm(nx, ny, tx, ty)
    return tx, ty, px, py, gx + gy, ok


@njit(cache=True, inline="always", error_model="numpy")
def _cont_step_real(ax, ay, bt, tx, ty, px, py, o, i):
    nx = ax * tx - ay * ty - bt * px
    ny = ax * ty + ay * tx - bt * py
    gx, gy = _div(tx, ty, nx, ny)
    o[i, 0] = gx
    o[i, 1] = gy
    tx, ty, px, py, k, ok = _renorm(nx, ny, tx, ty)
    return tx, ty, px, py, gx + gy, ok


@njit(cache=True, nogil=True, error_model="numpy")
def _rd_left_real(a, b, c, lam, eta, sr, si, o):
    n = a.shape[0]
    tx = a[0] - lam - sr
    ty = -eta - si
    if n == 1:
        tx -= sr
        ty -= si
    gx, gy = _div(1.0, 0.0, tx, ty)
    o[0, 0] = gx
    o[0, 1] = gy
    chk = gx + gy
    px = 1.0
    py = 0.0
    for i in range(1, n - 1):
        tx, ty, px, py, dc, ok = _cont_step_real(
            a[i] - lam, -eta, b[i - 1] * c[i - 1], tx, ty, px, py, o, i
        )
        chk += dc
        if not ok:
            return math.nan
    if n > 1:
        i = n - 1
        tx, ty, px, py, dc, ok = _cont_step_real(
            a[i] - lam - sr, -eta - si, b[i - 1] * c[i - 1], tx, ty, px, py, o, i
        )
        chk += dc
    return chk


@njit(cache=True, nogil=True, error_model="numpy")
def _rd_right_real(a, b, c, lam, eta, sr, si, o):
    n = a.shape[0]
    tx = a[n - 1] - lam - sr
    ty = -eta - si
    if n == 1:
        tx -= sr
        ty -= si
    gx, gy = _div(1.0, 0.0, tx, ty)
    o[n - 1, 0] = gx
    o[n - 1, 1] = gy
    chk = gx + gy
    px = 1.0
    py = 0.0
    for i in range(n - 2, 0, -1):
        tx, ty, px, py, dc, ok = _cont_step_real(
            a[i] - lam, -eta, b[i] * c[i], tx, ty, px, py, o, i
        )
        chk += dc
        if not ok:
            return math.nan
    if n > 1:
        tx, ty, px, py, dc, ok = _cont_step_real(
            a[0] - lam - sr, -eta - si, b[0] * c[0], tx, ty, px, py, o, 0
        )
        chk += dc
    return chk


@njit(cache=True, inline="always", error_model="numpy")
def _both_inner_real(ax, ay, btl, gx_prev, gy_prev, btr, ox, oy):
    """Phase-2 step of one sweep: d = alpha - beta_l g_prev (the sweep's own pivot),
    G = 1/(d - beta_r g_other) with the other sweep's stored ratio; returns (G, 1/d)."""
    x = ax - btl * gx_prev
    y = ay - btl * gy_prev
    gx, gy = _recip(x - btr * ox, y - btr * oy)
    lx, ly = _recip(x, y)
    return gx, gy, lx, ly


@njit(cache=True, nogil=True, error_model="numpy")
def _rd_both_real(a, b, c, lam, eta, sr, si, o):
    """Two-sided diagonal G_ii; the left and right sweeps run interleaved in one loop.

    Phase 1 (k < n//2): the left sweep stores g^L_k in o[k], the right sweep g^R_{n-1-k} in
    o[n-1-k]. Phase 2: each sweep continues into the other half, where the other side's
    ratio is already stored next door, and overwrites it with
    G_ii = 1 / (alpha_i - beta_{i-1} g^L_{i-1} - beta_i g^R_{i+1}).
    The two independent dependency chains overlap in the pipeline (one reciprocal each per
    site on the chain, plus one off-chain reciprocal per site for G).
    """
    n = a.shape[0]
    if n == 1:
        gx, gy = _recip(a[0] - lam - 2.0 * sr, -eta - 2.0 * si)
        o[0, 0] = gx
        o[0, 1] = gy
        return gx + gy
    h = n // 2
    lx, ly = _recip(a[0] - lam - sr, -eta - si)
    o[0, 0] = lx
    o[0, 1] = ly
    rx, ry = _recip(a[n - 1] - lam - sr, -eta - si)
    o[n - 1, 0] = rx
    o[n - 1, 1] = ry
    for i in range(1, h):
        j = n - 1 - i
        bt = b[i - 1] * c[i - 1]
        lx, ly = _recip(a[i] - lam - bt * lx, -eta - bt * ly)
        o[i, 0] = lx
        o[i, 1] = ly
        bt = b[j] * c[j]
        rx, ry = _recip(a[j] - lam - bt * rx, -eta - bt * ry)
        o[j, 0] = rx
        o[j, 1] = ry
    chk = 0.0
    for i in range(h, n - 1):
        j = n - 1 - i  # 1 <= j, i <= n - 2
        gx, gy, lx, ly = _both_inner_real(
            a[i] - lam, -eta, b[i - 1] * c[i - 1], lx, ly, b[i] * c[i], o[i + 1, 0], o[i + 1, 1]
        )
        o[i, 0] = gx
        o[i, 1] = gy
        chk += gx + gy
        gx, gy, rx, ry = _both_inner_real(
            a[j] - lam, -eta, b[j] * c[j], rx, ry, b[j - 1] * c[j - 1], o[j - 1, 0], o[j - 1, 1]
        )
        o[j, 0] = gx
        o[j, 1] = gy
        chk += gx + gy
    # last step: left at site n-1, right at site 0 (lead self-energy, no other-side ratio)
    bt = b[n - 2] * c[n - 2]
    gx, gy = _recip(a[n - 1] - lam - sr - bt * lx, -eta - si - bt * ly)
    o[n - 1, 0] = gx
    o[n - 1, 1] = gy
    chk += gx + gy
    bt = b[0] * c[0]
    gx, gy = _recip(a[0] - lam - sr - bt * rx, -eta - si - bt * ry)
    o[0, 0] = gx
    o[0, 1] = gy
    chk += gx + gy
    return chk


# --------------------------------------------------------------------------------------
# resolvent diagonal: general complex a, b, c
# --------------------------------------------------------------------------------------


@njit(cache=True, inline="always", error_model="numpy")
def _cmul(xr, xi, yr, yi):
    return xr * yr - xi * yi, xr * yi + xi * yr


@njit(cache=True, inline="always", error_model="numpy")
def _beta(b, c, i):
    return _cmul(b[i].real, b[i].imag, c[i].real, c[i].imag)


@njit(cache=True, nogil=True, error_model="numpy")
def _rd_left_cplx(a, b, c, zr, zi, sr, si, o):
    n = a.shape[0]
    tx = a[0].real - zr - sr
    ty = a[0].imag - zi - si
    if n == 1:
        tx -= sr
        ty -= si
    gx, gy = _div(1.0, 0.0, tx, ty)
    o[0, 0] = gx
    o[0, 1] = gy
    chk = gx + gy
    px = 1.0
    py = 0.0
    for i in range(1, n - 1):
        btr, bti = _beta(b, c, i - 1)
        tx, ty, px, py, dc, ok = _cont_step(
            a[i].real - zr, a[i].imag - zi, btr, bti, tx, ty, px, py, o, i
        )
        chk += dc
        if not ok:
            return math.nan
    if n > 1:
        i = n - 1
        btr, bti = _beta(b, c, i - 1)
        tx, ty, px, py, dc, ok = _cont_step(
            a[i].real - zr - sr, a[i].imag - zi - si, btr, bti, tx, ty, px, py, o, i
        )
        chk += dc
    return chk


@njit(cache=True, nogil=True, error_model="numpy")
def _rd_right_cplx(a, b, c, zr, zi, sr, si, o):
    n = a.shape[0]
    tx = a[n - 1].real - zr - sr
    ty = a[n - 1].imag - zi - si
    if n == 1:
        tx -= sr
        ty -= si
    gx, gy = _div(1.0, 0.0, tx, ty)
    o[n - 1, 0] = gx
    o[n - 1, 1] = gy
    chk = gx + gy
    px = 1.0
    py = 0.0
    for i in range(n - 2, 0, -1):
        btr, bti = _beta(b, c, i)
        tx, ty, px, py, dc, ok = _cont_step(
            a[i].real - zr, a[i].imag - zi, btr, bti, tx, ty, px, py, o, i
        )
        chk += dc
        if not ok:
            return math.nan
    if n > 1:
        btr, bti = _beta(b, c, 0)
        tx, ty, px, py, dc, ok = _cont_step(
            a[0].real - zr - sr, a[0].imag - zi - si, btr, bti, tx, ty, px, py, o, 0
        )
        chk += dc
    return chk


@njit(cache=True, inline="always", error_model="numpy")
def _both_inner_cplx(ax, ay, blr, bli, gx_prev, gy_prev, brr, bri, ox, oy):
    px, py = _cmul(blr, bli, gx_prev, gy_prev)
    x = ax - px
    y = ay - py
    qx, qy = _cmul(brr, bri, ox, oy)
    gx, gy = _recip(x - qx, y - qy)
    lx, ly = _recip(x, y)
    return gx, gy, lx, ly


@njit(cache=True, nogil=True, error_model="numpy")
def _rd_both_cplx(a, b, c, zr, zi, sr, si, o):
    # same two-phase scheme as _rd_both_real
    n = a.shape[0]
    if n == 1:
        gx, gy = _recip(a[0].real - zr - 2.0 * sr, a[0].imag - zi - 2.0 * si)
        o[0, 0] = gx
        o[0, 1] = gy
        return gx + gy
    h = n // 2
    lx, ly = _recip(a[0].real - zr - sr, a[0].imag - zi - si)
    o[0, 0] = lx
    o[0, 1] = ly
    rx, ry = _recip(a[n - 1].real - zr - sr, a[n - 1].imag - zi - si)
    o[n - 1, 0] = rx
    o[n - 1, 1] = ry
    for i in range(1, h):
        j = n - 1 - i
        btr, bti = _beta(b, c, i - 1)
        px, py = _cmul(btr, bti, lx, ly)
        lx, ly = _recip(a[i].real - zr - px, a[i].imag - zi - py)
        o[i, 0] = lx
        o[i, 1] = ly
        btr, bti = _beta(b, c, j)
        px, py = _cmul(btr, bti, rx, ry)
        rx, ry = _recip(a[j].real - zr - px, a[j].imag - zi - py)
        o[j, 0] = rx
        o[j, 1] = ry
    chk = 0.0
    for i in range(h, n - 1):
        j = n - 1 - i
        blr, bli = _beta(b, c, i - 1)
        brr, bri = _beta(b, c, i)
        gx, gy, lx, ly = _both_inner_cplx(
            a[i].real - zr, a[i].imag - zi, blr, bli, lx, ly, brr, bri, o[i + 1, 0], o[i + 1, 1]
        )
        o[i, 0] = gx
        o[i, 1] = gy
        chk += gx + gy
        blr, bli = _beta(b, c, j)
        brr, bri = _beta(b, c, j - 1)
        gx, gy, rx, ry = _both_inner_cplx(
            a[j].real - zr, a[j].imag - zi, blr, bli, rx, ry, brr, bri, o[j - 1, 0], o[j - 1, 1]
        )
        o[j, 0] = gx
        o[j, 1] = gy
        chk += gx + gy
    btr, bti = _beta(b, c, n - 2)
    px, py = _cmul(btr, bti, lx, ly)
    gx, gy = _recip(a[n - 1].real - zr - sr - px, a[n - 1].imag - zi - si - py)
    o[n - 1, 0] = gx
    o[n - 1, 1] = gy
    chk += gx + gy
    btr, bti = _beta(b, c, 0)
    px, py = _cmul(btr, bti, rx, ry)
    gx, gy = _recip(a[0].real - zr - sr - px, a[0].imag - zi - si - py)
    o[0, 0] = gx
    o[0, 1] = gy
    chk += gx + gy
    return chk


# --------------------------------------------------------------------------------------
# batched drivers (rows in parallel)
# --------------------------------------------------------------------------------------



@njit(cache=True, nogil=True, error_model="numpy")
def _rd_side_ratio(a, b, c, zr, zi, sr, si, o, left):
    """Fallback one-sided sweep by the ratio recursion g_i = 1/(alpha_i - beta g_prev)
    (one reciprocal on the chain, ~2x slower): used when the rescaled continuants
    over/underflow within one step (entries beyond ~1e±200). Real or complex inputs."""
    n = a.shape[0]
    chk = 0.0
    gx = 0.0
    gy = 0.0
    for k in range(n):
        i = k if left else n - 1 - k
        x = a[i].real - zr
        y = a[i].imag - zi
        if i == 0:
            x -= sr
            y -= si
        if i == n - 1:
            x -= sr
            y -= si
        if k > 0:
            j = i - 1 if left else i
            btr, bti = _beta(b, c, j)
            px, py = _cmul(btr, bti, gx, gy)
            x -= px
            y -= py
        gx, gy = _recip(x, y)
        o[i, 0] = gx
        o[i, 1] = gy
        chk += gx + gy
    return chk


def _make_batch(row_kernel, side=0):
    """Batched driver; ``side`` = +1 (left) / -1 (right) adds the ratio fallback."""

    @njit(cache=True, nogil=True, error_model="numpy")
    def batch(r0, r1, a2, ia, b2, c2, ib, zr, zi, sr, si, o3, chk):
        for r in range(r0, r1):
            aa = a2[ia[r]]
            bb = b2[ib[r]]
            cc = c2[ib[r]]
            val = row_kernel(aa, bb, cc, zr[r], zi[r], sr[r], si[r], o3[r])
            if side != 0 and not (abs(val) < math.inf):
                val = _rd_side_ratio(aa, bb, cc, zr[r], zi[r], sr[r], si[r], o3[r], side > 0)
            chk[r] = val

    return batch


rd_left_real = _make_batch(_rd_left_real, 1)
rd_right_real = _make_batch(_rd_right_real, -1)
rd_both_real = _make_batch(_rd_both_real)
rd_left_cplx = _make_batch(_rd_left_cplx, 1)
rd_right_cplx = _make_batch(_rd_right_cplx, -1)
rd_both_cplx = _make_batch(_rd_both_cplx)


# --------------------------------------------------------------------------------------
# log det(H - z): scaled continuants theta_i = alpha_i theta_{i-1} - beta_{i-1} theta_{i-2}
# --------------------------------------------------------------------------------------


@njit(cache=True, inline="always", error_model="numpy")
def _wind(tx, ty, nx, ny, u0, pri):
    """Winding update for the step theta_{i-1} = (tx, ty) -> theta_i = (nx, ny).

    ``u`` says Arg in (0, pi]. When u changes, the rotation (by the principal Arg of the pivot,
    |.| <= pi) crossed the real axis, either through 0 or through pi (then the principal Arg
    of theta jumps by 2 pi and ``wrap`` counts it):

    * both points on the same side of the imaginary axis: the crossing is on that side
      (exact, no cancellation);
    * opposite sides: the direction of rotation decides. ``pri = -1`` / ``+1`` is the known
      direction (Herglotz structure: every pivot in the closed lower / upper half-plane), which
      stays right even when the pivot is so close to the negative real axis that the sign of
      its computed imaginary part is noise; ``pri = 0`` (no structure) uses the chord test
      ``tx |ny| + nx |ty| < 0`` (scale invariant), counting a rotation by exactly pi as +pi
      (principal Arg of a negative real pivot).

    Branch-free (selects), so mispredictions do not stall the loop.
    """
    u1 = (ny > 0.0) | ((ny == 0.0) & (nx < 0.0))
    same = ((tx > 0.0) & (nx > 0.0)) | ((tx < 0.0) & (nx < 0.0))
    ch = tx * abs(ny) + nx * abs(ty)
    chord = (ch < 0.0) | ((ch == 0.0) & u0 & (not u1))
    opp = ((pri > 0.0) & u0 & (not u1)) | ((pri < 0.0) & u1 & (not u0)) | ((pri == 0.0) & chord)
    thr = (same & (tx < 0.0)) | ((not same) & opp)
    return (np.int64(u0) - np.int64(u1)) * np.int64(thr), u1


@njit(cache=True, inline="always", error_model="numpy")
def _wind_h(tx, ty, nx, ny, u0, ccw):
    """:func:`_wind` for a known direction of rotation (``ccw`` True/False): no chord test."""
    u1 = (ny > 0.0) | ((ny == 0.0) & (nx < 0.0))
    same = ((tx > 0.0) & (nx > 0.0)) | ((tx < 0.0) & (nx < 0.0))
    thr = (same & (tx < 0.0)) | ((not same) & (u0 == ccw))
    return (np.int64(u0) - np.int64(u1)) * np.int64(thr), u1


@njit(cache=True, inline="always", error_model="numpy")
def _ld_step(ax, ay, btr, bti, tx, ty, px, py, u0, pri):
    """theta_i = alpha theta_{i-1} - beta theta_{i-2} with winding and rescaling.

    Returns (tx, ty, px, py, dwrap, u, k, ok): the new pair (times 2**-k), the winding
    increment, the half-plane flag of theta_i, the exponent shift, and ok=False on
    overflow/underflow beyond rescaling.
    """
    nx = ax * tx - ay * ty - (btr * px - bti * py)
    ny = ax * ty + ay * tx - (btr * py + bti * px)
    dw, u1 = _wind(tx, ty, nx, ny, u0, pri)
    tx, ty, px, py, k, ok = _renorm(nx, ny, tx, ty)
    return tx, ty, px, py, dw, u1, k, ok


@njit(cache=True, inline="always", error_model="numpy")
def _ld_step_real(ax, ay, bt, tx, ty, px, py, u0, pri):
    nx = ax * tx - ay * ty - bt * px
    ny = ax * ty + ay * tx - bt * py
    dw, u1 = _wind_h(tx, ty, nx, ny, u0, pri > 0.0)
    tx, ty, px, py, k, ok = _renorm(nx, ny, tx, ty)
    return tx, ty, px, py, dw, u1, k, ok


@njit(cache=True, inline="always", error_model="numpy")
def _ld_finish(tx, ty, e, wrap, flip):
    if tx == 0.0 and ty == 0.0:
        return -math.inf, 0.0, True
    lab = math.log(math.hypot(tx, ty)) + e * math.log(2.0)
    # + 0.0 turns -0.0 into +0.0: the principal Arg of a negative real number is +pi, as in _wind
    ang = math.atan2(ty + 0.0, tx) + 2.0 * math.pi * wrap
    return lab, flip * ang, True


@njit(cache=True, nogil=True, error_model="numpy")
def _ld_row(a, b, c, zr, zi, sr, si, flip, pri):
    """Return (log|det|, sum of principal Arg of the pivots, ok) for one chain.

    The pivots are d_i = theta_i / theta_{i-1}; their arguments are summed by counting how
    often the continuant crosses the negative real axis (no atan2 per site). ``flip = -1``
    conjugates the problem (used for real z: gives the +i0 convention after conjugating the
    result back).
    """
    n = a.shape[0]
    tx = a[0].real - zr - sr
    ty = flip * (a[0].imag - zi - si)
    if n == 1:
        tx -= sr
        ty -= flip * si
    dw, u0 = _wind(1.0, 0.0, tx, ty, False, pri)
    wrap = dw
    e = 0
    px = 1.0
    py = 0.0
    for i in range(1, n - 1):
        btr, bti = _beta(b, c, i - 1)
        tx, ty, px, py, dw, u0, k, ok = _ld_step(
            a[i].real - zr, flip * (a[i].imag - zi), btr, flip * bti,
            tx, ty, px, py, u0, pri,
        )  # fmt: skip
        wrap += dw
        e += k
        if not ok:
            return 0.0, 0.0, False
    if n > 1:
        i = n - 1
        btr, bti = _beta(b, c, i - 1)
        tx, ty, px, py, dw, u0, k, ok = _ld_step(
            a[i].real - zr - sr, flip * (a[i].imag - zi - si), btr, flip * bti,
            tx, ty, px, py, u0, pri,
        )  # fmt: skip
        wrap += dw
        e += k
        if not ok:
            return 0.0, 0.0, False
    return _ld_finish(tx, ty, e, wrap, flip)


@njit(cache=True, nogil=True, error_model="numpy")
def _ld_row_real(a, b, c, zr, zi, sr, si, flip, pri):
    """As :func:`_ld_row` for the Herglotz case (real a, real beta = b c >= 0, pri = +-1)."""
    n = a.shape[0]
    ay = -flip * zi
    tx = a[0] - zr - sr
    ty = ay - flip * si
    if n == 1:
        tx -= sr
        ty -= flip * si
    dw, u0 = _wind_h(1.0, 0.0, tx, ty, False, pri > 0.0)
    wrap = dw
    e = 0
    px = 1.0
    py = 0.0
    for i in range(1, n - 1):
        tx, ty, px, py, dw, u0, k, ok = _ld_step_real(
            a[i] - zr, ay, b[i - 1] * c[i - 1], tx, ty, px, py, u0, pri
        )
        wrap += dw
        e += k
        if not ok:
            return 0.0, 0.0, False
    if n > 1:
        i = n - 1
        tx, ty, px, py, dw, u0, k, ok = _ld_step_real(
            a[i] - zr - sr, ay - flip * si, b[i - 1] * c[i - 1], tx, ty, px, py, u0, pri
        )
        wrap += dw
        e += k
        if not ok:
            return 0.0, 0.0, False
    return _ld_finish(tx, ty, e, wrap, flip)


@njit(cache=True, nogil=True, error_model="numpy")
def _ld_row_safe(a, b, c, zr, zi, sr, si, flip, pri):
    """Slow fallback: pivot ratios d_i = alpha_i - beta_{i-1}/d_{i-1} with a log per site."""
    n = a.shape[0]
    lab = 0.0
    ang = 0.0
    dx = 1.0
    dy = 0.0
    for i in range(n):
        ax = a[i].real - zr
        ay = flip * (a[i].imag - zi)
        if i == 0:
            ax -= sr
            ay -= flip * si
        if i == n - 1:
            ax -= sr
            ay -= flip * si
        if i > 0:
            btr, bti = _cmul(b[i - 1].real, b[i - 1].imag, c[i - 1].real, c[i - 1].imag)
            bti = flip * bti
            ix, iy = _recip(dx, dy)
            qx, qy = _cmul(btr, bti, ix, iy)
            dx = ax - qx
            dy = ay - qy
        else:
            dx = ax
            dy = ay
        if dx == 0.0 and dy == 0.0:
            return -math.inf, 0.0, True
        # log|d| without overflow
        lab += math.log(math.hypot(dx, dy))
        t = math.atan2(dy + 0.0, dx)
        # known half-plane of the pivots (see _wind): fix the sign noise of a pivot on the
        # negative real axis
        if pri < 0.0 and t > 0.5 * math.pi:
            t -= 2.0 * math.pi
        elif pri > 0.0 and t < -0.5 * math.pi:
            t += 2.0 * math.pi
        ang += t
    return lab, flip * ang, True


def _make_ld_batch(row_kernel):
    @njit(cache=True, nogil=True, error_model="numpy")
    def batch(r0, r1, a2, ia, b2, c2, ib, zr, zi, sr, si, flip, pri, out2):
        for r in range(r0, r1):
            aa = a2[ia[r]]
            bb = b2[ib[r]]
            cc = c2[ib[r]]
            lab, ang, ok = row_kernel(aa, bb, cc, zr[r], zi[r], sr[r], si[r], flip[r], pri[r])
            if not ok:  # over/underflow beyond the rescaling (entries near 1e±300)
                lab, ang, ok = _ld_row_safe(
                    aa, bb, cc, zr[r], zi[r], sr[r], si[r], flip[r], pri[r]
                )
            out2[r, 0] = lab
            out2[r, 1] = ang

    return batch


log_det_batch = _make_ld_batch(_ld_row)
log_det_batch_real = _make_ld_batch(_ld_row_real)


# --------------------------------------------------------------------------------------
# Sturm count for real symmetric H: sign changes of the continuants of H - lam
# --------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def _sturm_row(a, b, lam):
    """Number of negative pivots of H - lam (= eigenvalues strictly below lam).

    An exact zero continuant theta_i is replaced by 2**-500 * theta_{i-1}, i.e. the pivot
    d_i = 0 becomes +pivmin: eigenvalues equal to lam are not counted.
    """
    n = a.shape[0]
    p = 1.0  # theta_{i-2}
    t = a[0] - lam  # theta_{i-1}
    if t == 0.0:
        t = _PIVREL
    cnt = np.int64(t < 0.0)
    for i in range(1, n):
        bt = b[i - 1] * b[i - 1]
        nt = (a[i] - lam) * t - bt * p
        if nt == 0.0:
            nt = _PIVREL * t
        cnt += nt * t < 0.0
        p = t
        t = nt
        m = max(abs(t), abs(p))
        if m > _BIG or m < _SMALL:
            if not (m < math.inf):
                return -1
            k = math.frexp(m)[1]
            s = math.ldexp(1.0, -k)
            t *= s
            p *= s
    return cnt


@njit(cache=True, nogil=True, error_model="numpy")
def _sturm_row_safe(a, b, lam):
    """Ratio form d_i = (a_i - lam) - b_{i-1}^2 / d_{i-1} with the same zero convention."""
    n = a.shape[0]
    cnt = 0
    d = 1.0
    for i in range(n):
        if i > 0:
            d = (a[i] - lam) - (b[i - 1] * b[i - 1]) / d
        else:
            d = a[i] - lam
        if d == 0.0:
            d = 2.0**-1000
        if d < 0.0:
            cnt += 1
    return cnt


@njit(cache=True, nogil=True, error_model="numpy")
def sturm_batch(r0, r1, a2, ia, b2, ib, lam, out):
    for r in range(r0, r1):
        cnt = _sturm_row(a2[ia[r]], b2[ib[r]], lam[r])
        if cnt < 0:  # overflow in the continuants (entries near 1e300): ratio form
            cnt = _sturm_row_safe(a2[ia[r]], b2[ib[r]], lam[r])
        out[r] = cnt


def run_rows(kernel, rows: int, work: int, *args) -> None:
    """Run ``kernel(r0, r1, *args)`` over rows [0, rows), split across the CPU cores.

    The kernels release the GIL (``nogil=True``), so plain threads run them in parallel.
    ``work`` (≈ rows × N) below ~2·10^4 stays on the calling thread (thread start-up costs
    more than it saves).
    """
    nthreads = min(_n_threads(), rows)
    if nthreads <= 1 or work < 20_000:
        kernel(0, rows, *args)
        return
    bounds = [rows * k // nthreads for k in range(nthreads + 1)]
    pool = _pool()
    futs = [pool.submit(kernel, bounds[k], bounds[k + 1], *args) for k in range(nthreads)]
    for f in futs:
        f.result()


_POOL = None


def _n_threads() -> int:
    import os

    env = os.environ.get("BKMATH_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (not Linux)
        return max(1, os.cpu_count() or 1)


def _pool():
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=_n_threads(), thread_name_prefix="bkmath")
    return _POOL


__all__ = [
    "rd_left_real",
    "rd_right_real",
    "rd_both_real",
    "rd_left_cplx",
    "rd_right_cplx",
    "rd_both_cplx",
    "log_det_batch",
    "log_det_batch_real",
    "sturm_batch",
    "run_rows",
]
