"""The O(N) resolvent diagonal of a Jacobi operator (and the free resolvents, re-exported).

Conventions (docs/conventions.md §1–3): ``z = λ + iη`` with ``η > 0`` wherever a resolvent is
formed; boundary values ``λ + i0`` are accepted only where a routine says so (``boundary=True``,
or an operator with the transparent boundary). The closed-form free resolvents
(:func:`~bkmath.free.lattice_w`, :func:`~bkmath.free.free_resolvent`,
:func:`~bkmath.free.free_resolvent_continuum`) live in :mod:`bkmath.free`, the floor below both
this module and :mod:`bkmath.operators`; they stay importable from here.
"""

from __future__ import annotations

import numpy as np

from bkmath._validation import as_spectral_parameter
from bkmath.free import free_resolvent, free_resolvent_continuum, lattice_w, lead_self_energy
from bkmath.operators import JacobiOperator

__all__ = [
    "lattice_w",
    "free_resolvent",
    "free_resolvent_continuum",
    "resolvent_diagonal",
    "SIDES",
]

SIDES = ("both", "left", "right")


# ------------------------------------------------------------------------------------------
# batching plumbing shared with bkmath.determinant
# ------------------------------------------------------------------------------------------


def _check_op(op: object) -> JacobiOperator:
    if not isinstance(op, JacobiOperator):
        raise TypeError(f"op must be a JacobiOperator, got {type(op).__name__}")
    return op


def _rows(op: JacobiOperator, pshape: tuple[int, ...], pname: str):
    """Flatten ``broadcast(op.batch_shape, pshape)`` into rows.

    Returns (out_batch_shape, a2, ia, b2, c2, ib, ip): 2-D contiguous views of a and of
    (b, c) broadcast together, and for each row the index of its a-row, (b,c)-row and
    parameter entry.
    """
    try:
        out_batch = np.broadcast_shapes(op.batch_shape, pshape)
    except ValueError:
        raise ValueError(
            f"{pname} of shape {pshape} does not broadcast against the operator's batch "
            f"shape {op.batch_shape}"
        ) from None
    n = op.n
    a = op.a
    a2 = np.ascontiguousarray(a.reshape(-1, n))
    ia = np.broadcast_to(np.arange(a2.shape[0]).reshape(a.shape[:-1]), out_batch).ravel()
    b, c = op.b, op.c
    bc_shape = np.broadcast_shapes(b.shape, c.shape)
    if b.shape != bc_shape:
        b = np.broadcast_to(b, bc_shape)
    if c.shape != bc_shape:
        c = np.broadcast_to(c, bc_shape)
    if n == 1:  # kernels never read b, c; give them a non-empty row to index
        b2 = np.zeros((1, 1), dtype=b.dtype)
        c2 = np.zeros((1, 1), dtype=c.dtype)
        ib = np.zeros(int(np.prod(out_batch, dtype=np.int64)), dtype=np.int64)
    else:
        b2 = np.ascontiguousarray(b).reshape(-1, n - 1)
        c2 = np.ascontiguousarray(c).reshape(-1, n - 1)
        ib = np.broadcast_to(
            np.arange(b2.shape[0]).reshape(bc_shape[:-1]), out_batch
        ).ravel()
    ip = np.broadcast_to(np.arange(int(np.prod(pshape, dtype=np.int64))).reshape(pshape),
                         out_batch).ravel()
    return (
        tuple(out_batch),
        a2,
        np.ascontiguousarray(ia, dtype=np.int64),
        b2,
        c2,
        np.ascontiguousarray(ib, dtype=np.int64),
        np.ascontiguousarray(ip, dtype=np.int64),
    )


def _kernel_inputs(op: JacobiOperator, zz: np.ndarray):
    """Everything the row kernels need for ``op`` at the spectral parameters ``zz``.

    Returns ``(out_batch, real, a2, b2, c2, ia, ib, zf, sig)``: the broadcast batch shape, the
    coefficient rows of :func:`_rows` converted by :func:`_coeff_arrays`, their row indices,
    the parameter of each row ``zf`` and the lead term ``sig = w(zf)`` (``|w| < 1``, at
    ``λ + i0`` on the band) for transparent boundaries, zeros for Dirichlet.
    """
    out_batch, a2, ia, b2, c2, ib, ip = _rows(op, zz.shape, "z")
    zf = zz.ravel()[ip]
    sig = (
        np.asarray(lead_self_energy(zf)).reshape(-1)
        if op.boundary == "transparent"
        else np.zeros_like(zf)
    )
    real, a2, b2, c2 = _coeff_arrays(op, a2, b2, c2)
    return out_batch, real, a2, b2, c2, ia, ib, zf, sig


