"""Figures of resonances: the zeros of the Jost function continued to the second sheet, on the
lattice and on the line, each certified (pure :mod:`bkmath`).

12. ``resonances`` — (a) the zeros ``w`` of the Jost polynomial ``P(w) = (1 − w²) det(I + V R0)``
    of a finitely supported potential on Z (:func:`bkmath.resonances.lattice_resonances`,
    Krawczyk boxes of :func:`bkmath.resonances.resonance_balls`) with the unit circle, marked
    by kind: eigenvalues (``|w| < 1``, real), anti-bound states (real, ``|w| > 1``) and
    resonances (complex, ``|w| > 1``, in conjugate pairs); the inset shows the energies
    ``z = 2 − w − 1/w`` (docs/conventions.md §2) against the band [0, 4];
    (b) the zeros ``k`` of the entire Jost function ``G(k)`` of a double barrier with a well
    between (:func:`bkmath.line_resonances.line_zeros`) in the region's rectangle: a bound
    state on ``iR₊``, an anti-bound state on ``−iR₊`` and the resonances in pairs ``k, −k̄``,
    the count proved by :func:`bkmath.line_resonances.certified_zero_count` and the kinds by
    :func:`bkmath.line_resonances.line_zero_balls`.
"""

from __future__ import annotations

from bkpaper.framework import FigureContext, FigureResult, new_figure, register_figure, sanity

__all__ = ["figure_resonances"]

_STYLE = {  # kind → (marker, colour, label)
    "eigenvalue": ("o", "C0", "eigenvalue"),
    "bound": ("o", "C0", "bound state"),
    "threshold": ("s", "C2", "threshold"),
    "antibound": ("D", "C1", "anti-bound"),
    "resonance": ("x", "C3", "resonance"),
}


def _lattice_kind(ball: dict) -> str | None:
    """The kind that a Krawczyk box of :func:`~bkmath.resonances.resonance_balls` proves."""
    if not ball["unique"]:
        return None
    if ball["real"]:
        return "eigenvalue" if ball["inside"] else "antibound" if ball["outside"] else None
    if ball["outside"] and not ball["ball"].imag.contains(0):
        return "resonance"
    return None


def _fmt(k: complex | None) -> str:
    return "none" if k is None else f"{k.real:.6f}{k.imag:+.6f}i"


