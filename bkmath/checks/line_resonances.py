"""Resonances on the line: all zeros of the Jost function of a step potential in a region.

Theorem (docs/theory.md, "Resonances on the line"; :mod:`bkmath.line_resonances`). For a real
piecewise-constant ``V`` with support ``[a, b]``, the entire function
``G(k) = e^{−ik(b−a)} W(f₋, f₊)(k)`` has, in the k-plane, zeros only on ``iR₊`` (bound
states) and in ``Im k ≤ 0`` (anti-bound states on ``−iR₊``, ``k = 0`` at a half-bound
threshold, resonances off the axis in pairs ``k, −k̄``); its zeros with ``|Re k| ≤ r``
number ``(2(b − a)/π) r + O(1)`` when V jumps at both ends (Zworski 1987).

Checks: every zero found in a rectangle (float64 winding count, bisection, Newton) is
certified in Arb (Krawczyk box, kind proved), the boxes are disjoint and inside the region,
and their number equals the winding number proved from ball enclosures along the boundary
(the list is complete); each zero against mpmath's ``findroot`` on the exact transfer matrices
at 40 digits, the 40-digit zero inside its box; the zeros of symmetric wells and barriers
against the closed-form even/odd conditions, a thin barrier against the δ-potential's
``−ig/2``; the pairing ``k ↔ −k̄``; the counting law's slope ``2(b − a)/π``. Negative
controls, refuted: conjugate pairs ``k, k̄`` (the lattice's ``w, w̄``: a certified count of 0
around ``k̄``), a count that omits the anti-bound state, and the counting constant
``(b − a)/π``.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np

from bkmath.certificate import Certificate, Kind, timed
from bkmath.checks.profile import Profile

__all__ = ["check_line_resonances"]

SEED = 1920


def _cases(profile: Profile) -> list[tuple[str, object, tuple, tuple | None]]:
    """(name, potential, region, (depth, half_width) for a symmetric step or None)."""
    from bkmath.continuum import StepPotential, step_potential

    out = [("barrier 5 on [-1/2, 1/2]", StepPotential.well(5.0, -0.5, 0.5), (-5, 5, -2, 0.5),
            (5.0, 0.5)),
           ("well -10 on [-1/2, 1/2]", StepPotential.well(-10.0, -0.5, 0.5),
            (-5, 5, -3.2, 3.7), (-10.0, 0.5)),
           ("double barrier 20|0|20", step_potential([-1.5, -1, 1, 1.5], [20, 0, 20]),
            (-3, 3, -0.1, 0.5), None),
           ("well -2 on [0, 1]", StepPotential.well(-2.0, 0.0, 1.0), (-4, 4, -3.6, 1.8),
            (-2.0, 0.5))]
    if profile.name == "thorough":
        out.append(("steps -3|5|-8", step_potential([-1, 0, 0.5, 2], [-3, 5, -8]),
                    (-5, 5, -2, 3.3), None))
        rng = np.random.default_rng(SEED)
        for i in range(6):
            m = int(rng.integers(1, 4))
            edges = np.cumsum(np.concatenate([[-1.0], rng.integers(1, 5, m) / 4]))
            vals = np.round(rng.uniform(-8, 8, m), 3)
            top = math.sqrt(max(0.0, -float(vals.min()))) + 0.37
            out.append((f"random {i}", step_potential(edges, vals), (-5.1, 5.2, -1.7, top), None))
    return out


def _disjoint(balls) -> bool:
    return all(not balls[i].overlaps(balls[j])
               for i in range(len(balls)) for j in range(i + 1, len(balls)))


def _inside(ball, r) -> bool:
    return bool(ball.real > r[0]) and bool(ball.real < r[1]) and bool(ball.imag > r[2]) \
        and bool(ball.imag < r[3])


def check_line_resonances(profile: Profile) -> list[Certificate]:
    """Resonances on the line: all zeros of the Jost function of step potentials in a region,
    Arb-certified and complete, vs mpmath, closed forms and the counting law"""
    import flint

    from bkmath.line_resonances import (
        certified_zero_count,
        line_zero_balls,
        line_zero_count,
        line_zeros,
    )
    from bkmath.reference.line_resonances import delta_zero, line_zero_mp, square_well_zero_mp

    cases = _cases(profile)
    inputs = {"potentials": [c[0] for c in cases], "regions": [c[2] for c in cases]}
    certs = []
    zeros, balls, counts = {}, {}, {}

    # 1. all zeros found, each Krawczyk-certified with its kind; certified count = list size
    with timed() as t:
        fails, bad, n_zeros, kinds, segs, max_rad = 0, None, 0, {}, 0, 0.0
        for name, pot, reg, _ in cases:
            z = line_zeros(pot, reg, upper=True)
            bl = line_zero_balls(pot, z.k)
            cc = certified_zero_count(pot, reg)
            zeros[name], balls[name], counts[name] = z, bl, cc
            segs += cc["segments"]
            n_zeros += len(bl)
            for b, kd in zip(bl, z.kind, strict=True):
                kinds[kd] = kinds.get(kd, 0) + 1
                max_rad = max(max_rad, b["radius"] / max(1.0, abs(complex(b["ball"].mid()))))
            ok = (cc["count"] is not None and cc["count"] == len(bl) == z.count
                  and all(m == 1 for m in z.multiplicity)
                  and all(b["unique"] and b["kind"] == kd for b, kd in zip(bl, z.kind,
                                                                              strict=True))
                  and _disjoint([b["ball"] for b in bl])
                  and all(_inside(b["ball"], reg) for b in bl))
            if not ok:
                fails += 1
                bad = bad or {"potential": name, "region": reg, "zeros": z.k.tolist(),
                              "kinds": z.kind, "certified kinds": [b["kind"] for b in bl],
                              "certified count": cc["count"], "float count": z.count}
    certs.append(Certificate.from_bound(
        "line_resonances_arb_complete",
        "Every zero of G(k) = e^{−ik(b−a)}W(f₋, f₊) found in the rectangle lies in a box of "
        "relative radius ≤ 1e-10 that passes the Krawczyk test in Arb (one simple zero), with "
        "its kind proved (bound: on iR₊; anti-bound: on −iR₊; resonance: Im k < 0, Re k ≠ 0); "
        "the boxes are disjoint, inside the region, and as many as the winding number of G "
        "along the boundary proved from ball enclosures that exclude 0: the list is complete",
        value=fails, bound=0, tol=0, inputs=inputs, counterexample=bad,
        requires=max_rad <= 1.000001e-10,
        precision="Arb 128 bits (edges and values exact binary floats); float64 search",
        tolerance_reason="a count: no failure allowed", wall_time=t["seconds"],
        details={"zeros certified": n_zeros, "kinds": kinds, "boundary segments (Arb)": segs,
                 "max relative box radius": max_rad,
                 "counts": {n: counts[n]["count"] for n in counts}},
    ))

    # 2. against mpmath: findroot on the exact transfer matrices at 40 digits
    with timed() as t:
        worst, case, n_in = 0.0, None, 0
        for name, pot, _, _ in cases:
            for k, b in zip(zeros[name].k, balls[name], strict=True):
                if k == 0:
                    continue
                km = line_zero_mp(k, pot.edges, pot.values, dps=40)
                err = abs(complex(km) - k) / abs(k)
                with mpmath.workdps(40):
                    n_in += bool(b["ball"].contains(flint.acb(mpmath.nstr(km.real, 40),
                                                              mpmath.nstr(km.imag, 40))))
                if err > worst:
                    worst, case = err, {"potential": name, "k": k, "mpmath": complex(km)}
        n_ref = sum(int(np.sum(zeros[n].k != 0)) for n in zeros)
    mtol = 1e-13
    certs.append(Certificate.from_bound(
        "line_resonances_mpmath",
        "Each zero equals the zero of D = M₂₂ found by mpmath.findroot on the exact step "
        "transfer matrices at 40 digits (relative error), and that 40-digit zero lies in the "
        "zero's Arb box",
        value=worst, bound=mtol, tol=mtol, requires=n_in == n_ref,
        inputs=inputs, counterexample=case if worst > mtol or n_in != n_ref else None,
        precision="float64 Newton vs mpmath dps=40", wall_time=t["seconds"],
        tolerance_reason="Newton on G with the exact G': cond · eps; cos/sin cancellation in "
                         "Im k < 0 costs e^{2|Im k|(b−a)} ≤ e^7 here",
        details={"max rel err": worst, "mpmath zeros inside the box": f"{n_in}/{n_ref}"},
    ))

    # 3. closed forms: symmetric wells/barriers (even/odd conditions), δ-potential limit
    with timed() as t:
        worst_cf, case_cf = 0.0, None
        for name, _, _, sym in cases:
            if sym is None:
                continue
            for k in zeros[name].k:
                kc, _parity = square_well_zero_mp(k, sym[0], sym[1], dps=40)
                err = abs(complex(kc) - k) / max(1.0, abs(k))
                if err > worst_cf:
                    worst_cf, case_cf = err, {"potential": name, "k": k, "closed form": kc}
        from bkmath.continuum import StepPotential

        dl = 0.0
        for g in (2.0, -1.5):
            eps = 1e-5
            zt = line_zeros(StepPotential.well(g / eps, 0.0, eps), (-0.5, 0.5, -1.5, 1.0),
                            upper=True)
            dl = max(dl, min(abs(zt.k - delta_zero(g))) if zt.k.size else np.inf)
            dl = dl if zt.count == 1 else np.inf
    cf_tol, dl_tol = 1e-13, 1e-4
    certs.append(Certificate.from_bound(
        "line_resonances_closed_form",
        "The zeros of a symmetric step V₀1_[c−l, c+l] solve the closed-form conditions "
        "q sin(ql) + ik cos(ql) = 0 (even) or q cos(ql) − ik sin(ql) = 0 (odd), q² = k² − V₀ "
        "(mpmath findroot at 40 digits); the thin barrier (g/ε)1_[0, ε], ε = 1e-5, has one "
        "zero in |Re k| ≤ ½, −1.5 ≤ Im k ≤ 1, within 1e-4 of the δ-potential's −ig/2 "
        "(g = 2: anti-bound, g = −1.5: bound)",
        value=max(worst_cf, dl / dl_tol * cf_tol), bound=cf_tol, tol=cf_tol, inputs=inputs,
        counterexample=case_cf if worst_cf > cf_tol else ({"delta error": dl}
                                                          if dl > dl_tol else None),
        precision="float64 vs mpmath dps=40", wall_time=t["seconds"],
        tolerance_reason="as line_resonances_mpmath; the thin barrier differs from gδ by "
                         "O(ε g²) (value scaled by 1e-9)",
        details={"max rel err closed form": worst_cf, "max |k − (−ig/2)| thin barrier": dl},
    ))

    # 4. symmetry: pairs k, −k̄ (symmetric regions), no zero with Im k > 0 off the axis
    with timed() as t:
        worst_p, case_p, upper = 0.0, None, 0
        for name, _, reg, _ in cases:
            z = zeros[name]
            upper += sum(1 for b in balls[name] if b["upper"] and b["off_axis"])
            if -reg[0] != reg[1]:
                continue
            for k in z.of_kind("resonance"):
                d = float(np.min(np.abs(z.k - (-np.conj(k))))) / abs(k)
                if d > worst_p:
                    worst_p, case_p = d, {"potential": name, "k": k}
    ptol = 1e-13
    certs.append(Certificate.from_bound(
        "line_resonances_pairs",
        "For real V the resonances come in pairs k, −k̄ (G(−k̄) = conj G(k)); no zero lies in "
        "Im k > 0 off the imaginary axis (certified boxes)",
        value=worst_p, bound=ptol, tol=ptol, requires=upper == 0, inputs=inputs,
        counterexample=case_p if worst_p > ptol else ({"upper off-axis": upper}
                                                      if upper else None),
        precision="float64 (pairs), Arb (half-planes)", wall_time=t["seconds"],
        tolerance_reason="two independent Newton solves: O(eps) each",
        details={"max |k_pair + conj k|/|k|": worst_p, "upper off-axis zeros": upper},
    ))

    # 5. the counting law N(r) ~ (2(b − a)/π) r (float64 winding counts)
    with timed() as t:
        from bkmath.continuum import step_potential

        laws = []
        r1, r2 = 40.5, profile.pick(quick=80.5, default=120.5, thorough=240.5)
        for name, pot in (("barrier 5, width 1", StepPotential.well(5.0, -0.5, 0.5)),
                          ("steps -3|5|-8, width 3", step_potential([-1, 0, 0.5, 2],
                                                                    [-3, 5, -8]))):
            a, b = pot.support
            W = b - a
            ns = []
            for r in (r1, r2):
                Y = 2 * math.log(r) / W + 8  # the chains Im k ≈ −(2/W) log|k| lie above −Y
                n = line_zero_count(pot, (-r, r, -Y, 0.0))
                ns.append((n, line_zero_count(pot, (-r, r, -Y - 4, 0.0))))
            slope = (ns[1][0] - ns[0][0]) / (r2 - r1)
            laws.append({"potential": name, "width": W, "N(r1), N(r2)": [x[0] for x in ns],
                         "stable in Y": all(x[0] == x[1] for x in ns),
                         "slope·π/(2W)": slope * math.pi / (2 * W),
                         "slope·π/W": slope * math.pi / W})
        dev = max(abs(x["slope·π/(2W)"] - 1) for x in laws)
        dev_wrong = min(abs(x["slope·π/W"] - 1) for x in laws)
        stable = all(x["stable in Y"] for x in laws)
    ctol = 0.1
    certs.append(Certificate.from_bound(
        "line_resonances_counting",
        f"Zworski's counting law: the zeros with |Re k| ≤ r grow like (2(b − a)/π) r for a "
        f"step potential jumping at both ends — the slope (N(r₂) − N(r₁))/(r₂ − r₁), "
        f"r = {r1}, {r2}, is 2(b − a)/π within 10 % (counts stable when the rectangle is "
        f"deepened by 4)",
        value=dev, bound=ctol, tol=ctol, requires=stable, inputs={"r": [r1, r2]},
        precision="float64 winding counts", wall_time=t["seconds"],
        tolerance_reason="N(r) = 2Wr/π + O(1): the O(1) terms (±2 zeros per chain end) over "
                         "r₂ − r₁ ≥ 40 give ≤ 8 % for W = 1",
        details={"laws": laws},
    ))

    # 6. negative controls
    name = cases[0][0]
    kr = zeros[name].of_kind("resonance")[0]
    box = (kr.real - 0.1, kr.real + 0.1, -kr.imag - 0.1, -kr.imag + 0.1)
    n_conj = certified_zero_count(cases[0][1], box)["count"]
    certs.append(Certificate.from_bound(
        "line_resonances_conjugate_pairs",
        "NEGATIVE CONTROL: resonances come in conjugate pairs k, k̄ (as w, w̄ on the lattice), "
        "so the box of radius 0.1 around k̄ holds a zero",
        value=n_conj, bound=1, sense=">=", kind=Kind.NEGATIVE_CONTROL,
        counterexample={"potential": name, "k": kr, "certified zeros around conj(k)": n_conj},
        precision="Arb 128 bits (winding number)", tolerance_reason="a count",
        details={"certified count around conj(k)": n_conj},
    ))
    name = next(n for n in zeros if zeros[n].of_kind("antibound").size)
    z = zeros[name]
    claim = len(z.of_kind("resonance")) + len(z.of_kind("bound"))
    certs.append(Certificate.from_bound(
        "line_resonances_missing_antibound",
        "NEGATIVE CONTROL: the zeros in the region are the bound states and the resonances "
        "(off the axis) — the anti-bound states on −iR₊ left out",
        value=claim, bound=counts[name]["count"], sense="==", tol=0.5,
        kind=Kind.NEGATIVE_CONTROL,
        counterexample={"potential": name, "claimed": claim,
                        "certified count": counts[name]["count"],
                        "anti-bound": z.of_kind("antibound").tolist()},
        precision="Arb 128 bits (winding number)", tolerance_reason="a count",
        details={"claimed": claim, "certified": counts[name]["count"]},
    ))
    certs.append(Certificate.from_bound(
        "line_resonances_counting_half",
        "NEGATIVE CONTROL: the counting law with the constant (b − a)/π (one chain of zeros, "
        "not the pair k, −k̄)",
        value=dev_wrong, bound=ctol, tol=ctol, kind=Kind.NEGATIVE_CONTROL,
        counterexample={"laws": laws}, precision="float64 winding counts",
        tolerance_reason="as line_resonances_counting", details={"min |slope·π/W − 1|": dev_wrong},
    ))
    return certs
