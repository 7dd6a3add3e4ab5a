"""Jacobi (tridiagonal) operators on a finite chain, with Dirichlet or transparent boundary.

A :class:`JacobiOperator` on sites ``1..N`` acts as (docs/conventions.md §1)

    (H u)(n) = c_{n-1} u(n-1) + a_n u(n) + b_n u(n+1),

with diagonal ``a`` (N entries), super-diagonal ``b`` and sub-diagonal ``c`` (N - 1 entries each;
``c = b`` by default, the symmetric case). The free operator is ``H0 = -Δ``: ``a = 2``,
``b = c = -1``, whose spectrum on Z is [0, 4].

Leading dimensions of ``a``, ``b`` and ``c`` are *batch* dimensions and broadcast against each
other: ``a`` of shape (B, N) with ``b`` of shape (N - 1,) is a batch of B chains with a common
hopping.

Boundary conditions
-------------------
``"dirichlet"``
    The finite matrix H itself (u(0) = u(N + 1) = 0).
``"transparent"``
    The chain is the window 1..N of an infinite chain whose outside is free (diagonal 2,
    hopping -1) and coupled to sites 1 and N by hopping -1. Eliminating the two semi-infinite
    leads gives the exact restricted resolvent

        [(H_∞ - z)^{-1}]_{1..N} = (H - z - w(z) (E_11 + E_NN))^{-1},

    with the lead self-energy ``Σ(z) = w(z)`` (the surface Green's function of a free half
    chain, :func:`bkmath.free.lead_self_energy`). For N = 1 both leads attach to the single site
    (self-energy 2 w). Boundary values λ + i0 are then exact finite computations.
"""

from __future__ import annotations

import numbers

import numpy as np

from bkmath._validation import as_numeric_array, as_spectral_parameter
from bkmath.free import lead_self_energy

__all__ = ["JacobiOperator", "BOUNDARIES"]

BOUNDARIES = ("dirichlet", "transparent")


def _result_dtypes(*arrays: np.ndarray) -> tuple[np.dtype, np.dtype]:
    """(real dtype, complex dtype) of computations on these arrays: single precision only
    when every array is float32/complex64."""
    single = all(x.dtype in (np.float32, np.complex64) for x in arrays)
    if single:
        return np.dtype(np.float32), np.dtype(np.complex64)
    return np.dtype(np.float64), np.dtype(np.complex128)


