"""mpmath references for :mod:`bkmath.resolvent`, at a chosen working precision ``dps``.

The lattice ``w(z)``, the free lattice and continuum resolvents in closed form, the θ/φ
continuants of ``H - z`` and the resolvent diagonal ``G_ii = θ_{i-1} φ_{i+1} / θ_N``. They are
independent of the fast routines: mpmath numbers have an unbounded exponent, so the
continuant formula that overflows in floating point (docs/conventions.md §3) is harmless here.
Precision is always scoped with ``mpmath.workdps`` (the global precision is never changed).

Inputs are converted exactly (a float64 is an exact mpf; mpmath numbers are taken as they
are). The operator is a :class:`bkmath.JacobiOperator` of a *single* chain
(``batch_shape == ()``) and z a scalar. Results are returned as numpy complex128 by default,
or as mpmath numbers with ``as_mp=True``.
"""

from __future__ import annotations

import mpmath
import numpy as np

from bkmath import JacobiOperator
from bkmath._validation import as_spectral_parameter

__all__ = [
    "lattice_w_mp",
    "free_resolvent_mp",
    "free_resolvent_continuum_mp",
    "continuants_mp",
    "resolvent_diagonal_mp",
]


def _scalar_z(z: object, *, boundary: bool) -> mpmath.mpc:
    """z as an mpc, validated like :func:`bkmath._validation.as_spectral_parameter`
    (``Im z > 0``, or ``>= 0`` with ``boundary``); mpmath inputs are kept exactly."""
    if isinstance(z, (mpmath.mpf, mpmath.mpc)):
        zm = mpmath.mpc(z)
        if boundary and zm.imag < 0:
            raise ValueError(f"Im z must be >= 0 (boundary values λ + i0), got {zm.imag}")
        if not boundary and zm.imag <= 0:
            raise ValueError(f"Im z must be > 0, got {zm.imag}")
        return zm
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


def _w(z: mpmath.mpc) -> mpmath.mpc:
    """Root of w² - (2 - z) w + 1 = 0 with |w| < 1, same branch as :func:`bkmath.lattice_w`,
    at the current precision: ``w = 2 / (2 - z - s)``, ``s = sqrt(z) sqrt(z - 4)``.

    ``s`` is analytic on C \\ [0, 4]; on the cut (real z in (0, 4); mpmath has no signed zero,
    so ``Im(z - 4) = 0`` reads as +0) it gives the λ + i0 boundary value ``w = e^{iθ}``,
    θ ∈ (0, π). The quotient avoids the cancellation of ``((2 - z) ± s)/2``, whose small root
    loses ~2 log10|z| digits for large |z|: the relative error stays ~10^{-dps} for every z.
    """
    zm4 = z - 4
    if zm4.imag == 0:
        zm4 = mpmath.mpc(zm4.real, 0)  # +0 imaginary part: the +i0 side
    s = mpmath.sqrt(z) * mpmath.sqrt(zm4)
    return 2 / (2 - z - s)


def lattice_w_mp(z: object, *, boundary: bool = False, dps: int = 50, as_mp: bool = False):
    """mpmath reference for :func:`bkmath.lattice_w` (scalar z), same branch.

    ``Im z > 0``, or ``Im z >= 0`` with ``boundary=True`` (λ + i0 on the band, real
    ``|w| < 1`` off it, ``w = ±1`` at the thresholds 0 and 4).

    Examples
    --------
    >>> lattice_w_mp(2.0, boundary=True)      # band centre, λ + i0: w = i
    1j
    >>> w = lattice_w_mp(1e10j, dps=30, as_mp=True)   # |w| ~ 1e-10: no digits lost
    >>> w_hi = lattice_w_mp(1e10j, dps=60, as_mp=True)
    >>> bool(abs(w - w_hi) / abs(w_hi) < 1e-29)
    True
    """
    with mpmath.workdps(dps):
        w = _w(_scalar_z(z, boundary=boundary))
        return +w if as_mp else complex(w)


def free_resolvent_mp(m: int, n: int, z: object, *, boundary: bool = False, dps: int = 50,
                      as_mp: bool = False):
    """mpmath reference for :func:`bkmath.free_resolvent`: ``w^{|m-n|} / (w^{-1} - w)``."""
    with mpmath.workdps(dps):
        w = _w(_scalar_z(z, boundary=boundary))
        if abs(abs(w) - 1) == 0 and (w.imag == 0):
            raise ValueError("z must not be a threshold (0 or 4)")
        g = w ** abs(int(m) - int(n)) / (1 / w - w)
        return +g if as_mp else complex(g)


def free_resolvent_continuum_mp(x: float, y: float, z: object, *, boundary: bool = False,
                                dps: int = 50, as_mp: bool = False):
    """mpmath reference for :func:`bkmath.free_resolvent_continuum`: ``i e^{ik|x-y|}/(2k)``."""
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
        w = _w(z)
        alpha[0] -= w
        alpha[n - 1] -= w
    return alpha, beta


def continuants_mp(op: JacobiOperator, z: object, *, dps: int = 50):
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


def resolvent_diagonal_mp(op: JacobiOperator, z: object, side: str = "both", *, dps: int = 50,
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
        theta, phi = continuants_mp(op, z, dps=dps)
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
