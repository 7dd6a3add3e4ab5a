"""Figures of the resolvent and the Birman–Schwinger operator (pure :mod:`bkmath`).

1. ``resolvent`` — the O(N) resolvent diagonal against the mpmath reference across N and η,
   and the overflow of the θ/φ continuant formula;
2. ``schatten`` — ‖K(z)‖_S2, ‖K(z)‖_S1 against the proved bounds and the seeds' bounds over
   Im z.
"""

from __future__ import annotations

import math
from typing import Any

from bkpaper.framework import (
    FigureContext,
    FigureResult,
    new_figure,
    register_figure,
    sanity,
    tex_number,
)

__all__ = ["figure_resolvent", "figure_schatten"]


# --------------------------------------------------------------------------------------
# Figure 1: the O(N) resolvent diagonal against mpmath; overflow of the θ/φ formula
# --------------------------------------------------------------------------------------


def _first_nonfinite_n(v: Any, z: complex, n_max: int) -> int | None:
    """Smallest n <= n_max at which the float64 θ/φ formula on v[:n] has a non-finite entry."""
    import numpy as np

    from bkmath import JacobiOperator
    from bkmath.reference import continuant_diagonal

    def bad(n: int) -> bool:
        return not np.all(np.isfinite(continuant_diagonal(JacobiOperator.free_plus(v[:n]), z)))

    if not bad(n_max):
        return None
    lo, hi = 1, n_max  # bad(hi) holds; find the first bad n (overflow is monotone in n here)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bad(mid):
            hi = mid
        else:
            lo = mid
    return hi


