r"""Clark measures: rank-one perturbations of a lattice Schrödinger operator on Z.

Setting (docs/conventions.md §1–2). ``H = −Δ + V`` on ℓ²(Z) (diagonal 2, hopping −1) with a
real potential supported in the window of sites ``0..L−1``: ``v[j]`` sits at site ``j``. For a
site ``s`` of the window (default 0) and real ``α``

    H_α = H + α ⟨δ_s, ·⟩ δ_s,        F(z) = ⟨δ_s, (H − z)^{-1} δ_s⟩ = ∫ dμ(λ)/(λ − z),

μ_α the spectral measure of δ_s for ``H_α`` (μ = μ_0), ``F_α`` its Borel transform.

*Aronszajn–Donoghue.* ``F_α = F/(1 + αF)`` (second resolvent identity for a rank-one
perturbation). Hence

* the absolutely continuous part of μ_α lives on the band [0, 4] with density
  ``ρ_α(λ) = Im F_α(λ + i0)/π`` (> 0 inside the band: the two scattering solutions at λ cannot
  both vanish at s); there is no singular continuous part and no embedded eigenvalue
  (finitely supported V);
* the point masses are the eigenvalues of ``H_α`` outside [0, 4] with ``φ(s) ≠ 0``, the
  real solutions of ``1 + αF(E) = 0``, with weights

      μ_α({E}) = 1/(α² F'(E)),     F'(E) = ∫ dμ(λ)/(λ − E)² > 0        (α ≠ 0);

  (the residue of ``−F_α`` at E; the statement with weight ``−1/(α²F'(E))`` has the wrong sign
  for this convention of F and is refuted by the check);
* *Aleksandrov's disintegration*: ``∫_R μ_α(f) dα = ∫_R f(λ) dλ`` for f ∈ L¹(R): with
  ``u = −1/F(ζ)`` (Herglotz), ``Im F_α(ζ)/π = Im u /(π|α − u|²)`` is a Poisson kernel in α of
  total mass 1 for every ζ in the upper half-plane.

*How it is computed.* The transparent window (conventions §2): with ``E = E_11 + E_LL``
(``2E_11`` for L = 1) the restricted resolvent is ``(H_L − z − w(z)E)^{-1}``, so ``F(z)`` and
the Green's column ``x = G(·, s)`` come from one tridiagonal solve (O(L) per z, vectorised
over z; exact boundary values ``λ + i0``), and
``F'(z) = Σ_j x_j² + w'(z)(x_1² + x_L²)`` with ``w' = w²/(1 − w²)``. Eigenvalues of ``H_α``
are located by Sturm counts of the folded real matrix ``H_L + αE_ss − λ − w(λ)E`` (the number
of eigenvalues of the infinite operator below λ < 0 / above λ > 4 is its number of
negative / positive eigenvalues: Haynsworth inertia, the free outside of ``H − λ`` being
definite) and bisection; their weights are ``φ(s)²/‖φ‖²`` from the eigenvector, continued
outside the window by ``φ(−j) = φ(0) w^j`` (independent of the formula ``1/(α²F')``, which the
check compares).

Routines: :func:`borel_transform`, :func:`clark_borel` (``F_α``), :func:`clark_measure` (a
:class:`bkmath.mfunction.SpectralMeasure`), :func:`borel_derivative`,
:func:`borel_transform_ball` (Arb). References: :mod:`bkmath.reference.clark` (mpmath, the
free resolvent and the finite-rank resolvent identity).
"""

from __future__ import annotations

import numbers

import numpy as np

from bkmath._validation import as_real_array, as_spectral_parameter
from bkmath.mfunction import SpectralMeasure, _checked_point_spectrum

__all__ = [
    "borel_transform",
    "borel_derivative",
    "clark_borel",
    "clark_measure",
    "clark_measures",
    "borel_transform_ball",
]


def _window(v: object, site: object) -> tuple[np.ndarray, int]:
    vv = as_real_array(v, "v", ndim=1).astype(np.float64)
    if vv.size == 0:
        raise ValueError("v must be non-empty (the window 0..L-1 holding the site s)")
    if isinstance(site, bool) or not isinstance(site, numbers.Integral):
        raise TypeError(f"site must be an integer, got {type(site).__name__}")
    if not 0 <= int(site) < vv.size:
        raise ValueError(f"site must lie in the window 0..{vv.size - 1}, got {site}")
    return vv, int(site)


