r"""Breit–Wigner form of the lattice scattering phase near a narrow resonance.

Setting (docs/conventions.md §1–2, §6; docs/theory.md, "Breit–Wigner resonances on the
lattice"). ``H = −Δ + V`` on ℓ²(Z), ``v`` real and finitely supported; the Jost polynomial
``P(w) = (1 − w²) D(z(w)) = c ∏_j (w − w_j)`` of :mod:`bkmath.resonances`. A resonance is a
zero ``w_r`` with ``|w_r| > 1``, ``Im w_r > 0`` (the continuation of the band value
``w = e^{iθ}``, ``θ ∈ (0, π)``, through ``|w| = 1``); its energy ``z_r = 2 − w_r − 1/w_r`` has
``Im z_r < 0``: ``E_r = Re z_r``, width ``Γ = −2 Im z_r``.

Phase convention: ``δ(λ) = arg t(λ) = −πξ(λ)`` (ξ the spectral shift of
:func:`bkmath.scattering.spectral_shift`, continuous branch), the same convention as on the
line (:mod:`bkmath.continuum`), so ``det S = e^{2iδ}``.

Theorem (exact decomposition). From ``z − z_r = (w − w_r)(1 − w w_r)/(w w_r)``, on the band

    δ(λ) = arctan((λ − E_r)/(Γ/2)) + δ_bg(λ),   δ_bg(λ) = −π/2 − F(θ(λ))   (mod 2π),

    F(θ) = arg c + arg(w w_r/(1 − w w_r)) + Σ_{j≠r} arg(w − w_j) − arg(1 − w²),

so ``δ`` rises by ``2 arctan(W)`` (→ π) across ``E_r ± WΓ/2`` and, with ``δ_bg(E_r)`` fixed,
the Breit–Wigner error is ``|F(θ(λ)) − F(θ(E_r))| ≤ |θ(λ) − θ(E_r)| · Λ`` with the Lipschitz
constant (``d arg(w − a)/dθ = Re(w/(w − a))``, and ``2 Re(w²/(1 − w²)) = −1`` on ``|w| = 1``)

    Λ = 2 + 1/dist(1/w_r, arc) + Σ_{j≠r} 1/dist(w_j, arc)

over the arc ``{e^{iθ}}`` of the window. As ``Γ → 0`` the window ``|λ − E_r| ≤ WΓ/2`` has
``|Δθ| ≤ WΓ/(2 sin θ_r)`` (to first order), so the bound is O(Γ). Note the brief form
``δ_bg + arctan((Γ/2)/(E_r − E))`` is the same function up to the constant π/2 and its jump
by π at ``E = E_r`` (the principal arctan).

Complexity: zeros by :func:`bkmath.resonances.lattice_resonances` (O(L³)); the phase O(L) per
energy.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from bkmath._validation import as_real_array

__all__ = ["LatticeResonance", "narrow_resonance", "lattice_phase", "breit_wigner_phase",
           "breit_wigner_bound", "band_angle"]


@dataclasses.dataclass(frozen=True)
class LatticeResonance:
    """One resonance of the lattice Jost polynomial: ``w`` (``|w| > 1``, ``Im w > 0``),
    ``z = 2 − w − 1/w``, ``E = Re z``, ``gamma = −2 Im z > 0``, and ``others``: the remaining
    zeros of P (for the remainder bound)."""

    w: complex
    z: complex
    E: float
    gamma: float
    others: np.ndarray


def band_angle(lam: object) -> np.ndarray:
    """``θ(λ) = arccos(1 − λ/2) ∈ (0, π)`` for ``λ ∈ (0, 4)``, computed as
    ``2 atan2(√λ, √(4 − λ))``."""
    la = np.asarray(lam, float)
    if np.any(~np.isfinite(la)) or np.any((la <= 0) | (la >= 4)):
        raise ValueError("lam must lie in the open band (0, 4)")
    return 2.0 * np.arctan2(np.sqrt(la), np.sqrt(4.0 - la))


def narrow_resonance(v: object, *, which: int = 0, near: float | None = None
                     ) -> LatticeResonance:
    """The resonances of ``v`` with ``Im w > 0`` whose energy ``E = Re z`` lies in the band,
    sorted by width (or, with ``near``, by ``|E − near|``); returns the ``which``-th.
    ``ValueError`` if there is none.

    >>> r = narrow_resonance([4.0, 0.0, 0.0, 0.0, 4.0])
    >>> round(r.E, 6), f"{r.gamma:.3e}"
    (0.478747, '2.995e-02')
    >>> round(narrow_resonance([4.0, 0.0, 0.0, 0.0, 4.0], near=2.0).E, 6)
    1.769549
    """
    from bkmath.resonances import lattice_resonances, support_window

    if isinstance(which, bool) or not isinstance(which, (int, np.integer)) or which < 0:
        raise ValueError(f"which must be a non-negative integer, got {which!r}")
    if near is not None:
        if isinstance(near, (bool, str, bytes)) or not isinstance(near, (int, float, np.number)) \
                or np.iscomplexobj(near) or not math.isfinite(float(near)):
            raise ValueError(f"near must be a finite real number or None, got {near!r}")
    win = support_window(v)
    if win.size == 0:
        raise ValueError("v must be nonzero")
    res = lattice_resonances(win)
    cand = [i for i, (w, k) in enumerate(zip(res.w, res.kind, strict=True))
            if k == "resonance" and w.imag > 0 and 0 < (2 - w - 1 / w).real < 4]
    if len(cand) <= which:
        raise ValueError(f"v has {len(cand)} resonance(s) with energy in the band; "
                         f"which={which} is out of range")
    zs = {i: 2 - res.w[i] - 1 / res.w[i] for i in cand}
    if near is None:
        cand.sort(key=lambda i: -zs[i].imag)
    else:
        cand.sort(key=lambda i: abs(zs[i].real - float(near)))
    i = cand[which]
    w = complex(res.w[i])
    z = 2 - w - 1 / w
    return LatticeResonance(w, z, float(z.real), float(-2 * z.imag), np.delete(res.w, i))


def lattice_phase(v: object, lam: object) -> np.ndarray:
    """``δ(λ) = arg t(λ) = −πξ(λ)`` on the band, the continuous branch (exact pivot branch of
    :func:`bkmath.scattering.spectral_shift`, ``chain="infinite"``). O(L) per energy."""
    from bkmath.scattering import spectral_shift

    vv = as_real_array(v, "v", ndim=1)
    band_angle(lam)  # validates
    return -np.pi * np.asarray(spectral_shift(vv, np.asarray(lam, float), chain="infinite"))


def breit_wigner_phase(lam: object, E: float, gamma: float, delta_bg: float) -> np.ndarray:
    """``δ_bg + arctan((λ − E)/(Γ/2))`` (continuous in λ; ``Γ > 0``)."""
    if not (np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be finite and > 0, got {gamma!r}")
    return delta_bg + np.arctan((np.asarray(lam, float) - E) / (gamma / 2))


def _arc_dist(a: complex, t1: float, t2: float) -> float:
    """Distance from ``a`` to the arc ``{e^{iθ}: t1 ≤ θ ≤ t2}`` (``0 < t1 ≤ t2 < π``)."""
    th = math.atan2(a.imag, a.real)
    if t1 <= th <= t2:
        return abs(abs(a) - 1.0)
    return min(abs(a - complex(math.cos(t1), math.sin(t1))),
               abs(a - complex(math.cos(t2), math.sin(t2))))


def breit_wigner_bound(res: LatticeResonance, lam: object) -> np.ndarray:
    """The remainder bound ``|θ(λ) − θ(E_r)| · Λ`` of the module docstring, for each ``λ``
    (Λ over the arc between ``θ(E_r)`` and ``θ(λ)``); requires ``E_r`` in the band."""
    th = np.atleast_1d(band_angle(lam))
    tr = float(band_angle(res.E))
    out = np.empty(th.size)
    for i, t in enumerate(th):
        t1, t2 = min(t, tr), max(t, tr)
        lip = 2.0 + 1.0 / _arc_dist(1 / res.w, t1, t2)
        lip += sum(1.0 / _arc_dist(complex(wj), t1, t2) for wj in res.others)
        out[i] = abs(t - tr) * lip
    return out.reshape(np.shape(lam))
