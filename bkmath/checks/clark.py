"""Clark measures of rank-one perturbations ``H_α = H + α⟨δ_s, ·⟩δ_s`` of ``−Δ + V`` on Z.

Theorem (docs/theory.md, "Clark measures"; :mod:`bkmath.clark`). For real ``v`` on the sites
``0..L−1`` and ``F(z) = ⟨δ_s, (H − z)^{-1}δ_s⟩``: ``F_α = F/(1 + αF)`` (Aronszajn–Donoghue);
μ_α = ``Im F_α(λ + i0)/π dλ`` on [0, 4] plus point masses at the eigenvalues ``E`` of ``H_α``
(the real zeros of ``1 + αF``) of weight ``1/(α² F'(E))``; ``∫ μ_α(f) dα = ∫ f dλ``
(Aleksandrov).

Checks: F (transparent window) against the mpmath free-resolvent/finite-rank formula and Arb
balls; ``F_α`` against the Borel transform of ``v + αδ_s``; point masses (Sturm bisection,
eigenvector weights) against mpmath roots and residues, the weight formula ``1/(α²F')``, a
large Dirichlet window and the Jost zeros of :mod:`bkmath.resonances`; the measure's mass and
Herglotz representation; the disintegration for Gaussian f. Negative controls: the weight
``−1/(α²F'(E))`` (sign as stated in the issue brief) and the disintegration without the point
masses.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from bkmath.certificate import Certificate, Kind, timed
from bkmath.checks._support import EPS, adaptive_integral
from bkmath.checks.profile import Profile

__all__ = ["check_clark"]

SEED = 2027


def _cases(rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, int]]:
    out = [(np.array([0.0]), 0), (np.array([0.5, -2.0, 0.0, 1.5]), 1),
           (np.array([-1.0, 0.0, 3.0]), 2)]
    for _ in range(n):
        L = int(rng.integers(1, 7))
        out.append((rng.uniform(-3, 3, L), int(rng.integers(0, L))))
    return out


def _adaptive_many(m, fs, n0=256, tol=1e-14, nmax=2**16):
    """``[∫ f dμ^ac for f in fs]`` with the θ-midpoint rule, doubling n (one density evaluation
    per n, shared by all f) until every value agrees with the previous one to ``tol``."""
    def ac(n):
        lam, wts = m._nodes(n)
        return np.array([np.sum(wts * f(lam)) for f in fs])

    a, n = ac(n0), n0
    while n < nmax:
        n *= 2
        b = ac(n)
        if np.all(np.abs(b - a) <= tol * (1 + np.abs(b))):
            return b, n
        a = b
    return a, n


def _aleksandrov(v, site, fs, nt):
    """``∫ μ_α(f) dα`` for f in fs, with α = tan t, Gauss–Legendre in t (nt nodes): returns
    the integrals of the ac parts and of the point masses separately (each a list over fs),
    the largest θ node count, the measures and the α."""
    from bkmath.clark import clark_measures

    x, w = np.polynomial.legendre.leggauss(nt)
    t, wt = x * np.pi / 2, w * np.pi / 2
    al = np.tan(t)
    ms = clark_measures(v, al, site=site)
    acs, pps, nmax = [], [], 0
    for m in ms:
        ac, n = _adaptive_many(m, fs)
        nmax = max(nmax, n)
        acs.append(np.real(ac))
        pps.append([float(np.sum(m.weights * f(m.points))) for f in fs])
    jac = wt / np.cos(t) ** 2
    ac_int = (jac @ np.array(acs)).tolist()
    pp_int = (jac @ np.array(pps)).tolist()
    return ac_int, pp_int, nmax, ms, al


def check_clark(profile: Profile) -> list[Certificate]:
    """Clark measures: Aronszajn-Donoghue F_a = F/(1 + aF), point masses 1/(a^2 F'), Aleksandrov"""
    from bkmath.clark import (
        borel_derivative,
        borel_transform,
        borel_transform_ball,
        clark_borel,
        clark_measures,
    )
    from bkmath.free import lattice_w
    from bkmath.reference.clark import (
        borel_transform_mp,
        clark_point_masses_mp,
        window_point_masses,
    )
    from bkmath.resonances import lattice_resonances

    rng = np.random.default_rng(SEED)
    cases = _cases(rng, profile.pick(quick=1, default=2, thorough=40))
    alphas = np.array(profile.pick(quick=[-2.0, 1.5], default=[-3.0, 0.4, 2.5],
                                   thorough=[-8.0, -3.0, -0.7, -0.1, 0.05, 0.4, 2.5, 9.0]))
    inputs = {"seed": SEED, "potentials": len(cases), "alphas": alphas.tolist(),
              "v": "U(−3, 3), L ≤ 6, and three fixed cases"}
    certs = []

    # 1. F: fast (transparent window) vs mpmath (free resolvent + finite rank) vs Arb
    zs = [0.3 + 0.2j, 2.0 + 1e-3j, -1.5 + 0.5j, 6.0 + 2.0j]
    bzs = [0.7, 2.0, 3.9, -0.6, 5.5]
    with timed() as t:
        worst, worst_ball, narrow, contained, case = 0.0, 0.0, 0.0, True, None
        for ci, (v, s) in enumerate(cases):
            for z, bnd in [(z, False) for z in zs] + [(z, True) for z in bzs]:
                try:
                    F = borel_transform(v, z, site=s, boundary=bnd)
                except ValueError:  # z is an eigenvalue (off the band): skip the point
                    continue
                if ci < 3 or profile.name == "thorough":
                    ref = borel_transform_mp(v, z, site=s, boundary=bnd, dps=40)
                elif not bnd:
                    ref = complex(borel_transform_ball([Fraction(float(x)) for x in v], z,
                                                       site=s).mid())
                else:
                    continue
                err = abs(F - ref) / abs(ref)
                if err > worst:
                    worst, case = err, {"v": v.tolist(), "site": s, "z": z, "rel err": err}
                if not bnd:
                    ball = borel_transform_ball([Fraction(float(x)) for x in v], z, site=s)
                    narrow = max(narrow, float(ball.rad()) / abs(ref))
                    # the mpmath value (40 digits, rounded to complex128 here) must lie
                    # within the ball's radius plus its own rounding
                    gap = abs(complex(ball.mid()) - ref) - float(ball.rad())
                    contained = contained and gap <= 2 * EPS * abs(ref)
                    worst_ball = max(worst_ball, abs(complex(ball.mid()) - F) / abs(ref))
    tol1 = 64 * 6 * EPS
    certs.append(Certificate.from_bound(
        "clark_borel_transform",
        "F(z) = <δ_s, (H − z)^{-1} δ_s> from the transparent window "
        "(H_L − z − w(E_11 + E_LL))^{-1} equals the free-resolvent formula "
        "[(I + G0 V)^{-1} G0]_ss (mpmath, 40 digits), also at λ + i0; Arb balls (128 bits) "
        "of F hold the mpmath value and are narrow",
        value=max(worst, worst_ball), bound=tol1, tol=tol1, inputs=inputs,
        requires=contained and narrow < 1e-25, counterexample=case,
        precision="float64 vs mpmath dps=40; Arb prec=128",
        tolerance_reason="tridiagonal solve of L ≤ 6 rows, backward stable: a few eps per row, "
                         "times 64 for the condition near z = 2 + 1e-3 i",
        wall_time=t["seconds"],
        details={"max rel err vs mpmath": worst, "max rel err vs Arb midpoint": worst_ball,
                 "max relative ball radius": narrow, "balls hold mpmath": contained},
    ))

    # 2. Aronszajn–Donoghue: F_α, point masses (positions, weights) four ways
    with timed() as t:
        worst_F, worst_E, worst_w, worst_ad, worst_win, cnt_bad = 0.0, 0.0, 0.0, 0.0, 0.0, 0
        bad, n_mp, n_mp_done = None, profile.pick(quick=1, default=1, thorough=10), 0
        for ci, (v, s) in enumerate(cases):
            for a in alphas:
                va = v.copy()
                va[s] += a
                for z in zs:
                    Fa = clark_borel(v, a, z, site=s)
                    Fd = borel_transform(va, z, site=s)
                    worst_F = max(worst_F, abs(Fa - Fd) / abs(Fd))
            ms = clark_measures(v, alphas, site=s)
            for a, m in zip(alphas, ms, strict=True):
                va = v.copy()
                va[s] += a
                jz = lattice_resonances(va).eigenvalues  # all eigenvalues of H_α (Jost zeros)
                wE, ww = window_point_masses(v, a, site=s, pad=300)
                vis = ww > 1e-12  # eigenvalues seen by δ_s
                if jz.size < m.points.size or m.points.size != int(np.sum(vis)):
                    cnt_bad += 1
                    bad = bad or {"v": v.tolist(), "site": s, "alpha": a,
                                  "sturm": m.points.tolist(), "jost": jz.tolist(),
                                  "window": wE.tolist()}
                    continue
                if m.points.size == 0:
                    continue
                # the window's truncation error is O(|w(E)|^{2 pad}): compare converged ones
                conv = np.abs(np.asarray(lattice_w(m.points, boundary=True))) ** 600 < 1e-15
                if np.any(conv):
                    worst_win = max(worst_win,
                                    float(np.max(np.abs(m.points - wE[vis])[conv]))
                                    + float(np.max(np.abs(m.weights - ww[vis])[conv])))
                dj = np.min(np.abs(m.points[:, None] - jz[None, :]), axis=1)
                worst_E = max(worst_E, float(np.max(dj / np.maximum(1, np.abs(m.points)))))
                if ci >= n_mp or a not in alphas[:2]:  # mpmath: a few cases only (slow)
                    pass
                else:
                    Em, wm = clark_point_masses_mp(v, a, m.points, site=s, dps=30)
                    n_mp_done += 1
                    worst_E = max(worst_E, max(abs(float(x) - y) / max(1, abs(y))
                                               for x, y in zip(Em, m.points, strict=True)))
                    worst_w = max(worst_w, max(abs(float(x) - y)
                                               for x, y in zip(wm, m.weights, strict=True)))
                Fp = np.asarray(borel_derivative(v, m.points, site=s, boundary=True)).real
                worst_ad = max(worst_ad, float(np.max(np.abs(1 / (a * a * Fp) - m.weights))))
    tol2 = 1e-11
    certs.append(Certificate.from_bound(
        "clark_aronszajn_donoghue",
        "F_α = F/(1 + αF) equals the Borel transform of v + αδ_s; the eigenvalues of H_α "
        "(Sturm bisection of H_L + αE_ss − λ − w(λ)E) are the Jost zeros |w| < 1 of v + αδ_s "
        "seen by δ_s, equal the mpmath roots of 1/G_α(λ), and their weights φ(s)²/‖φ‖² equal the "
        "mpmath residues, 1/(α² F'(E)) and a 300+L+300 Dirichlet window",
        value=max(worst_F, worst_E, worst_w, worst_ad, worst_win), bound=tol2, tol=tol2,
        requires=cnt_bad == 0, inputs=inputs, counterexample=bad,
        precision="float64 vs mpmath dps=30 (findroot, diff)",
        tolerance_reason="bisection to the last bit and backward-stable Sturm counts: E to "
                         "~eps·‖H‖; weights from eigh_tridiagonal vectors: ~eps/gap; window "
                         "truncation |w|^600 negligible; 1e-11 leaves room for gap ~1e-4",
        wall_time=t["seconds"],
        details={"F_α rel err": worst_F, "E rel err (mpmath, Jost)": worst_E,
                 "weight err vs mpmath residue": worst_w, "weight err vs 1/(α²F')": worst_ad,
                 "err vs window": worst_win, "count mismatches": cnt_bad,
                 "measures checked against mpmath": n_mp_done},
    ))

    # 3. the measure: total mass 1 and its Herglotz representation = F_α
    with timed() as t:
        worst_m, worst_h, nmax3 = 0.0, 0.0, 0
        zh = np.array([0.5 + 0.8j, 2.0 + 1.0j, -1.0 + 0.6j, 5.0 + 1.0j])
        for v, s in cases:
            for a, m in zip(alphas, clark_measures(v, alphas, site=s), strict=True):
                mass, n = adaptive_integral(m, np.ones_like)
                nmax3 = max(nmax3, n)
                worst_m = max(worst_m, abs(mass - 1.0))
                ref = np.asarray(clark_borel(v, a, zh, site=s))
                worst_h = max(worst_h, float(np.max(np.abs(m.borel(zh, n=n) - ref)
                                                    / np.abs(ref))))
    tol3 = 1e-10
    certs.append(Certificate.from_bound(
        "clark_measure_herglotz",
        "μ_α = Im F_α(λ + i0)/π dλ on [0, 4] + Σ weights δ_E is a probability measure and "
        "∫ dμ_α(λ)/(λ − z) = F_α(z) (Im z ≥ 0.6)",
        value=max(worst_m, worst_h), bound=tol3, tol=tol3, inputs=inputs,
        precision="float64, θ-midpoint rule doubled (from 256 nodes) until the mass is stable "
                  "to 1e-14",
        tolerance_reason="geometric convergence of the midpoint rule for the smooth periodic "
                         "ρ sin θ (rate set by the resonances nearest |w| = 1); the Herglotz "
                         "integrand 1/(λ − z) is smooth for Im z ≥ 0.6",
        wall_time=t["seconds"], details={"max |mass − 1|": worst_m,
                                          "max rel err Herglotz": worst_h,
                                          "max θ nodes used": nmax3},
    ))

    # 4. Aleksandrov: ∫ μ_α(f) dα = ∫ f dλ for Gaussians f
    gauss = profile.pick(quick=[(2.0, 1.0), (-1.0, 0.7)],
                         default=[(2.0, 1.0), (-1.0, 0.7), (0.0, 0.3)],
                         thorough=[(2.0, 1.0), (-1.0, 0.7), (0.0, 0.3), (5.0, 0.5), (3.0, 2.0)])
    fs = [(lambda x, c=c, s=s: np.exp(-((x - c) ** 2) / (2 * s * s))) for c, s in gauss]
    exact = [s * np.sqrt(2 * np.pi) for _, s in gauss]
    nt = profile.pick(quick=100, default=100, thorough=400)
    av, a_site = np.array([0.5, -2.0, 0.0, 1.5]), 1
    with timed() as t:
        got_ac, got_pp, nmax, ms, al = _aleksandrov(av, a_site, fs, nt)
        got = [a + b for a, b in zip(got_ac, got_pp, strict=True)]
        err = max(abs(g - e) / e for g, e in zip(got, exact, strict=True))
    tol4 = 1e-9
    ainputs = {"v": av.tolist(), "site": a_site, "gaussians (centre, width)": gauss,
               "Gauss–Legendre nodes in t = arctan α": nt}
    certs.append(Certificate.from_bound(
        "clark_aleksandrov",
        "∫_R μ_α(f) dα = ∫_R f dλ (Aleksandrov's disintegration) for Gaussian f, μ_α = ac part "
        "+ Sturm-located point masses; α = tan t, Gauss–Legendre in t",
        value=err, bound=tol4, tol=tol4, inputs=ainputs,
        precision="float64; θ-midpoint rule doubled to 1e-14 per α",
        tolerance_reason="the α-integrand is real-analytic (contour form of μ_α(f)); measured "
                         "convergence: 1e-12 at 100 nodes, 1e-15 at 160 (Gaussians straddling "
                         "the emergence of an eigenvalue at 4 converge slower: 1e-9 at 160)",
        wall_time=t["seconds"],
        details={"rel errs": [abs(g - e) / e for g, e in zip(got, exact, strict=True)],
                 "max θ nodes used": nmax},
    ))

    # 5. negative controls: the weight sign −1/(α²F'), and the disintegration without points
    with timed() as t:
        neg_mass, case = 0.0, None
        for a, m in zip(al, ms, strict=True):
            if m.points.size and a != 0:
                Fp = np.asarray(borel_derivative(av, m.points, site=a_site,
                                                 boundary=True)).real
                mass = m.mass(n=1024) - m.weights.sum() + float(np.sum(-1 / (a * a * Fp)))
                if abs(mass - 1) > neg_mass:
                    neg_mass, case = abs(mass - 1), {"v": av.tolist(), "alpha": float(a),
                                                     "E": m.points.tolist(), "mass": mass}
    certs.append(Certificate.from_bound(
        "clark_weight_sign",
        "NEGATIVE CONTROL: the point masses of μ_α weigh −1/(α² F'(E)) (the sign as stated in "
        "the issue brief); then μ_α(R) = 1",
        value=neg_mass, bound=1e-9, tol=1e-9, kind=Kind.NEGATIVE_CONTROL, inputs=ainputs,
        counterexample=case, precision="float64",
        tolerance_reason="as clark_measure_herglotz", wall_time=t["seconds"],
        details={"max |mass − 1|": neg_mass},
    ))
    with timed() as t:  # the ac integrals of clark_aleksandrov, without the point masses
        got_ac = got_ac[:2]
        err_ac = max(abs(g - e) / e for g, e in zip(got_ac, exact[:2], strict=True))
    certs.append(Certificate.from_bound(
        "clark_aleksandrov_ac_only",
        "NEGATIVE CONTROL: the absolutely continuous parts alone disintegrate Lebesgue measure: "
        "∫ μ_α^ac(f) dα = ∫ f dλ",
        value=err_ac, bound=tol4, tol=tol4, kind=Kind.NEGATIVE_CONTROL, inputs=ainputs,
        counterexample={"gaussians": gauss[:2], "∫ μ_α^ac(f) dα": got_ac,
                        "∫ f": exact[:2]},
        precision="float64", tolerance_reason="as clark_aleksandrov", wall_time=t["seconds"],
        details={"rel errs": [abs(g - e) / e for g, e in zip(got_ac, exact[:2], strict=True)]},
    ))
    return certs