@register_figure(1, "resolvent", "The O(N) resolvent diagonal")
def figure_resolvent(ctx: FigureContext) -> FigureResult:
    """Figure 1: the O(N) resolvent diagonal against mpmath, and the overflow of θ/φ."""
    import mpmath
    import numpy as np

    from bkmath import JacobiOperator, resolvent_diagonal
    from bkmath.reference import continuant_diagonal, continuants_mp, resolvent_diagonal_mp

    eps = float(np.finfo(np.float64).eps)
    ns = ctx.pick(quick=[10, 30, 100, 300, 1000, 3000], full=[10, 30, 100, 300, 1000, 3000,
                                                             10000, 30000])
    etas = ctx.pick(quick=[1.0, 1e-2, 1e-4], full=[1.0, 1e-2, 1e-4, 1e-6])
    lam, dps = 0.7, 40
    rng = np.random.default_rng(20261124)
    v = rng.uniform(-1.0, 1.0, max(ns))  # one random potential, prefixes of it
    err_fast = {eta: [] for eta in etas}
    err_cont = {eta: [] for eta in etas}
    jobs = [(eta, n) for eta in etas for n in ns]
    for eta, n in ctx.progress(jobs, "mpmath reference"):
        H = JacobiOperator.free_plus(v[:n])
        z = complex(lam, eta)
        ref = resolvent_diagonal_mp(H, z, dps=dps)
        fast = resolvent_diagonal(H, z)
        cont = continuant_diagonal(H, z)
        err_fast[eta].append(float(np.max(np.abs(fast - ref) / np.abs(ref))))
        with np.errstate(all="ignore"):
            e = np.abs(cont - ref) / np.abs(ref)
        err_cont[eta].append(float(np.max(e)) if np.all(np.isfinite(e)) else math.inf)
    # overflow of θ_N: exact magnitude (mpmath) against the float64 range
    n_growth = ctx.pick(quick=1500, full=4000)
    zs = [complex(0.7, 1.0), complex(-3.0, 0.01), complex(8.0, 0.01), complex(0.7, 0.01)]
    growth: dict[str, list[float]] = {}
    overflow_n: dict[str, int | None] = {}
    log_max = math.log10(np.finfo(np.float64).max)
    for z in ctx.progress(zs, "continuant growth"):
        theta, _ = continuants_mp(JacobiOperator.free_plus(v[:n_growth]), z, dps=30)
        growth[str(z)] = [float(mpmath.log10(abs(t))) for t in theta]
        overflow_n[str(z)] = _first_nonfinite_n(v, z, n_growth)

    checks: dict[str, bool] = {}
    all_fast = np.array([err_fast[eta] for eta in etas])
    sanity(checks, "fast O(N) diagonal finite and within 1e-8 of mpmath everywhere",
           np.all(np.isfinite(all_fast)) and all_fast.max() < 1e-8)
    sanity(checks, "error of the fast diagonal above rounding (>= eps/2) somewhere",
           all_fast.max() >= eps / 2)
    for z in zs:
        g = np.array(growth[str(z)])
        nf = overflow_n[str(z)]
        # θ_n overflows float64 exactly when |θ_n| > DBL_MAX (allow the rounding of log10 and
        # the intermediate products α θ of the recurrence: one site either way)
        first_big = next((i for i, x in enumerate(g) if x > log_max), None)
        consistent = (nf is None and first_big is None) or (
            nf is not None and first_big is not None and abs(nf - first_big) <= 2
        )
        sanity(checks, f"float64 θ/φ formula fails exactly where |θ_n| > DBL_MAX (z={z})",
               consistent)
    sanity(checks, "the θ/φ formula overflows for some z in range",
           any(nf is not None for nf in overflow_n.values()))

    fig, axes = new_figure(2)
    ax = axes[0, 0]
    for k, eta in enumerate(etas):
        ax.loglog(ns, err_fast[eta], "o-", color=f"C{k}", ms=3,
                  label=rf"$O(N)$ ratios, $\eta=10^{{{round(math.log10(eta))}}}$")
        ec = np.array(err_cont[eta])
        fin = np.isfinite(ec)
        ax.loglog(np.array(ns)[fin], ec[fin], "--", color=f"C{k}", lw=0.8)
        if (~fin).any():
            # offset per η so that coinciding markers stay visible
            ax.loglog(np.array(ns)[~fin], np.full((~fin).sum(), 4.0**k), "x", color=f"C{k}",
                      ms=6)
    ax.axhline(eps, color="k", lw=0.6, ls=":")
    ax.text(ns[0], eps * 1.5, r"$\varepsilon_{64}$", fontsize=7)
    ax.plot([], [], "k--", lw=0.8, label=r"$\theta/\varphi$ formula (× = inf/nan)")
    ax.set_xlabel("chain length $N$")
    ax.set_ylabel(r"max relative error vs mpmath")
    ax.set_title(rf"(a) accuracy at $z = {lam} + i\eta$, random $V\in[-1,1]$")
    ax.legend(loc="center right")
    ax = axes[0, 1]
    for k, z in enumerate(zs):
        g = growth[str(z)]
        col = ("C4", "C5", "C6", "C9")[k]
        ax.plot(np.arange(len(g)), g, color=col,
                label=rf"$z = {z.real:g}{z.imag:+g}i$")
        nf = overflow_n[str(z)]
        if nf is not None:
            ax.plot([nf], [g[nf]], "x", color=col, ms=7)
    ax.axhline(log_max, color="k", lw=0.8, ls=":")
    ax.text(5, log_max * 1.04, "float64 max", fontsize=7)
    ax.set_xlabel("$n$")
    ax.set_ylabel(r"$\log_{10}|\theta_n|$ (mpmath)")
    ax.set_title(r"(b) continuant growth; × = first non-finite float64 $G_{ii}$")
    ax.legend(loc="upper left")
    finite_over = [n for n in overflow_n.values() if n is not None]
    z_first = min((z for z in zs if overflow_n[str(z)] is not None),
                  key=lambda z: overflow_n[str(z)])
    numbers = {
        "maxerr": float(all_fast.max()),
        "nmax": int(max(ns)),
        "etamin": float(min(etas)),
        "overflowN": int(min(finite_over)),
        "overflowZ": rf"{z_first.real:g}{z_first.imag:+g}i",
        "dps": dps,
    }
    caption = (
        r"(a) Largest relative error of the $O(N)$ ratio recursion "
        r"(\texttt{bkmath.resolvent\_diagonal}) against the mpmath continuant reference "
        f"(\\texttt{{dps={dps}}}) for $H=-\\Delta+V$ with one random $V$ (uniform on $[-1,1]$, "
        r"prefixes of length $N$), and of the float64 $\theta/\varphi$ formula (dashed; $\times$: "
        r"inf/nan entries). (b) The exact magnitude of the continuant $\theta_n$: the float64 "
        r"formula fails exactly where $|\theta_n|$ leaves the float64 range."
    )
    data = {"ns": ns, "etas": etas, "err_fast": err_fast, "err_cont": err_cont,
            "overflow_n": overflow_n}
    return FigureResult(fig, caption, "bk figures --only 1", checks, numbers, data)


# --------------------------------------------------------------------------------------
# Figure 2: Schatten norms of K(z) against the proved and the seeds' bounds
# --------------------------------------------------------------------------------------


def _shade_true(ax: Any, x: Any, mask: Any, color: str, label: str | None) -> None:
    """Shade the x-ranges where ``mask`` holds (between neighbouring grid points)."""
    import numpy as np

    x = np.asarray(x)
    first = True
    i = 0
    while i < len(x):
        if mask[i]:
            j = i
            while j + 1 < len(x) and mask[j + 1]:
                j += 1
            lo = np.sqrt(x[i - 1] * x[i]) if i > 0 else x[i]
            hi = np.sqrt(x[j] * x[j + 1]) if j + 1 < len(x) else x[j]
            ax.axvspan(lo, hi, color=color, alpha=0.12, lw=0, label=label if first else None)
            first = False
            i = j + 1
        else:
            i += 1


