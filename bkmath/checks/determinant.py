"""Perturbation determinants: det(I + K) = det(H − z)/det(H0 − z), det₂, Fredholm via Jost.

Theorems checked
----------------
1. (Lattice, finite rank; e.g. Simon, *Trace ideals* Ch. 3, Yafaev, *Mathematical scattering
   theory* §8.1.) For V of finite support on ℓ²(Z) and z ∉ σ(H) ∪ [0, 4],
   det(I + K(z)) = det(I + V R0(z)) = D(z), where D(z) is the limit of the box ratios
   det(H_N − z)/det(H0_N − z) and equals the transparent-window continuant ratio
   det(H_S − z − wΣ)/det(H0_S − z − wΣ) (O(M)). Checked: dense Fredholm determinant vs O(M)
   continuants vs mpmath (dps 40) vs Arb enclosure (rational V, z); the Dirichlet box ratio
   converges to D with the measured geometric rate against the predicted |w|^{2d}.
2. det₂(I + K) = det(I + K) e^{−tr K} = Π(1 + μ_j)e^{−μ_j}, tr K = G0(0,0;z) Σ v exactly.
3. (Continuum, Jost–Pais; Newton, *Scattering theory of waves and particles* §12.1.)
   For V ∈ L¹ supported in [a, b]: det(I + V R0(k²)) = W(f₋, f₊)/(2ik). The Fredholm
   determinant by Nyström/Bornemann quadrature and the Jost function by two ODE integrators
   converge to the same number; the convergence rates are measured.
Each with a negative control (a perturbed operator) that the check must refute.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from bkmath.bs_operator import birman_schwinger, free_kernel_diagonal, lattice_w_boundary
from bkmath.certificate import Certificate, Kind, timed
from bkmath.checks._support import EPS, loglog_rate, make_cert
from bkmath.checks.profile import Profile
from bkmath.fredholm import (
    continuum_fredholm_det,
    det2,
    fredholm_det,
    jost_determinant,
    perturbation_determinant,
    square_well_jost,
)
from bkmath.reference.bs_operator import bs_matrix_mp
from bkmath.reference.fredholm import fredholm_det_mp, square_well_jost_mp

ZS = [1.0 + 1.0j, 0.5 + 0.05j, 3.7 + 0.01j, -1.0 + 0.3j, 6.0 + 2.0j, 2.0 + 0.0j, 0.2 + 0.0j]


def _det_identity(profile: Profile) -> list[Certificate]:
    rng = np.random.default_rng(11)
    n_pot = profile.pick(quick=3, default=10, thorough=60)
    worst, rows = 0.0, []
    with timed() as t:
        for _ in range(n_pot):
            m = int(rng.integers(1, 16))
            v = rng.normal(0, 1.5, m) * (rng.random(m) < 0.85)
            v[0] = v[0] or 0.7
            for z in ZS:
                bnd = z.imag == 0
                D_fast = perturbation_determinant(v, z, boundary=bnd)
                K = birman_schwinger(v, z, boundary=bnd)
                D_dense = fredholm_det(K)
                cond = np.linalg.cond(np.eye(K.shape[0]) + K)
                err = abs(D_fast - D_dense) / max(abs(D_dense), 1e-300)
                worst = max(worst, err / (cond * m))
                rows.append(err)
        # mpmath confirmation on three cases
        mp_err = 0.0
        for z in (ZS[0], ZS[2], ZS[5]):
            v = np.array([0.5, -1.25, 0.0, 2.0, -0.75])
            Dm = complex(fredholm_det_mp(bs_matrix_mp(v, z, dps=40), dps=40))
            D = perturbation_determinant(v, z, boundary=z.imag == 0)
            mp_err = max(mp_err, abs(D - Dm) / abs(Dm))
    tol = 1e3 * EPS
    ok = worst < tol and mp_err < 1e-12
    cert = make_cert(
        "det_identity_lattice",
        "det(I + K(z)) = det(H − z)/det(H0 − z) on ℓ²(Z), finitely supported V: dense Fredholm "
        "determinant of K on supp V vs O(M) transparent-window continuants (incl. λ + i0).",
        ok,
        hypotheses={"supp V finite": True, "Im z > 0 or z = λ + i0 off thresholds": True},
        inputs={"seed": 11, "potentials": n_pot, "z": ZS},
        value={"max rel err / (cond·M)": worst, "max rel err vs mpmath dps=40": mp_err},
        bound={"rel err / (cond·M)": tol, "mpmath": 1e-12},
        margin=float(tol - worst),
        precision="float64; mpmath dps=40",
        tolerance=tol,
        tolerance_reason="backward-stable LU and continuants: relative error ≲ M·cond(I+K)·eps; "
        "1e3·eps allows the constants.",
        wall_time=t["seconds"],
        details={"max rel err": max(rows)},
    )
    # Arb proof for a rational example: two enclosures overlap, floats inside
    from bkmath.enclosure import arb_precision, ball_contains, perturbation_determinant_ball, to_acb

    v_q = ["1/2", "-5/4", "0", "2", "-3/4"]
    vf = np.array([0.5, -1.25, 0.0, 2.0, -0.75])
    arb_rows, ok2 = [], True
    with timed() as t2, arb_precision(200):
        for zr, zi in (("1", "1"), ("1/2", "1/20"), ("37/10", "1/100"), ("-1", "3/10")):
            zb = to_acb(zr, zi)
            dense, ratio = perturbation_determinant_ball(v_q, zb)
            zf = complex(float(Fraction(zr)), float(Fraction(zi)))
            D = perturbation_determinant(vf, zf)
            inside = ball_contains(ratio, D, slack=1e-12 * abs(D))
            overlap = dense.overlaps(ratio)
            rad = float(max(ratio.real.rad(), ratio.imag.rad()))
            arb_rows.append({"z": f"{zr} + i {zi}", "ball": str(ratio), "float": D,
                             "overlap": overlap, "float inside (+1e-12 rel)": inside,
                             "radius": rad})
            ok2 &= overlap and inside and rad < 1e-40
    arb_cert = make_cert(
        "det_identity_lattice_arb",
        "det(I + V G0(z)) = det(H_S − z − wΣ)/(w^{−(M−1)}(w⁻¹ − w)): Arb enclosures of both "
        "sides overlap (a proof for these rational V, z) and contain the float64 value.",
        ok2,
        hypotheses={"exact rational input": True},
        inputs={"v": v_q},
        value=arb_rows,
        bound="overlap; radius < 1e-40",
        margin=0.0 if ok2 else -1.0,
        precision="arb prec=200",
        tolerance=1e-12,
        tolerance_reason="float64 value vs ball: relative slack 1e-12 (cond·eps)",
        wall_time=t2["seconds"],
    )
    # box convergence: det(H_N − z)/det(H0_N − z) → D(z) like |w|^{2d}
    v = np.array([0.5, -1.25, 0.0, 2.0, -0.75])
    z = 1.0 + 0.5j
    pads = np.array(profile.pick(quick=[4, 6, 8, 10], default=[2, 4, 6, 8, 10, 12],
                                 thorough=[2, 4, 6, 8, 10, 12, 14, 16]))
    D = perturbation_determinant(v, z)
    errs = []
    for p in pads:
        vb = np.concatenate([np.zeros(p), v, np.zeros(p)])
        errs.append(abs(perturbation_determinant(vb, z, chain="finite") - D) / abs(D))
    errs = np.array(errs)
    slope = float(np.polyfit(pads[-3:], np.log(errs[-3:]), 1)[0])  # asymptotic range
    predicted = 2 * np.log(abs(lattice_w_boundary(z)))
    ok3 = abs(slope - predicted) < 0.05 * abs(predicted)
    box = make_cert(
        "det_box_limit",
        "det(H_N − z)/det(H0_N − z) (Dirichlet box, d free sites each side) → det(I + K(z)) on "
        "ℓ²(Z) geometrically, rate |w(z)|^{2d}.",
        ok3,
        inputs={"v": v, "z": z, "padding d": pads},
        value={"measured log-rate per site": slope, "errors": errs},
        bound={"predicted 2 log|w|": predicted},
        margin=float(0.05 * abs(predicted) - abs(slope - predicted)),
        tolerance=0.05,
        tolerance_reason="relative agreement of fitted and predicted exponential rates (fit "
        "over the pre-asymptotic range)",
        wall_time=t["seconds"],
    )
    # negative control: perturbed operator
    vp = v.copy()
    vp[1] += 1e-6
    Dp = perturbation_determinant(vp, z)
    Dd = fredholm_det(birman_schwinger(v, z))
    err = abs(Dp - Dd) / abs(Dd)
    neg = Certificate.from_bound(
        "det_identity_negative_control",
        "Same comparison with the continuant side computed for V + 1e-6 δ_1 (a perturbed "
        "operator): the identity check must fail at the tolerance used above.",
        value=err,
        bound=tol * 10,
        sense="<",
        tol=tol * 10,
        kind=Kind.NEGATIVE_CONTROL,
        inputs={"v": v, "perturbation": 1e-6, "z": z},
        tolerance_reason="same tolerance as the theorem (×10 cond allowance)",
        counterexample={"v": v, "v_perturbed": vp, "z": z, "rel_err": err},
    )
    return [cert, arb_cert, box, neg]


def _det2(profile: Profile) -> list[Certificate]:
    rng = np.random.default_rng(12)
    n_pot = profile.pick(quick=3, default=10, thorough=50)
    worst_prod, worst_tr = 0.0, 0.0
    with timed() as t:
        for _ in range(n_pot):
            m = int(rng.integers(1, 20))
            v = rng.normal(0, 1.0, m)
            for z in ZS:
                bnd = z.imag == 0
                K = birman_schwinger(v, z, boundary=bnd)
                d2 = det2(K)
                mu = np.linalg.eigvals(K)
                prod = complex(np.prod((1 + mu) * np.exp(-mu)))
                worst_prod = max(worst_prod, abs(d2 - prod) / abs(prod))
                tr_closed = free_kernel_diagonal(z) * v.sum()
                worst_tr = max(worst_tr, abs(np.trace(K) - tr_closed) / max(abs(tr_closed), 1))
    tol = 1e-10
    ok = worst_prod < tol and worst_tr < 1e-13
    cert = make_cert(
        "det2_relation",
        "det₂(I + K) = det(I + K) e^{−tr K} = Π_j (1 + μ_j) e^{−μ_j} (eigenvalues μ_j of K), with "
        "tr K = G0(0,0;z) Σ_n v_n (lattice); Simon, Trace ideals, Ch. 9.",
        ok,
        inputs={"seed": 12, "potentials": n_pot, "z": ZS},
        value={"det2 vs eigenvalue product": worst_prod, "trace vs closed form": worst_tr},
        bound=tol,
        margin=float(tol - worst_prod),
        tolerance=tol,
        tolerance_reason="eigenvalues of a non-normal K carry error ~ eps·cond(eigvecs); 1e-10 "
        "relative is ≫ that for these sizes and ≪ any O(1) discrepancy",
        wall_time=t["seconds"],
    )
    v = np.array([1.0, -0.5, 0.25])
    K = birman_schwinger(v, 1 + 1j)
    wrong = fredholm_det(K) * np.exp(+np.trace(K))
    mu = np.linalg.eigvals(K)
    prod = complex(np.prod((1 + mu) * np.exp(-mu)))
    err = abs(wrong - prod) / abs(prod)
    neg = Certificate.from_bound(
        "det2_negative_control",
        "The sign-flipped regularisation det(I + K) e^{+tr K} must not match Π(1 + μ)e^{−μ}.",
        value=err,
        bound=tol,
        sense="<",
        tol=tol,
        kind=Kind.NEGATIVE_CONTROL,
        inputs={"v": v, "z": 1 + 1j},
        counterexample={"v": v, "z": 1 + 1j, "rel_err": err},
    )
    return [cert, neg]


def _continuum(profile: Profile) -> list[Certificate]:
    ns = np.array(profile.pick(quick=[20, 40, 80], default=[20, 40, 80, 160, 320],
                               thorough=[20, 40, 80, 160, 320, 640]))
    z = 2.0 + 0.5j
    depth, iv = -3.0, (-1.0, 1.0)
    with timed() as t:
        exact = square_well_jost(depth, iv, z)
        exact_mp = complex(square_well_jost_mp(depth, iv, z, dps=40))
        well = lambda x: depth * np.ones_like(x)  # noqa: E731
        e_nys = np.array([abs(continuum_fredholm_det(well, z, iv, int(n)) - exact) for n in ns])
        e_rk4 = np.array([abs(jost_determinant(well, z, iv, n_steps=int(n)) - exact)
                          for n in ns])
        # smooth bump: no closed form; reference = RK4 with 4× the finest step count,
        # cross-checked against the transfer-matrix integrator.
        bump = lambda x: -4.0 * (1 - x**2) ** 2  # noqa: E731
        ref = jost_determinant(bump, z, iv, n_steps=int(4 * ns[-1]))
        ref_tr = jost_determinant(bump, z, iv, n_steps=int(16 * ns[-1]), method="transfer")
        b_nys = np.array([abs(continuum_fredholm_det(bump, z, iv, int(n)) - ref) for n in ns])
        b_tr = np.array([abs(jost_determinant(bump, z, iv, n_steps=int(n), method="transfer")
                             - ref) for n in ns])
        b_rk4 = np.array([abs(jost_determinant(bump, z, iv, n_steps=int(n)) - ref) for n in ns])
    rates = {
        "nystrom_square_well": -loglog_rate(ns, e_nys),
        "rk4_square_well": -loglog_rate(ns[:3], e_rk4[:3]),
        "nystrom_bump": -loglog_rate(ns, b_nys),
        "transfer_bump": -loglog_rate(ns, b_tr),
        "rk4_bump": -loglog_rate(ns[:3], b_rk4[:3]),
    }
    tol = 4.0 / float(ns[-1]) ** 2
    ok = (
        e_nys[-1] < tol and b_nys[-1] < tol and abs(exact - exact_mp) < 1e-13
        and abs(ref - ref_tr) < 1e-6 and rates["nystrom_square_well"] > 1.5
    )
    cert = make_cert(
        "fredholm_det_continuum",
        "det(I + V R0(z)) for H0 = −d²/dx² (1D, V ∈ L¹ compactly supported): the Nyström/Bornemann "
        "Fredholm determinant on Gauss–Legendre nodes and the Jost function W(f₋, f₊)/(2ik) "
        "(closed form for a square well; RK4 and transfer-matrix ODE integration for a smooth "
        "bump) agree; measured convergence rates reported.",
        ok,
        hypotheses={"V in L1, supp V compact": True, "Im z > 0": True},
        inputs={"z": z, "square_well": {"depth": depth, "interval": iv},
                "bump": "-4(1-x²)² on [-1,1]", "n": ns},
        value={"errors_nystrom_well": e_nys, "errors_nystrom_bump": b_nys,
               "errors_rk4_well": e_rk4, "errors_transfer_bump": b_tr,
               "errors_rk4_bump": b_rk4},
        bound={"final error": tol},
        margin=float(tol - max(e_nys[-1], b_nys[-1])),
        precision="float64; closed form confirmed in mpmath dps=40",
        tolerance=tol,
        tolerance_reason="Nyström converges only algebraically (kernel kink on the diagonal): "
        "measured order ≈ 2 with error ≈ 1.9/n² here; tol = 4/n_max² accepts that and rejects "
        "any O(1) disagreement",
        wall_time=t["seconds"],
        details={"measured_orders": rates,
                 "note": "Gauss–Legendre Nyström is order 2 here, not spectral: the kink of "
                 "e^{ik|x−y|} on the diagonal limits it. RK4 is order 4, mid-point transfer "
                 "order 2 (exact for piecewise-constant V)."},
    )
    # momentum model: det₂ ≡ 1 (Volterra) while det depends on the diagonal convention
    mom = lambda x: np.cos(x) + 0.5  # noqa: E731
    iv2 = (0.0, 3.0)
    intV = float(np.sin(3.0) + 1.5)
    d2s, ds = [], []
    for n in ns:
        K = birman_schwinger(mom, 1.0 + 0.5j, model="momentum", interval=iv2, n=int(n))
        d2s.append(abs(det2(K) - 1))
        ds.append(abs(fredholm_det(K) - np.exp(0.5j * intV)))
    mcert = make_cert(
        "fredholm_det_momentum",
        "H0 = −i d/dx: K(z) is a Volterra operator, so det₂(I + K) = 1 for every V ∈ L² "
        "(quasi-nilpotent HS operator) while det(I + K) is convention-dependent (θ(0) = ½ "
        "gives e^{(i/2)∫V}); Nyström on Gauss–Legendre nodes.",
        max(d2s[-1], ds[-1]) < 2.0 / ns[-1] and -loglog_rate(ns, np.array(d2s)) > 0.9,
        inputs={"V": "cos x + 1/2 on [0,3]", "z": 1.0 + 0.5j, "n": ns},
        value={"|det2 - 1|": d2s, "|det - e^{i∫V/2}|": ds},
        bound=2.0 / ns[-1],
        margin=float(2.0 / ns[-1] - max(d2s[-1], ds[-1])),
        tolerance=2.0 / ns[-1],
        tolerance_reason="Nyström of the jump kernel converges only like 1/n (measured order "
        "≈ 1, see details; error ≈ 0.96/n here); tolerance 2/n_max and order > 0.9 required",
        details={"rate det2": -loglog_rate(ns, np.array(d2s)),
                 "rate det": -loglog_rate(ns, np.array(ds))},
    )
    wrong = continuum_fredholm_det(lambda x: 1.01 * depth * np.ones_like(x), z, iv, int(ns[-1]))
    err = abs(wrong - exact)
    neg = Certificate.from_bound(
        "fredholm_det_continuum_negative_control",
        "Nyström determinant of the perturbed well 1.01·V compared with the Jost function of V: "
        "must disagree beyond the tolerance.",
        value=err,
        bound=tol,
        sense="<",
        tol=tol,
        kind=Kind.NEGATIVE_CONTROL,
        inputs={"z": z, "depth": depth, "perturbed depth": 1.01 * depth},
        counterexample={"z": z, "depth": 1.01 * depth, "abs_err": err},
    )
    return [cert, mcert, neg]


def check_determinant(profile: Profile) -> list[Certificate]:
    """det(I+K) = det(H−z)/det(H0−z), det₂ relation, Nyström vs Jost"""
    return _det_identity(profile) + _det2(profile) + _continuum(profile)
