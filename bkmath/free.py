"""Free resolvents in closed form: the lowest floor of :mod:`bkmath`.

Everything here is a closed-form function of the spectral parameter for the *free* operators
(docs/conventions.md §1–2), with no operator object and no compiled kernel, so that every
other module (:mod:`bkmath.operators`, :mod:`bkmath.resolvent`, :mod:`bkmath.bs_operator`, …)
can build on it:

* :func:`lattice_w` — the root ``w`` of ``w² - (2 - z) w + 1 = 0`` with ``|w| < 1``;
* :func:`free_resolvent` — the Green's function ``G0(m, n; z)`` of ``-Δ`` on Z;
* :func:`free_resolvent_continuum` — the kernel of ``(-d²/dx² - z)^{-1}`` on L²(R);
* :func:`lead_self_energy` — the self-energy ``Σ(z) = w(z)`` of a free half-chain attached by
  hopping -1 (the transparent boundary of :class:`bkmath.operators.JacobiOperator`).

Conventions: ``z = λ + iη`` with ``η > 0``; boundary values ``λ + i0`` only with
``boundary=True`` (the limit from the upper half-plane).
"""

from __future__ import annotations

import numpy as np

from bkmath._validation import as_numeric_array, as_spectral_parameter

__all__ = [
    "lattice_w",
    "free_resolvent",
    "free_resolvent_continuum",
    "lead_self_energy",
]


def _plus_zero_imag(z: np.ndarray) -> np.ndarray:
    # turn an imaginary part -0.0 into +0.0 so that principal square roots take the +i0 side
    return z.real + (z.imag + 0.0) * 1j


def _exp_i(k: np.ndarray, d: np.ndarray, what: str) -> np.ndarray:
    r"""``e^{i k d}`` for ``Im k >= 0`` and ``d >= 0``, as modulus ``e^{-Im k·d}`` times phase
    ``e^{i Re k·d}``: a decayed value is 0 (never ``inf·0 = NaN``) and a phase ``Re k·d``
    outside float64 where the modulus is not 0 raises ``ValueError`` (``what`` names the
    arguments). The one exponential of the free kernels (lattice ``w^d = e^{iθd}``, continuum
    ``e^{ik|x-y|}``)."""
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        mod = np.exp(-np.where(d == 0, 0.0, k.imag * d))  # d = 0: 1 (also for d·Im k = 0·inf)
        ph = k.real * d
        bad = ~np.isfinite(ph) | ~np.isfinite(d)
        ph = np.where(bad, 0.0, ph)
        out = mod * np.exp(1j * ph)
    if np.any(bad & (mod != 0)) or not np.all(np.isfinite(out)):
        raise ValueError(
            f"{what}: the phase of the free resolvent exceeds the float64 range "
            "(distance or |k| too large)"
        )
    return out


def _lattice_theta(z: object, *, boundary: bool = False) -> np.ndarray | complex:
    r"""The exponent ``θ`` of ``w(z) = e^{iθ}`` (:func:`lattice_w`), ``Re θ ∈ [0, π]``, ``Im θ > 0``
    for ``Im z > 0``: ``θ = 2 arcsin(√z / 2)`` (principal branches; ``cos θ = 1 - z/2``).

    Unlike ``log w``, ``θ`` keeps its relative accuracy where ``|w|`` rounds to 1: at
    ``z = 2 + 1e-300 i``, ``Im θ = η / (2 sin θ) = 5e-301`` while ``|w| = 1 - 5e-301`` is 1.0 in
    float64, so ``w^d = e^{iθd}`` decays correctly for ``d ~ 1e300`` (numpy's complex
    ``arcsin`` follows Hull–Fairgrieve–Tang: accurate near 0, 1 and infinity). With
    ``boundary=True`` real ``λ`` gives the ``λ + i0`` limit (θ real in the band, ``Re θ = 0``
    below it, ``Re θ = π`` above it).

    Examples
    --------
    >>> complex(np.round(_lattice_theta(2.0, boundary=True), 12))  # band centre: θ = π/2
    (1.570796326795+0j)
    """
    zz = _plus_zero_imag(as_spectral_parameter(z, "z", boundary=boundary))
    th = _theta(zz)
    return complex(th) if th.ndim == 0 else th


