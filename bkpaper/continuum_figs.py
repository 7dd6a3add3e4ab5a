"""Figures of continuum scattering on the line and of Breit–Wigner resonances (pure
:mod:`bkmath`).

8. ``continuum`` — (a) the scattering phase δ(k) = arg t(k) of −d²/dx² + V for a generic
   step potential and a half-bound well, with Levinson's count δ(0+) = π(N_b − ½) resp. πN_b;
   (b) the lattice phase across a narrow resonance of a double barrier against its
   Breit–Wigner form and the remainder bound.
"""

from __future__ import annotations

from bkpaper.framework import FigureContext, FigureResult, new_figure, register_figure, sanity

__all__ = ["figure_continuum"]


@register_figure(8, "continuum", "Continuum scattering phase, Levinson, Breit–Wigner")
def figure_continuum(ctx: FigureContext) -> FigureResult:
    """Figure 8: δ(k) on the line with Levinson's count; Breit–Wigner fit on the lattice."""
    import numpy as np

    from bkmath.breit_wigner import (
        breit_wigner_bound,
        breit_wigner_phase,
        lattice_phase,
        narrow_resonance,
    )
    from bkmath.continuum import (
        StepPotential,
        levinson_count,
        line_bound_states,
        line_scattering_phase,
        step_potential,
    )

    checks: dict[str, bool] = {}
    k = np.geomspace(1e-4, 400.0, ctx.pick(quick=300, full=1500))
    pots = {"generic": step_potential([-1, 0, 0.5, 2], [-3, 5, -8]),
            "half-bound": StepPotential.well(-(2 * np.pi) ** 2, 0.0, 1.0)}
    phases, counts = {}, {}
    for name, p in pots.items():
        phases[name] = np.asarray(line_scattering_phase(k, p))
        counts[name] = (line_bound_states(p).size, levinson_count(p))
        sanity(checks, f"Levinson ({name}): |δ(0+)/π − prediction| < 1e-3",
               abs(float(line_scattering_phase(1e-8, p)) / np.pi - counts[name][1]) < 1e-3)
    sanity(checks, "δ(k) = −∫V/(2k) + O(k⁻²) at k = 400", all(
        abs(phases[n][-1] + float(np.sum(p.values * np.diff(p.edges))) / (2 * k[-1]))
        < 5 * (p.l1_norm / k[-1]) ** 2 for n, p in pots.items()))

    B = 16.0
    v = np.array([B, 0.0, 0.0, 0.0, B])
    r = narrow_resonance(v, near=2.0)
    lam = r.E + np.linspace(-8, 8, ctx.pick(quick=161, full=801)) * r.gamma / 2
    d = lattice_phase(v, lam)
    d0 = float(lattice_phase(v, r.E))
    bw = breit_wigner_phase(lam, r.E, r.gamma, d0)
    bnd = breit_wigner_bound(r, lam)
    err = np.abs(d - bw)
    sanity(checks, "Breit–Wigner remainder within its bound", bool(np.all(err <= bnd)))

    fig, axes = new_figure(2)
    ax = axes[0, 0]
    for c, (name, dd) in enumerate(phases.items()):
        nb, pred = counts[name]
        ax.semilogx(k, dd / np.pi, color=f"C{c}", lw=1.2,
                    label=rf"{name}: $N_b={nb}$, $\delta(0^+)/\pi={pred:g}$")
        ax.axhline(pred, color=f"C{c}", lw=0.6, ls=":")
    ax.set_xlabel(r"$k$")
    ax.set_ylabel(r"$\delta(k)/\pi$")
    ax.set_title(r"(a) line: $\delta=\arg t$, Levinson", fontsize=8)
    ax.legend(loc="upper right", fontsize=6)
    ax = axes[0, 1]
    ax.plot((lam - r.E) / r.gamma, d / np.pi, "k-", lw=1.4, label=r"$\delta(\lambda)$ (lattice)")
    ax.plot((lam - r.E) / r.gamma, bw / np.pi, "C3--", lw=1.0, label="Breit–Wigner")
    ax.fill_between((lam - r.E) / r.gamma, (bw - bnd) / np.pi, (bw + bnd) / np.pi, color="C3",
                    alpha=0.15, lw=0, label="remainder bound")
    ax.set_xlabel(r"$(\lambda-E_r)/\Gamma$")
    ax.set_title(rf"(b) $\mathbb{{Z}}$, $V=({B:g},0,0,0,{B:g})$, $\Gamma={r.gamma:.2e}$",
                 fontsize=8)
    ax.legend(loc="upper left", fontsize=6)
    numbers = {
        "nbgeneric": int(counts["generic"][0]),
        "nbhalf": int(counts["half-bound"][0]),
        "Er": f"{r.E:.6f}",
        "Gamma": f"{r.gamma:.3e}",
        "bwerr": float(err.max()),
        "bwbound": float(bnd.max()),
    }
    caption = (
        r"(a) Scattering phase $\delta(k)=\arg t(k)$ of $-d^2/dx^2+V$ on the line (continuous, "
        r"$\delta(\infty)=0$) for a generic step potential and the half-bound well "
        r"$V=-(2\pi)^2\mathbf 1_{[0,1]}$; dotted: Levinson's count $\pi(N_b-\tfrac12)$ resp. "
        r"$\pi N_b$. (b) Lattice phase across the narrow resonance $z_r=E_r-i\Gamma/2$ of a "
        r"double barrier (zeros of the Jost polynomial), the Breit--Wigner form "
        r"$\delta(E_r)+\arctan((\lambda-E_r)/(\Gamma/2))$ and its rigorous $O(\Gamma)$ "
        r"remainder bound."
    )
    data = {"levinson": {n: list(c) for n, c in counts.items()}, "E_r": r.E, "Gamma": r.gamma,
            "max err": float(err.max()), "max bound": float(bnd.max())}
    return FigureResult(fig, caption, "bk figures --only 8", checks, numbers, data)
