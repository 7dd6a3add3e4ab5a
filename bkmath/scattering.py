r"""Spectral shift function, scattering matrix and scattering phase on the lattice.

Conventions (docs/conventions.md §6, with the signs fixed here)
---------------------------------------------------------------
* **Spectral shift.** ξ(λ) = N_{H0}(λ) − N_H(λ), N(λ) = #{eigenvalues < λ}; Krein's formula
  ξ(λ) = (1/π) lim_{ε↓0} arg det(I + K(λ + iε)) holds with the **plus** sign and arg the
  continuous branch of log D on C⁺ with log D(z) → 0 as z → i∞ (not the principal value).
  Then ∫ξ = tr V, and ξ ≥ 0 for V ≥ 0 (finite matrices).
* **Infinite chain**, V supported in a window of M sites. ξ(λ) for λ ∈ (0, 4) is
  (1/π) arg D(λ + i0), computed *exactly* from the pivots of the transparent-boundary window
  (:func:`bkmath.fredholm.log_perturbation_determinant`); for λ < 0, ξ(λ) = −#{bound states
  < λ}; for λ > 4, ξ(λ) = #{bound states > λ}.
* **Scattering matrix** (:func:`scattering_matrix`), λ = 2 − 2cos θ ∈ (0, 4), θ ∈ (0, π):
  a solution incoming from the left is e^{iθn} + r e^{−iθn} left of supp V and t e^{iθn} right
  of it; from the right, e^{−iθn} + r' e^{iθn} on the right and t' e^{−iθn} on the left.
  S = [[t, r'], [r, t']] maps incoming (left, right) amplitudes to outgoing (right, left)
  amplitudes; t = t' (reciprocity), S unitary. Both leads are identical, so no flux factors.
* **Birman–Krein**: det S(λ) = e^{−2πiξ(λ)}. In 1D det S = t/t̄ and the Jost identity
  D(λ + i0) = 1/t(λ) give it at once; the checks compare the transfer-matrix S with ξ from the
  pivots, two independent computations.
* **Levinson on Z** (derived here; checked in :mod:`bkmath.checks.scattering_checks`). Let N₋
  (N₊) be the number of bound states below 0 (above 4), and g₀, g₄ ∈ {0, 1} equal to 1 when the
  threshold is *generic* (no threshold resonance). Near w = ±1, D ≈ a/(1 ∓ w); going around a
  threshold in C⁺ raises arg D by π/2 if a ≠ 0, and by 0 at a resonance. Hence
  ξ(0+) = −N₋ + g₀/2, ξ(4−) = N₊ − g₄/2 and

      ξ(4−) − ξ(0+) = −(1/π) [arg t(4−) − arg t(0+)] = N₋ + N₊ − (g₀ + g₄)/2.

  N₋ is the number of negative eigenvalues of the window matrix S(0) = H_S − E₁₁ − E_MM and
  N₊ the number of positive eigenvalues of S(4) = H_S − 4 + E₁₁ + E_MM (Haynsworth inertia of
  the Schur complement, w(0) = 1, w(4) = −1); the threshold is resonant iff that matrix is
  singular. For rational V all of this is exact (:func:`threshold_data`).
* **Scattering phase of the seeds**, δ(λ) = arg det₂(I + K(λ + i0)). Since
  det₂ = det · e^{−tr K} and tr K(λ + i0) = G0(0,0; λ+i0) Σ_n v_n = i Σv / (2 sin θ) is purely
  imaginary on the band,

      arg det₂(I + K(λ + i0)) = π ξ(λ) − Σ_n v_n / √(λ(4 − λ))  = π ξ(λ) − π ρ₀(λ) tr V,

  ρ₀(λ) = 1/(π√(λ(4−λ))) the free density of states; |det₂| = |det| on the band. So δ is
  *not* πξ: the Born term π ρ₀ tr V is removed; it diverges at both thresholds, so δ has no
  limit at 0+ and 4−, and Levinson's theorem does not hold for δ. Off the band
  (real λ ∉ [0, 4]) tr K is real and arg det₂ = arg det = πξ. Continuum (H0 = −d²/dx²):
  the same relation with tr K = i∫V/(2√λ). Momentum model (H0 = −i d/dx): K is Volterra,
  det₂(I + K) ≡ 1, so δ ≡ 0 carries no information, while ξ = ∫V/(2π) (S = e^{−i∫V}).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from bkmath._validation import as_real_array
from bkmath.fredholm import log_perturbation_determinant

__all__ = [
    "spectral_shift",
    "scattering_matrix",
    "transmission",
    "scattering_phase",
    "threshold_data",
    "bound_state_counts",
    "continued_arg",
]


def _lams(lam: object, name: str = "lam") -> tuple[np.ndarray, bool]:
    arr = as_real_array(lam, name)
    return np.atleast_1d(arr).astype(float), arr.ndim == 0


def _finite_count(vv: np.ndarray, lam: float) -> int:
    """N_H(λ) = #{eig < λ} of the Dirichlet chain H0 + diag(v): Sturm count, O(N)."""
    from bkmath.determinant import eigenvalue_count
    from bkmath.operators import JacobiOperator

    return int(eigenvalue_count(JacobiOperator.free_plus(vv), lam))