class JacobiOperator:
    """Tridiagonal operator ``H = tridiag(c, a, b)`` on N sites (possibly a batch of chains).

    Parameters
    ----------
    a : array_like, shape (..., N)
        Diagonal. Real or complex; N >= 1.
    b : array_like, shape (..., N - 1) or scalar
        Super-diagonal ``H[n, n+1]``. A scalar means a constant hopping.
    c : array_like, shape (..., N - 1) or scalar, optional
        Sub-diagonal ``H[n+1, n]``; default ``b`` (symmetric H).
    boundary : {"dirichlet", "transparent"}
        See the module docstring.

    Notes
    -----
    The recursions only use ``a`` and the products ``beta = b * c`` (docs/conventions.md
    §3). Integer and boolean inputs become float64; float32/complex64 inputs are kept (results
    are then complex64). Inputs are not copied when already arrays of a numeric dtype.

    Examples
    --------
    >>> H = JacobiOperator.free(4)
    >>> H.to_dense()
    array([[ 2., -1.,  0.,  0.],
           [-1.,  2., -1.,  0.],
           [ 0., -1.,  2., -1.],
           [ 0.,  0., -1.,  2.]])
    >>> JacobiOperator.free_plus([1.0, 0.0, -1.0]).a
    array([3., 2., 1.])
    """

    def __init__(
        self,
        a: object,
        b: object,
        c: object = None,
        *,
        boundary: str = "dirichlet",
    ) -> None:
        if not isinstance(boundary, str) or boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        a_arr = as_numeric_array(a, "a", min_ndim=1)
        n = a_arr.shape[-1]
        if n < 1:
            raise ValueError("a must have at least one site (last dimension >= 1)")
        b_arr = self._offdiag(b, "b", n)
        c_arr = None if c is None else self._offdiag(c, "c", n)
        shapes = [a_arr.shape[:-1], b_arr.shape[:-1]]
        if c_arr is not None:
            shapes.append(c_arr.shape[:-1])
        try:
            batch = np.broadcast_shapes(*shapes)
        except ValueError:
            raise ValueError(
                "batch dimensions of a, b, c do not broadcast: "
                + ", ".join(str(s) for s in shapes)
            ) from None
        if c_arr is not None and c_arr.shape == b_arr.shape and np.array_equal(c_arr, b_arr):
            c_arr = None
        self._a = a_arr
        self._b = b_arr
        self._c = c_arr
        self._n = n
        self._batch_shape: tuple[int, ...] = tuple(batch)
        self.boundary = boundary

    @staticmethod
    def _offdiag(x: object, name: str, n: int) -> np.ndarray:
        arr = as_numeric_array(x, name)
        if arr.ndim == 0:
            arr = np.full(n - 1, arr[()], dtype=arr.dtype)
        if arr.shape[-1] != n - 1:
            raise ValueError(
                f"{name} must have last dimension N - 1 = {n - 1} (N = len(a)), "
                f"got shape {arr.shape}"
            )
        return arr

    # ---------------------------------------------------------------- constructors
    @classmethod
    def free(cls, n: int, *, boundary: str = "dirichlet", dtype: object = np.float64):
        """The free chain ``-Δ`` on n sites: ``a = 2``, ``b = c = -1``."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"n must be an integer, got {type(n).__name__}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        dt = np.dtype(dtype)
        return cls(np.full(n, 2.0, dtype=dt), np.full(n - 1, -1.0, dtype=dt), boundary=boundary)

    @classmethod
    def free_plus(cls, v: object, *, boundary: str = "dirichlet"):
        """``H = -Δ + diag(v)``: ``a = 2 + v`` (v of shape (..., N), real or complex), b = -1.

        The hopping is shared by the whole batch (shape (N - 1,)), in the real dtype of v.
        """
        v_arr = as_numeric_array(v, "v", min_ndim=1)
        n = v_arr.shape[-1]
        if n < 1:
            raise ValueError("v must have at least one site (last dimension >= 1)")
        rdt = np.float32 if v_arr.dtype in (np.float32, np.complex64) else np.float64
        return cls(2.0 + v_arr, np.full(n - 1, -1.0, dtype=rdt), boundary=boundary)

    # ---------------------------------------------------------------- properties
    @property
    def a(self) -> np.ndarray:
        """Diagonal, shape (..., N)."""
        return self._a

    @property
    def b(self) -> np.ndarray:
        """Super-diagonal ``H[n, n+1]``, shape (..., N - 1)."""
        return self._b

    @property
    def c(self) -> np.ndarray:
        """Sub-diagonal ``H[n+1, n]``, shape (..., N - 1) (``b`` itself when symmetric)."""
        return self._b if self._c is None else self._c

    @property
    def n(self) -> int:
        """Number of sites N."""
        return self._n

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Broadcast leading shape of a, b, c (``()`` for a single chain)."""
        return self._batch_shape

    @property
    def is_symmetric(self) -> bool:
        """True when c = b (H equals its transpose; complex entries allowed)."""
        return self._c is None

    @property
    def is_real(self) -> bool:
        """True when a, b, c all have real dtypes."""
        return all(x.dtype.kind != "c" for x in (self._a, self._b, self.c))

    @property
    def is_hermitian(self) -> bool:
        """True when H is self-adjoint: real a and c = conj(b) (e.g. real symmetric)."""
        if self._a.dtype.kind == "c" and np.any(self._a.imag != 0):
            return False
        if self._c is None:
            return self._b.dtype.kind != "c" or not np.any(self._b.imag != 0)
        c = self._c
        return c.shape == self._b.shape and bool(np.array_equal(c, np.conj(self._b)))

    @property
    def real_beta(self) -> bool:
        """True when a and beta = b c are real, so the recursions may use real coefficients."""
        if self._a.dtype.kind == "c" and np.any(self._a.imag != 0):
            return False
        if self.is_real or self.is_hermitian:
            return True
        beta = self._b * self.c
        return not np.any(beta.imag != 0)

    @property
    def dtype(self) -> np.dtype:
        """Complex dtype of resolvents and determinants (complex64 iff all inputs single)."""
        return _result_dtypes(self._a, self._b, self.c)[1]

    def __repr__(self) -> str:
        kind = "symmetric" if self.is_symmetric else "general"
        return (
            f"JacobiOperator(n={self._n}, batch_shape={self._batch_shape}, {kind}, "
            f"dtype={self.dtype}, boundary={self.boundary!r})"
        )

    # ---------------------------------------------------------------- views
    def self_energy(self, z: object) -> np.ndarray:
        """Lead self-energy Σ(z) at sites 1 and N: ``w(z)`` (transparent) or 0 (Dirichlet).

        ``z`` with Im z >= 0 (λ + i0 allowed for the transparent boundary); complex128.
        """
        if self.boundary == "transparent":
            return lead_self_energy(z)
        zz = as_numeric_array(z, "z")
        return np.zeros(zz.shape, dtype=np.complex128)

    def to_dense(self, z: object = None) -> np.ndarray:
        """Dense matrix, shape batch_shape + (N, N).

        ``z=None``: the matrix H (for the transparent boundary: the window's H without leads).
        Otherwise ``H - z I - Σ(z) (E_11 + E_NN)`` with the lead self-energy Σ (zero for the
        Dirichlet boundary); z may be an array broadcasting against ``batch_shape``.
        O(N²) memory: a reference view, not for large N.
        """
        n = self._n
        a, b, c = self._a, self._b, self.c
        dt = np.result_type(a, b, c)
        if z is not None:
            if self.boundary == "transparent":
                zz = as_spectral_parameter(z, "z", boundary=True)
            else:
                zz = as_numeric_array(z, "z").astype(np.complex128)
            dt = np.result_type(dt, np.complex64 if dt == np.float32 else np.complex128)
        else:
            zz = None
        bshape = self._batch_shape if zz is None else np.broadcast_shapes(
            self._batch_shape, zz.shape
        )
        m = np.zeros(bshape + (n, n), dtype=dt)
        idx = np.arange(n)
        m[..., idx, idx] = a
        if n > 1:
            m[..., idx[:-1], idx[1:]] = b
            m[..., idx[1:], idx[:-1]] = c
        if zz is not None:
            m[..., idx, idx] -= zz[..., None]
            if self.boundary == "transparent":
                w = self.self_energy(zz)
                m[..., 0, 0] -= w
                m[..., n - 1, n - 1] -= w
        return m

    def to_sparse(self, z: object = None):
        """``scipy.sparse`` CSR matrix of H (or of H - z - Σ(z), as :meth:`to_dense`).

        Only for a single chain (empty ``batch_shape``).
        """
        import scipy.sparse as sp

        if self._batch_shape != ():
            raise ValueError(f"to_sparse needs a single chain, batch_shape={self._batch_shape}")
        n = self._n
        a = self._a.reshape(-1)[:n] if self._a.ndim == 1 else self._a.reshape(n)
        b = np.broadcast_to(self._b, (n - 1,))
        c = np.broadcast_to(self.c, (n - 1,))
        diag = a.astype(np.result_type(a, b, c))
        if z is not None:
            if self.boundary == "transparent":
                zz = complex(as_spectral_parameter(z, "z", boundary=True).reshape(()))
            else:
                zarr = as_numeric_array(z, "z")
                if zarr.ndim != 0:
                    raise ValueError("z must be a scalar for to_sparse")
                zz = complex(zarr)
            diag = diag - zz
            if self.boundary == "transparent":
                w = complex(self.self_energy(zz))
                diag = diag.copy()
                diag[0] -= w
                diag[-1] -= w
        return sp.diags([c, diag, b], [-1, 0, 1], shape=(n, n), format="csr")
