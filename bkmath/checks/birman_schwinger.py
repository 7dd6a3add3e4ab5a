"""Birman–Schwinger principle: bound states of H = H0 + V ↔ eigenvalue 1 of |V|^{1/2} R0 |V|^{1/2}.

Theorem (Birman 1961, Schwinger 1961; Simon, *Trace ideals*, Ch. 7; Reed–Simon IV §XIII.3).
Let V ≤ 0 be relatively compact and λ < inf σ(H0). Then λ is an eigenvalue of H iff 1 is an
eigenvalue of B(λ) = |V|^{1/2} (H0 − λ)⁻¹ |V|^{1/2} (with the same multiplicity), and

    #{eigenvalues of H below λ} = #{eigenvalues of B(λ) greater than 1}.

(B(λ) = −K(λ) in the notation K = U|V|^{1/2} R0 |V|^{1/2}.) Checked on the lattice
(H0 = −Δ on ℓ²(Z), finitely supported V) against the exact Sylvester count of the
transparent-window Schur complement and a large Dirichlet box, with an Arb proof for a
rational V; and in the continuum (H0 = −d²/dx², square well) against the exact bound states
from the closed-form Jost function. Negative control: a V with a positive part (hypothesis
V ≤ 0 violated), for which the counting identity fails.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
from scipy.optimize import brentq

from bkmath import JacobiOperator
from bkmath.bs_operator import birman_schwinger
from bkmath.certificate import Certificate, Kind, timed
from bkmath.checks._support import EPS, make_cert
from bkmath.checks.profile import Profile
from bkmath.determinant import eigenvalue_count
from bkmath.fredholm import square_well_jost
from bkmath.scattering import bound_state_counts

STATEMENT = (
    "For V ≤ 0 and λ < inf σ(H0) = 0: #{eigenvalues of H0 + V below λ} = #{eigenvalues of "
    "|V|^{1/2}(H0 − λ)^{-1}|V|^{1/2} above 1}; λ is an eigenvalue of H iff 1 is an eigenvalue "
    "of that operator (Birman 1961, Schwinger 1961; Simon, Trace ideals, Ch. 7)."
)


def _bs_count(v: np.ndarray, lam: float) -> tuple[int, float, float]:
    """(#eig of B(λ) > 1, min |eig − 1|, ‖B‖) with B = |V|^{1/2} G0(λ) |V|^{1/2}."""
    vv = -np.abs(v)
    B = -birman_schwinger(vv, lam, boundary=True).real
    mu = np.linalg.eigvalsh(0.5 * (B + B.T))
    return int(np.sum(mu > 1)), float(np.min(np.abs(mu - 1))), float(np.abs(mu).max())


def _box_count(v: np.ndarray, lam: float, pad: int) -> int:
    vb = np.concatenate([np.zeros(pad), v, np.zeros(pad)])
    return int(eigenvalue_count(JacobiOperator.free_plus(vb), lam))


def _lattice_cert(profile: Profile) -> Certificate:
    rng = np.random.default_rng(20261124)
    n_pot = profile.pick(quick=3, default=6, thorough=40)
    n_lam = profile.pick(quick=8, default=15, thorough=80)
    pad = profile.pick(quick=150, default=300, thorough=600)
    rows, worst_margin, mismatches, ev_residual = [], np.inf, [], 0.0
    with timed() as t:
        for _ in range(n_pot):
            m = int(rng.integers(1, 12))
            v = -rng.exponential(1.5, m) * (rng.random(m) < 0.8)
            if not np.any(v):
                v[0] = -1.0
            for lam in np.linspace(-6.0, -0.02, n_lam):
                nbs, dist, norm = _bs_count(v, lam)
                nh = bound_state_counts(v, lam)
                nbox = _box_count(v, lam, pad)
                worst_margin = min(worst_margin, dist - 1e3 * EPS * max(norm, 1.0))
                if not nbs == nh == nbox:
                    mismatches.append({"v": v, "lam": lam, "bs": nbs, "schur": nh, "box": nbox})
            # eigenvalue version: at each bound state E (Dirichlet box, exponentially accurate)
            vb = np.concatenate([np.zeros(pad), v, np.zeros(pad)])
            ev = np.linalg.eigvalsh(JacobiOperator.free_plus(vb).to_dense())
            for e in ev[ev < -1e-3]:
                _, dist, _ = _bs_count(v, float(e))
                ev_residual = max(ev_residual, dist)
            rows.append({"v": v, "bound_states": ev[ev < 0]})
    ok = not mismatches and ev_residual < 1e-8
    return make_cert(
        "birman_schwinger_principle_lattice",
        STATEMENT + " Lattice H0 = −Δ on ℓ²(Z).",
        ok,
        hypotheses={"V <= 0": True, "lambda < 0 = inf sigma(H0)": True, "supp V finite": True},
        inputs={"seed": 20261124, "potentials": n_pot, "lambdas_per_potential": n_lam,
                "box_padding": pad},
        value={"mismatches": len(mismatches), "max |eig(B(E_j)) - 1| at bound states":
               ev_residual},
        bound={"mismatches": 0, "eigen residual": 1e-8},
        margin=float(worst_margin),
        precision="float64",
        tolerance=1e-8,
        tolerance_reason="counts are integers; each count is decided with margin min|μ−1| "
        "against 1e3·eps·‖B‖ rounding. The eigenvalue residual is limited by the box "
        "eigenvalue error ~e^{-2κ·pad} and eigvalsh rounding (≪ 1e-8).",
        wall_time=t["seconds"],
        counterexample={"mismatches": mismatches[:3]} if not ok else None,
        details={"examples": rows[:3]},
    )


def _arb_cert() -> Certificate:
    """Proof for one rational V ≤ 0: both counts certified in Arb ball arithmetic."""
    from flint import acb, arb

    from bkmath.enclosure import (
        arb_precision,
        lattice_w_ball,
        symmetric_negative_count_ball,
        to_fmpq,
    )

    v = ["-3/2", "0", "-2", "-1/2", "0", "-1"]
    lams = ["-1/10", "-3/5", "-1", "-2", "-4"]
    out = []
    ok = True
    with timed() as t, arb_precision(128):
        q = [to_fmpq(x) for x in v]
        sites = [(i, x) for i, x in enumerate(q) if x != 0]
        for ls in lams:
            lam = to_fmpq(ls)
            w = lattice_w_ball(acb(arb(lam))).real
            c = 1 / (1 / w - w)
            # I − B, B_mn = |v_m|^{1/2} w^{|m−n|} c |v_n|^{1/2}
            IB = [[(1 if a == b else 0) - (arb(-vm).sqrt() * w ** abs(m - n) * c
                                           * arb(-vn).sqrt())
                   for b, (n, vn) in enumerate(sites)] for a, (m, vm) in enumerate(sites)]
            n_bs = symmetric_negative_count_ball(IB)
            # Schur complement S(λ) = H_S − λ − w(E_11 + E_MM) on the window
            win = q[sites[0][0] : sites[-1][0] + 1]
            M = len(win)
            S = [[arb(0)] * M for _ in range(M)]
            for i in range(M):
                S[i][i] = 2 + arb(win[i]) - arb(lam)
                if i + 1 < M:
                    S[i][i + 1] = S[i + 1][i] = arb(-1)
            S[0][0] -= w
            S[M - 1][M - 1] -= w
            n_h = symmetric_negative_count_ball(S)
            out.append({"lam": ls, "bs_count": n_bs, "N_H": n_h})
            ok &= n_bs == n_h
        # mpmath confirmation at dps 40 for one λ
        with mpmath.workdps(40):
            from bkmath.reference.bs_operator import bs_matrix_mp

            K = bs_matrix_mp([float(Fraction(x)) for x in v], -1.0, dps=40)
            Kr = mpmath.matrix([[-mpmath.re(K[i, j]) for j in range(K.cols)]
                                for i in range(K.rows)])
            E = mpmath.eigsy(Kr, eigvals_only=True)
            n_mp = sum(1 for e in E if e > 1)
    ok &= n_mp == next(r["bs_count"] for r in out if r["lam"] == "-1")
    return make_cert(
        "birman_schwinger_principle_arb",
        STATEMENT + " Proof for one rational V by Arb ball arithmetic (both counts certified: "
        "every LDLᵀ pivot ball excludes 0).",
        ok,
        hypotheses={"V <= 0": True, "lambda < 0": True},
        inputs={"v": v, "lambdas": lams},
        value=out,
        bound="equal counts",
        margin=0.0 if ok else -1.0,
        precision="arb prec=128 (+ mpmath dps=40 confirmation)",
        tolerance=0.0,
        tolerance_reason="rigorous: integer counts from certified pivot signs",
        wall_time=t["seconds"],
        details={"mpmath_count_at_lambda=-1": n_mp},
    )


def _square_well_energies(depth: float, a: float) -> np.ndarray:
    """Bound states of −d² − depth·1_[−a,a]: zeros of the closed-form Jost function on
    (−depth, 0) (D(E) is real there), bracketed on a fine grid and refined by brentq."""
    grid = -depth * np.linspace(1e-6, 1.0 - 1e-9, 4001) ** 2  # dense near the threshold 0
    grid = np.sort(grid)
    vals = np.array([square_well_jost(-depth, (-a, a), complex(e)).real for e in grid])
    roots = []
    for e0, e1, f0, f1 in zip(grid[:-1], grid[1:], vals[:-1], vals[1:], strict=False):
        if f0 == 0:
            roots.append(e0)
        elif f0 * f1 < 0:
            roots.append(brentq(lambda e: square_well_jost(-depth, (-a, a), complex(e)).real,
                                e0, e1, xtol=1e-14))
    return np.sort(np.array(roots))


def _continuum_cert(profile: Profile) -> Certificate:
    depth, a = 10.0, 1.0
    n = profile.pick(quick=80, default=200, thorough=600)
    with timed() as t:
        E = _square_well_energies(depth, a)
        n_exact = int(np.ceil(2 * a * np.sqrt(depth) / np.pi))
        probes = np.concatenate([[-depth + 0.5], (E[:-1] + E[1:]) / 2, [E[-1] / 2, -0.01]])
        rows, margin, ok = [], np.inf, len(E) == n_exact
        for lam in probes:
            K = birman_schwinger(lambda x: -depth * np.ones_like(x), lam, model="continuum",
                                 interval=(-a, a), n=n, boundary=True)
            B = -K.real
            mu = np.linalg.eigvalsh(0.5 * (B + B.T))
            nbs = int(np.sum(mu > 1))
            nh = int(np.sum(E < lam))
            margin = min(margin, float(np.min(np.abs(mu - 1))))
            rows.append({"lam": lam, "bs_count": nbs, "N_H": nh})
            ok &= nbs == nh
        # eigenvalue version at the exact bound states
        res = []
        for e in E:
            K = birman_schwinger(lambda x: -depth * np.ones_like(x), e, model="continuum",
                                 interval=(-a, a), n=n, boundary=True)
            mu = np.linalg.eigvalsh(-0.5 * (K.real + K.real.T))
            res.append(float(np.min(np.abs(mu - 1))))
    tol = 50.0 / n**2
    ok &= max(res) < tol
    return make_cert(
        "birman_schwinger_principle_continuum",
        STATEMENT + " Continuum H0 = −d²/dx², V = −10·1_[−1,1] (Nyström on Gauss–Legendre).",
        ok,
        hypotheses={"V <= 0": True, "lambda < 0": True, "V in L1": True},
        inputs={"depth": depth, "half_width": a, "nystrom_nodes": n},
        value={"counts": rows, "bound_states": E, "eigen_residuals": res},
        bound={"count formula ceil(2a sqrt(depth)/pi)": n_exact},
        margin=float(min(margin, tol - max(res))),
        precision="float64",
        tolerance=tol,
        tolerance_reason="Nyström error of the kinked kernel e^{−κ|x−y|} is O(n^{-2}) (measured "
        "in bkmath.checks.determinant); 50/n² bounds it with room; counts decided with margin "
        "min|μ − 1| ≫ that error.",
        wall_time=t["seconds"],
    )


def _negative_control() -> Certificate:
    v = np.array([-1.0, 0.0, 8.0])
    lam = -0.05
    with timed() as t:
        nbs, dist, _ = _bs_count(v, lam)  # uses |V|: ignores the sign, as the theorem needs V≤0
        nh = bound_state_counts(v, lam)
    return make_cert(
        "birman_schwinger_principle_negative_control",
        "Counting identity applied to V with a positive part (hypothesis V ≤ 0 violated): "
        "#{eig H < λ} = #{eig |V|^{1/2}R0(λ)|V|^{1/2} > 1} must fail.",
        nbs == nh,
        kind=Kind.NEGATIVE_CONTROL,
        hypotheses={"V <= 0": False},
        inputs={"v": v, "lam": lam},
        value={"bs_count": nbs, "N_H": nh},
        bound="equality",
        margin=float(-abs(nbs - nh)),
        precision="float64",
        tolerance=0.0,
        tolerance_reason="integer counts",
        wall_time=t["seconds"],
        counterexample={"v": v, "lam": lam, "bs_count": nbs, "N_H": nh},
    )


def check_birman_schwinger(profile: Profile) -> list[Certificate]:
    """Birman–Schwinger principle (counting form), lattice and continuum"""
    return [_lattice_cert(profile), _arb_cert(), _continuum_cert(profile), _negative_control()]
