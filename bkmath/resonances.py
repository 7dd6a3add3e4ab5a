r"""Eigenvalues, resonances and anti-bound states of a finitely supported potential on Z.

Setting (docs/conventions.md §1–2). ``H = H0 + V`` on ℓ²(Z), ``H0 = −Δ`` (diagonal 2, hopping
−1), ``V = diag(v)`` with real ``v`` supported on the sites ``1..L``; ``z = 2 − w − 1/w`` with
``|w| < 1`` the physical sheet (``w = lattice_w(z)``).

Theorem (docs/theory.md, "Lattice resonances"). The Jost function ``D(z) = det(I + V R0(z))``,
written in ``w``, satisfies

    P(w) := (1 − w²) D(z(w)) = w^L det(H_L − z(w) − w (E_11 + E_LL))
          = det(I + w (H_L − 2) + w² (I − E_11 − E_LL)),

a polynomial in ``w`` with real coefficients and ``P(0) = 1`` (for ``L = 1``:
``E_11 + E_LL = 2 E_11`` and ``P(w) = 1 + v_1 w − w²``). Its degree is exactly 2 for
``L = 1``; for ``L = 2`` it is 2 unless ``v_1 v_2 = 1`` (leading coefficient ``v_1 v_2 − 1``);
for ``L ≥ 3`` and ``v_1 v_L ≠ 0`` (the window is the support) it is exactly ``2L − 2`` with
leading coefficient ``v_1 v_L``. So P continues D from the physical sheet ``|w| < 1`` through
the band ``|w| = 1`` to the second sheet ``|w| > 1`` and, counted with multiplicity,

    #eigenvalues + #resonances + #anti-bound states + #threshold zeros = deg P ≤ 2L − 2.

*Derivation.* The transparent window (conventions §2) gives
``det(I + V R0) = det(H_L − z − wE)/det(H0_L − z − wE)`` with ``E = E_11 + E_LL`` and
``det(H0_L − z − wE) = w^{−(L−1)}(w^{−1} − w)``, hence the first identity. Multiplying each
row by ``w``: the diagonal becomes ``1 + w v_n + w²`` inside, ``1 + w v_n`` on the two end
sites (``1 + w v_1 − w²`` when ``L = 1``) and the hoppings ``−w``; the continuant
``θ_n = d_n θ_{n−1} − w² θ_{n−2}`` is a polynomial of degree ``2n − 1`` (``n < L``) and its
top coefficient is ``v_1``; the last step adds ``1 + w v_L`` (degree 1) and ``−w²θ_{L−2}``
(degree ``2L − 3`` for ``L ≥ 3``), so the top coefficient is ``v_1 v_L``.

Classification of a zero ``w`` of P (it is never 0):

* ``|w| < 1``: an eigenvalue ``z = 2 − w − 1/w`` of H; H is self-adjoint, so w is real:
  ``0 < w < 1`` ⇔ ``z < 0``, ``−1 < w < 0`` ⇔ ``z > 4``;
* ``|w| = 1``: only ``w = ±1`` (a threshold resonance at ``z = 0`` resp. ``4``): on the band
  ``D(λ + i0) = 1/t(λ) ≠ 0``;
* ``|w| > 1``, real: an anti-bound (virtual) state, ``z`` real outside ``[0, 4]`` on the
  second sheet; complex: a resonance, in conjugate pairs ``(w, w̄)``.

Routines: :func:`jost_polynomial` (float64 coefficients, O(L²)), :func:`lattice_resonances`
(all zeros: ``numpy.roots`` of the coefficients, each refined by Newton's method on the
mpmath coefficients, then classified), :func:`resonance_balls` (Arb: a Krawczyk test on a
small box around each zero, with the exact rational coefficients). The independent references
(mpmath coefficients, exact coefficients, the transparent-boundary quadratic eigenproblem,
large-window eigenvalues) are in :mod:`bkmath.reference.resonances`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import mpmath
import numpy as np

from bkmath._continuant import jost_continuant as _continuant
from bkmath._validation import as_real_array

__all__ = [
    "LatticeZeros",
    "support_window",
    "jost_polynomial",
    "jost_polynomial_degree",
    "lattice_resonances",
    "resonance_balls",
]

#: the kinds of zero of the Jost polynomial, in the order of docs/theory.md
KINDS = ("eigenvalue", "threshold", "antibound", "resonance")


def support_window(v: object) -> np.ndarray:
    """The real potential ``v`` (1-D, finite) cut to its support ``[first nonzero, last
    nonzero]``; empty for ``v ≡ 0``. P(w) is translation invariant, so only this window matters.
    """
    vv = as_real_array(v, "v", ndim=1).astype(np.float64)
    if not np.all(np.isfinite(vv)):
        raise ValueError("v must be finite")
    nz = np.nonzero(vv)[0]
    return vv[nz[0] : nz[-1] + 1] if nz.size else vv[:0]


def jost_polynomial(v: object) -> np.ndarray:
    """Coefficients ``c_0..c_d`` (ascending powers, float64) of the Jost polynomial
    ``P(w) = (1 − w²) det(I + V R0(z(w)))`` of a finitely supported real potential; O(L²).

    ``v`` is cut to its support first (:func:`support_window`); trailing exact zeros are
    dropped, so ``len − 1`` is the degree (``2L − 2`` for ``L ≥ 3``).

    >>> jost_polynomial([1.5]).tolist()      # 1 + v w − w²
    [1.0, 1.5, -1.0]
    >>> jost_polynomial([0.0, 2.0, 0.0, 0.0, -1.0, 0.0]).tolist()[-1]  # v_1 v_L, degree 4
    -2.0
    """
    win = support_window(v)
    deg = jost_polynomial_degree(win)
    c = np.array(_continuant(list(win), 1.0, 0.0), dtype=np.float64)[: deg + 1]
    if win.size == 2 and deg == 2 and np.isfinite(c[2]):  # v_1 v_2 − 1 correctly rounded
        from fractions import Fraction  # (in float64 it may cancel to 0)

        try:
            c[2] = float(Fraction(win[0]) * Fraction(win[1]) - 1)
        except OverflowError:
            c[2] = np.inf
    if not np.all(np.isfinite(c)):
        raise ValueError("v: the Jost polynomial's coefficients overflow float64")
    if c[-1] == 0.0:
        raise ValueError("v: the Jost polynomial's leading coefficient underflows float64")
    return c


def jost_polynomial_degree(v: object) -> int:
    """The exact degree of P from the formula: 2 for L ≤ 1 (``v ≡ 0``: ``1 − w²``); for
    ``L = 2``, 2 unless ``v_1 v_2 = 1`` exactly (in rationals: then 1, as ``v_1 + v_2 ≠ 0``);
    ``2L − 2`` for ``L ≥ 3``."""
    win = support_window(v)
    L = win.size
    if L <= 1:
        return 2
    if L == 2:
        from fractions import Fraction

        return 2 if Fraction(win[0]) * Fraction(win[1]) != 1 else 1
    return 2 * L - 2


@dataclasses.dataclass(frozen=True)
class LatticeZeros:
    """All zeros of the Jost polynomial, with multiplicity, sorted by kind then by |w|.

    ``w``: the zeros (complex128); ``z = 2 − w − 1/w``; ``kind``: one of :data:`KINDS` per
    zero; ``degree``: deg P (= ``len(w)``); ``coefficients``: P's float64 coefficients.
    """

    w: np.ndarray
    z: np.ndarray
    kind: tuple[str, ...]
    degree: int
    coefficients: np.ndarray

    def of_kind(self, kind: str) -> np.ndarray:
        """The zeros ``w`` of one kind."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        return self.w[[k == kind for k in self.kind]]

    @property
    def eigenvalues(self) -> np.ndarray:
        """The eigenvalues ``z`` of H (real, outside [0, 4]), ascending."""
        return np.sort(self.z[[k == "eigenvalue" for k in self.kind]].real)