def _alpha(alpha: object) -> np.ndarray:
    if isinstance(alpha, (str, bytes)):
        raise TypeError("alpha must be real")
    try:
        arr = np.asarray(alpha, dtype=np.float64) if not np.iscomplexobj(alpha) else None
    except (TypeError, ValueError):
        raise TypeError(f"alpha must be real, got {alpha!r}") from None
    if arr is None:
        raise TypeError("alpha must be real, got a complex value")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"alpha must be finite, got {alpha!r}")
    return arr


def _green_column(vv: np.ndarray, zf: np.ndarray, site: int):
    """Columns ``x = G(·, s; z)`` (shape (L, nz)) and ``w(z)`` for 1-D complex zf."""
    from bkmath.free import lattice_w

    L = vv.size
    w = np.asarray(lattice_w(zf, boundary=True), dtype=np.complex128).reshape(zf.shape)
    alpha = (2.0 + vv)[:, None] - zf[None, :]
    alpha[0] -= w
    alpha[-1] -= w  # L = 1: both leads on one site (2w)
    d = np.empty_like(alpha)
    y = np.zeros_like(alpha)
    y[site] = 1.0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d[0] = alpha[0]
        for i in range(1, L):  # off-diagonal −1: d_i = α_i − 1/d_{i−1}, y_i = r_i + y_{i−1}/d_{i−1}
            d[i] = alpha[i] - 1.0 / d[i - 1]
            y[i] = y[i] + y[i - 1] / d[i - 1]
        x = np.empty_like(alpha)
        x[-1] = y[-1] / d[-1]
        for i in range(L - 2, -1, -1):
            x[i] = (y[i] + x[i + 1]) / d[i]
    if not np.all(np.isfinite(x)):
        raise ValueError("z: the resolvent is singular there (an eigenvalue of H, or a "
                         "threshold 0, 4 where (H - z)^{-1} has no boundary value)")
    return x, w


def _z(z: object, boundary: bool) -> np.ndarray:
    zz = as_spectral_parameter(z, "z", boundary=boundary)
    return zz.real + 1j * np.where(zz.imag == 0, 0.0, zz.imag)


def borel_transform(v: object, z: object, *, site: int = 0,
                    boundary: bool = False) -> np.ndarray | complex:
    r"""``F(z) = ⟨δ_s, (H − z)^{-1} δ_s⟩`` for ``H = −Δ + V`` on Z, ``v`` on the sites
    ``0..L−1``; O(L) per z (one tridiagonal solve of the transparent window), vectorised.

    ``Im z > 0`` (ValueError otherwise); ``boundary=True`` also accepts real z: the exact
    boundary value ``F(λ + i0)`` on the band, the real value off it.

    >>> F = borel_transform([0.0], 1.0, boundary=True)     # free: i/(2 sin θ) = i/√(λ(4 − λ))
    >>> bool(abs(F - 1j / np.sqrt(3.0)) < 1e-15)
    True
    """
    vv, s = _window(v, site)
    zz = _z(z, boundary)
    x, _ = _green_column(vv, zz.ravel(), s)
    out = x[s].reshape(zz.shape)
    return complex(out) if out.ndim == 0 else out


def borel_derivative(v: object, z: object, *, site: int = 0,
                     boundary: bool = False) -> np.ndarray | complex:
    r"""``F'(z) = ⟨δ_s, (H − z)^{-2} δ_s⟩ = Σ_j x_j² + w'(z)(x_1² + x_L²)``, ``x`` the
    window's Green's column, ``w' = w²/(1 − w²)`` (differentiate
    ``(H_L − z − wE)^{-1}``); real and > 0 for real z off [0, 4] and σ(H).

    >>> bool(abs(borel_derivative([0.0], -1.0, boundary=True) - 3 / 5 ** 1.5) < 1e-15)
    True

    (free: ``F(λ) = 1/√(λ(λ − 4))`` for λ < 0, ``F'(−1) = 3/5^{3/2}``).
    """
    vv, s = _window(v, site)
    zz = _z(z, boundary)
    x, w = _green_column(vv, zz.ravel(), s)
    wp = w * w / (1.0 - w * w)
    out = (np.sum(x * x, axis=0) + wp * (x[0] ** 2 + x[-1] ** 2)).reshape(zz.shape)
    return complex(out) if out.ndim == 0 else out


def clark_borel(v: object, alpha: object, z: object, *, site: int = 0,
                boundary: bool = False) -> np.ndarray | complex:
    r"""``F_α(z) = F(z)/(1 + αF(z))`` (Aronszajn–Donoghue), the Borel transform of μ_α;
    α and z broadcast. ``alpha`` must be finite (ValueError).

    >>> F, Fa = borel_transform([0.5, -1.0], 1j), clark_borel([0.5, -1.0], 2.0, 1j)
    >>> bool(abs(Fa - borel_transform([2.5, -1.0], 1j)) < 1e-15)   # = F of v + 2 δ_0
    True
    """
    a = _alpha(alpha)
    F = borel_transform(v, z, site=site, boundary=boundary)
    out = np.asarray(F) / (1.0 + a * np.asarray(F))
    return complex(out) if out.ndim == 0 else out


