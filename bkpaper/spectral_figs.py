"""Figures of spectral measures: Clark measures of rank-one perturbations and the half-line
m-function (pure :mod:`bkmath`).

11. ``spectral`` — (a) the Clark measures μ_α of ``H_α = −Δ + V + α⟨δ_s, ·⟩δ_s`` on Z for
    several α: the absolutely continuous density ``Im F_α(λ + i0)/π`` on the band [0, 4] and
    the point masses (stems) at the eigenvalues, of weight ``1/(α²F'(E))``;
    (b) the spectral measure of δ_1 for a half-line Jacobi operator (density
    ``Im m(λ + i0)/π`` and its Sturm-located eigenvalue) against the eigenvector weights
    ``φ_k(1)²`` of an N × N truncation (divided by the node spacing, so that they sample the
    density; the weight of the eigenvalue outside the band is drawn as a stem).
"""

from __future__ import annotations

from bkpaper.framework import FigureContext, FigureResult, new_figure, register_figure, sanity

__all__ = ["figure_spectral"]


@register_figure(11, "spectral", "Clark measures and the half-line spectral measure")
def figure_spectral(ctx: FigureContext) -> FigureResult:
    """Figure 11: Clark measures μ_α for several α; m-function measure vs truncations."""
    import numpy as np

    from bkmath.clark import borel_derivative, clark_borel, clark_measures
    from bkmath.mfunction import half_line_measure, m_function, truncation_measure

    checks: dict[str, bool] = {}
    lam = np.linspace(0.0, 4.0, ctx.pick(quick=401, full=2001))[1:-1]  # open band

    # (a) Clark measures: v on the sites 0..3, rank-one perturbation at s = 1
    v, site = np.array([0.5, -2.0, 0.0, 1.5]), 1
    alphas = [-2.0, -0.5, 0.0, 1.0, 3.0]
    ms = clark_measures(v, alphas, site=site)
    dens = {a: m.density(lam) for a, m in zip(alphas, ms, strict=True)}
    mass_err, w_err = 0.0, 0.0
    for a, m in zip(alphas, ms, strict=True):
        mass_err = max(mass_err, abs(m.mass(n=4096) - 1.0))
        if a != 0 and m.points.size:
            Fp = np.asarray(borel_derivative(v, m.points, site=site, boundary=True)).real
            w_err = max(w_err, float(np.max(np.abs(1 / (a * a * Fp) - m.weights))))
    sanity(checks, "Clark: every μ_α is a probability measure (|μ_α(R) − 1| < 1e-10)",
           mass_err < 1e-10)
    sanity(checks, "Clark: point masses (Sturm, eigenvectors) = 1/(α²F'(E)) within 1e-10",
           w_err < 1e-10)
    sanity(checks, "Clark: densities finite and >= 0 on the band",
           all(np.all(np.isfinite(d)) and np.all(d >= 0) for d in dens.values()))
    zh = 2.0 + 1.0j
    herg = max(abs(m.borel(zh, n=4096) - clark_borel(v, a, zh, site=site)) / abs(
        clark_borel(v, a, zh, site=site)) for a, m in zip(alphas, ms, strict=True))
    sanity(checks, "Clark: ∫dμ_α/(λ − z) = F_α(z) at z = 2 + i (rel. err < 1e-10)",
           herg < 1e-10)

    # (b) half-line Jacobi operator with a free tail: μ against truncation weights
    a_hl = np.array([-1.0, 1.5, 3.0, 2.0])  # eigenvalues on both sides of the band
    b_hl = np.array([-1.2, -0.8, -1.0, -1.0])
    mu = half_line_measure(a_hl, b_hl)
    N = ctx.pick(quick=80, full=400)
    lk, wk = truncation_measure(a_hl, b_hl, n=N)
    inside = (lk > 0) & (lk < 4)
    li, wi = lk[inside], wk[inside]
    spacing = np.gradient(li)  # (λ_{k+1} − λ_{k−1})/2
    rho_k = wi / spacing
    rho_ref = mu.density(li)
    # the Gauss quadrature is exact to degree 2N − 1: compare the first moments
    mom_err = 0.0
    for j in range(7):
        exact = float(np.real(mu.integrate(lambda x, j=j: x ** j, n=8192)))
        mom_err = max(mom_err, abs(float(np.sum(wk * lk ** j)) - exact) / max(1.0, abs(exact)))
    sanity(checks, "m-function: truncation moments 0..6 = those of μ (rel. err < 1e-10)",
           mom_err < 1e-10)
    out = ~inside
    pt_err = (float(np.max(np.abs(np.sort(lk[out]) - mu.points))
                    + np.max(np.abs(wk[out][np.argsort(lk[out])] - mu.weights)))
              if out.sum() == mu.points.size and mu.points.size else np.inf)
    sanity(checks, "m-function: the truncation's eigenvalue outside the band and its weight "
                   "equal the Sturm point mass (< 1e-10)", pt_err < 1e-10)
    # Markov–Stieltjes: the partial sums of the Gauss weights bracket the distribution
    # function, Σ_{j<k} w_j ≤ μ((−∞, λ_k)) ≤ Σ_{j≤k} w_j; μ((−∞, λ)) from the point masses and
    # Gauss–Legendre in θ (λ = c − r cos θ) on [0, θ(λ)], where the integrand is smooth
    c, r = (mu.band[0] + mu.band[1]) / 2, (mu.band[1] - mu.band[0]) / 2
    th_k = np.arccos(np.clip((c - lk) / r, -1.0, 1.0))  # 0 below the band, π above
    x, gw = np.polynomial.legendre.leggauss(1000)
    th = th_k[:, None] * (x[None, :] + 1) / 2
    ac = (th_k / 2) * np.sum(gw * mu.density(c - r * np.cos(th)) * r * np.sin(th), axis=1)
    cdf = ac + np.array([float(np.sum(mu.weights[mu.points < e])) for e in lk])
    part = np.cumsum(wk)
    ms_gap = float(np.min(np.minimum(cdf - (part - wk), part - cdf)))
    sanity(checks, "m-function: Markov–Stieltjes Σ_{j<k} w_j ≤ μ((−∞, λ_k)) ≤ Σ_{j≤k} w_j "
                   "(slack 1e-9)", ms_gap > -1e-9)
    mid = (li > 0.2) & (li < 3.8)
    dens_err = float(np.max(np.abs(rho_k[mid] - rho_ref[mid])) / np.max(rho_ref))
    m_err = abs(mu.borel(zh, n=4096) - m_function(zh, a_hl, b_hl)) / abs(
        m_function(zh, a_hl, b_hl))
    sanity(checks, "m-function: ∫dμ/(λ − z) = m(z) at z = 2 + i (rel. err < 1e-10)",
           m_err < 1e-10)

    fig, axes = new_figure(2)
    ax = axes[0, 0]
    for c, (a, m) in enumerate(zip(alphas, ms, strict=True)):
        ax.plot(lam, dens[a], color=f"C{c}", lw=1.1, label=rf"$\alpha={a:g}$")
        if m.points.size:
            ax.vlines(m.points, 0, m.weights, color=f"C{c}", lw=1.0)
            ax.plot(m.points, m.weights, "o", color=f"C{c}", ms=3)
    ax.axvspan(0, 4, color="0.9", zorder=-1, lw=0)
    ax.set_xlabel(r"$\lambda$")
    ax.set_ylabel(r"$\mathrm{Im}\,F_\alpha(\lambda+i0)/\pi$; point masses")
    ax.set_title(rf"(a) Clark measures, $V=({', '.join(f'{x:g}' for x in v)})$, $s={site}$",
                 fontsize=8)
    ax.legend(loc="upper center", fontsize=6)
    ax = axes[0, 1]
    lam_b = np.linspace(mu.band[0], mu.band[1], lam.size + 2)[1:-1]
    ax.plot(lam_b, mu.density(lam_b), "k-", lw=1.3, label=r"$\mathrm{Im}\,m(\lambda+i0)/\pi$")
    ax.plot(li, rho_k, "C3.", ms=2.5, label=rf"$\varphi_k(1)^2/\Delta\lambda_k$, $N={N}$")
    if mu.points.size:
        ax.vlines(mu.points, 0, mu.weights, color="k", lw=1.3)
        ax.plot(mu.points, mu.weights, "ko", ms=4, mfc="none", label="point mass (Sturm)")
        ax.plot(lk[out], wk[out], "C3x", ms=4, label=r"$\varphi_k(1)^2$ off the band")
    ax.axvspan(*mu.band, color="0.9", zorder=-1, lw=0)
    ax.set_xlabel(r"$\lambda$")
    ax.set_title("(b) half line: m-function measure vs truncation", fontsize=8)
    ax.legend(loc="upper right", fontsize=6)
    numbers = {
        "clarkmasserr": float(mass_err),
        "clarkweighterr": float(w_err),
        "hlE": f"{float(mu.points[0]):.6f}" if mu.points.size else "none",
        "hlweight": f"{float(mu.weights[0]):.6f}" if mu.weights.size else "none",
        "hlpoints": int(mu.points.size),
        "truncN": int(N),
        "momerr": float(mom_err),
        "msgap": ms_gap,
    }
    caption = (
        r"(a) Clark measures $\mu_\alpha$ of $H_\alpha=-\Delta+V+\alpha\langle\delta_s,\cdot"
        r"\rangle\delta_s$ on $\mathbb Z$: the absolutely continuous density "
        r"$\mathrm{Im}\,F_\alpha(\lambda+i0)/\pi$, $F_\alpha=F/(1+\alpha F)$, on the band "
        r"$[0,4]$ (shaded) and the point masses at the eigenvalues (Sturm bisection; stems of "
        r"height $1/(\alpha^2F'(E))$). (b) Spectral measure of $\delta_1$ for a half-line "
        r"Jacobi operator with a free tail (density $\mathrm{Im}\,m(\lambda+i0)/\pi$ and its "
        r"eigenvalue) against the eigenvector weights $\varphi_k(1)^2$ of the $N\times N$ "
        r"truncation, the $N$-point Gauss quadrature of $\mu$ (inside the band divided by the "
        r"node spacing)."
    )
    data = {
        "clark": {str(a): {"points": m.points.tolist(), "weights": m.weights.tolist()}
                  for a, m in zip(alphas, ms, strict=True)},
        "half_line": {"a": a_hl.tolist(), "b": b_hl.tolist(), "points": mu.points.tolist(),
                      "weights": mu.weights.tolist(), "N": int(N),
                      "max |weights/spacing − density| / max density (λ in [0.2, 3.8])":
                      dens_err, "min Markov–Stieltjes gap": ms_gap},
    }
    return FigureResult(fig, caption, "bk figures --only 11", checks, numbers, data)