def _newton_mp(coeffs_mp: list, w0: complex, dps: int, max_iter: int = 80):
    """Newton's method for the polynomial with mpmath coefficients, from ``w0``."""
    w = mpmath.mpc(w0)
    rev = coeffs_mp[::-1]
    tol = mpmath.mpf(10) ** (-(dps - 5))
    for _ in range(max_iter):
        p, dp = mpmath.mpf(0), mpmath.mpf(0)
        for c in rev:  # Horner for P and P'
            dp = dp * w + p
            p = p * w + c
        if dp == 0:
            break
        step = p / dp
        w -= step
        if abs(step) <= tol * max(1, abs(w)):
            break
    return w


def _classify(w: complex, tol: float) -> str:
    r = abs(w)
    if abs(r - 1.0) <= tol:
        return "threshold"
    if r < 1.0:
        return "eigenvalue"
    return "antibound" if abs(w.imag) <= tol * r else "resonance"


def lattice_resonances(v: object, *, dps: int = 50, tol: float = 1e-9) -> LatticeZeros:
    """All zeros of the Jost polynomial of a finitely supported real potential on Z:
    eigenvalues (``|w| < 1``), threshold zeros (``w = ±1``), anti-bound states (real
    ``|w| > 1``) and resonances (complex ``|w| > 1``), with ``z = 2 − w − 1/w``.

    The zeros are ``numpy.roots`` of the coefficients, each refined by Newton's method on the
    coefficients computed by mpmath at ``dps`` digits (the float64 coefficients of a long
    window lose digits to cancellation); classification uses ``tol`` on ``|w| − 1`` and on
    ``Im w/|w|`` (certified classification: :func:`resonance_balls`).

    >>> r = lattice_resonances([1.0])   # eigenvalue 2 + √5 at w = (1 − √5)/2, and w = (1 + √5)/2
    >>> [round(float(x), 10) for x in r.eigenvalues], r.kind
    ([4.2360679775], ('eigenvalue', 'antibound'))
    """
    if isinstance(dps, bool) or not isinstance(dps, (int, np.integer)) or dps < 20:
        raise ValueError(f"dps must be an integer >= 20, got {dps!r}")
    if not (np.isfinite(tol) and 0 < tol < 1e-3):
        raise ValueError(f"tol must lie in (0, 1e-3), got {tol!r}")
    c = jost_polynomial(v)
    deg = c.size - 1
    if deg == 0:
        return LatticeZeros(np.zeros(0, complex), np.zeros(0, complex), (), 0, c)
    with mpmath.workdps(dps):
        win = [mpmath.mpf(float(x)) for x in support_window(v)]
        cm = _continuant(win, mpmath.mpf(1), mpmath.mpf(0))[: deg + 1]
        w0 = np.roots(c[::-1])
        ws = np.array([complex(_newton_mp(cm, complex(x), dps)) for x in w0])
    ws = np.where(np.abs(ws.imag) <= 1e-15 * np.abs(ws), ws.real + 0j, ws)
    kind = [_classify(complex(x), tol) for x in ws]
    order = sorted(range(deg), key=lambda i: (KINDS.index(kind[i]), abs(ws[i]), ws[i].imag))
    ws = ws[order]
    kind = tuple(kind[i] for i in order)
    return LatticeZeros(ws, 2.0 - ws - 1.0 / ws, kind, deg, c)


