"""O(N) determinants and eigenvalue counts of Jacobi operators.

* :func:`log_det` — ``log det(H - z)`` from scaled continuants (leading principal minors),
  renormalised by powers of two, so no overflow at any N.
* :func:`eigenvalue_count` — Sturm count: the number of eigenvalues of a real symmetric
  (Hermitian) H strictly below λ equals the number of negative pivots of H - λ (Sylvester).
"""

from __future__ import annotations

import numpy as np

from bkmath._validation import as_real_array, as_spectral_parameter
from bkmath.operators import JacobiOperator
from bkmath.resolvent import _check_op, _kernel_inputs, _rows

__all__ = ["log_det", "eigenvalue_count"]


def log_det(op: JacobiOperator, z: object) -> np.ndarray | complex:
    r"""``log det(H - z)`` (minus the lead self-energy for a transparent operator), O(N).

    The leading minors (continuants) ``θ_i = alpha_i θ_{i-1} - beta_{i-1} θ_{i-2}``
    (θ_0 = 1, θ_{-1} = 0; docs/conventions.md §3) are propagated with a power-of-two
    rescaling whenever they leave [2^-400, 2^400]; ``det = θ_N``. No division or logarithm
    per site: the real part is ``log|θ_N| + (exponent) log 2``.

    Branch of the imaginary part. ``Im log_det = Σ_i Arg d_i``, the sum of the principal
    arguments of the LU pivots ``d_i = θ_i/θ_{i-1}`` (computed by counting how often the
    continuant winds across the negative real axis, exact up to rounding). This is not the
    principal value of ``arg det``:

    * for Hermitian H and ``Im z > 0`` every pivot lies in the lower half-plane and the sum
      equals ``Σ_k Arg(λ_k - z) ∈ (-Nπ, 0)`` over the eigenvalues λ_k: the branch of
      ``log det(H - z)`` that is continuous in the upper half-plane and tends to
      ``Σ_k log|λ_k - z| - iπ/2 N`` as z → i∞;
    * for real ``z = λ`` (allowed, read as ``λ + i0``) a negative real pivot contributes
      ``-π``, so for real symmetric H ``Im log_det(H, λ) = -π · #{λ_k < λ}``, the limit of
      the previous case;
    * for a transparent operator and real λ it is the exact ``λ + i0`` boundary value;
    * for non-Hermitian H it is the sum of principal pivot arguments (a valid logarithm of
      det, continuous in z as long as no pivot crosses the negative real axis).

    The winding count uses, when H has the Herglotz structure (real a, every ``b_i c_i >= 0``),
    the known half-plane of the pivots to decide the direction of each rotation, so a pivot
    within rounding of the negative real axis cannot make the sum slip by 2π. If the scaled
    continuants over/underflow anyway (entries beyond ~1e±150), a slower per-site
    ``log``/``atan2`` recursion takes over, and where even that leaves the float64 range
    (``b_i c_i`` beyond ~1e308) the same recursion runs with an unbounded exponent
    (:mod:`bkmath._extended`). O(N) (timings: README, "Measured numbers", and
    ``benchmarks/results/bkmath_*.json`` from ``benchmarks/bench_bkmath.py``).

    Parameters
    ----------
    op : JacobiOperator
    z : complex or array_like
        ``Im z >= 0``; ``Im z = 0`` is read as the boundary value ``λ + i0``.

    Returns
    -------
    complex128 array of shape ``broadcast(op.batch_shape, z.shape)`` (a Python complex when
    that shape is ``()``). ``-inf`` real part when H - z is exactly singular.

    Examples
    --------
    >>> H = JacobiOperator.free(5)
    >>> z = 1.0 + 0.5j
    >>> sign, lad = np.linalg.slogdet(H.to_dense(z))
    >>> bool(np.isclose(np.exp(log_det(H, z)), sign * np.exp(lad)))
    True
    """
    from bkmath import _kernels as K

    op = _check_op(op)
    zz = as_spectral_parameter(z, "z", boundary=True)
    out_batch, real, a2, b2, c2, ia, ib, zf, sig = _kernel_inputs(op, zz)
    with np.errstate(over="ignore"):  # only the sign of b c matters here
        herglotz_beta = op.n == 1 or bool(np.all(b2 * c2 >= 0))
    if real and not herglotz_beta:
        # real but not Herglotz (some b c < 0): the general kernel with the chord test
        real = False
        a2, b2, c2 = (x.astype(np.complex128) for x in (a2, b2, c2))
    flip = np.where(zf.imag == 0, -1.0, 1.0)
    # Herglotz structure (real a, every beta >= 0, Im z >= 0, lead Im w >= 0): every pivot lies
    # in the closed lower half-plane; the kernel uses that to count windings robustly.
    herglotz = real
    pri = -flip if herglotz else np.zeros_like(flip)
    rows = ia.shape[0]
    out = np.empty(rows, dtype=np.complex128)
    out2 = out.view(np.float64).reshape(rows, 2)
    K.run_rows(
        K.log_det_batch_real if herglotz else K.log_det_batch, rows, rows * op.n,
        a2, ia, b2, c2, ib,
        np.ascontiguousarray(zf.real), np.ascontiguousarray(zf.imag),
        np.ascontiguousarray(sig.real), np.ascontiguousarray(sig.imag),
        flip, np.ascontiguousarray(pri), out2,
    )  # fmt: skip
    # rows the kernels could not finish in float64 (b c beyond ~1e±308, or a pivot beyond the
    # rescaling): the same pivot recursion with an unbounded exponent (bkmath._extended)
    from bkmath.resolvent import _beta_overflows

    bad = ~np.isfinite(out) & ~((out.real == -np.inf) & (out.imag == 0))
    bad |= _beta_overflows(b2, c2, ib)
    if np.any(bad):
        from bkmath._extended import log_det_row

        for r in np.flatnonzero(bad):
            lab, ang = log_det_row(
                a2[ia[r]], b2[ib[r]], c2[ib[r]], zf[r].real, zf[r].imag, sig[r].real,
                sig[r].imag, float(flip[r]), float(pri[r]),
            )  # fmt: skip
            out[r] = complex(lab, ang)
    out = out.reshape(out_batch)
    return complex(out) if out.ndim == 0 else out