def _coeff_arrays(op: JacobiOperator, a2, b2, c2):
    """Arrays for the kernels: (real, a2, b2, c2).

    ``real=True``: a and beta = b c are real; float64 arrays (for Hermitian H with complex
    hopping, b -> |b| and c -> |b| so that b c = |b|²). Otherwise complex128 arrays.
    float32/complex64 inputs are widened (the kernels compute in float64).
    """
    if op.real_beta:
        a2 = np.ascontiguousarray(a2.real if a2.dtype.kind == "c" else a2, dtype=np.float64)
        if b2.dtype.kind == "c" or c2.dtype.kind == "c":
            bb = np.ascontiguousarray(np.abs(b2), dtype=np.float64)
            if op.is_hermitian:
                return True, a2, bb, bb
            beta = np.real(b2 * c2)
            cc = np.ascontiguousarray(beta / np.where(bb == 0, 1.0, bb), dtype=np.float64)
            return True, a2, bb, cc
        b2 = np.ascontiguousarray(b2, dtype=np.float64)
        c2 = b2 if c2 is b2 or op.is_symmetric else np.ascontiguousarray(c2, dtype=np.float64)
        return True, a2, b2, c2
    cd = np.complex128
    return (
        False,
        np.ascontiguousarray(a2, dtype=cd),
        np.ascontiguousarray(b2, dtype=cd),
        np.ascontiguousarray(c2, dtype=cd),
    )