def _exact(win):
    """``flint.fmpq_poly`` of P, exact for the binary floats in ``win``."""
    from fractions import Fraction

    from flint import fmpq, fmpq_poly

    one, zero = fmpq_poly([1]), fmpq_poly([])
    coeffs = _continuant([fmpq_poly([fmpq(f.numerator, f.denominator)])
                          for f in (Fraction(x) for x in win)], one, zero)
    out = fmpq_poly([])
    for i, c in enumerate(coeffs):
        out += c * fmpq_poly([0] * i + [1])
    return out


def resonance_balls(v: object, zeros: Sequence[complex], *, rel_radius: float = 1e-10,
                    prec: int = 256) -> list[dict]:
    """Arb certificates of zeros of the Jost polynomial: around each approximate zero ``w0``
    (re-centred by a few Newton steps in ``prec``-bit arithmetic on the exact polynomial,
    keeping a real ``w0`` real) the box ``B = m ± r`` in real and imaginary part, with
    ``r = ρ · max(1, |w0|)`` for the first ``ρ`` in ``rel_radius, rel_radius·10⁻³, …, 10⁻³⁰``
    that passes the Krawczyk test

        K(B) = m − P(m)/P'(m) + (1 − P'(B)/P'(m)) (B − m) ⊂ interior(B),

    evaluated in ball arithmetic with P's *exact* rational coefficients (``v`` read exactly as
    the binary floats it holds). Then B holds exactly one zero of P, a simple one. (Smaller
    boxes are needed where Horner's interval evaluation of P'(B) overestimates: large
    coefficients, long windows.) For real ``w0`` the box is symmetric about the real axis and
    the zero is real (its conjugate is a zero in B as well). Returns, per zero: ``ball`` (the
    acb box), ``unique`` (the test passed), ``real`` (certified real), ``inside`` /
    ``outside`` (``|w| < 1`` / ``> 1`` on all of B), ``radius`` (r), ``contains_input``
    (``w0`` itself lies in B).
    """
    import flint

    from bkmath.enclosure import arb_precision

    if not (np.isfinite(rel_radius) and 1e-30 < rel_radius < 1e-2):
        raise ValueError(f"rel_radius must lie in (1e-30, 1e-2), got {rel_radius!r}")
    P = _exact(support_window(v))
    rhos = [rel_radius * 10.0 ** (-3 * k) for k in range(12)]
    rhos = [x for x in rhos if x >= 1e-30] or [rel_radius]
    out = []
    with arb_precision(prec):
        Pa = flint.acb_poly([flint.acb(P[i]) for i in range(P.degree() + 1)])
        dPa = Pa.derivative()
        for w0 in zeros:
            w0 = complex(w0)
            real = w0.imag == 0.0
            inp = flint.acb(w0.real, w0.imag)  # exact binary point
            m = inp
            for _ in range(6):  # Newton on midpoints: a centre accurate to ~prec bits
                d = dPa(m)
                if d.contains(0):
                    break
                m = (m - Pa(m) / d).mid()
                if real:
                    m = flint.acb(m.real)
            ok, B, r = False, None, rhos[0] * max(1.0, abs(w0))
            d0 = dPa(m)
            for rho in rhos:
                r = rho * max(1.0, abs(w0))
                B = flint.acb(flint.arb(m.real.mid(), r), flint.arb(m.imag.mid(), r))
                if d0.contains(0):
                    break
                K = m - Pa(m) / d0 + (1 - dPa(B) / d0) * (B - m)
                if B.contains_interior(K):
                    ok = True
                    break
            a = abs(B)
            out.append({"ball": B, "unique": ok, "real": ok and real,
                        "inside": bool(a < 1), "outside": bool(a > 1), "radius": r,
                        "contains_input": bool(B.contains(inp))})
    return out
