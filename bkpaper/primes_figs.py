"""Figures of the prime-bump potential and Weil's explicit formula (pure :mod:`bkmath`).

5. ``primes`` — the prime-bump potential and the explicit-formula check against the number
   of ζ zeros used.
"""

from __future__ import annotations

import math

from bkpaper.framework import FigureContext, FigureResult, new_figure, register_figure, sanity

__all__ = ["figure_primes"]


# --------------------------------------------------------------------------------------
# Figure 5: prime-bump potential and the explicit formula
# --------------------------------------------------------------------------------------


@register_figure(5, "primes", "Prime bumps and the explicit formula")
def figure_primes(ctx: FigureContext) -> FigureResult:
    """Figure 5: the prime-bump potential and both sides of the explicit formula."""
    import mpmath
    import numpy as np

    from bkmath.primes import (
        GaussianTestFunction,
        explicit_formula,
        explicit_formula_float64,
        prime_bump_potential,
        von_mangoldt_table,
        zeta_zeros,
    )

    checks: dict[str, bool] = {}
    x = np.linspace(0.0, 4.0, 3000)
    eps_list = [0.02, 0.1]
    pots = {eps: prime_bump_potential(x, eps) for eps in eps_list}
    sanity(checks, "V_ε finite and >= 0",
           all(np.all(np.isfinite(p)) and np.all(p >= 0) for p in pots.values()))
    ns, lam_n = von_mangoldt_table(int(math.exp(4.0)) + 1)

    # h is centred at r = ±γ0, so the zero sum needs the zeros up to about γ0 + 8/σ
    sigma, gamma0 = ctx.pick(quick=(0.3, 20.0), full=(0.25, 30.0))
    k_max = ctx.pick(quick=16, full=30)
    dps = 25
    ef = explicit_formula(sigma, gamma0=gamma0, n_zeros=k_max, dps=dps)
    seed = explicit_formula(sigma, gamma0=gamma0, n_zeros=k_max, dps=dps,
                            variant="seed_centres")
    f64 = explicit_formula_float64(sigma, gamma0=gamma0, n_zeros=k_max)
    test = GaussianTestFunction(sigma, gamma0)
    zeros = zeta_zeros(k_max, dps)
    with mpmath.workdps(dps):
        terms = [2 * test.h(g) for g in zeros]
        partial = [float(mpmath.fsum(terms[:k])) for k in range(1, k_max + 1)]
        # lhs_K - rhs = (lhs_Kmax - rhs) - (zeros K+1..Kmax), the bracket in mpmath: the
        # residual is resolved below float64 rounding of the O(1) sides
        resid = np.array([abs(ef.residual - float(mpmath.fsum(terms[k:])))
                          for k in range(1, k_max + 1)])
    ks = np.arange(1, k_max + 1)
    k_tail = sorted({1, 2, 4, 8, 16, k_max} & set(ks.tolist()))
    tails = {}
    for k in ctx.progress(k_tail, "zero-tail bounds"):
        e = explicit_formula(sigma, gamma0=gamma0, n_zeros=int(k), dps=dps)
        tails[int(k)] = (e.zero_tail, abs(e.residual))
    tol = 10.0 ** (3 - dps) * ef.scale  # rounding at the working precision, 1000 ulps
    sanity(checks, "partial zero sum at K_max equals the formula's left side",
           abs(partial[-1] - ef.lhs) <= tol)
    sanity(checks, "|lhs - rhs| <= zero tail + prime tail (+ rounding) at every K checked",
           all(r <= t + ef.prime_tail + tol for t, r in tails.values()))
    sanity(checks, "float64 evaluation agrees with mpmath (1e-9 relative to the terms)",
           abs(f64.rhs - ef.rhs) <= 1e-9 * ef.scale and abs(f64.lhs - ef.lhs) <= 1e-9 * ef.scale)
    sanity(checks, "negative control: the seeds' bump centres break the formula",
           abs(seed.residual) > 1e6 * (abs(ef.residual) + ef.zero_tail + ef.prime_tail + tol))

    fig, axes = new_figure(3, width=7.2, height=2.5)
    ax = axes[0, 0]
    for eps, v in pots.items():
        ax.plot(x, v, lw=0.9, label=rf"$V_\varepsilon$, $\varepsilon={eps:g}$")
    pk = ns[(ns <= math.exp(4.0))]
    ax.plot(np.log(pk), np.zeros_like(pk, dtype=float), "k|", ms=6, label=r"$\log n$, $n=p^k$")
    ax.set_xlabel("$x$")
    ax.set_title(r"(a) $V_\varepsilon=\sum\Lambda(n)n^{-1/2}\psi_\varepsilon(x-\log n)$")
    ax.legend(loc="upper left")
    ax = axes[0, 1]
    ax.plot(ks, partial, "o-", ms=2, color="k",
            label=r"$\sum_{|\gamma|\leq\gamma_K}h(\gamma)$")
    ax.axhline(ef.rhs, color="C0", lw=1.2, label="right side (Weil)")
    ax.axhline(seed.rhs, color="C3", ls="--", lw=1.0, label="right side, seeds' centres")
    ax.set_xlabel("number of zeros $K$")
    ax.set_title(rf"(b) both sides, $\sigma={sigma:g}$, $\gamma_0={gamma0:g}$")
    ax.legend(loc="lower right")
    ax = axes[0, 2]
    floor = 1e-32
    ax.semilogy(ks, np.maximum(resid, floor), "o-", ms=2, color="k", label="|lhs - rhs|")
    ax.semilogy(list(tails), [max(t, floor) for t, _ in tails.values()], "s", mfc="none",
                color="C1", label="proved zero-tail bound")
    ax.axhline(abs(seed.residual), color="C3", ls="--", lw=1.0, label="seeds' centres")
    ax.set_ylim(floor / 10, None)
    ax.set_xlabel("number of zeros $K$")
    ax.set_title(rf"(c) residual (mpmath, dps={dps})")
    ax.legend(loc="lower left")
    numbers = {
        "nzeros": int(k_max),
        "residual": abs(ef.residual),
        "sigma": sigma,
        "gammazero": gamma0,
        "gammamax": float(ef.gamma_max),
        "seedresidual": abs(seed.residual),
        "float64diff": abs(f64.rhs - ef.rhs),
        "nmax": int(ef.n_max),
        "dps": dps,
    }
    caption = (
        r"(a) The prime-bump potential $V_\varepsilon$ (bump of $p^k$ at $k\log p$, weight "
        r"$\log p\,p^{-k/2}$) for two widths. (b) The two sides of Weil's explicit formula for "
        r"the test function $h(r)\propto e^{-\sigma^2(r\mp\gamma_0)^2/2}$, the sum over zeros "
        r"truncated at the $K$-th zero "
        r"(\texttt{mpmath.zetazero}), with all pole and archimedean terms; the dashed line uses "
        r"the seeds' placement of every $p^k$ at $\log p$. (c) The residual against $K$, with "
        r"the proved bound on the omitted zeros; the plateau is the working precision."
    )
    data = {"ks": ks, "partial": partial, "rhs": ef.rhs, "seed_rhs": seed.rhs,
            "tails": tails, "terms": ef.to_dict()}
    return FigureResult(fig, caption, "bk figures --only 5", checks, numbers, data)
