"""mpmath reference for :mod:`bkmath.scattering`: the lattice scattering matrix S(λ).

Transfer recursion of −Δ + V in mpmath (independent of any determinant); precision scoped
with ``mpmath.workdps``, the result an ``mpmath.matrix``.
"""

from __future__ import annotations

from collections.abc import Sequence

import mpmath

__all__ = ["scattering_matrix_mp"]


def scattering_matrix_mp(v: Sequence[float], lam: float, *, dps: int = 50) -> mpmath.matrix:
    """S(λ) = [[t, r'], [r, t]] of −Δ + V by the transfer recursion in mpmath (sites 0..n−1)."""
    with mpmath.workdps(dps):
        lam = mpmath.mpf(lam)
        e = mpmath.exp(1j * mpmath.acos(1 - lam / 2))
        vv = [mpmath.mpf(0)] + [mpmath.mpf(x) for x in v] + [mpmath.mpf(0)]
        n = len(v)
        hi, lo = e ** (n + 1), e**n
        for m in range(n, -2, -1):
            hi, lo = lo, (2 + vv[m + 1] - lam) * lo - hi
        M = mpmath.matrix([[e**-1, e**1], [e**-2, e**2]])
        A, B = mpmath.lu_solve(M, mpmath.matrix([hi, lo]))
        lo2, hi2 = e**2, e**1
        for m in range(-1, n + 1):
            lo2, hi2 = hi2, (2 + vv[m + 1] - lam) * hi2 - lo2
        M2 = mpmath.matrix([[e**n, e ** (-n)], [e ** (n + 1), e ** (-(n + 1))]])
        A2, B2 = mpmath.lu_solve(M2, mpmath.matrix([lo2, hi2]))
        return mpmath.matrix([[1 / A, A2 / B2], [B / A, 1 / B2]])