def _check_not_eigenvalue(vv: np.ndarray, lam: float) -> None:
    """ValueError when λ is an eigenvalue of the Dirichlet chain H0 or H = H0 + diag(v) to
    within rounding: the counts N(λ ∓ δ) differ, δ = 8 ε_mach (|λ| + ‖H‖_∞) (the Sturm
    count is exact for a matrix within a few ulps of H − λ, so an eigenvalue closer than
    that makes N(λ), hence ξ(λ), a matter of rounding)."""
    for w in (np.zeros_like(vv), vv):
        norm = float(np.max(np.abs(2.0 + w), initial=0.0)) + 2.0
        dl = 8.0 * np.finfo(np.float64).eps * (abs(lam) + norm)
        if _finite_count(w, lam - dl) != _finite_count(w, lam + dl):
            which = "H0" if w is not vv else "H = H0 + diag(v)"
            raise ValueError(
                f"lam = {float(lam)!r} is (to rounding, ±{dl:.2g}) an eigenvalue of {which}: the "
                "spectral shift of the finite chain is not defined there"
            )


def spectral_shift(v: np.ndarray, lam: float | np.ndarray, *, chain: str = "finite"):
    """Spectral shift ξ(λ) = N_{H0}(λ) − N_H(λ) of H = H0 + diag(v) relative to H0 = −Δ.

    Parameters
    ----------
    v : (N,) real array
        The potential.
    lam : float or array
        Energies. ``chain="finite"``: λ must not be an eigenvalue of H or H0 (the count is
        ambiguous there). ``chain="infinite"``: λ ∉ {0, 4} and not a bound-state energy.
    chain : {"finite", "infinite"}
        ``"finite"``: Dirichlet chain of N sites, ξ by two Sturm counts (an integer), O(N).
        ``"infinite"``: V on ℓ²(Z) supported in the window ``v``; ξ(λ) = (1/π) arg D(λ + i0)
        with the exact continuous branch from the pivots, O(M) (M = support width).

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> spectral_shift([1.0], 2.5)          # one site: H = 3 > λ, H0 = 2 < λ
    1.0
    >>> float(spectral_shift([0.0, -3.0, 0.0], -1.0, chain="infinite"))   # one bound state
    -1.0
    """
    vv = as_real_array(v, "v", ndim=1)
    lams, scalar = _lams(lam)
    out = np.empty(lams.size)
    if chain == "finite":
        for i, la in enumerate(lams):
            _check_not_eigenvalue(vv, la)
            out[i] = _finite_count(np.zeros_like(vv), la) - _finite_count(vv, la)
    elif chain == "infinite":
        for i, la in enumerate(lams):
            if la in (0.0, 4.0):
                raise ValueError("lam must avoid the thresholds 0 and 4 on the infinite chain")
            out[i] = log_perturbation_determinant(vv, la, boundary=True).imag / np.pi
    else:
        raise ValueError(f"chain must be 'finite' or 'infinite', got {chain!r}")
    return float(out[0]) if scalar else out


def _band_angle(lam: float) -> tuple[float, float]:
    """(θ mod π taken in (−π/2, π/2], sin θ) with λ = 2 − 2cos θ, θ ∈ (0, π).

    θ = 2 atan2(√λ, √(4 − λ)) is accurate at λ → 0 (arccos(1 − λ/2) rounds to 0 below
    λ ~ 1e-16), and near λ = 4 the phases e^{2iθm} depend on π − θ = 2 atan2(√(4 − λ), √λ),
    which is returned negated there (e^{2iθm} = e^{−2i(π − θ)m}): both relatively accurate.
    """
    sl, s4 = math.sqrt(lam), math.sqrt(4.0 - lam)
    th = 2.0 * math.atan2(sl, s4) if lam <= 2.0 else -2.0 * math.atan2(s4, sl)
    return th, sl * s4 / 2.0  # sin θ = √(λ(4 − λ))/2