def _beta_overflows(b2: np.ndarray, c2: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Rows whose products ``beta_i = b_i c_i`` leave the float64 range (|b|, |c| ~ 1e±150+)."""
    if b2.size == 0:
        return np.zeros(ib.shape, dtype=bool)
    mb, mc = float(np.abs(b2).max()), float(np.abs(c2).max())
    if mb * mc < 1e300:  # (an overflow of the product itself lands here as inf: not taken)
        return np.zeros(ib.shape, dtype=bool)
    with np.errstate(over="ignore"):
        bad = ~np.all(np.isfinite(np.abs(b2) * np.abs(c2)), axis=1)
    return bad[ib]


def _extended_rows(out, redo, a2, ia, b2, c2, ib, zf, sig, side) -> None:
    """Recompute the rows ``redo`` with the extended-exponent recursion (:mod:`bkmath._extended`);
    a pivot that is exactly zero there is a genuinely singular ``H - z``: ValueError."""
    from bkmath._extended import SingularPivot, ratio_diagonal_row

    for r in np.flatnonzero(redo):
        try:
            out[r] = ratio_diagonal_row(
                a2[ia[r]], b2[ib[r]], c2[ib[r]], zf[r].real, zf[r].imag,
                sig[r].real, sig[r].imag, side,
            )  # fmt: skip
        except SingularPivot:
            raise ValueError(
                "resolvent_diagonal: a pivot of H - z vanished or overflowed (exactly zero in "
                f"extended-exponent arithmetic: H - z singular at z = {zf[r]}); row {int(r)}"
            ) from None
        if not np.all(np.isfinite(out[r])):
            raise ValueError(
                "resolvent_diagonal: a pivot of H - z vanished or overflowed: an entry of the "
                f"diagonal exceeds the float64 range (z = {zf[r]} within ~1e-308 of the "
                f"spectrum); row {int(r)}"
            )


def resolvent_diagonal(op: JacobiOperator, z: object, side: str = "both") -> np.ndarray:
    r"""Diagonal of the resolvent of a Jacobi operator by the stable O(N) ratio recursion.

    With ``alpha_i = a_i - z`` (minus the lead self-energy ``w(z)`` at sites 1 and N for
    the transparent boundary) and ``beta_i = b_i c_i`` (docs/conventions.md §3):

    * ``side="left"``: ``g^L_1 = 1/alpha_1``, ``g^L_i = 1/(alpha_i - beta_{i-1} g^L_{i-1})``,
      the Green's function at the right edge of the leading block,
      ``g^L_i = [(H_{1..i} - z)^{-1}]_{ii}``. **Causal**: g^L_i depends on sites <= i only.
    * ``side="right"``: ``g^R_i = 1/(alpha_i - beta_i g^R_{i+1})`` =
      ``[(H_{i..N} - z)^{-1}]_{ii}`` (anti-causal).
    * ``side="both"``: ``G_ii = [(H - z)^{-1}]_{ii} =
      1/(alpha_i - beta_{i-1} g^L_{i-1} - beta_i g^R_{i+1})`` (non-causal).

    For the transparent boundary the leading block of ``g^L_i`` carries the left lead's
    self-energy at site 1 (and the right lead's only when i = N), so ``g^L_N = G_NN`` and
    ``g^R_1 = G_11``; ``g^L_i`` is still causal.

    For real symmetric (Hermitian) H and Im z > 0 every output is Herglotz:
    ``Im > 0`` and ``|.| <= 1/Im z``.

    Parameters
    ----------
    op : JacobiOperator
        Batch shape ``B``; N sites.
    z : complex or array_like, shape ``Z``
        Spectral parameter(s), ``Im z > 0`` (ValueError otherwise). For a transparent
        operator ``Im z = 0`` is also allowed: real z = λ gives the exact boundary value
        ``λ + i0`` (limiting absorption). z is broadcast against the batch: use
        ``z[:, None]`` for "every z on every chain".
    side : {"both", "left", "right"}

    Returns
    -------
    ndarray, shape ``broadcast(B, Z) + (N,)``
        complex64 when all of a, b, c are float32/complex64, else complex128 (z is cast to
        that precision; the arithmetic is float64 internally in both cases).

    Raises
    ------
    ValueError
        Bad z, side or shapes; or when H - z is singular (a pivot vanishes exactly) or an
        entry of the diagonal exceeds the float64 range: a ValueError says so instead of
        returning NaN/Inf. Coefficients beyond the float64 range of the products
        ``b_i c_i`` (hopping ~1e300) are *not* an error: those rows are recomputed with an
        unbounded exponent (:mod:`bkmath._extended`) and give the correctly rounded values.

    Notes
    -----
    Cost O(N) per chain and z, one pass, compiled with numba; batched rows are split over
    one thread per core (the kernels release the GIL; ``BKMATH_NUM_THREADS`` overrides).

    * ``"left"``/``"right"``: the continuants θ_i (leading minors) are propagated with a
      power-of-two rescaling of the pair (θ_{i-1}, θ_i), which leaves the ratio
      ``g^L_i = θ_{i-1}/θ_i`` unchanged; the dependency chain is a complex multiply-add, the
      division is off the chain. Backward stable (each alpha_i, beta_i enters one step).
    * ``"both"``: the ratio recursions from both ends run interleaved in one loop; when they
      cross in the middle each sweep finishes the diagonal of the other half on the fly (no
      extra pass, no temporary array).

    Timings: README ("Measured numbers") and ``benchmarks/results/bkmath_*.json``, written by
    ``benchmarks/bench_bkmath.py``. Compared with the θ/φ continuant formula
    (``bkmath.reference.continuant_diagonal``), which overflows for long chains, nothing here
    overflows (the Herglotz bound 1/η holds).

    Examples
    --------
    >>> H = JacobiOperator.free(3)
    >>> G = resolvent_diagonal(H, 1j)
    >>> bool(np.allclose(G, np.diag(np.linalg.inv(H.to_dense(1j)))))
    True
    """
    from bkmath import _kernels as K

    op = _check_op(op)
    if not isinstance(side, str) or side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    zz = as_spectral_parameter(z, "z", boundary=op.boundary == "transparent")
    out_batch, real, a2, b2, c2, ia, ib, zf, sig = _kernel_inputs(op, zz)
    rows = ia.shape[0]
    out = np.empty((rows, op.n), dtype=np.complex128)
    o3 = out.view(np.float64).reshape(rows, op.n, 2)
    chk = np.empty(rows, dtype=np.float64)
    kern = {
        (True, "left"): K.rd_left_real,
        (True, "right"): K.rd_right_real,
        (True, "both"): K.rd_both_real,
        (False, "left"): K.rd_left_cplx,
        (False, "right"): K.rd_right_cplx,
        (False, "both"): K.rd_both_cplx,
    }[(real, side)]
    K.run_rows(
        kern, rows, rows * op.n,
        a2, ia, b2, c2, ib,
        np.ascontiguousarray(zf.real), np.ascontiguousarray(zf.imag),
        np.ascontiguousarray(sig.real), np.ascontiguousarray(sig.imag),
        o3, chk,
    )  # fmt: skip
    redo = ~np.isfinite(chk) | _beta_overflows(b2, c2, ib)
    if np.any(redo):
        _extended_rows(out, redo, a2, ia, b2, c2, ib, zf, sig, side)
        chk[redo] = 0.0
    if op.dtype == np.complex64:
        with np.errstate(over="ignore"):
            out = out.astype(np.complex64)
        if not np.all(np.isfinite(out)):
            chk[~np.all(np.isfinite(out), axis=1)] = np.inf
    if not np.all(np.isfinite(chk)):
        bad = np.flatnonzero(~np.isfinite(chk))
        raise ValueError(
            "resolvent_diagonal: a pivot of H - z vanished or overflowed (H - z singular or "
            f"z too close to the spectrum for this precision); rows {bad[:5].tolist()}"
        )
    return out.reshape(out_batch + (op.n,))
