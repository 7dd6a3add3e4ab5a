"""Limiting absorption principle: boundary values of weighted resolvents and of det(I + K).

Theorem (Agmon 1975; Reed–Simon IV §XIII.8; for Jacobi operators e.g. Boutet de Monvel–
Sahbani). For −Δ + V on ℓ²(Z) with finitely supported V and s > ½, on compact intervals
I ⊂ (0, 4) away from the thresholds,

    sup_{λ ∈ I, 0 < ε ≤ 1} ‖⟨n⟩^{−s} (H − λ − iε)^{−1} ⟨n⟩^{−s}‖ < ∞,

and the weighted resolvent converges in norm as ε ↓ 0 to the boundary value, here computed
exactly by the transparent boundary (docs/conventions.md §2). Likewise K(λ + iε) → K(λ + i0) and
det(I + K(λ + iε)) → D(λ + i0). Rates are measured (analytic in z away from thresholds:
order 1 in ε; at a threshold K blows up like ε^{−1/2}). Negative control: s = 0 (no weight):
the norm is not bounded uniformly (it grows like 1/ε with the window).
"""

from __future__ import annotations

import numpy as np

from bkmath import JacobiOperator
from bkmath.bs_operator import birman_schwinger
from bkmath.certificate import Certificate, Kind, timed
from bkmath.checks._support import loglog_rate, make_cert
from bkmath.checks.profile import Profile
from bkmath.fredholm import continuum_fredholm_det, perturbation_determinant
from bkmath.reference.bs_operator import bs_matrix_mp
from bkmath.reference.fredholm import fredholm_det_mp

V_LAP = np.array([1.2, -0.7, 0.0, 2.1, -1.5])


def _weighted_resolvent_norm(v: np.ndarray, z: complex, half: int, s: float) -> float:
    """‖⟨n⟩^{−s} R(z) ⟨n⟩^{−s}‖ restricted to the window [−half, half] ∋ supp V (sites of v at
    0..len(v)−1): the restriction of the infinite-chain resolvent to the window is exactly
    (H_W − z − w(z)(E_11 + E_NN))^{−1} (transparent boundary), also at z = λ + i0."""
    n = 2 * half + 1
    vb = np.zeros(n)
    vb[half : half + v.size] = v
    H = JacobiOperator.free_plus(vb, boundary="transparent")
    R = np.linalg.inv(H.to_dense(z))
    x = np.arange(n) - half
    wgt = (1.0 + x**2) ** (-s / 2)
    return float(np.linalg.norm(wgt[:, None] * R * wgt[None, :], 2))


def _weighted(profile: Profile) -> list[Certificate]:
    halves = profile.pick(quick=[20, 40], default=[20, 40, 80],
                          thorough=[25, 50, 100, 200, 400])
    eps_list = np.array([1e-1, 3e-2, 1e-2, 3e-3, 1e-3])
    lams = (0.5, 2.0, 3.5)
    s = 1.0
    rows, ok, worst_sup, rates = [], True, 0.0, []
    with timed() as t:
        for lam in lams:
            b = _weighted_resolvent_norm(V_LAP, complex(lam, 0.0), halves[-1], s)
            norms = np.array([[_weighted_resolvent_norm(V_LAP, complex(lam, e), h, s)
                               for e in eps_list] for h in halves])
            # convergence in ε at the largest window: |‖·‖_ε − ‖·‖_0| (norm difference is a
            # lower bound of the difference in norm; the full difference below)
            n = 2 * halves[-1] + 1
            vb = np.zeros(n)
            vb[halves[-1] : halves[-1] + V_LAP.size] = V_LAP
            H = JacobiOperator.free_plus(vb, boundary="transparent")
            x = np.arange(n) - halves[-1]
            wgt = (1.0 + x**2) ** (-s / 2)
            R0 = wgt[:, None] * np.linalg.inv(H.to_dense(complex(lam, 0.0))) * wgt[None, :]
            diffs = np.array([np.linalg.norm(
                wgt[:, None] * np.linalg.inv(H.to_dense(complex(lam, e))) * wgt[None, :] - R0, 2)
                for e in eps_list])
            rate = loglog_rate(eps_list, diffs)
            rates.append(rate)
            sup = float(norms.max())
            worst_sup = max(worst_sup, sup)
            # uniform in the window: the last two windows agree to 1 %
            stable = float(np.max(np.abs(norms[-1] - norms[-2]) / norms[-1]))
            rows.append({"lam": lam, "boundary norm": b, "sup over (ε, window)": sup,
                         "window stability": stable, "‖R_ε − R_0‖ (weighted)": diffs,
                         "order in ε": rate})
            ok &= stable < 0.05 and rate > s - 0.5 and sup < 10 * b
    cert = make_cert(
        "limiting_absorption_weighted_resolvent",
        "LAP on ℓ²(Z): for s = 1 > ½ the weighted resolvent ⟨n⟩^{−s}(H − λ − iε)^{−1}⟨n⟩^{−s} is "
        "bounded uniformly in ε ↓ 0 and in the window size, and converges in norm to the "
        "exact boundary value (transparent boundary at λ + i0), with Hölder order ≥ s − ½ in ε; "
        "λ ∈ {0.5, 2, 3.5}.",
        ok,
        hypotheses={"s > 1/2": True, "supp V finite": True, "λ inside (0,4)": True},
        inputs={"v": V_LAP, "s": s, "windows (half-widths)": halves, "eps": eps_list},
        value=rows,
        bound={"window stability": 0.05, "order in ε (Hölder, s − 1/2)": s - 0.5},
        margin=float(min(r["order in ε"] for r in rows) - (s - 0.5)),
        precision="float64",
        tolerance=0.05,
        tolerance_reason="window truncation of a norm that converges like Σ⟨n⟩^{−2s} tails. "
        "The ε-rate in the weighted norm is a Hölder exponent: the theorem gives order s − ½ "
        "for ½ < s < 3/2 (Jensen–Kato), not 1 — R_ε − R_0 has kernel ≈ ε|m − n|e^{iθ|m−n|} "
        "which the weights ⟨n⟩^{−1} do not make uniformly small; measured ≈ 0.75–0.87 on the "
        "finite windows, required ≥ s − ½",
        wall_time=t["seconds"],
        details={"measured orders": rates},
    )
    # negative control: s = 0 (hypothesis s > ½ violated): norm grows like 1/ε
    lam = 2.0
    half = halves[-1]
    n0 = [_weighted_resolvent_norm(V_LAP, complex(lam, e), half, 0.0) for e in eps_list]
    grow = -loglog_rate(eps_list, np.array(n0))
    bound = 10 * worst_sup
    neg = make_cert(
        "limiting_absorption_negative_control",
        "Without weights (s = 0) the resolvent norm on the window is not bounded uniformly in "
        "ε: the uniform bound found for s = 1 (×10) must be violated.",
        max(n0) <= bound,
        kind=Kind.NEGATIVE_CONTROL,
        hypotheses={"s > 1/2": False},
        inputs={"v": V_LAP, "lam": lam, "window half-width": half, "eps": eps_list},
        value={"norms": n0, "growth order in 1/ε": grow},
        bound=bound,
        margin=float(bound - max(n0)),
        counterexample={"s": 0, "lam": lam, "eps": float(eps_list[-1]), "norm": max(n0),
                        "uniform bound (s=1, ×10)": bound},
    )
    return [cert, neg]


