"""mpmath references for :mod:`bkmath.fredholm`: det(I + K), det₂(I + K), the square-well Jost
function.

Straightforward, high-precision, slow: dense ``mpmath.matrix`` determinants and a closed form.
Precision is scoped with ``mpmath.workdps``; results are mpmath numbers (convert with
``complex(...)``).
"""

from __future__ import annotations

import mpmath

__all__ = ["fredholm_det_mp", "det2_mp", "square_well_jost_mp"]


def fredholm_det_mp(K: mpmath.matrix, *, dps: int = 50) -> mpmath.mpc:
    """det(I + K) in mpmath."""
    with mpmath.workdps(dps):
        n = K.rows
        return mpmath.det(mpmath.eye(n) + K) if n else mpmath.mpf(1)


def det2_mp(K: mpmath.matrix, *, dps: int = 50) -> mpmath.mpc:
    """det₂(I + K) = det(I + K) exp(−tr K) in mpmath."""
    with mpmath.workdps(dps):
        tr = sum(K[i, i] for i in range(K.rows)) if K.rows else 0
        return fredholm_det_mp(K, dps=dps) * mpmath.exp(-tr)


def square_well_jost_mp(depth: float, interval: tuple[float, float], z: complex,
                        *, dps: int = 50) -> mpmath.mpc:
    """det(I + V R0(z)) for V = depth · 1_[a, b] (H0 = −d²/dx²), closed form in mpmath."""
    with mpmath.workdps(dps):
        z = mpmath.mpc(z)
        k = mpmath.sqrt(z)
        a, b = mpmath.mpf(interval[0]), mpmath.mpf(interval[1])
        L = a - b
        q = mpmath.sqrt(k * k - depth)
        c = mpmath.cos(q * L)
        s_q = mpmath.sin(q * L) / q if q != 0 else L
        f0, g0 = mpmath.exp(1j * k * b), 1j * k * mpmath.exp(1j * k * b)
        f = c * f0 + s_q * g0
        g = -(q * q) * s_q * f0 + c * g0
        return mpmath.exp(-1j * k * a) * (g + 1j * k * f) / (2j * k)