def _theta(zz: np.ndarray) -> np.ndarray:
    """θ of an already validated z: ``2 arcsin(√z/2)``, and near the upper threshold the
    equal ``π − 2 arcsin(√(4 − z)/2)`` — there ``√z/2`` rounds towards 1, where arcsin is
    ill-conditioned (relative error ~1e-14 at z = 4 + 1e-3 i), while ``4 − z`` is formed
    with no cancellation. Both forms agree with mpmath to ~3 eps (|z − 4| < 2 and outside)."""
    with np.errstate(over="ignore", invalid="ignore"):
        near4 = np.abs(zz - 4.0) < 2.0
        low = 2.0 * np.arcsin(np.sqrt(np.where(near4, 1.0, zz)) / 2.0)
        # 4 − z as −(z − 4): keeps Im(4 − z) = −0 for z = λ + i0 (numpy's 4.0 − z gives +0)
        high = np.pi - 2.0 * np.arcsin(np.sqrt(-(np.where(near4, zz, 1.0) - 4.0)) / 2.0)
    return np.where(near4, high, low)


def lattice_w(z: object, *, boundary: bool = False) -> np.ndarray | complex:
    r"""The root ``w`` of ``w² - (2 - z) w + 1 = 0`` with ``|w| < 1``.

    ``w(z)`` is the surface Green's function of the free half chain (diagonal 2, hopping -1)
    and parametrises the free lattice resolvent: ``z = 2 - w - 1/w``; with ``w = e^{iθ}``,
    ``z = 2 - 2 cos θ`` and ``Im θ > 0``.

    Branch. ``w = 2 / (2 - z - s)`` with ``s = sqrt(z) * sqrt(z - 4)`` (principal square
    roots). ``s`` is analytic on C \ [0, 4] and ``s ~ z`` at infinity, so ``2 - z - s`` is the
    root of modulus > 1 there and ``w`` (its inverse, the other root) has ``|w| < 1``; writing
    ``w`` as a quotient avoids the cancellation of ``(2 - z + s)/2``. Since
    ``Im z = Im w (1/|w|² - 1)``, Im w has the sign of Im z: ``Im w > 0`` for ``Im z > 0``.

    Parameters
    ----------
    z : complex or array_like
        Spectral parameter(s); ``Im z > 0`` (``boundary=False``).
    boundary : bool
        Allow ``Im z = 0`` (boundary values ``λ + i0``). For ``λ ∈ (0, 4)`` the result is the
        limit from the upper half-plane, ``w = e^{iθ}`` with ``θ ∈ (0, π)`` (``|w| = 1``,
        ``Im w > 0``); for real ``λ < 0`` or ``λ > 4``, ``w`` is real with ``|w| < 1``; at the
        thresholds λ = 0, 4, ``w = ±1``.

    Returns
    -------
    complex128 array of the shape of z (a Python complex for scalar z). O(1) per entry.

    Examples
    --------
    >>> w = lattice_w(1.0 + 1e-300j)          # λ = 1 inside the band: θ = π/3
    >>> bool(abs(w - np.exp(1j * np.pi / 3)) < 1e-15)
    True
    >>> complex(np.round(lattice_w(2.0, boundary=True), 12) + 0.0)  # band centre, +i0: w = i
    1j
    """
    zz = _plus_zero_imag(as_spectral_parameter(z, "z", boundary=boundary))
    with np.errstate(over="ignore", invalid="ignore"):
        s = np.sqrt(zz) * np.sqrt(_plus_zero_imag(zz - 4.0))
        w = 2.0 / (2.0 - zz - s)
    big = np.abs(zz) > 1e8
    if np.any(big):
        # |z| > 1e8 (where s overflows for |z| ~ 1e154): w = 1/(2 - z - w) iterated from
        # w0 = 1/(2 - z); each step gains a factor |w|² < 1e-16 of relative accuracy
        with np.errstate(under="ignore", over="ignore", invalid="ignore"):
            zb = zz[big] if np.ndim(zz) else zz
            wb = 1.0 / (2.0 - zb)
            wb = 1.0 / (2.0 - zb - wb)
        if np.ndim(zz):
            w = np.where(big, 0.0, w)
            w[big] = wb
        else:
            w = wb
    if w.ndim == 0:
        return complex(w)
    return w