def clark_measures(v: object, alphas: object, *, site: int = 0) -> list[SpectralMeasure]:
    r"""The Clark measures μ_α of δ_s for every α in ``alphas`` (1-D), with the point
    spectrum of all ``H_α`` located in one vectorised Sturm bisection (O(L) per count,
    ~60 counts per eigenvalue); see :func:`clark_measure`."""
    vv, s = _window(v, site)
    al = np.atleast_1d(_alpha(alphas))
    if al.ndim != 1:
        raise ValueError(f"alphas must be 1-D, got shape {al.shape}")
    diag = np.repeat((2.0 + vv)[None, :], al.size, axis=0)
    diag[:, s] += al
    ends = (0, vv.size - 1)
    spec = _checked_point_spectrum("v, alphas", diag, -np.ones(vv.size - 1), ends,
                                   (1.0, 1.0), (2.0, -1.0), s)
    out = []
    for a, (pts, wts) in zip(al, spec, strict=True):
        def bv(lam, a=float(a)):
            return clark_borel(vv, a, lam, site=s, boundary=True)
        out.append(SpectralMeasure(pts, wts, (0.0, 4.0), bv))
    return out


def clark_measure(v: object, alpha: float, *, site: int = 0) -> SpectralMeasure:
    r"""The Clark measure μ_α: the spectral measure of δ_s for ``H_α = H + α⟨δ_s, ·⟩δ_s``.

    ``density(λ) = Im F_α(λ + i0)/π`` on [0, 4]; ``points``: the eigenvalues of ``H_α``
    (outside [0, 4], by Sturm counts); ``weights``: ``φ(s)²/‖φ‖²`` (= ``1/(α²F'(E))`` for
    α ≠ 0, checked in ``bkmath.checks.clark``). Total mass 1.

    >>> mu = clark_measure([0.0], 1.0)     # free + δ_0: E = 2 + √5, weight 1/√5
    >>> mu.points.round(12).tolist(), mu.weights.round(12).tolist(), round(mu.mass(), 12)
    ([4.2360679775], [0.4472135955], 1.0)
    """
    return clark_measures(v, [alpha], site=site)[0]


def borel_transform_ball(v, z, *, site: int = 0, prec: int = 128):
    r"""Arb enclosure (``flint.acb``) of ``F(z)``, ``Im z > 0``: the transparent window
    ``(H_L − z − w(z)E)`` assembled in ball arithmetic (``w`` by
    :func:`bkmath.enclosure.lattice_w_ball`, certified ``|w| < 1``) and solved by Arb's
    certified linear solver. Exact input: ``v`` rationals or floats (read exactly), ``z``
    a complex (read exactly).

    >>> from fractions import Fraction as Q
    >>> b = borel_transform_ball([Q(1, 2), Q(-1)], 0.5 + 0.5j)
    >>> bool(b.contains(borel_transform([0.5, -1.0], 0.5 + 0.5j)) or b.rad() < 1e-30)
    True
    """
    from fractions import Fraction

    from flint import acb, acb_mat, arb

    from bkmath.enclosure import arb_precision, lattice_w_ball, to_fmpq

    vq = [to_fmpq(x if isinstance(x, (Fraction, int, str)) else Fraction(float(x)))
          for x in (v if np.ndim(v) else [v])]
    _window(np.zeros(len(vq)), site)
    zz = as_spectral_parameter(z, "z")
    if zz.ndim:
        raise ValueError("z must be a scalar for borel_transform_ball")
    zc = complex(zz)
    L = len(vq)
    with arb_precision(prec):
        zb = acb(arb(to_fmpq(Fraction(zc.real))), arb(to_fmpq(Fraction(zc.imag))))
        w = lattice_w_ball(zb)
        rows = [[acb(0)] * L for _ in range(L)]
        for i in range(L):
            rows[i][i] = 2 + arb(vq[i]) - zb
            if i + 1 < L:
                rows[i][i + 1] = rows[i + 1][i] = acb(-1)
        rows[0][0] -= w
        rows[L - 1][L - 1] -= w
        rhs = acb_mat([[acb(1 if i == site else 0)] for i in range(L)])
        return acb_mat(rows).solve(rhs)[site, 0]
