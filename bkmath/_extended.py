"""Extended-exponent fallbacks of the O(N) recursions (mpmath at float64-like precision).

The compiled kernels (:mod:`bkmath._kernels`) work in float64 and rescale continuants by
powers of two, which covers every chain whose coefficients stay inside ~1e±150. Beyond that a
single product ``beta_i = b_i c_i`` or one pivot can leave the float64 exponent range although
the quantity asked for (a ratio ``g``, a log-determinant) is an ordinary float64 number: with
``b = 1e300`` the pivot ``d_2 = alpha_2 - b²/d_1`` is ~1e600, yet ``g^R_1 = 1/(alpha_1 - b² g^R_2)``
is of order one. The rows where a kernel reports a non-finite result are recomputed here with
the *same* recursions in mpmath binary floating point at :data:`PREC` bits: the same rounding
(to nearest, slightly more bits than float64) and an unbounded exponent, so the results are
what float64 would give without overflow, and the same backward-stability statements hold
(docs/conventions.md §3). Slow (pure Python, ~10 µs per site); used only on those rows.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np

__all__ = ["PREC", "ratio_diagonal_row", "log_det_row", "sturm_count_row"]

#: Working precision of the fallbacks (bits): float64's 53 plus a guard byte.
PREC = 64


def _mpc(x: complex) -> mpmath.mpc:
    return mpmath.mpc(float(np.real(x)), float(np.imag(x)))


def _alphas(a, zr: float, zi: float, sr: float, si: float) -> list:
    """alpha_i = a_i - z, minus the lead term sigma on the two end sites (2 sigma if N = 1)."""
    n = len(a)
    z = mpmath.mpc(zr, zi)
    s = mpmath.mpc(sr, si)
    al = [_mpc(a[i]) - z for i in range(n)]
    al[0] -= s
    al[n - 1] -= s
    return al


def _betas(b, c, n: int) -> list:
    return [_mpc(b[i]) * _mpc(c[i]) for i in range(n - 1)]


class SingularPivot(ValueError):
    """A pivot of the recursion is exactly zero (H - z singular in the working precision)."""


def _one_sided(al: list, be: list, left: bool) -> list:
    n = len(al)
    g = [mpmath.mpc(0)] * n
    prev = None
    for k in range(n):
        i = k if left else n - 1 - k
        d = al[i]
        if prev is not None:
            d -= (be[i - 1] if left else be[i]) * prev
        if d == 0:
            raise SingularPivot(f"pivot {i} vanished")
        prev = 1 / d
        g[i] = prev
    return g


def ratio_diagonal_row(a, b, c, zr, zi, sr, si, side: str) -> np.ndarray:
    """g^L, g^R or G_ii (``side`` = "left", "right", "both") of one chain, complex128.

    Raises :class:`SingularPivot` (a ValueError) when a pivot is exactly zero.
    """
    with mpmath.workprec(PREC):
        al = _alphas(a, zr, zi, sr, si)
        n = len(al)
        be = _betas(b, c, n)
        if side == "left":
            g = _one_sided(al, be, True)
        elif side == "right":
            g = _one_sided(al, be, False)
        else:
            # G_ii = 1/(alpha_i - beta_{i-1} g^L_{i-1} - beta_i g^R_{i+1}); the one-sided ratios
            # of the *open* blocks (no lead on the far end) are what enters
            # (g^L_{i-1} uses sites < i only, g^R_{i+1} sites > i only: the far lead never
            # enters either, so the one-sided sweeps over the full chain give them)
            gl = _one_sided(al, be, True)
            gr = _one_sided(al, be, False)
            g = []
            for i in range(n):
                d = al[i]
                if i > 0:
                    d -= be[i - 1] * gl[i - 1]
                if i < n - 1:
                    d -= be[i] * gr[i + 1]
                if d == 0:
                    raise SingularPivot(f"pivot {i} vanished")
                g.append(1 / d)
        with np.errstate(over="ignore", under="ignore"):
            return np.array([complex(x) for x in g], dtype=np.complex128)


def log_det_row(a, b, c, zr, zi, sr, si, flip: float, pri: float) -> tuple[float, float]:
    """(log|det|, Σ Arg d_i) of one chain by the pivot-ratio recursion, as the kernels'
    ``_ld_row_safe`` (same ``flip``/``pri`` conventions) but without overflow.

    Returns ``(-inf, 0)`` when a pivot is exactly zero (H - z singular), like the kernels.
    """
    with mpmath.workprec(PREC):
        n = len(a)
        lab = mpmath.mpf(0)
        ang = 0.0
        d = None
        s = mpmath.mpc(sr, flip * si)
        for i in range(n):
            ai = _mpc(a[i])
            al = mpmath.mpc(ai.real - zr, flip * (ai.imag - zi))
            if i == 0:
                al -= s
            if i == n - 1:
                al -= s
            if i > 0:
                bt = _mpc(b[i - 1]) * _mpc(c[i - 1])
                bt = mpmath.mpc(bt.real, flip * bt.imag)
                d = al - bt / d
            else:
                d = al
            if d == 0:
                return -math.inf, 0.0
            lab += mpmath.log(abs(d))
            t = float(mpmath.atan2(d.imag + 0, d.real))
            if pri < 0.0 and t > 0.5 * math.pi:
                t -= 2.0 * math.pi
            elif pri > 0.0 and t < -0.5 * math.pi:
                t += 2.0 * math.pi
            ang += t
        return float(lab), flip * ang


def sturm_count_row(a, b, lam: float) -> int:
    """Number of negative pivots of H - lam (real symmetric), zero pivot -> +pivmin."""
    with mpmath.workprec(PREC):
        cnt = 0
        d = None
        tiny = mpmath.ldexp(1, -100000)
        for i in range(len(a)):
            al = mpmath.mpf(float(a[i])) - lam
            d = al if i == 0 else al - mpmath.mpf(float(b[i - 1])) ** 2 / d
            if d == 0:
                d = tiny
            cnt += d < 0
        return int(cnt)