def free_resolvent(m: object, n: object, z: object, *, boundary: bool = False):
    r"""Green's function of the free lattice operator ``-Δ`` on Z.

    ``G0(m, n; z) = [(-Δ - z)^{-1}](m, n) = w^{|m-n|} / (w^{-1} - w)`` with ``w = w(z)`` from
    :func:`lattice_w` (|w| < 1); equivalently ``i e^{iθ|m-n|} / (2 sin θ)``. Since
    ``w^{-1} - w = -sqrt(z) sqrt(z - 4)``, no cancellation occurs near the band. The power
    ``w^{|m-n|} = e^{iθ|m-n|}`` is formed from ``_lattice_theta`` as modulus times phase, so
    it decays to 0 (not NaN) for far sites, e.g. ``|m - n| = 1.7e308`` at ``z = 1e-300 i``; a
    phase ``Re θ·|m - n|`` beyond float64 with a modulus that has not decayed (``Im z`` ~ 0)
    raises ValueError naming m, n.

    Parameters
    ----------
    m, n : int or array_like of int
        Lattice sites; broadcast with each other and with z.
    z : complex or array_like
        ``Im z > 0``; with ``boundary=True`` also ``Im z = 0`` (the ``λ + i0`` limit), except
        at the thresholds 0 and 4 where G0 diverges (ValueError).

    Returns
    -------
    complex128 array, shape broadcast(m, n, z). O(1) per entry.

    Examples
    --------
    >>> complex(np.round(free_resolvent(0, 0, 2.0, boundary=True), 12) + 0.0)  # i / (2 sin(π/2))
    0.5j
    """
    mm = as_numeric_array(m, "m", allow_complex=False)
    nn = as_numeric_array(n, "n", allow_complex=False)
    for arr, name in ((mm, "m"), (nn, "n")):
        if np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold integer lattice sites")
    zz = _plus_zero_imag(as_spectral_parameter(z, "z", boundary=boundary))
    s = np.sqrt(zz) * np.sqrt(_plus_zero_imag(zz - 4.0))
    if np.any(s == 0):
        raise ValueError("z must not be a threshold (0 or 4): the free resolvent diverges")
    th = _theta(zz)
    with np.errstate(over="ignore", invalid="ignore"):
        d = np.abs(mm - nn)
    out = -_exp_i(th, d, "m, n") / s
    return complex(out) if out.ndim == 0 else out


def free_resolvent_continuum(x: object, y: object, z: object, *, boundary: bool = False):
    r"""Kernel of ``(-d²/dx² - z)^{-1}`` on L²(R): ``i e^{ik|x-y|} / (2k)``, ``k = sqrt(z)``.

    ``k`` is the principal square root, so ``Im k > 0`` for z off [0, ∞) and the kernel
    decays. With ``boundary=True``, real ``z = λ > 0`` gives the outgoing ``λ + i0`` limit
    ``k = sqrt(λ) > 0``; ``z = 0`` raises ValueError.

    Returns complex128 of shape broadcast(x, y, z). O(1) per entry.

    Examples
    --------
    >>> complex(free_resolvent_continuum(0.0, 0.0, -1.0 + 0j, boundary=True))  # 1/(2 sqrt(-z))
    (0.5+0j)
    """
    xx = as_numeric_array(x, "x", allow_complex=False)
    yy = as_numeric_array(y, "y", allow_complex=False)
    zz = _plus_zero_imag(as_spectral_parameter(z, "z", boundary=boundary))
    k = np.sqrt(zz)
    if np.any(k == 0):
        raise ValueError("z must not be 0 (threshold): the free resolvent diverges")
    with np.errstate(over="ignore", invalid="ignore"):
        d = np.abs(xx - yy)
    # e^{ik d} = e^{-Im k d} e^{i Re k d}: modulus and phase apart (_exp_i), so a decayed value
    # is 0 (not inf·0 = NaN) and only a phase Re k·d beyond float64 is an error
    e = _exp_i(k, d, "x, y")
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        out = 1j * e / (2.0 * k)
    if not np.all(np.isfinite(out)):
        raise ValueError("x, y, z: the free resolvent i e^{ik|x-y|}/(2k) overflows float64")
    return complex(out) if out.ndim == 0 else out


def lead_self_energy(z: object) -> np.ndarray | complex:
    r"""Self-energy ``Σ(z) = w(z)`` of a free half-chain (diagonal 2, hopping -1) on the site
    it is attached to by hopping -1: the surface Green's function of the half chain.

    Folding two such leads onto the end sites of a window ``1..M`` gives the exact restricted
    resolvent ``(H_M - z - Σ(z)(E_11 + E_MM))^{-1}`` of the infinite chain (docs/conventions.md
    §2). ``Im z >= 0``: real ``z = λ`` is the boundary value ``λ + i0`` (:func:`lattice_w` with
    ``boundary=True``).

    Examples
    --------
    >>> complex(np.round(lead_self_energy(2.0), 12) + 0.0)  # band centre: w = i
    1j
    """
    return lattice_w(z, boundary=True)
