"""log det(H - z) kernels: scaled continuants with a winding count for the argument (numba).

``theta_i = alpha_i theta_{i-1} - beta_{i-1} theta_{i-2}`` (``theta_0 = 1``, ``theta_{-1} = 0``;
docs/conventions.md §3), renormalised by powers of two; ``log|det|`` is the log of the last
continuant plus the exponent shifts, and the sum of the principal arguments of the pivots
``d_i = theta_i / theta_{i-1}`` comes from counting the crossings of the negative real axis.

* ``_ld_row`` (general complex), ``_ld_row_real`` (Herglotz case: real ``a``, real
  ``beta >= 0``, known half-plane of the pivots), ``_ld_row_safe`` (slow pivot-ratio fallback);
* ``log_det_batch``, ``log_det_batch_real`` — batched drivers over rows ``[r0, r1)``, writing
  ``out2[r] = (log|det|, arg)`` and falling back to ``_ld_row_safe`` beyond the rescaling.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bkmath._kernels._complex import _beta, _cmul, _recip, _renorm

__all__ = ["log_det_batch", "log_det_batch_real"]


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


# batched drivers, written out (see bkmath._kernels.resolvent_diagonal on why not a factory)


@njit(cache=True, nogil=True, error_model="numpy")
def log_det_batch(r0, r1, a2, ia, b2, c2, ib, zr, zi, sr, si, flip, pri, out2):
    for r in range(r0, r1):
        aa = a2[ia[r]]
        bb = b2[ib[r]]
        cc = c2[ib[r]]
        lab, ang, ok = _ld_row(aa, bb, cc, zr[r], zi[r], sr[r], si[r], flip[r], pri[r])
        if not ok:  # over/underflow beyond the rescaling (entries near 1e±300)
            lab, ang, ok = _ld_row_safe(aa, bb, cc, zr[r], zi[r], sr[r], si[r], flip[r], pri[r])
        out2[r, 0] = lab
        out2[r, 1] = ang


@njit(cache=True, nogil=True, error_model="numpy")
def log_det_batch_real(r0, r1, a2, ia, b2, c2, ib, zr, zi, sr, si, flip, pri, out2):
    for r in range(r0, r1):
        aa = a2[ia[r]]
        bb = b2[ib[r]]
        cc = c2[ib[r]]
        lab, ang, ok = _ld_row_real(aa, bb, cc, zr[r], zi[r], sr[r], si[r], flip[r], pri[r])
        if not ok:  # over/underflow beyond the rescaling (entries near 1e±300)
            lab, ang, ok = _ld_row_safe(aa, bb, cc, zr[r], zi[r], sr[r], si[r], flip[r], pri[r])
        out2[r, 0] = lab
        out2[r, 1] = ang
