"""References for :mod:`bkmath.clark` (Clark measures of rank-one perturbations on Z).

* :func:`borel_transform_mp` — ``F(z) = G(s, s; z)`` of ``H = −Δ + V`` at ``dps`` digits by the
  *free* resolvent's closed form and the finite-rank resolvent identity
  ``G_WW = (I + G0_WW V)^{-1} G0_WW`` on the window W (independent of the transparent-window
  solve of the fast routine);
* :func:`clark_point_masses_mp` — eigenvalues ``E`` of ``H_α`` refined by ``mpmath.findroot``
  on ``1/G_α(s, s; λ) = det A/det A_s`` (Cramer, ``A = I + G0 V_α``: regular at the
  eigenvalue; real λ off [0, 4]) and their weights
  ``−1/(d/dλ (1/G_α))(E)`` (the residue; ``mpmath.diff``), from starting guesses;
* :func:`window_point_masses` — dense: eigenpairs of the Dirichlet truncation of ``H_α`` to
  ``pad + L + pad`` sites, eigenvalues outside [0, 4] and weights ``φ_k(s)²``, exponentially
  accurate (error ``O(|w|^{2 pad})``).
"""

from __future__ import annotations

import mpmath
import numpy as np

__all__ = ["borel_transform_mp", "clark_point_masses_mp", "window_point_masses"]


def _green_window_mp(v, z, site: int, boundary: bool):
    from bkmath.reference.resolvent import free_resolvent_mp

    L = len(v)
    G0 = mpmath.matrix(L, L)
    for i in range(L):
        for j in range(L):
            G0[i, j] = free_resolvent_mp(i, j, z, boundary=boundary, dps=mpmath.mp.dps,
                                         as_mp=True)
    V = mpmath.diag([mpmath.mpf(float(x)) for x in v])
    G = mpmath.lu_solve(mpmath.eye(L) + G0 * V, G0[:, site])
    return G[site]


def borel_transform_mp(v, z, *, site: int = 0, boundary: bool = False, dps: int = 50,
                       as_mp: bool = False):
    """mpmath ``F(z) = ⟨δ_s, (H − z)^{-1} δ_s⟩`` (scalar z; ``Im z > 0``, or ``Im z ≥ 0``
    with ``boundary=True``) for ``v`` on the sites ``0..L−1``."""
    with mpmath.workdps(dps):
        F = _green_window_mp(list(v), z, site, boundary)
        return +F if as_mp else complex(F)


def clark_point_masses_mp(v, alpha, guesses, *, site: int = 0, dps: int = 40):
    """``(E_k, weights_k)`` (mpf lists) for ``H_α = H + α δ_s``, each eigenvalue refined from
    a float guess by ``findroot`` on ``1/G_α(s, s; λ)`` and weighted by the residue
    ``−1/(d/dλ)(1/G_α)(E)``; ``v`` as floats, read exactly."""
    from bkmath.reference.resolvent import free_resolvent_mp

    vv = [float(x) for x in v]
    with mpmath.workdps(dps):
        va = [mpmath.mpf(x) for x in vv]
        va[site] += mpmath.mpf(float(alpha))
        L = len(va)
        V = mpmath.diag(va)

        def inv_g(lam):
            lam = mpmath.mpf(lam)
            G0 = mpmath.matrix(L, L)
            for i in range(L):
                for j in range(L):
                    G0[i, j] = mpmath.re(free_resolvent_mp(i, j, lam, boundary=True,
                                                           dps=mpmath.mp.dps, as_mp=True))
            A = mpmath.eye(L) + G0 * V
            As = A.copy()
            for i in range(L):
                As[i, site] = G0[i, site]
            return mpmath.det(A) / mpmath.det(As)  # Cramer: regular at the eigenvalue

        Es, ws = [], []
        for g in guesses:
            g0 = mpmath.mpf(float(g))
            E = mpmath.findroot(inv_g, (g0, g0 * (1 + mpmath.mpf(10) ** -12)),
                                tol=mpmath.mpf(10) ** (-dps + 8))
            Es.append(E)
            ws.append(-1 / mpmath.diff(inv_g, E))
        return Es, ws


def window_point_masses(v, alpha, *, site: int = 0, pad: int = 400):
    """Eigenvalues outside [0, 4] of the Dirichlet truncation of ``H_α`` to ``pad + L + pad``
    sites and their weights ``φ_k(s)²`` (``scipy.linalg.eigh_tridiagonal``)."""
    from scipy.linalg import eigh_tridiagonal

    vv = np.asarray(v, dtype=np.float64).copy()
    vv[site] += float(alpha)
    d = 2.0 + np.concatenate([np.zeros(pad), vv, np.zeros(pad)])
    e = -np.ones(d.size - 1)
    lo, hi = float(min(0.0, vv.min())) - 3.0, float(max(0.0, vv.max())) + 7.0
    evs, ws = [], []
    for rng in ((lo, 0.0), (4.0, hi)):  # only the eigenpairs outside [0, 4]
        ev, vec = eigh_tridiagonal(d, e, select="v", select_range=rng)
        evs.append(ev)
        ws.append(vec[pad + site] ** 2 if ev.size else ev)
    return np.concatenate(evs), np.concatenate(ws)