def _plane_wave_transfer(vv: np.ndarray, lam: float) -> tuple[np.ndarray, int]:
    """Transfer matrix T of the window in the plane-wave basis, as (T·2^−e, e).

    Left of site m the solution is A e^{iθn} + B e^{−iθn}, right of it A' e^{iθn} + B' e^{−iθn};
    continuity at m and the equation −u_{m−1} + (2 + v_m − λ)u_m − u_{m+1} = 0 give

        (A', B')ᵀ = T_m (A, B)ᵀ,   T_m = I + c_m [[1, e^{−2iθm}], [−e^{2iθm}, −1]],
        c_m = v_m / (2i sin θ),    det T_m = 1,

    and T = T_{n−1} ⋯ T_0. No subtraction of nearly equal plane waves is involved (the
    u-recursion needed one, ill-conditioned like 1/sin θ near the thresholds). The product is
    renormalised by a power of two after every factor (its ratios, hence r and r', are
    unchanged; the exponent e is kept for t = 1/T₂₂), and each factor is formed as
    2^−k T_m with c_m 2^−k computed from ldexp(v_m, −k), so neither c_m (v ~ 1e300,
    sin θ ~ 1e-150) nor the product (|T| ~ e^{κn}) overflows.
    """
    th, s = _band_angle(lam)  # th ≡ θ (mod π): e^{2iθm} is all that enters
    es = math.frexp(s)[1]
    P = np.eye(2, dtype=np.complex128)
    e = 0
    for m, vm in enumerate(vv):
        if vm == 0.0:
            continue
        # k ≥ 0 with |c_m| 2^−k ≤ ~1: exponent of v/(2 sin θ) without forming it
        k = max(0, math.frexp(vm)[1] - es)
        cm = math.ldexp(vm, -k) / (2j * s)
        ph = complex(math.cos(2 * th * m), math.sin(2 * th * m))  # e^{2iθm}
        one = math.ldexp(1.0, -k)
        Tm = np.array([[one + cm, cm / ph], [-cm * ph, one - cm]])
        P = Tm @ P
        mx = float(np.max(np.abs(P)))
        if not (0.0 < mx < math.inf):  # pragma: no cover (det T = 1: cannot vanish)
            raise ValueError(f"scattering_matrix: transfer product not representable at lam={lam}")
        f = math.frexp(mx)[1]
        P = P * math.ldexp(1.0, -f)
        e += k + f
    return P, e


def scattering_matrix(v: np.ndarray, lam: float | np.ndarray) -> np.ndarray:
    """The on-shell scattering matrix S(λ) = [[t, r'], [r, t]] of H = −Δ + V on ℓ²(Z).

    ``v`` holds the potential on sites 0..N−1 (V = 0 elsewhere); λ ∈ (0, 4). Computed by
    transfer matrices in the plane-wave basis (:func:`_plane_wave_transfer`), independently
    of any resolvent or determinant: with T the transfer matrix of the window,

        t = t' = 1/T₂₂,   r = −T₂₁/T₂₂,   r' = T₁₂/T₂₂       (det T = 1),

    so r, r' are ratios (free of the scale of T) and t carries the exponent of the
    renormalised product: a barrier with |1/t| = e^{1000} gives t ≈ 0 (correctly rounded,
    possibly 0.0) and |r| = 1 instead of NaN. O(N) per energy. Returns shape (2, 2) or
    (len(λ), 2, 2).

    Examples
    --------
    >>> S = scattering_matrix([0.5, -0.3], 1.0)
    >>> bool(np.allclose(S.conj().T @ S, np.eye(2)))
    True
    """
    vv = as_real_array(v, "v", ndim=1)
    if vv.size == 0:
        raise ValueError("v must have at least one site")
    lams, scalar = _lams(lam)
    if np.any((lams <= 0) | (lams >= 4)):
        raise ValueError("lam must lie in the open band (0, 4)")
    out = np.empty((lams.size, 2, 2), dtype=np.complex128)
    for i, la in enumerate(lams):
        P, e = _plane_wave_transfer(vv, float(la))
        r = -P[1, 0] / P[1, 1]
        r2 = P[0, 1] / P[1, 1]
        t0 = 1.0 / P[1, 1]
        with np.errstate(under="ignore"):
            t = complex(math.ldexp(t0.real, -e), math.ldexp(t0.imag, -e))
        out[i] = [[t, r2], [r, t]]
    return out[0] if scalar else out