def eigenvalue_count(op: JacobiOperator, lam: object) -> np.ndarray | int:
    r"""Number of eigenvalues of a real symmetric (Hermitian) H strictly below λ, O(N).

    Sturm count (Sylvester's law of inertia for ``H - λ = L D L^T``): the number of negative
    pivots ``d_i = (a_i - λ) - |b_{i-1}|² / d_{i-1}``, here counted as sign changes of the
    scaled continuants ``θ_i = d_i θ_{i-1}`` (no division per site). A pivot that is exactly
    zero is replaced by ``+pivmin`` (so eigenvalues equal to λ are *not* counted; in exact
    arithmetic this is the count at λ - 0). The continuant recursion is backward stable: the
    count is exact for a matrix whose a - λ and b² differ from the given ones by a few ulps
    relative.

    Parameters
    ----------
    op : JacobiOperator
        Hermitian (real a, c = conj(b)); Dirichlet boundary (the transparent operator is not
        self-adjoint as a finite matrix). ValueError otherwise.
    lam : float or array_like of float
        Real spectral points, broadcast against ``op.batch_shape``.

    Returns
    -------
    int64 array of shape ``broadcast(op.batch_shape, lam.shape)`` (a Python int for ()).

    Examples
    --------
    >>> H = JacobiOperator.free(4)   # eigenvalues 2 - 2cos(kπ/5): 0.38, 1.38, 2.62, 3.62
    >>> eigenvalue_count(H, [0.0, 1.0, 2.0, 4.0]).tolist()
    [0, 1, 2, 4]
    """
    from bkmath import _kernels as K

    op = _check_op(op)
    if op.boundary != "dirichlet":
        raise ValueError(
            "op must have the Dirichlet boundary: eigenvalue_count counts eigenvalues of a "
            "self-adjoint finite matrix"
        )
    if not op.is_hermitian:
        raise ValueError("op must be Hermitian (real a, c = conj(b)) for a Sturm count")
    ll = as_real_array(lam, "lam")
    out_batch, a2, ia, b2, c2, ib, ip = _rows(op, ll.shape, "lam")
    a2 = np.ascontiguousarray(a2.real if a2.dtype.kind == "c" else a2, dtype=np.float64)
    b2 = np.ascontiguousarray(np.abs(b2) if b2.dtype.kind == "c" else b2, dtype=np.float64)
    lf = np.ascontiguousarray(ll.ravel()[ip], dtype=np.float64)
    rows = ia.shape[0]
    out = np.empty(rows, dtype=np.int64)
    K.run_rows(K.sturm_batch, rows, rows * op.n, a2, ia, b2, ib, lf, out)
    if np.any(out < 0):  # b² beyond the float64 range: the ratio form, unbounded exponent
        from bkmath._extended import sturm_count_row

        for r in np.flatnonzero(out < 0):
            out[r] = sturm_count_row(a2[ia[r]], b2[ib[r]], float(lf[r]))
    out = out.reshape(out_batch)
    return int(out) if out.ndim == 0 else out
