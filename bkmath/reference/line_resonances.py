"""References for :mod:`bkmath.line_resonances` (zeros of the Jost function on the line).

* :func:`line_zero_mp` — a zero of ``D(k) = 1/t(k)`` refined by ``mpmath.findroot``
  (secant) on the exact step transfer matrices at ``dps`` digits (:func:`jost_mp`, the
  products of :func:`bkmath.reference.continuum.step_scattering_mp` without the division by
  ``D``), from a starting point: the same mathematics in another arithmetic;
* :func:`square_well_condition_mp` — the closed-form resonance condition of a symmetric well
  or barrier ``V₀ 1_[c − l, c + l]``: outgoing solutions ``e^{ik|x − c|}`` outside, ``cos`` or
  ``sin`` inside, so ``F_even = q sin(ql) + ik cos(ql) = 0`` or
  ``F_odd = q cos(ql) − ik sin(ql) = 0``, ``q² = k² − V₀`` (both even/odd in q: no branch);
* :func:`square_well_zero_mp` — the nearer root of that condition from a starting point;
* :func:`delta_zero` — the zero ``k = −ig/2`` of ``D = 1 + ig/(2k)`` of ``g δ``, the limit of
  thin barriers ``(g/ε) 1_[0, ε]``.
"""

from __future__ import annotations

import mpmath

from bkmath.reference.continuum import _step_cells_mp

__all__ = ["jost_mp", "line_zero_mp", "square_well_condition_mp", "square_well_zero_mp",
           "delta_zero"]


def jost_mp(k, edges, values):
    """``D(k) = M₂₂(k)`` of the step potential at the current mpmath precision (exact cell
    matrices ``[[cos qL, sin(qL)/q], [−q² sin(qL)/q, cos qL]]``, ``q² = k² − V_j``)."""
    k = mpmath.mpc(k)
    ik = 1j * k
    es = [mpmath.mpf(float(e)) for e in edges]
    p11, p12, p21, p22 = mpmath.mpf(1), mpmath.mpf(0), mpmath.mpf(0), mpmath.mpf(1)
    for q2, c, s in _step_cells_mp(k, es, values):
        p11, p12, p21, p22 = (c * p11 + s * p21, c * p12 + s * p22,
                              -q2 * s * p11 + c * p21, -q2 * s * p12 + c * p22)
    return mpmath.exp(ik * (es[-1] - es[0])) * (p11 - ik * p12 - p21 / ik + p22) / 2


def line_zero_mp(k0: complex, edges, values, *, dps: int = 40):
    """The zero of ``D`` (exact step transfer matrices at ``dps`` digits) found by
    ``mpmath.findroot`` from ``k0`` (an ``mpc``); ``edges``/``values`` read exactly."""
    with mpmath.workdps(dps):
        k = mpmath.findroot(lambda x: jost_mp(x, edges, values),
                            mpmath.mpc(k0), tol=mpmath.mpf(10) ** (-(dps - 6)))
        return +k


def square_well_condition_mp(k, depth: float, half_width: float):
    """``(F_even(k), F_odd(k))`` of the symmetric step ``depth · 1_[c − l, c + l]``,
    ``l = half_width`` (module docstring), at the current mpmath precision."""
    k = mpmath.mpc(k)
    q = mpmath.sqrt(k * k - mpmath.mpf(depth))
    ql = q * mpmath.mpf(half_width)
    s, c = mpmath.sin(ql), mpmath.cos(ql)
    return q * s + 1j * k * c, q * c - 1j * k * s


def square_well_zero_mp(k0: complex, depth: float, half_width: float, *, dps: int = 40):
    """``(k, parity)``: the root of the closed-form condition nearest ``k0`` (both parities
    tried by ``mpmath.findroot``; the one with the smaller step from ``k0``)."""
    with mpmath.workdps(dps):
        best = None
        for parity in (0, 1):
            try:
                k = mpmath.findroot(
                    lambda x, p=parity: square_well_condition_mp(x, depth, half_width)[p],
                    mpmath.mpc(k0), tol=mpmath.mpf(10) ** (-(dps - 6)))
            except (ValueError, ZeroDivisionError):
                continue
            if best is None or abs(k - k0) < abs(best[0] - k0):
                best = (+k, "even" if parity == 0 else "odd")
        if best is None:
            raise ValueError(f"k0: no root of the square-well condition found from {k0}")
        return best


def delta_zero(g: float) -> complex:
    """The zero ``−ig/2`` of the Jost function of ``g δ`` (a bound state for g < 0, an
    anti-bound state for g > 0)."""
    return complex(0.0, -g / 2)
