"""References for :mod:`bkmath.resonances` (the lattice Jost polynomial and its zeros).

* :func:`jost_polynomial_mp` — the coefficients by the continuant in mpmath at ``dps`` digits;
* :func:`jost_polynomial_exact` — the same continuant in exact rationals (``fmpq_poly``);
* :func:`transparent_qep_zeros` — independent of any polynomial: the zeros ``w`` of
  ``det Q(w)``, ``Q(w) = I + w (H_L − 2) + w² (I − E_11 − E_LL) = w (H_L − z − w(E_11 + E_LL))``
  (the transparent-boundary window at ``z = 2 − w − 1/w``), as the dense non-Hermitian
  eigenproblem of the companion linearisation in ``μ = 1/w``;
* :func:`matched_inverse_error` — how far two sets of zeros are apart in ``μ = 1/w``;
* :func:`window_eigenvalues` — eigenvalues of H outside [0, 4] from the Dirichlet truncation
  of H to a large window (``pad`` free sites each side): exponentially accurate, error
  ``O(|w|^{2 pad})``.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np

__all__ = [
    "jost_polynomial_mp",
    "jost_polynomial_exact",
    "transparent_qep_zeros",
    "matched_inverse_error",
    "window_eigenvalues",
]


def jost_polynomial_mp(v, dps: int = 50) -> list:
    """mpmath coefficients (ascending, length ``2L − 1`` for ``L ≥ 2``; not trimmed) of
    ``P(w) = (1 − w²) det(I + V R0)`` for the window ``v`` (sites 1..L)."""
    from bkmath._continuant import jost_continuant as _continuant

    with mpmath.workdps(dps):
        win = [mpmath.mpf(float(x)) for x in v]
        return [+c for c in _continuant(win, mpmath.mpf(1), mpmath.mpf(0))]


def jost_polynomial_exact(v):
    """``flint.fmpq_poly`` of P, exact for the binary floats (or rationals) in ``v``."""
    from flint import fmpq, fmpq_poly

    from bkmath._continuant import jost_continuant as _continuant

    win = [fmpq_poly([fmpq(f.numerator, f.denominator)])
           for f in (Fraction(x) for x in v)]
    one, zero = fmpq_poly([1]), fmpq_poly([])
    coeffs = _continuant(win, one, zero)
    out = fmpq_poly([])
    for i, c in enumerate(coeffs):
        out += c * fmpq_poly([0] * i + [1])
    return out


def transparent_qep_zeros(v, degree: int) -> np.ndarray:
    """The ``degree`` finite zeros ``w`` of ``det(I + w A1 + w² A2)``, ``A1 = H_L − 2``,
    ``A2 = I − E_11 − E_LL`` (``L = 1``: ``A2 = −1``): eigenvalues ``μ`` of the companion
    matrix ``[[0, I], [−A2, −A1]]`` of ``μ² + μ A1 + A2`` (``μ = 1/w``); the
    ``2L − degree`` eigenvalues ``μ = 0`` (``w = ∞``, from the singular ``A2``) are dropped
    by keeping the ``degree`` largest ``|μ|``. Dense LAPACK (``numpy.linalg.eigvals``): the
    error is absolute in ``μ`` (``O(eps ||A1||)`` times the eigenvalue condition), so compare
    ``1/w``, not ``w``, for huge zeros."""
    vv = np.asarray(v, dtype=np.float64)
    L = vv.size
    A1 = np.diag(vv) - np.eye(L, k=1) - np.eye(L, k=-1)
    A2 = np.eye(L)
    A2[0, 0] -= 1.0
    A2[-1, -1] -= 1.0
    C = np.zeros((2 * L, 2 * L))
    C[:L, L:] = np.eye(L)
    C[L:, :L] = -A2
    C[L:, L:] = -A1
    mu = np.linalg.eigvals(C)
    mu = mu[np.argsort(-np.abs(mu))][:degree]
    with np.errstate(divide="ignore"):  # μ = 0 from a near-degenerate A2 + μA1: w = ∞
        return 1.0 / mu


def matched_inverse_error(a: np.ndarray, b: np.ndarray) -> float:
    """``max |1/a_i − 1/b_π(i)|`` over the best one-to-one matching π of the zeros ``a`` and
    ``b`` (in ``μ = 1/w``, where the eigenproblem's error is absolute); 0 for empty sets."""
    from scipy.optimize import linear_sum_assignment

    cost = np.abs(1 / np.asarray(a)[:, None] - 1 / np.asarray(b)[None, :])
    if cost.size == 0:
        return 0.0
    i, j = linear_sum_assignment(cost)
    return float(cost[i, j].max())


def window_eigenvalues(v, pad: int = 400) -> np.ndarray:
    """Eigenvalues outside [0, 4] of ``−Δ + V`` truncated (Dirichlet) to ``pad + L + pad``
    sites, ascending (``scipy.linalg.eigvalsh_tridiagonal``)."""
    from scipy.linalg import eigvalsh_tridiagonal

    vv = np.asarray(v, dtype=np.float64)
    d = 2.0 + np.concatenate([np.zeros(pad), vv, np.zeros(pad)])
    e = -np.ones(d.size - 1)
    ev = eigvalsh_tridiagonal(d, e)
    return np.sort(ev[(ev < 0) | (ev > 4)])
