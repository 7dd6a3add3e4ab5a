"""References for :mod:`bkmath.continuum` (scattering of ``−d²/dx² + V`` on the line).

* :func:`step_scattering_mp` — the exact piecewise-constant transfer matrices in mpmath at
  ``dps`` digits (the same mathematics as the fast routine, in another arithmetic);
* :func:`jost_ode_mp` — an independent integrator: ``f₋`` by ``mpmath.odefun`` (Taylor series)
  from ``a`` to ``b`` for a general real ``v`` on ``[a, b]``, giving ``D = 1/t`` and ``r'``;
* :func:`fine_lattice_transmission` — an independent discretisation: ``t_h(k)`` of the lattice
  operator ``h⁻²(−Δ + h² V(x_n))`` on the grid ``x_n = a + (n + ½)h`` at the same energy
  ``k² = λ/h²`` (:func:`bkmath.scattering.transmission`, lattice transfer matrices), which
  tends to ``t(k)`` as ``h → 0`` (O(h²) for smooth V);
* :func:`fine_lattice_bound_states` — the eigenvalues below 0 of the same lattice operator
  (a long Dirichlet box, scipy ``eigvalsh_tridiagonal``).
"""

from __future__ import annotations

from collections.abc import Callable

import mpmath
import numpy as np

__all__ = ["step_scattering_mp", "jost_ode_mp", "fine_lattice_transmission",
           "fine_lattice_bound_states", "lattice_samples"]


def _step_cells_mp(k, es, values):
    """Per cell ``[es[j], es[j+1]]`` of the step potential, at the current mpmath precision:
    ``(q², cos qL, sin(qL)/q)`` with ``q² = k² − V_j`` (``sin(qL)/q = L`` at ``q = 0``), the
    entries of the exact cell matrix ``[[cos qL, sin(qL)/q], [−q² sin(qL)/q, cos qL]]``."""
    for j, vj in enumerate(values):
        L = es[j + 1] - es[j]
        q2 = k * k - mpmath.mpf(float(vj))
        q = mpmath.sqrt(q2)
        yield q2, mpmath.cos(q * L), (mpmath.sin(q * L) / q if q != 0 else L)


def step_scattering_mp(k: complex, edges, values, *, dps: int = 40) -> dict:
    """``{"D", "t", "r", "r_prime"}`` (mpc) of the step potential, exact transfer matrices at
    ``dps`` digits; ``edges``/``values`` are read exactly as the binary floats they hold."""
    with mpmath.workdps(dps):
        k = mpmath.mpc(k)
        ik = 1j * k
        P = mpmath.eye(2)
        es = [mpmath.mpf(float(e)) for e in edges]
        for q2, c, s in _step_cells_mp(k, es, values):
            P = mpmath.matrix([[c, s], [-q2 * s, c]]) * P
        a, b = es[0], es[-1]
        p11, p12, p21, p22 = P[0, 0], P[0, 1], P[1, 0], P[1, 1]
        m12 = mpmath.exp(-ik * (a + b)) * (p11 - ik * p12 + p21 / ik - p22) / 2
        m21 = mpmath.exp(ik * (a + b)) * (p11 + ik * p12 - p21 / ik - p22) / 2
        m22 = mpmath.exp(ik * (b - a)) * (p11 - ik * p12 - p21 / ik + p22) / 2
        return {"D": m22, "t": 1 / m22, "r": -m21 / m22, "r_prime": m12 / m22}


def jost_ode_mp(k: complex, v: Callable, support: tuple[float, float], *,
                dps: int = 20) -> dict:
    """``{"D", "t", "r_prime"}`` from ``f₋`` integrated by ``mpmath.odefun`` (``v`` takes and
    returns mpmath numbers; it must vanish outside ``support``). On ``x ≥ b``,
    ``f₋ = (1/t) e^{−ikx} + (r'/t) e^{ikx}``. Cost: seconds per k at dps 20."""
    with mpmath.workdps(dps):
        k = mpmath.mpc(k)
        ik = 1j * k
        a, b = mpmath.mpf(support[0]), mpmath.mpf(support[1])
        f = mpmath.odefun(lambda x, y: [y[1], (v(x) - k * k) * y[0]], a,
                          [mpmath.exp(-ik * a), -ik * mpmath.exp(-ik * a)])
        fb, gb = f(b)
        beta = mpmath.exp(ik * b) * (ik * fb - gb) / (2 * ik)   # coefficient of e^{−ikx}
        alpha = mpmath.exp(-ik * b) * (ik * fb + gb) / (2 * ik)  # coefficient of e^{ikx}
        return {"D": beta, "t": 1 / beta, "r_prime": alpha / beta}


def lattice_samples(pot, h: float) -> tuple[np.ndarray, float]:
    """``(h² V(x_n), a)`` on the grid ``x_n = a + (n + ½)h`` covering the support of the
    :class:`~bkmath.continuum.StepPotential` ``pot`` (``(b − a)/h`` rounded to an integer)."""
    a, b = pot.support
    n = max(1, int(round((b - a) / h)))
    hh = (b - a) / n
    x = a + (np.arange(n) + 0.5) * hh
    return hh * hh * pot(x), hh


def fine_lattice_transmission(k: np.ndarray, pot, h: float) -> np.ndarray:
    """``t_h(k)`` of the lattice ``h⁻²(−Δ + h²V)`` at energy ``k²`` (``λ = h²k² < 4``), from
    :func:`bkmath.scattering.transmission` (lattice plane-wave transfer matrices)."""
    from bkmath.scattering import transmission

    vl, hh = lattice_samples(pot, h)
    lam = (np.asarray(k, float) * hh) ** 2
    if np.any(lam >= 4):
        raise ValueError("h: k h must stay below 2 (inside the lattice band)")
    return np.asarray(transmission(vl, lam))


def fine_lattice_bound_states(pot, h: float, *, pad: float = 30.0) -> np.ndarray:
    """The eigenvalues below 0 of ``h⁻²(−Δ + h²V)`` on a Dirichlet grid covering
    ``[a − pad, b + pad]`` (ascending; scipy ``eigvalsh_tridiagonal``), divided by ``h²``. The
    bound states decay like ``e^{−κ|x|}``: ``pad`` must exceed ~``40/κ`` for float64 accuracy."""
    from scipy.linalg import eigvalsh_tridiagonal

    a, b = pot.support
    n = max(1, int(round((b - a + 2 * pad) / h)))
    hh = (b - a + 2 * pad) / n
    x = a - pad + (np.arange(n) + 0.5) * hh
    d = 2.0 + hh * hh * pot(x)
    ev = eigvalsh_tridiagonal(d, -np.ones(n - 1), select="v", select_range=(-np.inf, 0.0))
    return np.sort(ev) / hh ** 2