@register_figure(2, "schatten", "Schatten norms of the Birman–Schwinger operator")
def figure_schatten(ctx: FigureContext) -> FigureResult:
    """Figure 2: ‖K(z)‖_S2 and ‖K(z)‖_S1 against the proved and the seeds' bounds."""
    import numpy as np

    from bkmath.bs_operator import birman_schwinger
    from bkmath.schatten import s1_bound, s2_bound, schatten_norm, seed_s1_bound, seed_s2_bound

    lam = 2.0
    width = ctx.pick(quick=30, full=60)
    v = np.ones(width)  # a barrier: attains the sharp S2 constant as the width grows
    etas = np.logspace(-3, 2, ctx.pick(quick=31, full=81))
    rows: dict[str, list[float]] = {k: [] for k in ("s2", "s1", "b2", "b1", "seed2", "seed1")}
    for eta in ctx.progress(etas, "Im z"):
        z = complex(lam, eta)
        K = birman_schwinger(v, z)
        rows["s2"].append(schatten_norm(K, 2))
        rows["s1"].append(schatten_norm(K, 1))
        rows["b2"].append(s2_bound(v, z))
        rows["b1"].append(s1_bound(v, z))
        rows["seed2"].append(seed_s2_bound(v, z))
        rows["seed1"].append(seed_s1_bound(v, z))
    r = {k: np.array(x) for k, x in rows.items()}
    checks: dict[str, bool] = {}
    sanity(checks, "all norms and bounds finite and positive",
           all(np.all(np.isfinite(x) & (x > 0)) for x in r.values()))
    # proved bounds: hold up to rounding of the SVD / quadrature (relative 1e-9)
    sanity(checks, "‖K‖_S2 <= proved S2 bound at every Im z",
           np.all(r["s2"] <= r["b2"] * (1 + 1e-9)))
    sanity(checks, "‖K‖_S1 <= proved S1 bound at every Im z",
           np.all(r["s1"] <= r["b1"] * (1 + 1e-9)))
    sanity(checks, "‖K‖_S2 <= ‖K‖_S1 (trace norm dominates)",
           np.all(r["s2"] <= r["s1"] * (1 + 1e-12)))
    viol2 = r["s2"] > r["seed2"]
    viol1 = r["s1"] > r["seed1"]

    fig, axes = new_figure(2)
    for ax, p, key, b, seed, viol in (
        (axes[0, 0], 2, "s2", "b2", "seed2", viol2),
        (axes[0, 1], 1, "s1", "b1", "seed1", viol1),
    ):
        ax.loglog(etas, r[key], "k-", lw=1.6, label=rf"$\|K(z)\|_{{\mathcal{{S}}_{p}}}$")
        ax.loglog(etas, r[b], "C0--", label="proved bound")
        ax.loglog(etas, r[seed], "C3:", lw=1.4, label="seeds' bound (as stated)")
        _shade_true(ax, etas, viol, "C3", "seeds' bound violated")
        ax.set_xlabel(r"$\eta = \operatorname{Im} z$")
        ax.legend(loc="lower left" if p == 2 else "upper right")
    axes[0, 0].set_title(r"(a) Hilbert–Schmidt: proved $\|V\|_2(\operatorname{Im}G_0/\eta)^{1/2}$,"
                         r" seeds $\frac{1}{2}\eta^{-1/2}\|V\|_2$", fontsize=7)
    axes[0, 1].set_title(r"(b) trace norm: proved $\|V\|_1 c_1(z)$, seeds $\frac{1}{2}\eta^{-1}"
                         r"\|V\|_1$", fontsize=7)

    def first_last(mask: Any) -> str:
        if not mask.any():
            return "none"
        return (rf"{tex_number(etas[mask].min(), 2)}\le\eta\le"
                rf"{tex_number(etas[mask].max(), 2)}")

    numbers = {
        "s2ratio": f"{np.max(r['s2'] / r['b2']):.6f}",
        "s1ratio": f"{np.max(r['s1'] / r['b1']):.6f}",
        "seeds2viol": int(viol2.sum()),
        "seeds1viol": int(viol1.sum()),
        "npoints": int(len(etas)),
        "seeds2range": first_last(viol2),
        "seeds1range": first_last(viol1),
        "seeds2maxratio": float(np.max(r["s2"] / r["seed2"])),
        "seeds1maxratio": float(np.max(r["s1"] / r["seed1"])),
        "width": width,
        "lam": lam,
    }
    caption = (
        r"Schatten norms of $K(z)=|V|^{1/2}UR_0(z)|V|^{1/2}$ for the lattice Laplacian and a "
        f"barrier $V=1$ on {width} sites, at $z={lam:g}+i\\eta$ (mid-band), computed from the "
        r"singular values, against the bounds proved in \texttt{bkmath.schatten} (dashed) and "
        r"the seeds' bounds as stated (dotted). Shaded: values of $\eta$ where the seeds' bound "
        r"is violated by the computed norm."
    )
    data = {"etas": etas, **rows}
    return FigureResult(fig, caption, "bk figures --only 2", checks, numbers, data)
