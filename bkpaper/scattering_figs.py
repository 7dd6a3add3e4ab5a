"""Figures of spectral and scattering theory on the lattice (pure :mod:`bkmath`).

3. ``spectral_shift`` — ξ(λ) (eigenvalue staircase) against (1/π) arg det(I + K(λ + iε)) for
   decreasing ε; the scattering phase across the band and Levinson's count;
4. ``mourre`` — the Mourre constant of the discrete Laplacian over energy intervals.
"""

from __future__ import annotations

import math
from typing import Any

from bkpaper.framework import FigureContext, FigureResult, new_figure, register_figure, sanity

__all__ = ["figure_mourre", "figure_spectral_shift"]


# --------------------------------------------------------------------------------------
# Figure 3: spectral shift staircase, arg det(I + K(λ + iε)), scattering phase, Levinson
# --------------------------------------------------------------------------------------


@register_figure(3, "spectral_shift", "Spectral shift and scattering phase")
def figure_spectral_shift(ctx: FigureContext) -> FigureResult:
    """Figure 3: spectral shift against (1/π) arg det(I + K), Birman–Krein, Levinson."""
    import numpy as np

    from bkmath import JacobiOperator, eigenvalue_count, log_det
    from bkmath.fredholm import log_perturbation_determinant
    from bkmath.scattering import (
        scattering_matrix,
        scattering_phase,
        spectral_shift,
        threshold_data,
    )

    checks: dict[str, bool] = {}
    # (a) finite Dirichlet chain: ξ = N_{H0} - N_H against (1/π) arg det(I + K(λ + iε))
    n = 24
    rng = np.random.default_rng(7)
    vf = rng.uniform(-0.4, 0.4, n)
    vf[6], vf[16] = -3.0, 3.0  # one bound state below 0 and one above 4
    H, H0 = JacobiOperator.free_plus(vf), JacobiOperator.free(n)
    lam = np.linspace(-2.5, 6.5, ctx.pick(quick=1201, full=4001))
    nh = np.asarray(eigenvalue_count(H, lam))
    nh0 = np.asarray(eigenvalue_count(H0, lam))
    xi = nh0 - nh
    epss = ctx.pick(quick=[0.3, 0.1, 0.03, 0.01], full=[0.3, 0.1, 0.03, 0.01, 0.003])
    argdet = {}
    for eps in ctx.progress(epss, "arg det(I+K(λ+iε))"):
        z = lam + 1j * eps
        argdet[eps] = (np.asarray(log_det(H, z)) - np.asarray(log_det(H0, z))).imag / np.pi
    eig = np.concatenate([np.linalg.eigvalsh(H.to_dense()), np.linalg.eigvalsh(H0.to_dense())])
    dist = np.min(np.abs(lam[:, None] - eig[None, :]), axis=1)
    away = dist >= 0.05
    dev = {eps: float(np.max(np.abs(argdet[eps] - xi)[away])) for eps in epss}
    sanity(checks, "eigenvalue counts N_H, N_H0 are monotone staircases (0 -> N)",
           np.all(np.diff(nh) >= 0) and np.all(np.diff(nh0) >= 0) and nh[0] == 0
           and nh[-1] == n and nh0[-1] == n)
    sub = lam[:: max(1, len(lam) // 25)]
    sub = sub[np.min(np.abs(sub[:, None] - eig[None, :]), axis=1) > 1e-6]
    sanity(checks, "ξ equals bkmath.spectral_shift (finite chain) at spot checks",
           np.array_equal(np.asarray(spectral_shift(vf, sub)), (
               np.asarray(eigenvalue_count(H0, sub)) - np.asarray(eigenvalue_count(H, sub)))))
    spot = [complex(la, epss[-1]) for la in sub[:8]]
    api = np.array([log_perturbation_determinant(vf, zz, chain="finite").imag for zz in spot])
    mine = (np.asarray(log_det(H, np.array(spot))) - np.asarray(log_det(H0, np.array(spot))))
    sanity(checks, "arg det agrees with bkmath.fredholm.log_perturbation_determinant",
           np.allclose(api, mine.imag, atol=1e-10))
    sanity(checks, "trace formula: ∫ξ dλ = tr V (to grid resolution)",
           abs(np.trapezoid(xi, lam) - vf.sum()) <= 2 * (lam[1] - lam[0]) * n)
    devs = [dev[e] for e in epss]
    sanity(checks, "(1/π) arg det(I+K(λ+iε)) -> ξ away from eigenvalues as ε decreases",
           all(b < a for a, b in zip(devs, devs[1:], strict=False)) and devs[-1] < 0.5)

    # (b) infinite chain: ξ(λ + i0) exact, Birman–Krein with the transfer-matrix S, δ = arg det₂
    vi = np.array([-2.0, 0.0, 0.5, 0.0, 0.0, 3.0, -0.5])  # dyadic: exact for threshold_data
    td = threshold_data([str(x) for x in vi])
    # offset off the dyadic grid: an exactly zero pivot of a leading block (e.g. λ = -0.5,
    # where w(λ) = 0.5 cancels a site) is not an eigenvalue but stops the pivot recursion
    lam_b = np.linspace(-3.0, 7.0, ctx.pick(quick=401, full=1201)) + 1.234e-3
    lam_b = lam_b[(np.abs(lam_b) > 1e-9) & (np.abs(lam_b - 4) > 1e-9)]
    xi_inf = np.array([spectral_shift(vi, la, chain="infinite") for la in
                       ctx.progress(lam_b, "ξ(λ+i0), infinite chain")])
    band = (lam_b > 0) & (lam_b < 4)
    S = scattering_matrix(vi, lam_b[band])
    det_s = np.linalg.det(S)
    bk_err = float(np.max(np.abs(det_s - np.exp(-2j * np.pi * xi_inf[band]))))
    delta = np.asarray(scattering_phase(vi, lam_b[band]))
    sanity(checks, "Birman–Krein: |det S(λ) - exp(-2πiξ(λ))| < 1e-9 on the band", bk_err < 1e-9)
    sanity(checks, "S(λ) unitary on the band", np.allclose(
        np.einsum("kij,kil->kjl", S.conj(), S), np.eye(2)[None], atol=1e-9))
    lo, hi = 1e-10, 4 - 1e-10
    xi0 = spectral_shift(vi, lo, chain="infinite")
    xi4 = spectral_shift(vi, hi, chain="infinite")
    g0, g4 = (0 if td["resonant_0"] else 1), (0 if td["resonant_4"] else 1)
    lev_pred = td["N_minus"] + td["N_plus"] - (g0 + g4) / 2
    sanity(checks, "Levinson: ξ(4-) - ξ(0+) = N₋ + N₊ - (g₀ + g₄)/2 (to 1e-3)",
           abs((xi4 - xi0) - lev_pred) < 1e-3)
    sanity(checks, "all curves finite", all(np.all(np.isfinite(a)) for a in
                                            [xi_inf, delta, det_s, *argdet.values()]))

    fig, axes = new_figure(2)
    ax = axes[0, 0]
    ax.step(lam, xi, where="post", color="k", lw=1.5, label=r"$\xi=N_{H_0}-N_H$")
    for k, eps in enumerate(epss):
        ax.plot(lam, argdet[eps], color=f"C{k}", lw=0.9,
                label=rf"$\pi^{{-1}}\arg\det(I+K(\lambda+i{eps:g}))$")
    ax.set_xlabel(r"$\lambda$")
    ax.set_title(rf"(a) finite chain, $N={n}$: staircase and $\varepsilon\downarrow0$")
    ax.legend(loc="lower left", fontsize=5.5)
    ax = axes[0, 1]
    ax.plot(lam_b, xi_inf, "k-", lw=1.5, label=r"$\xi(\lambda)=\pi^{-1}\arg D(\lambda+i0)$")
    lb = lam_b[band]
    bk = -np.unwrap(np.angle(det_s)) / (2 * np.pi)
    bk += np.round(xi_inf[band][0] - bk[0])
    ax.plot(lb[::6], bk[::6], "o", ms=2.5, mfc="none", color="C2",
            label=r"$-\frac{1}{2\pi}\arg\det S(\lambda)$ (transfer matrices)")
    ax.plot(lb, delta / np.pi, color="C3", lw=1.0,
            label=r"$\delta/\pi=\pi^{-1}\arg\det{}_2(I+K(\lambda+i0))$")
    for t in (0, 4):
        ax.axvline(t, color="0.5", lw=0.6, ls=":")
    ax.set_ylim(-2.2, 2.2)
    ax.set_xlabel(r"$\lambda$")
    ax.set_title(rf"(b) $\mathbb{{Z}}$, $N_-={td['N_minus']}$, $N_+={td['N_plus']}$: "
                 rf"$\xi(4^-)-\xi(0^+)={xi4 - xi0:.3f}$", fontsize=7)
    ax.legend(loc="lower left", fontsize=5.5)
    numbers = {
        "epsmin": float(epss[-1]),
        "maxdev": dev[epss[-1]],
        "nbound": int(td["N_minus"] + td["N_plus"]),
        "nminus": int(td["N_minus"]),
        "nplus": int(td["N_plus"]),
        "levinson": f"{xi4 - xi0:.5f}",
        "levinsonpred": float(lev_pred),
        "bkerr": bk_err,
        "nsites": n,
    }
    caption = (
        r"(a) Spectral shift of a finite Dirichlet chain ($N=" + str(n) + r"$ sites, random "
        r"$V$ with one deep well and one high barrier) as the eigenvalue staircase "
        r"$N_{H_0}-N_H$ (Sturm counts), against $\pi^{-1}\arg\det(I+K(\lambda+i\varepsilon))$ "
        r"(continuous branch from the pivots) for decreasing $\varepsilon$. (b) Infinite chain "
        r"with $V$ on 7 sites: $\xi(\lambda)$ from the exact boundary values "
        r"$\det(I+K(\lambda+i0))$, the Birman--Krein phase $-\frac{1}{2\pi}\arg\det S$ from an "
        r"independent transfer-matrix $S$, and the seeds' phase "
        r"$\delta=\arg\det_2(I+K(\lambda+i0))=\pi\xi-\operatorname{Im}\operatorname{tr}K$, "
        r"which diverges at the thresholds. Levinson's count $N_-+N_+-(g_0+g_4)/2$ is "
        r"$\xi(4^-)-\xi(0^+)$."
    )
    data = {"dev": dev, "threshold_data": td, "xi0": xi0, "xi4": xi4}
    return FigureResult(fig, caption, "bk figures --only 3", checks, numbers, data)


# --------------------------------------------------------------------------------------
# Figure 4: Mourre constant of the discrete Laplacian over energy intervals
# --------------------------------------------------------------------------------------


@register_figure(4, "mourre", "Mourre estimate for the discrete Laplacian")
def figure_mourre(ctx: FigureContext) -> FigureResult:
    """Figure 4: the Mourre constant of the discrete Laplacian over energy intervals."""
    import numpy as np

    from bkmath.mourre import mourre_constant

    sizes = ctx.pick(quick=(101, 201, 401), full=(201, 401, 801))
    width = 0.2
    centres = np.linspace(-0.3, 4.3, ctx.pick(quick=24, full=70))
    x = np.arange(-3, 4, dtype=float)
    potentials = {"V = 0": None, "V ≠ 0": -1.5 * np.exp(-(x**2) / 2)}
    rows: dict[str, dict[str, list[float]]] = {}
    checks: dict[str, bool] = {}
    jobs = [(label, lam) for label in potentials for lam in centres]
    estimates: dict[str, list[Any]] = {label: [] for label in potentials}
    for label, lam in ctx.progress(jobs, "Mourre intervals"):
        est = mourre_constant("lattice", (lam - width / 2, lam + width / 2),
                              v=potentials[label], sizes=sizes)
        estimates[label].append(est)
    for label, ests in estimates.items():
        last = [e.sizes[-1] for e in ests]
        rows[label] = {
            "centre": centres.tolist(),
            "c_exact": [e.c if math.isfinite(e.c) else float("nan") for e in ests],
            "c_hat": [s.c_hat if math.isfinite(s.c_hat) else float("nan") for s in last],
            "holds": [e.holds for e in ests],
            "stable": [e.stable for e in ests],
            # eigenvalues of E_I M_n E_I below c, and what the compact part accounts for
            "below": [[s.count_below for s in e.sizes] for e in ests],
            "accounted": [[s.compact_rank + s.discrete_in_interval for s in e.sizes]
                          for e in ests],
            "compact_rank": [[s.compact_rank for s in e.sizes] for e in ests],
        }
    interior = (centres - width / 2 > 1e-9) & (centres + width / 2 < 4 - 1e-9)
    at_threshold = ((centres - width / 2 <= 0) & (centres + width / 2 >= 0)) | (
        (centres - width / 2 <= 4) & (centres + width / 2 >= 4)
    )
    for label, r in rows.items():
        c_exact = np.array(r["c_exact"])
        c_hat = np.array(r["c_hat"])
        below, accounted = np.array(r["below"]), np.array(r["accounted"])
        sanity(checks, f"{label}: c > 0 on every interval inside (0, 4)",
               np.all(c_exact[interior] > 0))
        sanity(checks, f"{label}: inside (0, 4), eigenvalues below c are accounted for by "
               "the compact part on every section", np.all(below[interior] <= accounted[interior]))
        sanity(checks, f"{label}: rank of the compact part bounded (<= 12) on every section",
               np.all(np.array(r["compact_rank"]) <= 12))
        sanity(checks, f"{label}: c = 0 on every interval containing a threshold",
               np.all(c_exact[at_threshold] == 0))
        ok = np.isfinite(c_hat) & interior
        sanity(checks, f"{label}: measured c_hat >= exact c - 1e-8 inside (0, 4)",
               np.all(c_hat[ok] >= c_exact[ok] - 1e-8))
    # box-size stability for one interior interval, with and without the potential
    grow = ctx.pick(quick=(51, 101, 201, 401), full=(101, 201, 401, 801, 1601))
    stab = mourre_constant("lattice", (0.9, 1.1), v=potentials["V ≠ 0"],
                           sizes=grow)
    edge = np.array([s.edge_norm for s in stab.sizes])
    knorm = np.array([s.compact_norm for s in stab.sizes])
    naive = np.array([s.naive_diag_max for s in stab.sizes])
    sanity(checks, "naive edge term grows with the box (last/first >= n ratio / 2)",
           edge[-1] / edge[0] >= 0.5 * grow[-1] / grow[0])
    sanity(checks, "compact part bounded as the box grows (max/first <= 2)",
           knorm.max() <= 2 * knorm[0] + 1e-12)
    sanity(checks, "virial theorem: naive commutator has zero expectation (<= 1e-8)",
           np.all(naive <= 1e-8))
    sanity(checks, "all plotted values finite", np.all(np.isfinite(edge))
           and np.all(np.isfinite(knorm)))

    fig, axes = new_figure(2)
    ax = axes[0, 0]
    lam_fine = np.linspace(-0.3, 4.3, 600)
    f = np.clip(lam_fine, 0, 4) * (4 - np.clip(lam_fine, 0, 4))
    ax.plot(lam_fine, f, color="0.7", lw=0.8, label=r"$f(\lambda)=\lambda(4-\lambda)$")
    markers = {"V = 0": ("o", "C0"), "V ≠ 0": ("s", "C3")}
    for label, r in rows.items():
        m, col = markers[label]
        ax.plot(r["centre"], r["c_exact"], m + "-", color=col, ms=2.5, lw=0.8,
                label=f"exact $c(I)$, ${label}$")
        ax.plot(r["centre"], r["c_hat"], m, color=col, ms=5, mfc="none",
                label=rf"measured $\hat c$, ${label}$")
    for t in (0, 4):
        ax.axvline(t, color="k", ls=":", lw=0.8)
    ax.set_xlabel(rf"centre of $I$ ($|I| = {width:.1f}$)")
    ax.set_ylabel("Mourre constant")
    ax.set_title("(a) $c(I)$ and the measured constant; thresholds dotted")
    ax.set_ylim(-0.2, 5.6)
    ax.legend(loc="upper center", ncol=2, fontsize=6)
    ax = axes[0, 1]
    ax.loglog(grow, edge, "o-", label=r"naive edge term $\|i[H_n,A_n]-P_n[H,iA]P_n\|$")
    ax.loglog(grow, knorm, "s-", label=r"compact part $\|K_n\|$ (exact compression)")
    ax.loglog(grow, np.maximum(naive, 1e-17), "^-",
              label=r"naive $\max_j|\langle\varphi_j, i[H_n,A_n]\varphi_j\rangle|$ (virial)")
    ax.set_xticks(list(grow), [str(g) for g in grow])
    ax.minorticks_off()
    ax.set_xlabel("section size $n$")
    ax.set_title(r"(b) truncation, $I = [0.9, 1.1]$, $V \neq 0$")
    ax.legend()
    c_int = [c for c, ok in zip(rows["V = 0"]["c_exact"], interior, strict=True) if ok]
    numbers = {
        "cmin": min(c_int),
        "cmax": max(c_int),
        "nintervals": int(len(centres)),
        "ninterior": int(interior.sum()),
        "width": width,
        "nmax": int(sizes[-1]),
        "edgegrowth": float(edge[-1] / edge[0]),
        "knormmax": float(knorm.max()),
    }
    caption = (
        r"Mourre constant of $H=-\Delta+V$ on $\ell^2(\mathbb{Z})$ with the lattice dilation "
        r"generator $A$ (scale 1), for intervals $I$ of width "
        f"{width} swept across the spectrum. (a) The exact constant "
        r"$c(I)=\inf_{I\cap[0,4]}\lambda(4-\lambda)$ and the constant $\hat c$ measured from the "
        r"spectrum of $E_I P_n[H,iA]P_n E_I$ on the largest section after removing the compact "
        r"part (missing where the compact part exhausts $\operatorname{ran}E_I$), for $V=0$ and "
        r"$V(n)=-1.5\,e^{-n^2/2}$ on $|n|\le3$; $c$ vanishes on "
        r"intervals that contain the thresholds $0$ and $4$. (b) The naive truncated commutator "
        r"carries an edge term growing like $n$ and, by the virial theorem, vanishing "
        r"expectation in every eigenvector of $H_n$ (so it can never give $c>0$); the exact "
        r"compression has a compact part of bounded norm."
    )
    data = {"rows": rows, "grow": list(grow), "edge": edge, "knorm": knorm, "naive": naive}
    return FigureResult(fig, caption, "bk figures --only 4", checks, numbers, data)
