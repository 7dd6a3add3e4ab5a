"""mpmath references for :mod:`bkmath.determinant`, at a chosen working precision ``dps``.

``det(H - z)`` as the continuant θ_N, ``log det(H - z)`` with the branch of
:func:`bkmath.log_det`, and eigenvalue counts from the LDLᵀ pivots (Sylvester inertia,
docs/conventions.md §3). Precision is scoped with ``mpmath.workdps``; the operator is a single
:class:`bkmath.JacobiOperator` chain, as in :mod:`bkmath.reference.resolvent`.
"""

from __future__ import annotations

import mpmath
import numpy as np

from bkmath import JacobiOperator
from bkmath._validation import as_numeric_array
from bkmath.reference.resolvent import _alphas_betas, _mp, _scalar_z, _single, continuants_mp

__all__ = ["det_mp", "log_det_mp", "eigenvalue_count_mp"]


def det_mp(op: JacobiOperator, z: object, *, dps: int = 50) -> mpmath.mpc:
    """``det(H - z - Σ(z)(E_11 + E_NN))`` = θ_N as an mpmath number (any z, Im z >= 0)."""
    op = _single(op)
    with mpmath.workdps(dps):
        theta, _ = continuants_mp(op, z, dps=dps)
        return +theta[op.n]


def log_det_mp(op: JacobiOperator, z: object, *, dps: int = 50, as_mp: bool = False):
    """mpmath reference for :func:`bkmath.log_det`, with the same branch.

    ``Σ_i (log|d_i| + i Arg d_i)`` over the LU pivots ``d_i = alpha_i - beta_{i-1}/d_{i-1}``,
    principal arguments; for real z the arguments are taken in [-π, π) (the ``λ + i0``
    reading of a real z). The pivots are formed by the ratio recursion, not as quotients of
    continuants: for Hermitian H, ``Im d_i = Im alpha_i + beta Im d_{i-1}/|d_{i-1}|²`` adds two
    terms of one sign, so even a pivot whose imaginary part is 1e-60 of its real part gets
    the right sign (θ_i/θ_{i-1} would lose it to cancellation). An exactly zero pivot
    (singular leading block) falls back to ``log θ_N`` with the continuant quotients.
    """
    op = _single(op)
    with mpmath.workdps(dps):
        z_mp = _scalar_z(z, boundary=True)
        alpha, beta = _alphas_betas(op, z_mp)
        lab = mpmath.mpf(0)
        ang = mpmath.mpf(0)
        d = None
        ok = True
        for i in range(op.n):
            d = alpha[i] if i == 0 else alpha[i] - beta[i - 1] / d
            if d == 0:
                ok = False
                break
            lab += mpmath.log(abs(d))
            ang += -mpmath.arg(mpmath.conj(d)) if z_mp.imag == 0 else mpmath.arg(d)
        if not ok:
            theta, _ = continuants_mp(op, z, dps=dps)
            lab = mpmath.log(abs(theta[op.n]))
            ang = mpmath.mpf(0)
            for i in range(1, op.n + 1):
                q = theta[i] / theta[i - 1]
                ang += -mpmath.arg(mpmath.conj(q)) if z_mp.imag == 0 else mpmath.arg(q)
        val = lab + 1j * ang
        return +val if as_mp else complex(val)


def eigenvalue_count_mp(op: JacobiOperator, lam: float, *, dps: int = 50) -> int:
    """Number of eigenvalues of the Hermitian H strictly below λ (negative LDLᵀ pivots).

    Pivots ``d_i = (a_i - λ) - |b_{i-1}|² / d_{i-1}`` in mpmath; an exactly zero pivot becomes
    ``+10^{-2 dps}`` (eigenvalues equal to λ are not counted).
    """
    op = _single(op)
    if not op.is_hermitian or op.boundary != "dirichlet":
        raise ValueError("op must be Hermitian with the Dirichlet boundary")
    lam_arr = as_numeric_array(lam, "lam", allow_complex=False)
    if lam_arr.ndim != 0:
        raise ValueError("lam must be a scalar for the mpmath reference")
    n = op.n
    with mpmath.workdps(dps):
        lm = mpmath.mpf(float(lam_arr))
        a = [mpmath.mpf(float(np.real(x))) for x in np.asarray(op.a).reshape(n)]
        b = np.broadcast_to(op.b, (n - 1,))
        b2 = [abs(_mp(b[i])) ** 2 for i in range(n - 1)]
        tiny = mpmath.mpf(10) ** (-2 * dps)
        cnt = 0
        d = None
        for i in range(n):
            d = a[i] - lm if i == 0 else (a[i] - lm) - b2[i - 1] / d
            if d == 0:
                d = tiny
            cnt += d < 0
        return int(cnt)