def transmission(v: np.ndarray, lam: float | np.ndarray):
    """Transmission coefficient t(λ) (the (0, 0) entry of :func:`scattering_matrix`)."""
    S = scattering_matrix(v, lam)
    return S[..., 0, 0]


def scattering_phase(v: np.ndarray, lam: float | np.ndarray, *, method: str = "exact"):
    """The seeds' scattering phase δ(λ) = arg det₂(I + K(λ + i0)) on the infinite chain.

    ``method="exact"``: the continuous branch on C⁺ (arg det₂(z) → 0 as z → i∞), evaluated
    as δ = πξ(λ) − Im tr K(λ + i0) with the exact ξ (pivots) and tr K = G0(0,0) Σv (O(M)).
    ``method="dense"``: det₂ of the dense K(λ + i0) on supp V, its principal arg unwrapped
    along the given (increasing, fine) λ grid and anchored at the first point with the exact
    branch; an independent computation used by the checks. λ ∈ R ∖ {0, 4}.
    See the module docstring: δ = πξ − Σv/√(λ(4 − λ)) on the band.
    """
    from bkmath.bs_operator import birman_schwinger, free_kernel_diagonal
    from bkmath.fredholm import det2

    vv = as_real_array(v, "v", ndim=1)
    lams, scalar = _lams(lam)
    if np.any((lams == 0) | (lams == 4)):
        raise ValueError("lam must avoid the thresholds 0 and 4")
    tr = np.array([free_kernel_diagonal(complex(la), "lattice") for la in lams]) * vv.sum()
    exact = np.pi * np.atleast_1d(spectral_shift(vv, lams, chain="infinite")) - tr.imag
    if method == "exact":
        out = exact
    elif method == "dense":
        if np.any(np.diff(lams) <= 0):
            raise ValueError("method='dense' needs an increasing lam grid")
        ph = np.array(
            [np.angle(det2(birman_schwinger(vv, la, boundary=True))) for la in lams]
        )
        out = np.unwrap(ph)
        out += exact[0] - out[0]
        out[0] = exact[0]
    else:
        raise ValueError(f"method must be 'exact' or 'dense', got {method!r}")
    if not np.all(np.isfinite(out)):
        raise ValueError(
            "scattering_phase: δ(λ) overflows float64 at lam = "
            f"{lams[~np.isfinite(out)][:3].tolist()} (the Born term Σv/√(λ(4 − λ)) diverges "
            "at the thresholds; Σv = {:.3g})".format(float(vv.sum()))
        )
    return float(out[0]) if scalar else out


def threshold_data(v: Sequence[Fraction | int | str]) -> dict[str, int | bool]:
    """Exact bound-state counts and threshold resonances of −Δ + V on ℓ²(Z), rational V.

    Returns ``{"N_minus", "N_plus", "resonant_0", "resonant_4"}``: N₋ = #negative eigenvalues
    of S(0) = H_S − E₁₁ − E_MM, N₊ = #positive eigenvalues of S(4) = H_S − 4 + E₁₁ + E_MM
    (H_S the window of supp V; M = 1: the single entry gets −2 resp. +2); a threshold is
    resonant iff that matrix is singular. Exact fmpq arithmetic (Sylvester inertia of the
    LDLᵀ pivots, counting a zero pivot by continuity ±0 from the side of the bound states).
    """
    from bkmath.enclosure import to_fmpq

    q = [to_fmpq(x) for x in v]
    nz = [i for i, x in enumerate(q) if x != 0]
    if not nz:
        return {"N_minus": 0, "N_plus": 0, "resonant_0": True, "resonant_4": True}
    win = q[nz[0] : nz[-1] + 1]

    def inertia(diag):
        # eigenvalues of tridiag(diag, −1): (#neg, #zero, #pos) by the LDLᵀ of the matrix
        # and of its negative; a zero pivot means a singular leading block, handled by the
        # determinant (product of pivots) sign-count on a perturbed copy is avoided: use
        # exact characteristic-polynomial Sturm sequence instead.
        from flint import fmpq_mat

        n = len(diag)
        A = fmpq_mat(n, n)
        for i in range(n):
            A[i, i] = diag[i]
            if i + 1 < n:
                A[i, i + 1] = -1
                A[i + 1, i] = -1
        p = A.charpoly()  # exact, degree n; roots = eigenvalues (all real)
        coeffs = [p[i] for i in range(n + 1)]
        zero = 0
        while zero <= n and coeffs[zero] == 0:
            zero += 1
        # Descartes' rule is exact for a polynomial with only real roots
        c = [x for x in coeffs[zero:] if x != 0]
        pos = sum(1 for a, b in zip(c, c[1:], strict=False) if (a < 0) != (b < 0))
        cn = [x * (-1) ** i for i, x in enumerate(coeffs[zero:]) if x != 0]
        cn = [x for x in cn if x != 0]
        neg = sum(1 for a, b in zip(cn, cn[1:], strict=False) if (a < 0) != (b < 0))
        return neg, zero, pos

    d0 = [2 + x for x in win]
    d4 = [2 + x - 4 for x in win]
    d0[0] -= 1
    d0[-1] -= 1
    d4[0] += 1
    d4[-1] += 1
    n0, z0, _ = inertia(d0)
    _, z4, p4 = inertia(d4)
    return {"N_minus": n0, "N_plus": p4, "resonant_0": z0 > 0, "resonant_4": z4 > 0}


