"""Sturm-count kernels for real symmetric H: negative pivots of H - lam (numba).

The number of eigenvalues strictly below ``lam`` is the number of negative pivots
``d_i = (a_i - lam) - b_{i-1}² / d_{i-1}`` (Sylvester inertia; docs/conventions.md §3),
computed from sign changes of the rescaled continuants, with the ratio form as fallback.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bkmath._kernels._complex import _BIG, _SMALL

__all__ = ["sturm_batch"]

# Relative size that replaces an exactly zero Sturm continuant (the "+pivmin" convention).
_PIVREL = 2.0**-500


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
        if not (abs(nt) < math.inf):  # overflow (or inf - inf) within one step
            return -1
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
        if not (abs(d) < math.inf):  # b² or a pivot beyond float64: caller's fallback
            return -1
        if d < 0.0:
            cnt += 1
    return cnt


@njit(cache=True, nogil=True, error_model="numpy")
def sturm_batch(r0, r1, a2, ia, b2, ib, lam, out):
    for r in range(r0, r1):
        cnt = _sturm_row(a2[ia[r]], b2[ib[r]], lam[r])
        if cnt < 0:  # overflow in the continuants (entries near 1e300): ratio form
            cnt = _sturm_row_safe(a2[ia[r]], b2[ib[r]], lam[r])
        out[r] = cnt  # -1: not representable in float64 (the caller recomputes the row)
