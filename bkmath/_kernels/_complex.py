"""Complex arithmetic on pairs of reals, and the rescaling of continuant pairs (numba).

The kernels carry every complex number as two float64 (``x``, ``y`` for ``x + iy``), so a
complex reciprocal costs one real division: ``1/(x + iy) = (x - iy) / (x² + y²)``, with
Smith's scaled formula as the fallback when ``x² + y²`` would over- or underflow. Every
function here is ``inline="always"``: it is compiled into the kernels that call it.

Continuant pairs ``(θ_i, θ_{i-1})`` are renormalised by a power of two (exact in binary
floating point) when they leave ``[_SMALL, _BIG]``; ratios of the pair are unchanged.

Numba's on-disk cache of a kernel is invalidated by changes to the kernel's *own* file only;
after editing this file, delete ``bkmath/_kernels/__pycache__`` so that the kernels that
inlined these functions are recompiled.
"""

from __future__ import annotations

import math

from numba import njit

# x² + y² is trusted inside (_LO, _HI); outside, Smith's formula avoids over/underflow.
_LO = 2.0**-960
_HI = 2.0**960
# Continuant pairs are renormalised by a power of two when they leave [_SMALL, _BIG].
_BIG = 2.0**400
_SMALL = 2.0**-400


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
def _cmul(xr, xi, yr, yi):
    return xr * yr - xi * yi, xr * yi + xi * yr


@njit(cache=True, inline="always", error_model="numpy")
def _beta(b, c, i):
    return _cmul(b[i].real, b[i].imag, c[i].real, c[i].imag)


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


__all__ = ["_BIG", "_HI", "_LO", "_SMALL", "_beta", "_cmul", "_div", "_recip", "_renorm"]
