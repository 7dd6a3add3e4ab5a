"""mpmath references for the O(N) core, at a chosen working precision ``dps``.

These are independent of the fast routines: the resolvent diagonal is computed from the θ/φ
continuant formula ``G_ii = θ_{i-1} φ_{i+1} / θ_N`` (mpmath numbers have an unbounded exponent,
so the formula that overflows in floating point is harmless here), determinants from the
continuant θ_N, eigenvalue counts from the LDLᵀ pivots. Precision is always scoped with
``mpmath.workdps`` (the global precision is never changed).

Inputs are converted exactly (a float64 is an exact mpf). The operator is a
:class:`bkmath.JacobiOperator` of a *single* chain (``batch_shape == ()``) and z a scalar.
Results are returned as numpy complex128 by default, or as mpmath numbers with ``as_mp=True``.
"""

from __future__ import annotations

import mpmath
import numpy as np

from bkmath._validation import as_numeric_array, as_spectral_parameter
from bkmath.operators import JacobiOperator

__all__ = [
    "lattice_w",
    "free_resolvent",
    "free_resolvent_continuum",
    "continuants",
    "resolvent_diagonal",
    "det",
    "log_det",
    "eigenvalue_count",
]


def _scalar_z(z: object, *, boundary: bool) -> mpmath.mpc:
    zz = as_spectral_parameter(z, "z", boundary=boundary)
    if zz.ndim != 0:
        raise ValueError(f"z must be a scalar for the mpmath reference, got shape {zz.shape}")
    zc = complex(zz)
    return mpmath.mpc(zc.real, zc.imag + 0.0)


def _single(op: object) -> JacobiOperator:
    if not isinstance(op, JacobiOperator):
        raise TypeError(f"op must be a JacobiOperator, got {type(op).__name__}")
    if op.batch_shape != ():
        raise ValueError(f"the mpmath reference takes a single chain, batch={op.batch_shape}")
    return op


def _mp(x: object) -> mpmath.mpc:
    c = complex(x)
    return mpmath.mpc(c.real, c.imag)


def _w_mp(z: mpmath.mpc) -> mpmath.mpc:
    """Root of w² - (2 - z) w + 1 = 0 with |w| < 1, same branch as bkmath.lattice_w."""
    zm4 = z - 4
    if zm4.imag == 0:
        zm4 = mpmath.mpc(zm4.real, 0)  # +0 imaginary part: the +i0 side
    s = mpmath.sqrt(z) * mpmath.sqrt(zm4)
    return 2 / (2 - z - s)


def lattice_w(z: object, *, boundary: bool = False, dps: int = 50, as_mp: bool = False):
    """mpmath version of :func:`bkmath.lattice_w` (scalar z)."""
    with mpmath.workdps(dps):
        w = _w_mp(_scalar_z(z, boundary=boundary))
        return +w if as_mp else complex(w)


def free_resolvent(m: int, n: int, z: object, *, boundary: bool = False, dps: int = 50,
                   as_mp: bool = False):
    """mpmath version of :func:`bkmath.free_resolvent`: ``w^{|m-n|} / (w^{-1} - w)``."""
    with mpmath.workdps(dps):
        w = _w_mp(_scalar_z(z, boundary=boundary))
        if abs(abs(w) - 1) == 0 and (w.imag == 0):
            raise ValueError("z must not be a threshold (0 or 4)")
        g = w ** abs(int(m) - int(n)) / (1 / w - w)
        return +g if as_mp else complex(g)


def free_resolvent_continuum(x: float, y: float, z: object, *, boundary: bool = False,
                             dps: int = 50, as_mp: bool = False):
    """mpmath version of :func:`bkmath.free_resolvent_continuum`: ``i e^{ik|x-y|}/(2k)``."""
    with mpmath.workdps(dps):
        k = mpmath.sqrt(_scalar_z(z, boundary=boundary))
        if k == 0:
            raise ValueError("z must not be 0 (threshold)")
        d = abs(mpmath.mpf(float(x)) - mpmath.mpf(float(y)))
        g = 1j * mpmath.exp(1j * k * d) / (2 * k)
        return +g if as_mp else complex(g)


