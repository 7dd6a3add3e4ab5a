"""Resolvent-diagonal kernels: one-sided g^L, g^R and the two-sided G_ii (numba).

Notation (docs/conventions.md §3): ``alpha_i = a_i - z`` (minus the lead self-energy
``sigma = sr + i si`` at the two end sites for the transparent boundary), ``beta_i = b_i c_i``.

* ``_rd_{left,right,both}_{real,cplx}`` — one chain; the ``real`` kernels take real ``a`` and
  real ``beta`` (real symmetric or Hermitian H) and complex z = ``lam + i eta``, the ``cplx``
  kernels general complex ``a, b, c``. Each writes ``o[i] = (Re, Im)`` and returns a checksum
  (sum of the outputs), non-finite iff some pivot vanished or overflowed.
* ``rd_{left,right,both}_{real,cplx}`` — the batched drivers over rows ``[r0, r1)`` (GIL
  released); the one-sided ones fall back to the ratio recursion :func:`_rd_side_ratio` when
  the rescaled continuants over/underflow within one step.
"""

from __future__ import annotations

import math

from numba import njit

from bkmath._kernels._complex import _beta, _cmul, _div, _recip, _renorm

__all__ = [
    "rd_left_real",
    "rd_right_real",
    "rd_both_real",
    "rd_left_cplx",
    "rd_right_cplx",
    "rd_both_cplx",
]


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
        if not ok:  # theta_N overflowed: its ratio g (stored above) is not trustworthy
            return math.nan
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
        if not ok:
            return math.nan
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
        if not ok:
            return math.nan
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
        if not ok:
            return math.nan
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
# batched drivers (rows in parallel). Written out one by one, not made by a factory: a
# closure over a dispatcher gets a new numba cache key in every process (the dispatcher's
# pickle carries a per-process id), so factory-made drivers were recompiled every time.
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


@njit(cache=True, nogil=True, error_model="numpy")
def rd_left_real(r0, r1, a2, ia, b2, c2, ib, zr, zi, sr, si, o3, chk):
    for r in range(r0, r1):
        aa = a2[ia[r]]
        bb = b2[ib[r]]
        cc = c2[ib[r]]
        val = _rd_left_real(aa, bb, cc, zr[r], zi[r], sr[r], si[r], o3[r])
        if not (abs(val) < math.inf):
            val = _rd_side_ratio(aa, bb, cc, zr[r], zi[r], sr[r], si[r], o3[r], True)
        chk[r] = val


@njit(cache=True, nogil=True, error_model="numpy")
def rd_right_real(r0, r1, a2, ia, b2, c2, ib, zr, zi, sr, si, o3, chk):
    for r in range(r0, r1):
        aa = a2[ia[r]]
        bb = b2[ib[r]]
        cc = c2[ib[r]]
        val = _rd_right_real(aa, bb, cc, zr[r], zi[r], sr[r], si[r], o3[r])
        if not (abs(val) < math.inf):
            val = _rd_side_ratio(aa, bb, cc, zr[r], zi[r], sr[r], si[r], o3[r], False)
        chk[r] = val


@njit(cache=True, nogil=True, error_model="numpy")
def rd_both_real(r0, r1, a2, ia, b2, c2, ib, zr, zi, sr, si, o3, chk):
    for r in range(r0, r1):
        aa = a2[ia[r]]
        bb = b2[ib[r]]
        cc = c2[ib[r]]
        val = _rd_both_real(aa, bb, cc, zr[r], zi[r], sr[r], si[r], o3[r])
        chk[r] = val


@njit(cache=True, nogil=True, error_model="numpy")
def rd_left_cplx(r0, r1, a2, ia, b2, c2, ib, zr, zi, sr, si, o3, chk):
    for r in range(r0, r1):
        aa = a2[ia[r]]
        bb = b2[ib[r]]
        cc = c2[ib[r]]
        val = _rd_left_cplx(aa, bb, cc, zr[r], zi[r], sr[r], si[r], o3[r])
        if not (abs(val) < math.inf):
            val = _rd_side_ratio(aa, bb, cc, zr[r], zi[r], sr[r], si[r], o3[r], True)
        chk[r] = val


@njit(cache=True, nogil=True, error_model="numpy")
def rd_right_cplx(r0, r1, a2, ia, b2, c2, ib, zr, zi, sr, si, o3, chk):
    for r in range(r0, r1):
        aa = a2[ia[r]]
        bb = b2[ib[r]]
        cc = c2[ib[r]]
        val = _rd_right_cplx(aa, bb, cc, zr[r], zi[r], sr[r], si[r], o3[r])
        if not (abs(val) < math.inf):
            val = _rd_side_ratio(aa, bb, cc, zr[r], zi[r], sr[r], si[r], o3[r], False)
        chk[r] = val


@njit(cache=True, nogil=True, error_model="numpy")
def rd_both_cplx(r0, r1, a2, ia, b2, c2, ib, zr, zi, sr, si, o3, chk):
    for r in range(r0, r1):
        aa = a2[ia[r]]
        bb = b2[ib[r]]
        cc = c2[ib[r]]
        val = _rd_both_cplx(aa, bb, cc, zr[r], zi[r], sr[r], si[r], o3[r])
        chk[r] = val
