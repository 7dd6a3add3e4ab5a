r"""Weyl–Titchmarsh m-function and spectral measure of a half-line Jacobi operator.

Setting (docs/conventions.md §1, §3). ``J`` acts on ℓ²({1, 2, …}) by

    (J u)(n) = b_{n−1} u(n−1) + a_n u(n) + b_n u(n+1),      u(0) = 0,

with real diagonal ``a_1..a_N`` and real hoppings ``b_n ≠ 0``; beyond site ``N`` the chain is
either cut (``tail="dirichlet"``: the N × N truncation ``J_N``) or continues as the constant
chain ``a_n = a_∞``, ``b_n = b_∞`` (``tail="free"``: ``a_∞ = 2``, ``b_∞ = −1``, the free
``−Δ`` of the project; or ``tail=(a_∞, b_∞)``). The Weyl–Titchmarsh m-function is

    m(z) = ⟨δ_1, (J − z)^{-1} δ_1⟩ = ∫ dμ(λ) / (λ − z),           Im z > 0,

μ the spectral measure of δ_1 (a probability measure; δ_1 is cyclic). It is Herglotz
(``Im m > 0``, ``|m| ≤ 1/Im z``) and is the continued fraction

    m(z) = 1 / (a_1 − z − b_1² / (a_2 − z − b_2² / (… − b_N² m_∞(z)))),

i.e. the BK recursion ``g ↦ 1/(α − βg)`` of conventions §3 *run backwards* from the tail to the
root: for the truncation, ``m_N(z) = g^R_1`` of :func:`bkmath.resolvent_diagonal` with
``side="right"``, the Green's function at the left edge (the root). The tail's m-function is
the surface Green's function of the constant chain,

    m_∞(z) = w(2 + (z − a_∞)/|b_∞|) / |b_∞|,     w = :func:`bkmath.lattice_w` (|w| < 1),

so for the free half-line ``m_0(z) = w(z) = (2 − z + √z √(z − 4))/2`` with principal square
roots (``√z √(z−4) ~ z − 2`` at infinity, ``Im m_0 > 0`` for ``Im z > 0``; on the band
``λ + i0``: ``m_0 = e^{iθ}``, ``λ = 2 − 2 cos θ``, θ ∈ (0, π)). The other root ``1/w`` of
``m = 1/(2 − z − m)`` has ``Im < 0``: not an m-function (a negative control of the check).

Spectral measure (constant tail). ``μ = ρ dλ + Σ_k μ_k δ_{E_k}``: the absolutely continuous
part on the band ``[a_∞ − 2|b_∞|, a_∞ + 2|b_∞|]`` with density ``ρ(λ) = Im m(λ + i0)/π``
(exact, from the finite recursion) and finitely many eigenvalues outside the band, located by
Sturm counts: for real λ outside the band the tail folds into the real self-energy
``b_N² m_∞(λ)`` on site N (Schur complement), and the number of eigenvalues of J below λ
(above λ) equals the number of negative (positive) eigenvalues of the real symmetric
``S(λ) = J_N − λ − b_N² m_∞(λ) E_NN`` (Haynsworth inertia: the tail part of ``J − λ`` is
definite). The weights are ``μ_k = φ(1)²/‖φ‖²``, φ the eigenvector (null vector of
``S(E_k)``, continued into the tail as ``φ(N+j) = φ(N+1) (−b_∞ m_∞)^{j−1}``,
``φ(N+1) = −b_N m_∞ φ(N)``). For the truncation, ``μ_N = Σ_k φ_k(1)² δ_{λ_k}`` over the
eigenpairs of ``J_N``: the N-point Gauss quadrature of μ (exact for polynomials of degree
≤ 2N − 1), so ``μ_N → μ`` weakly.

Routines: :func:`m_function` (numpy, vectorised over z, O(N) per z),
:func:`free_m_function`, :func:`half_line_measure` (a :class:`SpectralMeasure`),
:func:`truncation_measure` (eigenpairs of ``J_N``, O(N²)), :func:`m_function_ball` (Arb).
References at mpmath precision: :mod:`bkmath.reference.mfunction`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from bkmath._validation import as_real_array, as_spectral_parameter

__all__ = [
    "SpectralMeasure",
    "m_function",
    "free_m_function",
    "half_line_measure",
    "truncation_measure",
    "m_function_ball",
]

Tail = str | tuple[float, float]


# ------------------------------------------------------------------ validation helpers
def _coefficients(a: object, b: object, tail: Tail) -> tuple[np.ndarray, np.ndarray,
                                                            tuple[float, float] | None]:
    """Validated ``a`` (N,), ``b`` (N − 1 for Dirichlet; N with a tail: b_N couples site N
    to the tail, ``N − 1`` given means ``b_N = b_∞``) and the tail ``(a_∞, b_∞)`` or None."""
    aa = as_real_array(a, "a", ndim=1).astype(np.float64)
    if aa.size == 0:
        raise ValueError("a must have at least one site")
    if tail == "dirichlet":
        t = None
    elif tail == "free":
        t = (2.0, -1.0)
    elif isinstance(tail, tuple) and len(tail) == 2:
        t = (float(tail[0]), float(tail[1]))
        if not all(np.isfinite(t)) or t[1] == 0.0:
            raise ValueError(f"tail must be finite (a_inf, b_inf) with b_inf != 0, got {tail!r}")
    else:
        raise ValueError(f"tail must be 'free', 'dirichlet' or (a_inf, b_inf), got {tail!r}")
    n = aa.size
    if b is None:
        bb = np.full(n - 1 if t is None else n, -1.0 if t is None else t[1])
    else:
        bb = np.atleast_1d(as_real_array(b, "b").astype(np.float64))
        if bb.ndim != 1:
            raise ValueError(f"b must be 1-D, got shape {bb.shape}")
        if t is not None and bb.size == n - 1:
            bb = np.append(bb, t[1])
        want = n - 1 if t is None else n
        if bb.size != want:
            raise ValueError(f"b must have {want} entries for tail={tail!r} (len(a) = {n}), "
                             f"got {bb.size}")
    if np.any(bb == 0.0):
        raise ValueError("b must be nonzero (a zero hopping decouples the chain)")
    return aa, bb, t


def _tail_m(z: np.ndarray, t: tuple[float, float]) -> np.ndarray:
    """``m_∞(z) = w(2 + (z − a_∞)/|b_∞|)/|b_∞|`` (Im z ≥ 0; real z off the band: real)."""
    from bkmath.free import lattice_w

    s = abs(t[1])
    zeta = 2.0 + (z - t[0]) / s
    return np.asarray(lattice_w(zeta, boundary=True)) / s


# ------------------------------------------------------------------ the m-function
def m_function(z: object, a: object, b: object = None, *, tail: Tail = "free",
               boundary: bool = False) -> np.ndarray | complex:
    r"""The Weyl–Titchmarsh function ``m(z) = ⟨δ_1, (J − z)^{-1} δ_1⟩`` of the half-line
    Jacobi operator with diagonal ``a`` and hoppings ``b`` (module docstring), by the
    backward continued fraction ``m_n = 1/(a_n − z − b_n² m_{n+1})`` from the tail's
    ``m_∞`` (or from 0 for ``tail="dirichlet"``) to the root; O(N) per z, vectorised over z.

    Parameters
    ----------
    z : complex or array_like
        ``Im z > 0`` (ValueError otherwise); with ``boundary=True`` and a constant tail also
        real ``z = λ`` (the boundary value ``m(λ + i0)``, exact).
    a, b : array_like
        Diagonal (N) and hoppings (N − 1 for ``"dirichlet"``; N or N − 1 with a tail, the
        missing ``b_N`` being ``b_∞``). Default ``b``: all ``b_∞`` (−1).
    tail : {"free", "dirichlet"} or (a_inf, b_inf)
        The chain beyond site N.

    Returns
    -------
    complex ndarray of the shape of z (a Python complex for scalar z).

    Examples
    --------
    >>> m = m_function(1.0 + 1e-300j, [2.0], tail="free")   # one free site + free tail = m_0
    >>> bool(abs(m - free_m_function(1.0, boundary=True)) < 1e-15)
    True
    >>> m0 = complex(free_m_function(1.0, boundary=True))   # e^{iθ}, cos θ = 1/2
    >>> round(m0.real, 12), round(m0.imag, 12)
    (0.5, 0.866025403784)
    >>> round(m_function(1j, [0.0], tail="dirichlet").imag, 12)   # 1/(0 − i) = i
    1.0
    """
    aa, bb, t = _coefficients(a, b, tail)
    if boundary and t is None:
        raise ValueError("boundary=True needs a constant tail (the truncation has poles on R)")
    zz = as_spectral_parameter(z, "z", boundary=boundary)
    scalar = zz.ndim == 0
    zf = zz.ravel() + 0.0j
    zf = zf.real + 1j * np.where(zf.imag == 0, 0.0, zf.imag)  # −0.0 read as +0.0
    g = np.zeros_like(zf) if t is None else _tail_m(zf, t)
    b2 = bb * bb
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for n in range(aa.size - 1, -1, -1):
            coupling = b2[n] * g if n < b2.size else 0.0
            g = 1.0 / (aa[n] - zf - coupling)
    if not np.all(np.isfinite(g)):
        raise ValueError("z: m(z) is not finite (z is a pole of m, i.e. an eigenvalue)")
    out = g.reshape(zz.shape)
    return complex(out) if scalar else out


def free_m_function(z: object, *, boundary: bool = False) -> np.ndarray | complex:
    r"""The m-function of the free half-line ``−Δ`` (diagonal 2, hopping −1, u(0) = 0):

        m_0(z) = (2 − z + √z √(z − 4))/2 = w(z),

    principal square roots, the branch with ``|m_0| < 1`` (``Im m_0 > 0`` for ``Im z > 0``);
    it solves ``m_0 = 1/(2 − z − m_0)``. ``boundary=True`` admits real ``z`` (``λ + i0``:
    ``e^{iθ}`` on the band, real off it). Spectral measure: the semicircle-type density
    ``ρ_0(λ) = √(λ(4 − λ))/(2π)`` on [0, 4], no point masses.

    >>> m0 = free_m_function(0.5 + 0.5j)
    >>> bool(abs(m0 - 1 / (2 - (0.5 + 0.5j) - m0)) < 1e-15 and m0.imag > 0)
    True
    """
    from bkmath.free import lattice_w

    as_spectral_parameter(z, "z", boundary=boundary)
    return lattice_w(z, boundary=boundary)


# ------------------------------------------------------------------ spectral measures
@dataclasses.dataclass(frozen=True)
class SpectralMeasure:
    r"""A probability measure ``μ = ρ dλ + Σ_k weights_k δ_{points_k}`` on R whose
    absolutely continuous part lives on ``band = (lo, hi)`` with density
    ``ρ(λ) = Im F(λ + i0)/π``, ``F`` its Borel transform (``boundary_value``).

    ``points``/``weights``: the point masses (ascending). Quadratures use the angle
    ``λ = c − r cos θ`` (``c``, ``r`` the band's centre and half-width), in which
    ``ρ(λ) r sin θ`` is a smooth even 2π-periodic function of θ for the rational
    ``F(λ + i0)`` here (no threshold resonance): the midpoint rule in θ converges
    geometrically.
    """

    points: np.ndarray
    weights: np.ndarray
    band: tuple[float, float]
    boundary_value: Callable[[np.ndarray], np.ndarray]

    def density(self, lam: object) -> np.ndarray:
        """``ρ(λ) = Im F(λ + i0)/π`` inside the band, 0 outside (and at its end points)."""
        ll = np.asarray(as_real_array(lam, "lam"), dtype=np.float64)
        lo, hi = self.band
        inside = (ll > lo) & (ll < hi)
        out = np.zeros(ll.shape)
        if np.any(inside):
            out[inside] = np.asarray(self.boundary_value(ll[inside])).imag / np.pi
        return out

    def _nodes(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ValueError(f"n must be an integer >= 2, got {n!r}")
        lo, hi = self.band
        c, r = (lo + hi) / 2, (hi - lo) / 2
        th = (np.arange(n) + 0.5) * np.pi / n
        lam = c - r * np.cos(th)
        wts = (np.pi / n) * r * np.sin(th) * self.density(lam)
        return lam, wts

    def integrate(self, f: Callable[[np.ndarray], np.ndarray], *, n: int = 512,
                  ac: bool = True, pp: bool = True) -> float:
        """``∫ f dμ`` (``ac``: the band part by the θ-midpoint rule with ``n`` nodes;
        ``pp``: the point masses). ``f`` is vectorised, real or complex."""
        total = 0.0
        if ac:
            lam, wts = self._nodes(n)
            total = total + np.sum(wts * f(lam))
        if pp and self.points.size:
            total = total + np.sum(self.weights * f(self.points))
        return total

    def mass(self, *, n: int = 512) -> float:
        """Total mass ``μ(R)`` (1 for a spectral measure of a unit vector)."""
        return float(np.real(self.integrate(lambda x: np.ones_like(x), n=n)))

    def borel(self, z: object, *, n: int = 512) -> np.ndarray | complex:
        """The Herglotz representation ``∫ dμ(λ)/(λ − z)`` evaluated with the quadrature
        (``Im z > 0``): compare with the Borel transform it came from."""
        zz = as_spectral_parameter(z, "z")
        lam, wts = self._nodes(n)
        zf = zz.ravel()
        out = (wts[None, :] / (lam[None, :] - zf[:, None])).sum(axis=1)
        if self.points.size:
            out = out + (self.weights[None, :] / (self.points[None, :] - zf[:, None])).sum(1)
        out = out.reshape(zz.shape)
        return complex(out) if out.ndim == 0 else out


def _point_spectrum(diag: np.ndarray, off: np.ndarray, ends: tuple[int, ...],
                    c2: tuple[float, ...], tail: tuple[float, float], site: int
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    r"""Eigenvalues outside the band and their weights at ``site`` for a batch of finite
    windows (rows of ``diag``, shape (R, n); common hoppings ``off``) coupled at the sites
    ``ends`` (hopping² ``c2``) to semi-infinite constant chains ``tail = (a_∞, b_∞)``.

    Sturm counts of the folded ``S(λ) = H_n − λ − Σ_j c2_j m_∞(λ) E_{e_j e_j}`` (real for λ
    off the band) bracket each eigenvalue; vectorised bisection to the last bit; weights
    ``φ(site)²/‖φ‖²`` from the null vector of ``S(E)`` (``scipy`` ``eigh_tridiagonal``), the
    tails contributing ``φ(e_j)² c2_j m_∞² /(1 − b_∞² m_∞²)``.
    """
    from scipy.linalg import eigh_tridiagonal

    from bkmath.determinant import eigenvalue_count
    from bkmath.operators import JacobiOperator

    R, n = diag.shape
    a_inf, b_inf = tail
    lo_band, hi_band = a_inf - 2 * abs(b_inf), a_inf + 2 * abs(b_inf)
    big = 2.0 * max(float(np.max(np.abs(off), initial=0.0)), float(np.sqrt(max(c2))),
                    abs(b_inf))
    lo0 = min(float(np.min(diag)) - big, lo_band) - 1.0
    hi0 = max(float(np.max(diag)) + big, hi_band) + 1.0
    ee = np.zeros((len(ends), n))
    for j, (e, c) in enumerate(zip(ends, c2, strict=True)):
        ee[j, e] = c
    sel = ee.sum(axis=0)  # Σ_j c2_j E_{e_j e_j} as a diagonal

    def folded(rows: np.ndarray, lam: np.ndarray) -> np.ndarray:
        g = _tail_m(lam + 0j, tail).real
        return diag[rows] - g[:, None] * sel[None, :]

    def below(rows, lam):  # eigenvalues of H below lam (lam below the band)
        return np.asarray(eigenvalue_count(JacobiOperator(folded(rows, lam), off), lam))

    def above(rows, lam):  # eigenvalues of H above lam (lam above the band)
        return n - np.asarray(eigenvalue_count(JacobiOperator(folded(rows, lam), off), lam))

    allr = np.arange(R)
    n_lo = np.atleast_1d(below(allr, np.full(R, lo_band)))
    n_hi = np.atleast_1d(above(allr, np.full(R, hi_band)))
    rows = np.concatenate([np.repeat(allr, n_lo), np.repeat(allr, n_hi)])
    ks = np.concatenate([np.concatenate([np.arange(k) for k in n_lo] or [np.zeros(0, int)]),
                         np.concatenate([np.arange(k) for k in n_hi] or [np.zeros(0, int)])])
    side = np.concatenate([np.zeros(n_lo.sum(), bool), np.ones(n_hi.sum(), bool)])
    lo = np.where(side, hi_band, lo0).astype(float)
    hi = np.where(side, hi0, lo_band).astype(float)
    if rows.size:
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            if np.all((mid == lo) | (mid == hi)):
                break
            s = side
            nb = np.atleast_1d(below(rows, mid))  # one batched Sturm count for both sides
            cnt = np.where(s, n - nb, nb)
            past = cnt > ks  # below: E_k < mid; above: E_k > mid
            hi = np.where(~s & past, mid, hi)
            lo = np.where(~s & ~past, mid, lo)
            lo = np.where(s & past, mid, lo)
            hi = np.where(s & ~past, mid, hi)
    E = 0.5 * (lo + hi)
    # An eigenvalue emerging from a threshold, E − edge below the resolution of float64
    # (E − edge ~ (coupling − critical)²), converges to the edge itself; its weight is
    # O(1 − m_∞²b_∞²) → 0 there: drop it (it is not a point of the spectrum off the band).
    keep = (E != lo_band) & (E != hi_band)
    rows, E = rows[keep], E[keep]
    wts = np.empty(E.size)
    for i, (r, e) in enumerate(zip(rows, E, strict=True)):
        g = float(_tail_m(np.array([e + 0j]), tail).real[0])
        d = diag[r] - e - g * sel
        npos = int(eigenvalue_count(JacobiOperator(d, off), 0.0))
        idx = sorted({max(0, npos - 1), min(n - 1, npos)})
        vals, vecs = eigh_tridiagonal(d, off, select="i", select_range=(idx[0], idx[-1]))
        phi = vecs[:, int(np.argmin(np.abs(vals)))]
        tail_norm = sum(phi[e_] ** 2 * c * g * g / (1.0 - b_inf * b_inf * g * g)
                        for e_, c in zip(ends, c2, strict=True))
        wts[i] = phi[site] ** 2 / (float(phi @ phi) + tail_norm)
    out = []
    for r in range(R):
        m = rows == r
        order = np.argsort(E[m])
        out.append((E[m][order], wts[m][order]))
    return out


def _checked_point_spectrum(names: str, *args) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`_point_spectrum`, with a failure of float64 (an overflowing Sturm count, a
    non-converging LAPACK eigensolver, a NaN weight: coefficients near the float64 limits)
    reported as a ``ValueError`` naming the arguments ``names``."""
    with np.errstate(all="ignore"):
        try:
            spec = _point_spectrum(*args)
        except (ValueError, np.linalg.LinAlgError, ArithmeticError) as exc:
            raise ValueError(f"{names}: the point spectrum cannot be located in float64 "
                             f"(coefficients too large or too small; {exc})") from None
    for pts, wts in spec:
        if not (np.all(np.isfinite(pts)) and np.all(np.isfinite(wts))):
            raise ValueError(f"{names}: the point spectrum leaves the float64 range "
                             f"(non-finite eigenvalue or weight)")
    return spec


def half_line_measure(a: object, b: object = None, *, tail: Tail = "free") -> SpectralMeasure:
    r"""The spectral measure μ of δ_1 for the half-line Jacobi operator with a constant tail
    (module docstring): density ``Im m(λ + i0)/π`` on the band, eigenvalues outside it by
    Sturm bisection (O(N) per count, ~60 counts per eigenvalue), weights ``φ(1)²/‖φ‖²``.

    >>> mu = half_line_measure([-1.0])   # a_1 = −1: −1 − E = w(E) ⇒ w = 1/3, E = −4/3
    >>> mu.points.round(12).tolist(), round(mu.mass(), 12)
    ([-1.333333333333], 1.0)
    >>> bool(abs(mu.borel(1j) - m_function(1j, [-1.0])) < 1e-12)   # Herglotz representation
    True
    """
    aa, bb, t = _coefficients(a, b, tail)
    if t is None:
        raise ValueError("tail='dirichlet' is a finite measure: use truncation_measure")
    c2 = float(bb[-1]) ** 2 if abs(float(bb[-1])) < 1e154 else np.inf
    if not np.isfinite(c2):
        raise ValueError(f"b, tail: the coupling b_N² = {float(bb[-1])!r}² of the last site to "
                         f"the tail overflows float64")
    (pts, wts), = _checked_point_spectrum("a, b, tail", aa[None, :], bb[:-1], (aa.size - 1,),
                                          (c2,), t, 0)
    s = abs(t[1])
    return SpectralMeasure(pts, wts, (t[0] - 2 * s, t[0] + 2 * s),
                           lambda lam: m_function(lam, aa, bb, tail=t, boundary=True))


def truncation_measure(a: object, b: object = None, n: int | None = None,
                       *, tail: Tail = "free") -> tuple[np.ndarray, np.ndarray]:
    r"""Eigenvalues ``λ_k`` and weights ``φ_k(1)²`` of the ``n × n`` truncation ``J_n`` of the
    half-line operator (coefficients extended by the tail when ``n > len(a)``; default
    ``n = len(a)``): ``m_n(z) = Σ_k φ_k(1)²/(λ_k − z)``, the n-point Gauss quadrature of μ.
    O(n²) (``scipy`` ``eigh_tridiagonal``).

    >>> lam, w = truncation_measure([2.0], n=3)      # free: 2 − 2cos(kπ/4), (1/2) sin²(kπ/4)
    >>> lam.round(12).tolist(), w.round(12).tolist()
    ([0.585786437627, 2.0, 3.414213562373], [0.25, 0.5, 0.25])
    """
    from scipy.linalg import eigh_tridiagonal

    aa, bb, t = _coefficients(a, b, tail)
    if n is None:
        n = aa.size
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if n > aa.size:
        if t is None:
            raise ValueError("n > len(a) needs a tail to extend the coefficients")
        aa = np.concatenate([aa, np.full(n - aa.size, t[0])])
        bb = np.concatenate([bb, np.full(n - 1 - bb.size, t[1])])
    vals, vecs = eigh_tridiagonal(aa[:n], bb[: n - 1])
    return vals, vecs[0] ** 2


def m_function_ball(z: object, a: object, b: object = None, *, tail: Tail = "free",
                    prec: int = 128):
    r"""Arb enclosure (``flint.acb``) of ``m(z)``: the same continued fraction in ball
    arithmetic, the tail's ``m_∞`` by :func:`bkmath.enclosure.lattice_w_ball` (the root
    certified ``|w| < 1``). Exact input: ``z`` a complex, ``a``, ``b`` reals or rationals
    (floats are read exactly as the binary numbers they are); ``Im z > 0`` required.

    >>> from fractions import Fraction as Q
    >>> ball = m_function_ball(1j, [Q(1, 2), Q(-1, 3)], [Q(-1)], tail="dirichlet")
    >>> exact = 1 / (Q(1, 2) - 1j - 1 / (Q(-1, 3) - 1j))   # the two-site continued fraction
    >>> bool(ball.contains(complex(exact))), bool(ball.rad() < 1e-30)
    (False, True)

    (``complex(exact)`` is rounded to float64; the ball, 1e-30 wide, holds the exact value and
    so misses the rounded one: containment is a sharp test.)
    """
    from fractions import Fraction

    from flint import acb, arb

    from bkmath.enclosure import arb_precision, lattice_w_ball, to_fmpq

    zz = as_spectral_parameter(z, "z")
    if zz.ndim:
        raise ValueError("z must be a scalar for m_function_ball")
    zc = complex(zz)

    def q(x):
        return to_fmpq(x if isinstance(x, (Fraction, int, str)) else Fraction(float(x)))

    if tail == "dirichlet":
        t = None
    elif tail == "free":
        t = (2, -1)
    else:
        _coefficients([0.0], None, tail)  # validates the tuple
        t = tail
    aq = [q(x) for x in (a if np.ndim(a) else [a])]
    if not aq:
        raise ValueError("a must have at least one site")
    nb = len(aq) - 1 if t is None else len(aq)
    bq = [q(x) for x in (b if b is not None else [(-1 if t is None else t[1])] * nb)]
    if t is not None and len(bq) == len(aq) - 1:
        bq.append(q(t[1]))
    if len(bq) != nb:
        raise ValueError(f"b must have {nb} entries, got {len(bq)}")
    with arb_precision(prec):
        zb = acb(arb(to_fmpq(Fraction(zc.real))), arb(to_fmpq(Fraction(zc.imag))))
        if t is None:
            g = acb(0)
        else:
            s = abs(arb(q(t[1])))
            g = lattice_w_ball(2 + (zb - arb(q(t[0]))) / s) / s
        for k in range(len(aq) - 1, -1, -1):
            cpl = arb(bq[k]) ** 2 * g if k < len(bq) else acb(0)
            g = 1 / (arb(aq[k]) - zb - cpl)
        return g
