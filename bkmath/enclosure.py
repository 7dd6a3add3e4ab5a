"""Rigorous ball-arithmetic enclosures (python-flint Arb) of finite-dimensional quantities.

Everything here starts from *exact* data: potentials and spectral parameters are given as
rationals (``fractions.Fraction``, ``int`` or strings such as ``"-3/2"``), converted to
``fmpq`` and then to balls of radius 0. Each returned ball (``arb``/``acb``) is a proof that
the true value of that finite-dimensional quantity lies inside it (Arb's guarantee), for
*that* matrix; floats never enter. Eigenvalue counts of real symmetric tridiagonal matrices
with rational entries are computed exactly in ``fmpq`` (Sylvester inertia of the LDLᵀ
pivots): an exact integer, not an enclosure.

The working precision (bits) is scoped: ``with arb_precision(200): ...`` restores the
previous global precision on exit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction

import flint
from flint import acb, acb_mat, arb, fmpq

__all__ = [
    "arb_precision",
    "to_fmpq",
    "to_acb",
    "lattice_w_ball",
    "bs_matrix_ball",
    "det_ball",
    "perturbation_determinant_ball",
    "resolvent_ball",
    "hs_norm_sq_ball",
    "exact_negative_count",
    "symmetric_negative_count_ball",
    "ball_contains",
]

Rational = Fraction | int | str


@contextmanager
def arb_precision(bits: int) -> Iterator[None]:
    """Set flint's working precision to ``bits`` inside the block, restore it afterwards."""
    if not isinstance(bits, int) or bits < 16:
        raise ValueError(f"bits must be an integer >= 16, got {bits!r}")
    old = flint.ctx.prec
    flint.ctx.prec = bits
    try:
        yield
    finally:
        flint.ctx.prec = old


def to_fmpq(x: Rational) -> fmpq:
    """An exact rational from a Fraction, int or string ("3/2", "-0.25"). Floats are
    rejected: a float is already rounded and would not make the enclosure a statement about
    the intended input."""
    if isinstance(x, bool) or isinstance(x, float):
        raise TypeError(f"enclosures need exact input (Fraction, int or str), got {x!r}")
    if isinstance(x, fmpq):
        return x
    if isinstance(x, int):
        return fmpq(x)
    if isinstance(x, str):
        x = Fraction(x)
    if isinstance(x, Fraction):
        return fmpq(x.numerator, x.denominator)
    raise TypeError(f"cannot convert {type(x).__name__} to an exact rational")


def to_acb(re: Rational, im: Rational = 0) -> acb:
    """An exact complex ball re + i im from rationals."""
    return acb(arb(to_fmpq(re)), arb(to_fmpq(im)))


def lattice_w_ball(z: acb) -> acb:
    """Enclosure of the lattice root w(z) with |w| < 1 (Im z > 0 or real z ∉ [0, 4]).

    Both roots of w² − (2 − z)w + 1 are enclosed; the one whose modulus is *certified* < 1 is
    returned. Raises ``ValueError`` if neither can be certified (z too close to [0, 4]
    for the precision).
    """
    s = ((2 - z) ** 2 - 4).sqrt()
    for r in (((2 - z) - s) / 2, ((2 - z) + s) / 2):
        if abs(r).upper() < 1:
            return r
    raise ValueError("could not certify |w| < 1: z too close to [0, 4] or precision too low")


def bs_matrix_ball(v: Sequence[Rational], z: acb) -> acb_mat:
    """Enclosure of the lattice Birman–Schwinger matrix restricted to supp V, in the
    unsymmetrised form K' = V G0 (same determinant and eigenvalues as K; no square roots
    of V): K'_mn = v_m w^{|m−n|}/(w⁻¹ − w) for m, n ∈ supp V."""
    q = [to_fmpq(x) for x in v]
    sites = [i for i, x in enumerate(q) if x != 0]
    w = lattice_w_ball(z)
    c = 1 / (1 / w - w)
    pw = {}
    rows = []
    for m in sites:
        row = []
        for n in sites:
            d = abs(m - n)
            if d not in pw:
                pw[d] = w**d
            row.append(arb(q[m]) * pw[d] * c)
        rows.append(row)
    return acb_mat(rows) if rows else acb_mat(0, 0)


def det_ball(M: acb_mat, shift_identity: bool = True) -> acb:
    """Enclosure of det(I + M) (or det M with ``shift_identity=False``)."""
    n = M.nrows()
    if n == 0:
        return acb(1)
    A = M + acb_mat(n, n, [1 if i == j else 0 for i in range(n) for j in range(n)]) \
        if shift_identity else M
    return A.det()


