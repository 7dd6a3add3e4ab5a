"""Dense numpy references (O(N³)): resolvent diagonals, log-determinants, eigenvalue counts.

Small N only. They use the matrices of :meth:`bkmath.JacobiOperator.to_dense` and LAPACK
(``inv``, ``solve``, ``slogdet``, ``eigvalsh``), so they share no code with the O(N) kernels.
Also home of :func:`continuant_diagonal`, the θ/φ formula in floating point, kept as the
reference that **overflows** for long chains (docs/conventions.md §3).
"""

from __future__ import annotations

import numpy as np

from bkmath import JacobiOperator
from bkmath._validation import as_numeric_array, as_spectral_parameter

__all__ = [
    "resolvent_diagonal",
    "log_det",
    "eigenvalue_count",
    "continuant_diagonal",
]


def _single(op: object) -> JacobiOperator:
    if not isinstance(op, JacobiOperator):
        raise TypeError(f"op must be a JacobiOperator, got {type(op).__name__}")
    return op


def resolvent_diagonal(op: JacobiOperator, z: object, side: str = "both") -> np.ndarray:
    """Dense reference for :func:`bkmath.resolvent_diagonal`.

    ``both``: ``diag(inv(H - z - Σ))`` (batched over ``op.batch_shape``, scalar z);
    ``left``/``right``: the corner entry of the inverse of every leading/trailing block,
    each by ``numpy.linalg.solve`` (O(N⁴) in all: N up to ~100). complex128.
    """
    op = _single(op)
    zz = as_spectral_parameter(z, "z", boundary=op.boundary == "transparent")
    if zz.ndim != 0:
        raise ValueError("z must be a scalar for the dense reference")
    m = op.to_dense(complex(zz)).astype(np.complex128)
    n = op.n
    if side == "both":
        return np.diagonal(np.linalg.inv(m), axis1=-2, axis2=-1).copy()
    out = np.empty(op.batch_shape + (n,), dtype=np.complex128)
    for i in range(n):
        if side == "left":
            # for the transparent boundary the block carries Σ at site 1 (and at N if i = N-1)
            blk = m[..., : i + 1, : i + 1].copy()
            e = np.zeros(op.batch_shape + (i + 1, 1), dtype=np.complex128)
            e[..., i, 0] = 1.0
            out[..., i] = np.linalg.solve(blk, e)[..., i, 0]
        elif side == "right":
            blk = m[..., i:, i:].copy()
            e = np.zeros(op.batch_shape + (n - i, 1), dtype=np.complex128)
            e[..., 0, 0] = 1.0
            out[..., i] = np.linalg.solve(blk, e)[..., 0, 0]
        else:
            raise ValueError(f"side must be 'both', 'left' or 'right', got {side!r}")
    return out


def log_det(op: JacobiOperator, z: object) -> np.ndarray:
    """``numpy.linalg.slogdet`` of ``H - z - Σ``: ``log|det| + i·Arg det`` (principal branch,
    unlike :func:`bkmath.log_det`; compare imaginary parts modulo 2π)."""
    op = _single(op)
    zz = as_spectral_parameter(z, "z", boundary=True)
    if zz.ndim != 0:
        raise ValueError("z must be a scalar for the dense reference")
    sign, lad = np.linalg.slogdet(op.to_dense(complex(zz)).astype(np.complex128))
    return lad + 1j * np.angle(sign)


def eigenvalue_count(op: JacobiOperator, lam: object) -> np.ndarray:
    """``#{k : λ_k < λ}`` from ``numpy.linalg.eigvalsh`` (Hermitian, Dirichlet)."""
    op = _single(op)
    if not op.is_hermitian:
        raise ValueError("op must be Hermitian")
    ll = as_numeric_array(lam, "lam", allow_complex=False)
    ev = np.linalg.eigvalsh(op.to_dense())  # batch + (N,)
    shape = np.broadcast_shapes(op.batch_shape, ll.shape)
    evb = np.broadcast_to(ev, shape + (op.n,))
    return np.sum(evb < np.broadcast_to(ll, shape)[..., None], axis=-1)


def continuant_diagonal(op: JacobiOperator, z: object) -> np.ndarray:
    """The θ/φ continuant formula ``G_ii = θ_{i-1} φ_{i+1} / θ_N`` in complex128, unscaled.

    θ_0 = 1, θ_i = α_i θ_{i-1} - β_{i-1} θ_{i-2}; φ_{N+1} = 1, φ_i = α_i φ_{i+1} - β_i φ_{i+2}.
    Mathematically exact, numerically useless for long chains: θ_N grows (or decays)
    geometrically in N and **overflows** to inf (or underflows to 0), giving inf/nan entries
    — e.g. already for N ≈ 300 sites with |α| ≈ 10. Kept only as a reference and to
    demonstrate that failure (floating-point warnings are silenced: the inf/nan *is* the
    result). Single chain, scalar z, O(N).
    """
    op = _single(op)
    if op.batch_shape != ():
        raise ValueError("continuant_diagonal takes a single chain")
    zz = as_spectral_parameter(z, "z", boundary=op.boundary == "transparent")
    if zz.ndim != 0:
        raise ValueError("z must be a scalar")
    zc = complex(zz)
    n = op.n
    alpha = np.asarray(op.a, dtype=np.complex128).reshape(n) - zc
    if op.boundary == "transparent":
        from bkmath import lattice_w

        w = complex(lattice_w(zc, boundary=True))
        alpha[0] -= w
        alpha[n - 1] -= w
    beta = (np.broadcast_to(op.b, (n - 1,)) * np.broadcast_to(op.c, (n - 1,))).astype(
        np.complex128
    )
    theta = np.empty(n + 1, dtype=np.complex128)
    phi = np.empty(n + 2, dtype=np.complex128)  # phi[i] = φ_i, i = 1..N+1
    with np.errstate(all="ignore"):
        theta[0] = 1.0
        theta[1] = alpha[0]
        for i in range(2, n + 1):
            theta[i] = alpha[i - 1] * theta[i - 1] - beta[i - 2] * theta[i - 2]
        phi[n + 1] = 1.0
        phi[n] = alpha[n - 1]
        for i in range(n - 1, 0, -1):
            phi[i] = alpha[i - 1] * phi[i + 1] - beta[i - 1] * phi[i + 2]
        return theta[:n] * phi[2 : n + 2] / theta[n]