def _alphas_betas(op: JacobiOperator, z: mpmath.mpc):
    n = op.n
    a = [_mp(x) for x in np.asarray(op.a).reshape(n)]
    b = np.broadcast_to(op.b, (n - 1,))
    c = np.broadcast_to(op.c, (n - 1,))
    beta = [_mp(b[i]) * _mp(c[i]) for i in range(n - 1)]
    alpha = [ai - z for ai in a]
    if op.boundary == "transparent":
        w = _w_mp(z)
        alpha[0] -= w
        alpha[n - 1] -= w
    return alpha, beta


def continuants(op: JacobiOperator, z: object, *, dps: int = 50):
    """Exact-precision continuants (θ_0..θ_N, φ_1..φ_{N+1}) of H - z as mpmath lists.

    θ_0 = 1, θ_i = α_i θ_{i-1} - β_{i-1} θ_{i-2}; φ_{N+1} = 1, φ_i = α_i φ_{i+1} - β_i φ_{i+2}.
    ``theta[i]`` is θ_i (index 0..N); ``phi[i]`` is φ_{i+1} for i = 0..N (so ``phi[N] = 1``).
    """
    op = _single(op)
    with mpmath.workdps(dps):
        z_mp = _scalar_z(z, boundary=True)
        alpha, beta = _alphas_betas(op, z_mp)
        n = op.n
        theta = [mpmath.mpc(1)] * (n + 1)
        theta[1] = alpha[0]
        for i in range(2, n + 1):
            theta[i] = alpha[i - 1] * theta[i - 1] - beta[i - 2] * theta[i - 2]
        phi = [mpmath.mpc(1)] * (n + 1)  # phi[k] = φ_{k+1}
        phi[n - 1] = alpha[n - 1]
        for k in range(n - 2, -1, -1):
            phi[k] = alpha[k] * phi[k + 1] - beta[k] * phi[k + 2]
        return theta, phi


def resolvent_diagonal(op: JacobiOperator, z: object, side: str = "both", *, dps: int = 50,
                       as_mp: bool = False):
    """mpmath reference for :func:`bkmath.resolvent_diagonal` (one chain, scalar z).

    ``both``: θ_{i-1} φ_{i+1} / θ_N; ``left``: θ_{i-1}/θ_i; ``right``: φ_{i+1}/φ_i.
    ``Im z > 0`` (or ``>= 0`` for a transparent operator), as for the fast routine.
    """
    op = _single(op)
    if side not in ("both", "left", "right"):
        raise ValueError(f"side must be 'both', 'left' or 'right', got {side!r}")
    _scalar_z(z, boundary=op.boundary == "transparent")  # validation
    with mpmath.workdps(dps):
        theta, phi = continuants(op, z, dps=dps)
        n = op.n
        if side == "both":
            g = [theta[i] * phi[i + 1] / theta[n] for i in range(n)]
        elif side == "left":
            g = [theta[i] / theta[i + 1] for i in range(n)]
        else:
            g = [phi[i + 1] / phi[i] for i in range(n)]
        if as_mp:
            return [+x for x in g]
        return np.array([complex(x) for x in g], dtype=np.complex128)


def det(op: JacobiOperator, z: object, *, dps: int = 50) -> mpmath.mpc:
    """``det(H - z - Σ(z)(E_11 + E_NN))`` = θ_N as an mpmath number (any z, Im z >= 0)."""
    op = _single(op)
    with mpmath.workdps(dps):
        theta, _ = continuants(op, z, dps=dps)
        return +theta[op.n]


def log_det(op: JacobiOperator, z: object, *, dps: int = 50, as_mp: bool = False):
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
            theta, _ = continuants(op, z, dps=dps)
            lab = mpmath.log(abs(theta[op.n]))
            ang = mpmath.mpf(0)
            for i in range(1, op.n + 1):
                q = theta[i] / theta[i - 1]
                ang += -mpmath.arg(mpmath.conj(q)) if z_mp.imag == 0 else mpmath.arg(q)
        val = lab + 1j * ang
        return +val if as_mp else complex(val)


def eigenvalue_count(op: JacobiOperator, lam: float, *, dps: int = 50) -> int:
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