def _bs(profile: Profile) -> list[Certificate]:
    eps_list = np.logspace(-1, -5, profile.pick(quick=3, default=5, thorough=9))
    rows, ok = [], True
    with timed() as t:
        for lam in (0.7, 2.0, 3.6):
            K0 = birman_schwinger(V_LAP, complex(lam, 0.0), boundary=True)
            D0 = perturbation_determinant(V_LAP, complex(lam, 0.0), boundary=True)
            dK = np.array([np.linalg.norm(birman_schwinger(V_LAP, complex(lam, e)) - K0, 2)
                           for e in eps_list])
            dD = np.array([abs(perturbation_determinant(V_LAP, complex(lam, e)) - D0)
                           for e in eps_list])
            rK, rD = loglog_rate(eps_list, dK), loglog_rate(eps_list, dD)
            Dmp = complex(fredholm_det_mp(bs_matrix_mp(V_LAP, lam, dps=30), dps=30))
            mp_err = abs(D0 - Dmp) / abs(Dmp)
            rows.append({"lam": lam, "‖K_ε − K_0‖": dK, "|D_ε − D_0|": dD,
                         "order K": rK, "order D": rD, "D(λ+i0) vs mpmath dps=30": mp_err})
            ok &= 0.9 < rK < 1.1 and 0.9 < rD < 1.1 and mp_err < 1e-12
        # at the threshold 0: ‖K(iε)‖ blows up like ε^{−1/2}
        kn = np.array([np.linalg.norm(birman_schwinger(V_LAP, complex(0.0, e)), 2)
                       for e in eps_list])
        r0 = loglog_rate(eps_list, kn)
        ok &= -0.6 < r0 < -0.4
        # continuum: Nyström det(I + K(λ + iε)) → det(I + K(λ + i0)), same order
        well = lambda x: -2.0 * np.ones_like(x)  # noqa: E731
        Dc0 = continuum_fredholm_det(well, 1.5, (-1.0, 1.0), 120, boundary=True)
        dDc = np.array([abs(continuum_fredholm_det(well, 1.5 + 1j * e, (-1.0, 1.0), 120) - Dc0)
                        for e in eps_list])
        rc = loglog_rate(eps_list, dDc)
        ok &= 0.9 < rc < 1.1
    return [make_cert(
        "limiting_absorption_birman_schwinger",
        "K(λ + iε) → K(λ + i0) in norm and det(I + K(λ + iε)) → det(I + K(λ + i0)) as ε ↓ 0, "
        "lattice λ ∈ {0.7, 2, 3.6} and continuum (square well, λ = 1.5): measured order 1 "
        "(analytic in z off the thresholds); at the threshold λ = 0 ‖K(iε)‖ ~ ε^{−1/2}.",
        ok,
        inputs={"v": V_LAP, "eps": eps_list},
        value={"lattice": rows, "threshold order of ‖K(iε)‖": r0, "continuum |ΔD| orders": rc,
               "continuum |ΔD|": dDc},
        bound={"order": [0.9, 1.1], "threshold order": [-0.6, -0.4]},
        margin=float(0.1 - max([abs(r["order K"] - 1) for r in rows]
                               + [abs(r["order D"] - 1) for r in rows]
                               + [abs(rc - 1), abs(r0 + 0.5)])),
        precision="float64; boundary values confirmed in mpmath dps=30",
        tolerance=0.1,
        tolerance_reason="fitted log–log slopes over 4 decades of ε; analytic dependence gives "
        "exactly 1 asymptotically, the square-root branch point at w = ±1 gives −½",
        wall_time=t["seconds"],
    )]


def check_limiting_absorption(profile: Profile) -> list[Certificate]:
    """Limiting absorption: weighted resolvents and det(I+K) as ε↓0"""
    return _weighted(profile) + _bs(profile)