def _same_set(a, b, tol: float) -> bool:
    """``a`` and ``b`` agree as multisets within ``tol`` (best one-to-one matching)."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    a, b = np.asarray(a), np.asarray(b)
    if a.size != b.size:
        return False
    if a.size == 0:
        return True
    cost = np.abs(a[:, None] - b[None, :])
    i, j = linear_sum_assignment(cost)
    return bool(cost[i, j].max() <= tol)


@register_figure(12, "resonances", "Resonances on the lattice and on the line, certified")
def figure_resonances(ctx: FigureContext) -> FigureResult:
    """Figure 12: Jost-polynomial zeros in the w-plane; line resonances in the k-plane."""
    import mpmath
    import numpy as np

    from bkmath.continuum import line_bound_states, step_potential
    from bkmath.line_resonances import certified_zero_count, line_zero_balls, line_zeros
    from bkmath.reference.line_resonances import line_zero_mp
    from bkmath.reference.resonances import (
        matched_inverse_error,
        transparent_qep_zeros,
        window_eigenvalues,
    )
    from bkmath.resonances import jost_polynomial_degree, lattice_resonances, resonance_balls

    checks: dict[str, bool] = {}

    # (a) lattice: two barriers and a well between them, L = 7 sites, deg P = 2L − 2 = 12
    v = np.array([3.0, 0.0, 0.0, -1.5, 0.0, 0.0, 3.0])
    lz = lattice_resonances(v)
    deg = jost_polynomial_degree(v)
    sanity(checks, f"lattice: #zeros of P = degree formula 2L − 2 = {2 * v.size - 2}",
           lz.w.size == lz.degree == deg == 2 * v.size - 2)
    balls = resonance_balls(v, lz.w)
    proved = [_lattice_kind(b) for b in balls]
    sanity(checks, "lattice: every zero in a Krawczyk box (one simple zero) holding it",
           all(b["unique"] and b["contains_input"] for b in balls))
    sanity(checks, "lattice: every kind proved by its box (real/complex, inside/outside |w|=1)",
           tuple(proved) == lz.kind)
    sanity(checks, "lattice: zeros closed under w ↔ w̄ (real coefficients), within 1e-12",
           _same_set(lz.w, np.conj(lz.w), 1e-12))
    qep_err = matched_inverse_error(lz.w, transparent_qep_zeros(v, deg))
    sanity(checks, "lattice: zeros = transparent-boundary quadratic eigenproblem "
                   "(max |1/w − 1/w_QEP| < 1e-10)", qep_err < 1e-10)
    ev_win = window_eigenvalues(v, pad=ctx.pick(quick=200, full=800))
    ev_err = (float(np.max(np.abs(lz.eigenvalues - ev_win)))
              if ev_win.size == lz.eigenvalues.size else np.inf)
    sanity(checks, "lattice: eigenvalues z = 2 − w − 1/w = those of a Dirichlet window "
                   "(< 1e-10)", ev_err < 1e-10)
    counts_lat = {k: int(sum(x == k for x in lz.kind)) for k in _STYLE if k in lz.kind}

    # (b) line: barriers of height 20 on [−1.5, −1] and [1, 1.5], a well −4 on [−1, 1]
    pot = step_potential([-1.5, -1.0, 1.0, 1.5], [20.0, -4.0, 20.0])
    region = ctx.pick(quick=(-6.5, 6.5, -2.0, 2.0), full=(-12.5, 12.5, -2.5, 2.0))
    z = line_zeros(pot, region, upper=True)
    cert = certified_zero_count(pot, region, upper=True)
    sanity(checks, "line: #zeros found = winding count = Arb-certified count",
           cert["count"] is not None and int(np.sum(z.multiplicity)) == z.count == z.k.size
           == cert["count"])
    lballs = line_zero_balls(pot, z.k)
    sanity(checks, "line: every zero in a Krawczyk box, kind proved = kind found",
           all(b["unique"] and b["contains_input"] for b in lballs)
           and tuple(b["kind"] for b in lballs) == z.kind)
    sanity(checks, "line: zeros closed under k ↔ −k̄ (real V), within 1e-10",
           _same_set(z.k, -np.conj(z.k), 1e-10))
    with mpmath.workdps(40):
        mp_err = max(abs(complex(line_zero_mp(k, pot.edges, pot.values)) - k) / max(1, abs(k))
                     for k in z.k)
    sanity(checks, "line: zeros = mpmath findroot at 40 digits (rel. err < 1e-11)",
           mp_err < 1e-11)
    kb = np.sqrt(-line_bound_states(pot))  # κ, with −κ² the eigenvalues (sign changes)
    sanity(checks, "line: bound states k = iκ, −κ² = line_bound_states (< 1e-9)",
           _same_set(z.of_kind("bound").imag, kb[kb <= region[3]], 1e-9))
    res = z.of_kind("resonance")
    sanity(checks, "line: resonances in Im k < 0; widths Γ = −2 Im k² > 0 for Re k > 0",
           bool(np.all(res.imag < 0) and np.all(-2 * (res[res.real > 0] ** 2).imag > 0)))
    counts_line = {k: int(sum(x == k for x in z.kind)) for k in _STYLE if k in z.kind}
    right = res[res.real > 0]
    narrow = complex(right[np.argmax(right.imag)]) if right.size else None

    fig, axes = new_figure(2, height=3.2)
    from matplotlib.patches import Rectangle  # after new_figure: the Agg backend is set

    ax = axes[0, 0]
    th = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(th), np.sin(th), "k-", lw=0.8, label=r"$|w|=1$ (band)")
    for kind, n in counts_lat.items():
        mk, col, lab = _STYLE[kind]
        w = lz.of_kind(kind)
        ax.plot(w.real, w.imag, mk, color=col, ms=4.5, mfc="none" if mk != "x" else col,
                label=f"{lab} ({n})")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(r"$\mathrm{Re}\,w$")
    ax.set_ylabel(r"$\mathrm{Im}\,w$")
    ax.set_title(rf"(a) $\mathbb{{Z}}$: zeros of $P(w)$, $V=({', '.join(f'{x:g}' for x in v)})$, "
                 rf"$\deg P={deg}$", fontsize=8)
    ax.legend(loc="lower right", fontsize=6)
    ins = ax.inset_axes([0.66, 0.64, 0.33, 0.34])
    ins.axvspan(0, 4, color="0.85", lw=0)
    for kind in counts_lat:
        mk, col, _ = _STYLE[kind]
        zz = lz.z[[x == kind for x in lz.kind]]
        ins.plot(zz.real, zz.imag, mk, color=col, ms=3, mfc="none" if mk != "x" else col)
    ins.text(0.03, 0.97, r"$z=2-w-1/w$", transform=ins.transAxes, fontsize=5.5, va="top")
    ins.tick_params(labelsize=5)
    ax = axes[0, 1]
    x0, x1, y0, y1 = region
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="0.4", lw=0.8, ls="--"))
    ax.axhline(0, color="k", lw=0.8)
    for kind, n in counts_line.items():
        mk, col, lab = _STYLE[kind]
        kk = z.of_kind(kind)
        ax.plot(kk.real, kk.imag, mk, color=col, ms=4.5, mfc="none" if mk != "x" else col,
                label=f"{lab} ({n})")
    ax.set_xlim(x0 - 0.05 * (x1 - x0), x1 + 0.05 * (x1 - x0))
    ax.set_ylim(y0 - 0.1 * (y1 - y0), y1 + 0.1 * (y1 - y0))
    ax.set_xlabel(r"$\mathrm{Re}\,k$")
    ax.set_ylabel(r"$\mathrm{Im}\,k$")
    ax.set_title(rf"(b) line: zeros of $G(k)$, double barrier, certified count "
                 rf"{cert['count']}", fontsize=8)
    ax.legend(loc="lower center", fontsize=6, ncol=3)

    numbers = {
        "latdeg": int(deg),
        "lateig": counts_lat.get("eigenvalue", 0),
        "latanti": counts_lat.get("antibound", 0),
        "latres": counts_lat.get("resonance", 0),
        "qeperr": float(qep_err),
        "linecount": int(cert["count"]),
        "linebound": counts_line.get("bound", 0),
        "lineanti": counts_line.get("antibound", 0),
        "lineres": counts_line.get("resonance", 0),
        "linesegments": int(cert["segments"]),
        "narrowk": _fmt(narrow),
    }
    caption = (
        r"(a) Zeros $w$ of the Jost polynomial $P(w)=(1-w^2)\det(I+VR_0(z(w)))$ of a double "
        r"barrier with a well on $\mathbb Z$, $z=2-w-1/w$: eigenvalues ($|w|<1$, real), "
        r"anti-bound states (real, $|w|>1$) and resonances (complex, $|w|>1$, pairs "
        r"$w,\bar w$); their number is $\deg P=2L-2$, each lies in a Krawczyk box that proves "
        r"it simple and proves its kind; inset: the energies $z$ and the band $[0,4]$. "
        r"(b) Zeros $k$ of the entire Jost function $G(k)=e^{-ik(b-a)}W(f_-,f_+)$ of "
        r"$-d^2/dx^2+V$, $V=20$ on $[-1.5,-1]\cup[1,1.5]$, $-4$ on $[-1,1]$, in the dashed "
        r"rectangle: a bound state on $i\mathbb R_+$, an anti-bound state on $-i\mathbb R_+$ "
        r"and resonances in pairs $k,-\bar k$; the count is the winding number of $G$ proved "
        r"in ball arithmetic, so the list is complete in the rectangle."
    )
    data = {
        "lattice": {"v": v.tolist(), "degree": int(deg), "kind": list(lz.kind),
                    "w": [[x.real, x.imag] for x in lz.w.tolist()],
                    "z": [[x.real, x.imag] for x in lz.z.tolist()],
                    "max |1/w - 1/w_QEP|": float(qep_err), "eigenvalue err": ev_err},
        "line": {"edges": pot.edges.tolist(), "values": pot.values.tolist(),
                 "region": list(region), "kind": list(z.kind),
                 "k": [[x.real, x.imag] for x in z.k.tolist()],
                 "certified count": int(cert["count"]), "segments": int(cert["segments"]),
                 "max rel err vs mpmath": float(mp_err)},
    }
    return FigureResult(fig, caption, "bk figures --only 12", checks, numbers, data)