def perturbation_determinant_ball(v: Sequence[Rational], z: acb) -> tuple[acb, acb]:
    """Two enclosures of D(z) = det(I + K(z)) on the infinite chain: (dense det(I + V G0),
    continuant ratio det(H_S − z − wΣ)/(w^{−(M−1)} (w⁻¹ − w))). They must overlap."""
    q = [to_fmpq(x) for x in v]
    nz = [i for i, x in enumerate(q) if x != 0]
    if not nz:
        return acb(1), acb(1)
    dense = det_ball(bs_matrix_ball(v, z))
    win = q[nz[0] : nz[-1] + 1]
    m = len(win)
    w = lattice_w_ball(z)
    prev = None
    prod = acb(1)
    for i, vi in enumerate(win):
        a = 2 + arb(vi) - z
        if i == 0:
            a -= w
        if i == m - 1:
            a -= w
        d = a if prev is None else a - 1 / prev
        prod *= d
        prev = d
    ratio = prod * w ** (m - 1) / (1 / w - w)
    return dense, ratio


def resolvent_ball(diag: Sequence[Rational], off: Sequence[Rational], z: acb) -> acb_mat:
    """Enclosure of (H − z)⁻¹ for the tridiagonal H (diagonal ``diag``, symmetric
    off-diagonal ``off``), by Arb's certified matrix inverse."""
    a = [to_fmpq(x) for x in diag]
    b = [to_fmpq(x) for x in off]
    n = len(a)
    if len(b) != max(n - 1, 0):
        raise ValueError(f"off must have length {max(n - 1, 0)}, got {len(b)}")
    rows = [[acb(0)] * n for _ in range(n)]
    for i in range(n):
        rows[i][i] = arb(a[i]) - z
        if i + 1 < n:
            rows[i][i + 1] = acb(arb(b[i]))
            rows[i + 1][i] = acb(arb(b[i]))
    return acb_mat(rows).inv()


def hs_norm_sq_ball(v: Sequence[Rational], z: acb) -> arb:
    """Enclosure of ‖K(z)‖²_S2 = Σ_{m,n} |v_m| |v_n| |G0(m, n; z)|² (lattice)."""
    q = [to_fmpq(x) for x in v]
    w = lattice_w_ball(z)
    aw2 = abs(w) ** 2
    c2 = abs(1 / (1 / w - w)) ** 2
    sites = [(i, abs(x)) for i, x in enumerate(q) if x != 0]
    tot = arb(0)
    for m, vm in sites:
        for n, vn in sites:
            tot += arb(vm) * arb(vn) * aw2 ** abs(m - n)
    return tot * c2


def exact_negative_count(diag: Sequence[Rational], off: Sequence[Rational],
                         lam: Rational) -> int:
    """Exact number of eigenvalues < λ of the real symmetric tridiagonal matrix with rational
    ``diag``/``off``, by the LDLᵀ pivots in exact rational arithmetic (Sylvester inertia).

    Raises ``ValueError`` if λ is an eigenvalue of a leading block (a zero pivot), since the
    count is then ambiguous at λ.
    """
    a = [to_fmpq(x) for x in diag]
    b = [to_fmpq(x) for x in off]
    lq = to_fmpq(lam)
    if len(b) != max(len(a) - 1, 0):
        raise ValueError("off must have length len(diag) - 1")
    count = 0
    prev = None
    for i, ai in enumerate(a):
        d = ai - lq if prev is None else ai - lq - b[i - 1] ** 2 / prev
        if d == 0:
            raise ValueError(f"zero pivot at {i}: λ = {lam} is an eigenvalue of a leading block")
        count += d < 0
        prev = d
    return int(count)


def symmetric_negative_count_ball(M: Sequence[Sequence[arb]]) -> int:
    """Certified number of negative eigenvalues of a real symmetric matrix of balls.

    Gaussian elimination without pivoting (LDLᵀ): if every pivot ball excludes 0 the
    inertia is that of the pivot signs (Sylvester), for every matrix in the balls. Raises
    ``ValueError`` when a pivot ball contains 0 (undecided).
    """
    A = [[arb(x) for x in row] for row in M]
    n = len(A)
    count = 0
    for k in range(n):
        p = A[k][k]
        if p.contains(0):
            raise ValueError(f"pivot {k} contains 0: inertia not certified")
        count += p < 0
        for i in range(k + 1, n):
            f = A[i][k] / p
            for j in range(k + 1, n):
                A[i][j] = A[i][j] - f * A[k][j]
    return int(count)


def ball_contains(ball: arb | acb, value: complex, slack: float = 0.0) -> bool:
    """True if the float ``value`` lies in ``ball`` enlarged by ``slack`` (absolute).

    Use a slack of a few float64 ulps × condition to test a float64 computation against a
    rigorous enclosure; ``slack = 0`` for exact containment.
    """
    if isinstance(ball, arb):
        ball = acb(ball)
    re, im = ball.real, ball.imag
    ok_re = abs(float(re.mid()) - complex(value).real) <= float(re.rad()) + slack
    ok_im = abs(float(im.mid()) - complex(value).imag) <= float(im.rad()) + slack
    return bool(ok_re and ok_im)
