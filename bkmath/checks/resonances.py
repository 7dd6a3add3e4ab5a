"""Lattice resonances: the zeros of the Jost polynomial of a finitely supported potential.

Theorem (docs/theory.md, "Lattice resonances"; :mod:`bkmath.resonances`). For real ``v`` on
the sites ``1..L`` of ``−Δ`` on Z, ``P(w) = (1 − w²) det(I + V R0(z(w)))`` is the polynomial
``det(I + w(H_L − 2) + w²(I − E_11 − E_LL))`` of exact degree 2 (``L = 1``), 2 unless
``v_1 v_2 = 1`` (``L = 2``), ``2L − 2`` (``L ≥ 3``, ``v_1 v_L ≠ 0``); its zeros are the
eigenvalues (``|w| < 1``, real), threshold zeros (``w = ±1``), anti-bound states (real,
``|w| > 1``) and resonances (complex, ``|w| > 1``).

Checks: P against ``(1 − w²) det(I + K)`` from the dense Birman–Schwinger matrix, and the
mpmath coefficients against the exact rational ones; every zero certified by a Krawczyk test
in Arb (narrow box, exact coefficients) with its kind, and the certified count equal to the
degree formula; eigenvalues against a 801+L-site Dirichlet window and the exact inertia
counts; all zeros against the transparent-boundary quadratic eigenproblem; the single site in
closed form. Negative controls: "every zero lies in the closed unit disc" (no resonances) and
"the count is 2L" (the size of the quadratic eigenproblem).
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np

from bkmath.certificate import Certificate, Kind, timed
from bkmath.checks.profile import Profile

__all__ = ["check_resonances"]

EPS = float(np.finfo(np.float64).eps)
SEED = 2026
PAD = 400  # free sites on each side of the Dirichlet window


def _potentials(rng: np.random.Generator, n: int, max_len: int) -> list[np.ndarray]:
    """Fixed cases (single site, a degree drop v_1 v_2 = 1, an exact threshold zero
    P(1) = v_1 + v_2 + v_1 v_2 = 0, a double barrier with narrow resonances) and random ones
    with nonzero end sites."""
    out = [np.array([1.0]), np.array([-2.5]), np.array([2.0, 0.5]), np.array([1.0, -0.5]),
           np.array([4.0, 0.0, 0.0, 0.0, 4.0]), np.array([-1.0, 0.0, 2.0])]
    for _ in range(n):
        L = int(rng.integers(1, max_len + 1))
        v = rng.uniform(-3, 3, L) * rng.choice([0.2, 1.0])
        v[0] = v[0] or 1.0
        v[-1] = v[-1] or 1.0
        out.append(v)
    return out


def _disjoint(balls) -> bool:
    return all(not balls[i].overlaps(balls[j])
               for i in range(len(balls)) for j in range(i + 1, len(balls)))


def check_resonances(profile: Profile) -> list[Certificate]:
    """Lattice resonances: Jost polynomial of degree 2L-2, each zero Arb-certified and classified"""
    import bkmath
    from bkmath.reference.resonances import (
        jost_polynomial_exact,
        jost_polynomial_mp,
        matched_inverse_error,
        transparent_qep_zeros,
        window_eigenvalues,
    )
    from bkmath.resonances import (
        jost_polynomial,
        jost_polynomial_degree,
        lattice_resonances,
        resonance_balls,
    )
    from bkmath.scattering import threshold_data

    rng = np.random.default_rng(SEED)
    pots = _potentials(rng, profile.pick(quick=10, default=60, thorough=400),
                       profile.pick(quick=8, default=16, thorough=32))
    inputs = {"seed": SEED, "potentials": len(pots), "max L": max(p.size for p in pots),
              "v": "U(−3, 3)·{0.2, 1} and six fixed cases"}
    certs = []

    with timed() as t_all:
        res = [lattice_resonances(v) for v in pots]
        exact = [jost_polynomial_exact(v) for v in pots]

    # 1. the identity P(w) = (1 − w²) det(I + K(z)), and mpmath coefficients = exact ones
    with timed() as t:
        worst_id, worst_mp, case = 0.0, 0.0, None
        for v, P in zip(pots, exact, strict=True):
            c = jost_polynomial(v)
            for z in (0.7 + 0.4j, -1.0 + 2.0j, 3.9 + 0.05j):
                w = complex(bkmath.lattice_w(z))
                D = bkmath.fredholm_det(bkmath.birman_schwinger(v, z))
                scale = float(np.sum(np.abs(c) * abs(w) ** np.arange(c.size))) + abs(D)
                err = abs(np.polyval(c[::-1], w) - (1 - w * w) * D) / scale
                if err > worst_id:
                    worst_id, case = err, {"v": v.tolist(), "z": z, "rel err": err}
            with mpmath.workdps(60):
                cm = jost_polynomial_mp(v, dps=60)
                ce = [mpmath.mpf(int(P[i].p)) / int(P[i].q) for i in range(P.degree() + 1)]
                cm = cm + [mpmath.mpf(0)] * (len(ce) - len(cm))
                big = max(abs(x) for x in ce)
                worst_mp = max(worst_mp, float(max(abs(a - b) for a, b in zip(cm, ce,
                                                                            strict=False)) / big))
    id_tol = 1e3 * EPS * max(p.size for p in pots)
    certs.append(Certificate.from_bound(
        "resonances_jost_identity",
        "P(w) = w^L det(H_L − z − w(E_11 + E_LL)) (the continuant) equals (1 − w²) det(I + K(z)) "
        "from the dense Birman–Schwinger matrix; mpmath coefficients equal the exact rational ones",
        value=max(worst_id, worst_mp), bound=id_tol, tol=id_tol, inputs=inputs,
        precision="float64 vs dense LU; mpmath dps=60 vs fmpq",
        tolerance_reason="LU of the L × L matrix I + K: O(L eps) relative to the scale Σ|c_k||w|^k",
        wall_time=t["seconds"], counterexample=case if worst_id > id_tol else None,
        details={"max rel err vs det(I + K)": worst_id, "max rel err mpmath vs exact": worst_mp},
    ))

    # 2. every zero certified in a narrow Arb box, classified; count = degree formula
    with timed() as t:
        failures, max_rad, min_rad, n_zeros, n_in, bad = 0, 0.0, 1.0, 0, 0, None
        kinds = dict.fromkeys(("eigenvalue", "threshold", "antibound", "resonance"), 0)
        for v, r, P in zip(pots, res, exact, strict=True):
            balls = resonance_balls(v, r.w)
            n_zeros += len(balls)
            ok = (P.degree() == jost_polynomial_degree(v) == r.degree == len(balls)
                  and _disjoint([b["ball"] for b in balls]))
            for w, k, b in zip(r.w, r.kind, balls, strict=True):
                kinds[k] += 1
                max_rad = max(max_rad, b["radius"] / max(1.0, abs(w)))
                min_rad = min(min_rad, b["radius"] / max(1.0, abs(w)))
                n_in += b["contains_input"]
                if k == "threshold":  # exact: P(±1) = 0 in rationals
                    good = w.real in (1.0, -1.0) and P(int(w.real)) == 0
                elif k == "eigenvalue":
                    good = b["unique"] and b["real"] and b["inside"]
                elif k == "antibound":
                    good = b["unique"] and b["real"] and b["outside"]
                else:
                    good = b["unique"] and b["outside"] and w.imag != 0
                ok = ok and good
            if not ok:
                failures += 1
                bad = bad or {"v": v.tolist(), "w": r.w.tolist(), "kind": r.kind,
                              "degree exact": P.degree(), "formula": jost_polynomial_degree(v)}
    certs.append(Certificate.from_bound(
        "resonances_arb_count",
        "Every zero of P lies in a box of relative radius <= 1e-10 (smaller where needed) "
        "around the Newton-refined zero that passes the Krawczyk test with P's exact "
        "coefficients (one simple zero), its kind "
        "certified (real and |w| < 1; real and |w| > 1; complex and |w| > 1; P(±1) = 0 "
        "exactly); the disjoint boxes number deg P = 2 (L = 1), 2 (L = 2, v_1 v_2 ≠ 1), "
        "2L − 2 (L ≥ 3)",
        value=failures, bound=0, tol=0, inputs=inputs, counterexample=bad,
        requires=max_rad <= 1.000001e-10,  # r = 1e-10·max(1, |w|), rounded
        precision="Arb at 256 bits, exact fmpq coefficients",
        tolerance_reason="a count: no failure allowed",
        wall_time=t["seconds"],
        details={"zeros certified": n_zeros, "kinds": kinds, "max relative box radius": max_rad,
                 "min relative box radius": min_rad,
                 "boxes holding the float64 zero": n_in,
                 "lattice_resonances + exact polynomials (s)": t_all["seconds"]},
    ))

    # 3. eigenvalues: large Dirichlet window (values) and exact inertia (counts)
    with timed() as t:
        worst_ev, count_bad, bad = 0.0, 0, None
        for v, r in zip(pots, res, strict=True):
            td = threshold_data([Fraction(float(x)) for x in v])
            ev_w = r.of_kind("eigenvalue")
            n_minus, n_plus = int(np.sum(ev_w.real > 0)), int(np.sum(ev_w.real < 0))
            if (n_minus, n_plus) != (td["N_minus"], td["N_plus"]):
                count_bad += 1
                bad = bad or {"v": v.tolist(), "zeros": (n_minus, n_plus), "inertia": td}
            ref = window_eigenvalues(v, PAD)
            conv = np.abs(ev_w) ** (2 * PAD) < 1e-16  # the truncation has converged
            if ref.size == ev_w.size:
                mine = np.sort(r.z[[k == "eigenvalue" for k in r.kind]].real)
                keep = conv[np.argsort(r.z[[k == "eigenvalue" for k in r.kind]].real)]
                if keep.any():
                    worst_ev = max(worst_ev, float(np.max(np.abs(mine - ref)[keep]
                                                          / np.maximum(1, np.abs(ref[keep])))))
            elif np.all(conv):
                count_bad += 1
                bad = bad or {"v": v.tolist(), "zeros": r.eigenvalues.tolist(),
                              "window": ref.tolist()}
    ev_tol = 1e3 * EPS
    certs.append(Certificate.from_bound(
        "resonances_eigenvalues",
        "The zeros with |w| < 1 give the eigenvalues z = 2 − w − 1/w of H: the counts below 0 and "
        "above 4 equal the exact inertia of H_L − E_11 − E_LL and H_L − 4 + E_11 + E_LL, the "
        f"values those of the Dirichlet window with {PAD} free sites each side",
        value=worst_ev, bound=ev_tol, tol=ev_tol, requires=count_bad == 0, inputs=inputs,
        counterexample=bad, precision="float64 vs scipy eigvalsh_tridiagonal; exact fmpq counts",
        tolerance_reason="eigvalsh backward error O(eps ||H||), truncation |w|^{2·400} < 1e-16",
        wall_time=t["seconds"],
        details={"max rel err vs window": worst_ev, "count mismatches": count_bad},
    ))

    # 4. all zeros vs the transparent-boundary quadratic eigenproblem; single site in closed form
    with timed() as t:
        worst_q, case = 0.0, None
        for v, r in zip(pots, res, strict=True):
            q = transparent_qep_zeros(v, r.degree)
            err = matched_inverse_error(r.w, q)  # in μ = 1/w: absolute error
            if err > worst_q:
                worst_q, case = err, {"v": v.tolist(), "max |Δ(1/w)|": err}
        worst_1 = 0.0
        for x in (1.0, -2.5, 1e-3, 37.0):
            r = lattice_resonances([x])
            with mpmath.workdps(40):
                s = mpmath.sqrt(mpmath.mpf(x) ** 2 + 4)
                ref = sorted([complex((x + s) / 2), complex((x - s) / 2)], key=abs)
            worst_1 = max(worst_1, max(abs(a - b) / abs(b) for a, b in
                                       zip(sorted(r.w, key=abs), ref, strict=True)))
    q_tol = 1e-9
    certs.append(Certificate.from_bound(
        "resonances_transparent_qep",
        "The zeros of P equal the eigenvalues w of the transparent-boundary window, "
        "det(H_L − z(w) − w(E_11 + E_LL)) = 0, solved as a dense quadratic eigenproblem "
        "(companion linearisation in μ = 1/w, compared in μ); L = 1: w = (v ± √(v² + 4))/2",
        value=max(worst_q, worst_1), bound=q_tol, tol=q_tol, inputs=inputs,
        counterexample=case if worst_q > q_tol else None,
        precision="float64 (numpy.linalg.eigvals) vs mpmath-refined zeros; closed form at dps=40",
        tolerance_reason="non-normal eigenproblem: error cond(μ)·eps, cond up to ~1e6 for the "
                         "clustered resonances of the double barrier",
        wall_time=t["seconds"],
        details={"max |Δ(1/w)| vs QEP": worst_q, "max rel err single site": worst_1},
    ))

    # 5. negative controls
    rmax, arg = max(((float(np.max(np.abs(r.w))), k) for k, r in enumerate(res) if r.degree),
                    key=lambda x: x[0])
    certs.append(Certificate.from_bound(
        "resonances_unit_disc",
        "NEGATIVE CONTROL: every zero of P lies in the closed unit disc (no resonances or "
        "anti-bound states: the physical-sheet picture continued naively)",
        value=rmax - 1.0, bound=0.0, tol=0.0, kind=Kind.NEGATIVE_CONTROL, inputs=inputs,
        counterexample={"v": pots[arg].tolist(), "max |w|": rmax,
                        "w": res[arg].w[np.argmax(np.abs(res[arg].w))]},
        precision="float64, zeros Arb-certified above",
        tolerance_reason="a strict inequality between certified zeros and 1",
        details={"max |w|": rmax},
    ))
    wrong = [(abs(r.degree - 2 * v.size), k) for k, (v, r) in enumerate(zip(pots, res,
                                                                            strict=True))]
    gap, k = max(wrong)
    certs.append(Certificate.from_bound(
        "resonances_wrong_degree",
        "NEGATIVE CONTROL: P has 2L zeros (the size of the quadratic eigenproblem; the two "
        "eigenvalues w = ∞ of the singular leading coefficient counted as zeros)",
        value=gap, bound=0, tol=0, kind=Kind.NEGATIVE_CONTROL, inputs=inputs,
        counterexample={"v": pots[k].tolist(), "2L": 2 * pots[k].size,
                        "certified zeros": res[k].degree},
        precision="exact counts", tolerance_reason="a count",
        details={"max |deg P − 2L|": gap},
    ))
    return certs
