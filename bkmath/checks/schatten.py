"""Schatten-class bounds for K(z) = U|V|^{1/2} R0(z) |V|^{1/2}: the correct ones and the seeds'.

Correct statements (proofs in :mod:`bkmath.schatten`; Simon, *Trace ideals* Ch. 4, Thm 4.1
(Kato–Seiler–Simon) for the S2 / S1-by-factorisation arguments):

* exact:  ‖K‖²_S2 = ∬ |V(x)| |R0(x, y; z)|² |V(y)|;
* S2:     ‖K‖_S2 ≤ ‖V‖₂ (Im G0(0,0;z)/Im z)^{1/2}   (sharp; momentum: (2 Im z)^{−1/2});
* S1:     ‖K‖_S1 ≤ ‖V‖₁ c₁(z), c₁ = (1/2π)∫ dξ/|h(ξ) − z|  (lattice, continuum; c₁ = ∞ and
          K ∉ S1 in the momentum model).

The seeds' claims ‖K‖_S2 ≤ ½ (Im z)^{−1/2}‖V‖₂ and ‖K‖_S1 ≤ ½ (Im z)^{−1}‖V‖₁ (stated without
setting) are tested *as stated* in each of the three settings, with an honest search for a
counterexample; a counterexample is confirmed in mpmath and, on the lattice, proved with Arb.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np

from bkmath.bs_operator import birman_schwinger, gauss_legendre
from bkmath.certificate import Certificate, Kind, timed
from bkmath.checks._support import EPS, loglog_rate, make_cert
from bkmath.checks.profile import Profile
from bkmath.reference.schatten import box_hs_norm_sq_mp, trace_class_constant_mp
from bkmath.schatten import (
    potential_norm,
    s1_bound,
    s2_bound,
    s2_bound_l1,
    schatten_norm,
    seed_s1_bound,
    seed_s2_bound,
    trace_class_constant,
)

SEED_S2 = "‖K(z)‖_S2 ≤ ½ (Im z)^{−1/2} ‖V‖₂ (seeds; no setting stated)"
SEED_S1 = "‖K(z)‖_S1 ≤ ½ (Im z)^{−1} ‖V‖₁ (seeds; no setting stated)"


def _sample(rng: np.random.Generator, model: str):
    """A random (v, nodes, weights, z) for the model."""
    z = complex(rng.uniform(-2, 6), 10 ** rng.uniform(-1.5, 1))
    if model == "lattice":
        m = int(rng.integers(1, 40))
        return rng.normal(0, 1, m) * rng.exponential(), None, None, z
    n = int(rng.integers(20, 120))
    x, w = gauss_legendre((0.0, float(rng.uniform(0.2, 8.0))), n)
    v = rng.normal(0, 1) + rng.normal(0, 1) * np.cos(rng.uniform(0.5, 4) * x)
    return v, x, w, z


def _op(v, x, w, z, model, form="dense"):
    if model == "lattice":
        return birman_schwinger(v, z, form=form)
    return birman_schwinger(v, z, model=model, nodes=x, weights=w, form=form)


def _exact_hs(profile: Profile) -> list[Certificate]:
    rng = np.random.default_rng(21)
    n = profile.pick(quick=5, default=15, thorough=200)
    worst = 0.0
    with timed() as t:
        for model in ("lattice", "continuum", "momentum"):
            for _ in range(n):
                v, x, w, z = _sample(rng, model)
                op = _op(v, x, w, z, model, form="operator")
                fro = np.linalg.norm(op.dense())
                worst = max(worst, abs(op.hs_norm() - fro) / max(fro, 1e-300))
        # Nyström HS → closed-form double integral for V = 1_[0, L]
        conv = {}
        ns = np.array([25, 50, 100, 200, 400])
        for model in ("continuum", "momentum"):
            exact = float(mpmath.sqrt(box_hs_norm_sq_mp(1.0, 3.0, 1.0 + 1.0j, model, dps=30)))
            errs = np.array([abs(birman_schwinger(np.ones_like, 1 + 1j, model=model,
                                                  interval=(0.0, 3.0), n=int(k),
                                                  form="operator").hs_norm() - exact)
                             for k in ns])
            conv[model] = {"errors": errs, "order": -loglog_rate(ns, errs), "exact": exact}
    # Arb: lattice ‖K‖²_S2 for rational data, containing the O(N) float value
    from bkmath.enclosure import arb_precision, ball_contains, hs_norm_sq_ball, to_acb

    vq = ["1", "-1/2", "0", "3/4", "2"]
    with arb_precision(128):
        ball = hs_norm_sq_ball(vq, to_acb("1", "1/4"))
    f = birman_schwinger([float(Fraction(s)) for s in vq], 1 + 0.25j, form="operator").hs_norm()
    arb_ok = ball_contains(ball, f * f, slack=1e-13 * f * f)
    tol = 1e2 * EPS * 40
    ok = (worst < tol and arb_ok and conv["continuum"]["errors"][-1] < 1e-4
          and conv["momentum"]["errors"][-1] < 1e-2)
    return [make_cert(
        "schatten_s2_exact",
        "‖K‖²_S2 = ∬|V(x)||R0(x,y;z)|²|V(y)|: the O(N) semiseparable evaluation equals the "
        "Frobenius norm of the dense matrix; the Nyström HS norm converges to the closed-form "
        "double integral (V = 1_[0,3], z = 1 + i); Arb enclosure on the lattice.",
        ok,
        inputs={"seed": 21, "samples_per_model": n, "arb_v": vq, "arb_z": "1 + i/4"},
        value={"max rel err O(N) vs dense": worst, "nystrom_convergence": conv,
               "arb_ball": str(ball), "float": f * f},
        bound={"rel err": tol, "continuum": 1e-4, "momentum": 1e-2},
        margin=float(tol - worst),
        precision="float64; mpmath dps=30 closed form; arb prec=128",
        tolerance=tol,
        tolerance_reason="sums of N ≤ 120 positive terms: relative rounding ≤ N·eps (×100)",
        wall_time=t["seconds"],
        details={"note": "momentum Nyström HS converges like 1/n (jump on the diagonal, "
                 "diagonal weight ¼); continuum like 1/n²"},
    )]


def _sample_fn(rng: np.random.Generator, model: str):
    """A random smooth potential on [0, L] as a callable, z, and a resolving node count."""
    z = complex(rng.uniform(-2, 6), 10 ** rng.uniform(-1.5, 1))
    L = float(rng.uniform(0.2, 8.0))
    c0, c1, om = rng.normal(0, 1), rng.normal(0, 1), rng.uniform(0.5, 4)
    scale = abs(np.sqrt(z)) if model == "continuum" else abs(z)
    n0 = int(np.clip(20 * L * scale + 40, 40, 400))
    return (lambda x: c0 + c1 * np.cos(om * x)), (0.0, L), z, n0


def _correct_bounds(profile: Profile) -> list[Certificate]:
    rng = np.random.default_rng(22)
    n = profile.pick(quick=10, default=30, thorough=400)
    out = []
    for p, models in ((2, ("lattice", "continuum", "momentum")), (1, ("lattice", "continuum"))):
        worst_excess, worst_ratio, worst_case = -np.inf, 0.0, None
        with timed() as t:
            for model in models:
                for _ in range(n if (p == 2 or model == "lattice") else max(n // 4, 4)):
                    if model == "lattice":
                        v, _, _, z = _sample(rng, model)
                        K = birman_schwinger(v, z, form="operator" if p == 2 else "dense")
                        val, wq, tol_i = schatten_norm(K, p), None, 1e-9
                    else:
                        vf, iv, z, n0 = _sample_fn(rng, model)
                        if p == 1:
                            n0 = min(n0, 120)
                        vals = []
                        for nn in (n0, 2 * n0):
                            x, wq = gauss_legendre(iv, nn)
                            K = birman_schwinger(vf(x), z, model=model, nodes=x, weights=wq,
                                                 form="operator" if p == 2 else "dense")
                            vals.append(schatten_norm(K, p))
                        v, val = vf(x), vals[1]
                        # discretisation error estimate from the n → 2n change (×3 safety)
                        tol_i = 3 * abs(vals[1] - vals[0]) / vals[1] + 1e-9
                    bnd = s2_bound(v, z, model, wq) if p == 2 else s1_bound(v, z, model, wq)
                    if p == 2:
                        bnd = min(bnd, s2_bound_l1(v, z, model, wq))
                    r = val / bnd
                    worst_ratio = max(worst_ratio, r)
                    if r - 1 - tol_i > worst_excess:
                        worst_excess = r - 1 - tol_i
                        worst_case = {"model": model, "z": z, "ratio": r, "tolerance": tol_i}
            # c₁ confirmed in mpmath
            c1_err = max(abs(trace_class_constant(z, m) - float(trace_class_constant_mp(z, m)))
                         for z in (1 + 1j, 0.3 + 0.05j, 5 + 0.2j) for m in ("lattice",
                                                                            "continuum"))
            # sharpness: long constant V attains the S2 constant
            vl = np.ones(400)
            sharp = schatten_norm(birman_schwinger(vl, 2 + 0.3j, form="operator"), 2) / s2_bound(
                vl, 2 + 0.3j)
        ok = worst_excess <= 0 and (p == 2 or c1_err < 1e-9)
        name = "schatten_s2_bound" if p == 2 else "schatten_s1_bound"
        stmt = ("‖K(z)‖_S2 ≤ ‖V‖₂ (Im G0(0,0;z)/Im z)^{1/2} and ≤ ‖V‖₁ sup|R0| (Young/Schur + "
                "Plancherel), lattice, continuum, momentum" if p == 2 else
                "‖K(z)‖_S1 ≤ ‖V‖₁ (1/2π)∫dξ/|h(ξ) − z| (factorisation through |H0 − z|^{−1/2}, "
                "Hölder; KSS p = 2), lattice and continuum")
        out.append(make_cert(
            name, stmt, ok,
            hypotheses={"Im z > 0": True, "V in L1 ∩ L2": True,
                        "H0 translation invariant": True},
            inputs={"seed": 22, "samples_per_model": n, "models": models},
            value={"max ‖K‖/bound": worst_ratio, "sharpness (V = 1 on 400 sites)": sharp,
                   "c1 float vs mpmath": c1_err if p == 1 else None},
            bound=1.0,
            margin=float(-worst_excess),
            precision="float64 (c₁ confirmed by mpmath.quad dps=30)",
            tolerance=1e-9,
            tolerance_reason="lattice: K is the exact finite-rank operator, only rounding "
            "(≪1e-9). Continuum/momentum: the operator's norm is approximated by Nyström on "
            "Gauss–Legendre nodes resolving the kernel (n ≈ 20 L |k| + 40, and 2n); each "
            "sample's tolerance is 3× the n → 2n change of the norm (margin = −max(ratio − 1 − "
            "tol))",
            wall_time=t["seconds"],
            details={"worst case": worst_case},
        ))
    # negative control: a 5 % smaller constant is refuted where the bounds are sharp
    vl = np.ones(400)
    z2 = 2 + 0.3j
    r2 = schatten_norm(birman_schwinger(vl, z2, form="operator"), 2) / (0.95 * s2_bound(vl, z2))
    v1 = np.array([1.0])
    z1 = 100j
    r1 = schatten_norm(birman_schwinger(v1, z1), 1) / (0.95 * s1_bound(v1, z1))
    out.append(make_cert(
        "schatten_bounds_negative_control",
        "The S2 and S1 bounds with constants lowered by 5 % must be violated (shows the "
        "bounds are sharp and the check can fail): V = 1 on 400 sites, z = 2 + 0.3i (S2); one "
        "site, z = 100i (S1).",
        max(r1, r2) <= 1.0,
        kind=Kind.NEGATIVE_CONTROL,
        value={"S2 ratio": r2, "S1 ratio": r1},
        bound=1.0,
        margin=float(1.0 - max(r1, r2)),
        counterexample={"S2": {"v": "1 on 400 sites", "z": z2, "ratio": r2},
                        "S1": {"v": [1.0], "z": z1, "ratio": r1}},
    ))
    return out


def _seed_s2(profile: Profile) -> list[Certificate]:
    out = []
    lams = np.linspace(-1.0, 5.0, profile.pick(quick=7, default=13, thorough=49))
    etas = np.logspace(-2, 1, profile.pick(quick=4, default=7, thorough=25))
    Ls = profile.pick(quick=[1, 8, 64], default=[1, 4, 16, 64, 256], thorough=[1, 2, 4, 8, 16,
                                                                                 32, 64, 128,
                                                                                 256, 1024])
    # lattice: search V = 1 on L sites over the z grid (O(N) HS norm)
    with timed() as t:
        best = (0.0, None)
        n_tried = 0
        for L in Ls:
            v = np.ones(L)
            for lam in lams:
                for eta in etas:
                    z = complex(lam, eta)
                    r = birman_schwinger(v, z, form="operator").hs_norm() / seed_s2_bound(v, z)
                    n_tried += 1
                    if r > best[0]:
                        best = (r, (L, z))
        # rigorous confirmation of a clean rational counterexample (Arb)
        from bkmath.enclosure import arb_precision, hs_norm_sq_ball, to_acb

        L0, z0 = 16, ("2", "1/10")
        with arb_precision(128):
            ball = hs_norm_sq_ball(["1"] * L0, to_acb(*z0))
        seed_sq = Fraction(L0) / (4 * Fraction(z0[1]))
        arb_refutes = bool(ball.lower() > float(seed_sq) * (1 + 1e-12))
        f = birman_schwinger(np.ones(L0), 2 + 0.1j, form="operator").hs_norm()
    holds = best[0] <= 1.0
    out.append(make_cert(
        "seed_s2_bound_lattice", SEED_S2 + " — setting: lattice H0 = −Δ on ℓ²(Z).", holds,
        kind=Kind.SEED_CLAIM,
        hypotheses={"Im z > 0": True},
        inputs={"search": f"V = 1 on L sites, L ∈ {Ls}, z = λ + iη on a {lams.size}×{etas.size} "
                "grid", "cases": n_tried},
        value={"max ‖K‖_S2 / seed bound": best[0], "at (L, z)": best[1],
               "arb ‖K‖²_S2 at L=16, z=2+i/10": str(ball), "float ‖K‖_S2": f},
        bound=1.0,
        margin=float(1.0 - best[0]),
        precision="float64 search; Arb prec=128 proof of the counterexample",
        tolerance=0.0,
        tolerance_reason="the ratio exceeds 1 by far more than rounding; the Arb ball's lower "
        "end exceeds the seed bound² = L/(4η) (exact rational)",
        wall_time=t["seconds"],
        counterexample=None if holds else {
            "v": "1 on sites 0..15", "z": "2 + i/10", "‖K‖²_S2 (Arb)": str(ball),
            "seed bound²": str(seed_sq), "proved": arb_refutes,
            "worst found": {"ratio": best[0], "L": best[1][0], "z": best[1][1]},
            "why": "Σ_n |G0(0,n)|² = Im G0(0,0)/Im z, and Im G0(0,0; 2 + i0) = ½ > ¼: the true "
                   "constant is (Im G0/Im z)^{1/2}, up to √2 × the seed's at mid-band; near the "
                   "band edges Im G0 → ∞",
        },
        details={"arb_refutes": arb_refutes},
    ))
    # continuum and momentum: V = 1_[0, L], closed-form HS norm in mpmath
    for model in ("continuum", "momentum"):
        with timed() as t:
            best = (0.0, None)
            for L in (0.25, 1.0, 4.0, 16.0):
                for lam in lams:
                    for eta in etas:
                        z = complex(lam, eta)
                        if model == "continuum" and abs(z) < 1e-12:
                            continue
                        hs2 = float(box_hs_norm_sq_mp(1.0, L, z, model, dps=30))
                        r = np.sqrt(hs2 / (L / (4 * eta)))
                        if r > best[0]:
                            best = (r, (L, z))
            # a clean counterexample, also by Nyström (independent of the closed form)
            L0, z0 = (10.0, 1j) if model == "continuum" else (4.0, 1j)
            hs = float(mpmath.sqrt(box_hs_norm_sq_mp(1.0, L0, z0, model, dps=30)))
            x, w = gauss_legendre((0.0, L0), 400)
            ny = birman_schwinger(np.ones_like(x), z0, model=model, nodes=x, weights=w,
                                  form="operator").hs_norm()
            seed = seed_s2_bound(np.ones_like(x), z0, w)
        holds = best[0] <= 1.0
        why = ("∫|R0|² = 1/(4|k|² Im k) exceeds 1/(4 Im z) iff |k|² < 2 Re k (low energy)"
               if model == "continuum" else
               "∫|R0|² = ∫_0^∞ e^{−2ηt}dt = 1/(2η): the true constant is (2η)^{−1/2} = √2 × the "
               "seed's, attained for long V")
        out.append(make_cert(
            f"seed_s2_bound_{model}",
            SEED_S2 + f" — setting: {model} (H0 = "
            f"{'−d²/dx²' if model == 'continuum' else '−i d/dx'} on L²(R)).",
            holds,
            kind=Kind.SEED_CLAIM,
            inputs={"search": "V = 1_[0,L], L ∈ {1/4, 1, 4, 16}, z on the λ×η grid"},
            value={"max ratio": best[0], "at (L, z)": best[1],
                   "clean example": {"L": L0, "z": z0, "‖K‖_S2 closed form": hs,
                                     "Nyström n=400": ny, "seed bound": seed}},
            bound=1.0,
            margin=float(1.0 - best[0]),
            precision="mpmath dps=30 closed form; Nyström float64 confirmation",
            tolerance=0.0,
            tolerance_reason="closed-form double integral at 30 digits",
            wall_time=t["seconds"],
            counterexample=None if holds else {
                "v": f"1 on [0, {L0}]", "z": z0, "‖K‖_S2": hs, "seed bound": seed,
                "worst found": {"ratio": best[0], "L": best[1][0], "z": best[1][1]},
                "why": why},
        ))
    return out


def _seed_s1(profile: Profile) -> list[Certificate]:
    out = []
    # lattice: one site, exact ‖K‖_S1 = |v| |G0(0,0;z)| = 1/|z(z − 4)|^{1/2}
    from bkmath.enclosure import arb_precision, lattice_w_ball, to_acb

    with timed() as t:
        etas = np.logspace(-2, 2, profile.pick(quick=9, default=25, thorough=100))
        best = (0.0, None)
        for lam in np.linspace(-2, 6, 17):
            for eta in etas:
                for L in (1, 5):
                    v = np.ones(L)
                    z = complex(lam, eta)
                    r = schatten_norm(birman_schwinger(v, z), 1) / seed_s1_bound(v, z)
                    if r > best[0]:
                        best = (r, (L, z))
        with arb_precision(128):
            w = lattice_w_ball(to_acb("0", "3"))
            s1 = abs(1 / (1 / w - w))  # one site, v = 1: K = G0(0,0)
        seed = 1.0 / 6.0
        proved = bool(s1.lower() > seed)
    holds = best[0] <= 1.0
    out.append(make_cert(
        "seed_s1_bound_lattice", SEED_S1 + " — setting: lattice.", holds,
        kind=Kind.SEED_CLAIM,
        inputs={"search": "V = 1 on L ∈ {1, 5} sites, λ ∈ [−2, 6], η ∈ [1e-2, 1e2]"},
        value={"max ratio": best[0], "at (L, z)": best[1], "arb ‖K‖_S1 (v=1, z=3i)": str(s1)},
        bound=1.0, margin=float(1.0 - best[0]),
        precision="float64 search; Arb prec=128 proof",
        tolerance=0.0, tolerance_reason="one site: ‖K‖_S1 = |G0(0,0;z)| exactly, enclosed in Arb",
        wall_time=t["seconds"],
        counterexample=None if holds else {
            "v": [1], "z": "3i", "‖K‖_S1 = 1/√15 (Arb)": str(s1), "seed bound": "1/6",
            "proved": proved,
            "why": "|tr K| = |G0(0,0)| |Σv| ≤ ‖K‖_S1, and |G0(0,0;z)| = |z(z−4)|^{−1/2} > "
                   "1/(2 Im z) once |z(z − 4)|^{1/2} < 2 Im z (large Im z, V ≥ 0)"},
    ))
    # continuum: narrow box V ≥ 0, ‖K‖_S1 ≥ |tr K| = ∫V/(2|k|) (a rigorous lower bound)
    with timed() as t:
        delta, z = 0.01, 4j
        tr_lower = delta / (2 * abs(np.sqrt(z)))
        seed = 0.5 * delta / z.imag
        x, w = gauss_legendre((0.0, delta), 40)
        ny = schatten_norm(birman_schwinger(np.ones_like(x), z, model="continuum", nodes=x,
                                            weights=w), 1)
    holds = tr_lower <= seed
    out.append(make_cert(
        "seed_s1_bound_continuum", SEED_S1 + " — setting: continuum −d²/dx².", holds,
        kind=Kind.SEED_CLAIM,
        value={"|tr K| (lower bound of ‖K‖_S1)": tr_lower, "Nyström ‖K‖_S1": ny},
        bound=seed, margin=float(seed - tr_lower),
        precision="closed form (tr K = (i/2k)∫V)", tolerance=0.0,
        tolerance_reason="exact: |tr K| ≤ ‖K‖_S1 for trace-class K",
        wall_time=t["seconds"],
        counterexample=None if holds else {
            "v": f"1 on [0, {delta}]", "z": z, "‖K‖_S1 ≥ |tr K|": tr_lower, "seed bound": seed,
            "why": "|tr K| = ∫V/(2|z|^{1/2}) > ∫V/(2 Im z) whenever Im z > |z|^{1/2}"},
    ))
    # momentum: K ∉ S1; the Nyström trace norm grows like log n and passes the seed bound
    with timed() as t:
        ns = np.array(profile.pick(quick=[50, 100, 200], default=[50, 100, 200, 400],
                                   thorough=[50, 100, 200, 400, 800, 1600]))
        L, z = 4.0, 1j
        s1s = []
        for n in ns:
            x, w = gauss_legendre((0.0, L), int(n))
            s1s.append(schatten_norm(birman_schwinger(np.ones_like(x), z, model="momentum",
                                                      nodes=x, weights=w), 1))
        s1s = np.array(s1s)
        seed = 0.5 * L / z.imag
        growth = float(np.polyfit(np.log(ns), s1s, 1)[0])
    holds = bool(s1s[-1] <= seed)
    out.append(make_cert(
        "seed_s1_bound_momentum", SEED_S1 + " — setting: momentum H0 = −i d/dx.", holds,
        kind=Kind.SEED_CLAIM,
        value={"Nyström ‖K‖_S1 vs n": dict(zip(ns.tolist(), s1s.tolist(), strict=True)),
               "d‖K‖_S1/d log n": growth},
        bound=seed, margin=float(seed - s1s[-1]),
        precision="float64", tolerance=0.0,
        tolerance_reason="the Nyström singular values approximate the operator's from below "
        "(s_j ~ (2L/π)/(2j+1) for the Volterra kernel): their partial sums are lower bounds "
        "of ‖K‖_S1 = ∞ up to discretisation error",
        wall_time=t["seconds"],
        counterexample=None if holds else {
            "v": "1 on [0, 4]", "z": z, f"Nyström ‖K‖_S1 (n = {ns[-1]})": s1s[-1],
            "seed bound": seed,
            "why": "K is a Volterra operator (kernel i e^{iz(x−y)}θ(x−y)); singular values "
                   "~1/j, so ‖K‖_S1 = ∞ for every V with ∫V ≠ 0"},
        details={"potential_norm_L1": potential_norm(np.ones_like(x), 1, w)},
    ))
    return out


def check_schatten(profile: Profile) -> list[Certificate]:
    """Schatten S2/S1 bounds for the Birman–Schwinger operator (and the seeds')"""
    return _exact_hs(profile) + _correct_bounds(profile) + _seed_s2(profile) + _seed_s1(profile)