def bound_state_counts(v: np.ndarray, lam: float) -> int:
    """Number of eigenvalues of −Δ + V on ℓ²(Z) below λ < 0 (or above λ > 4), exactly from
    the inertia of the Schur complement S(λ) = H_S − λ − w(λ)(E₁₁ + E_MM) (Haynsworth: the
    free half-chains minus λ are definite), by a Sturm count, O(M).
    λ must not be an eigenvalue (a zero pivot)."""
    vv = as_real_array(v, "v", ndim=1)
    if 0 <= lam <= 4:
        raise ValueError("lam must lie outside [0, 4]")
    nz = np.nonzero(vv)[0]
    if nz.size == 0:
        return 0
    win = vv[nz[0] : nz[-1] + 1]
    xi = log_perturbation_determinant(win, float(lam), boundary=True).imag / np.pi
    return int(round(-xi)) if lam < 0 else int(round(xi))


def _segment_points(a: complex, b: complex, n: int) -> list[complex]:
    """n points from a (excluded) to b (included): geometric in Im z on a vertical segment
    descending to the real axis (where the phase of a boundary value varies fastest)."""
    if a.real == b.real and a.imag > b.imag >= 0:
        lo = max(b.imag, 1e-12 * a.imag)
        ys = np.geomspace(a.imag, lo, n + 1)[1:]
        pts = [complex(a.real, y) for y in ys]
        if pts[-1] != b:
            pts.append(b)
        return pts
    return [a + (b - a) * t for t in np.linspace(0, 1, n + 1)[1:]]


def continued_arg(f, path: np.ndarray, *, n_init: int = 64, max_step: float = 0.5,
                  max_refine: int = 40) -> float:
    """arg f continued along a polyline ``path`` (complex points) from the principal value at
    ``path[0]``.

    Each segment is first sampled at ``n_init`` points (geometric in Im z on vertical
    segments towards the real axis), then every step a → b is accepted only if its
    principal phase increment is below ``max_step`` *and* equals the sum of the increments
    over its two halves (to 1e-8); otherwise it is bisected. Aliasing (a rotation by 2πk +
    small between two samples) would need f to wind fully between samples that are already
    fine; the checks use this only on smooth boundary values, and confirm the result
    against the exact pivot branch. Raises ``RuntimeError`` when ``max_refine`` nested
    bisections do not suffice (a zero of f on or next to the path).
    """
    raw = [complex(p) for p in np.asarray(path).ravel()]
    if not isinstance(n_init, (int, np.integer)) or n_init < 1:
        raise ValueError(f"n_init must be a positive integer, got {n_init!r}")
    pts = [raw[0]]
    for a, b in zip(raw[:-1], raw[1:], strict=True):
        pts.extend(_segment_points(a, b, int(n_init)))
    a = pts[0]
    fa = complex(f(a))
    if fa == 0:
        raise RuntimeError("continued_arg: f vanishes at the start of the path")
    total = float(np.angle(fa))
    for b in pts[1:]:
        stack = [(b, complex(f(b)), 0)]
        while stack:
            tb, fb, depth = stack[-1]
            d = float(np.angle(fb / fa))
            mid = (a + tb) / 2
            fm = complex(f(mid))
            if fm == 0 or fb == 0:
                raise RuntimeError(f"continued_arg: f vanishes on the path (no convergence) "
                                   f"near z = {mid}")
            d1, d2 = float(np.angle(fm / fa)), float(np.angle(fb / fm))
            if abs(d) <= max_step and abs(d1 + d2 - d) < 1e-8:
                total += d
                a, fa = tb, fb
                stack.pop()
                continue
            if depth >= max_refine:
                raise RuntimeError(f"continued_arg: no convergence near z = {mid}")
            stack.append((mid, fm, depth + 1))
    return total
