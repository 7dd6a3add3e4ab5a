"""References for :mod:`bkmath.mfunction` (Weyl–Titchmarsh m-functions of half-line Jacobi
operators).

* :func:`m_function_mp` — the continued fraction at ``dps`` digits, the constant tail's
  ``m_∞`` from its quadratic ``b_∞² m² − (a_∞ − z) m + 1 = 0`` with the root chosen
  explicitly (``Im m > 0``, or ``|m| < 1/|b_∞|`` off the band);
* :func:`m_function_dense` — ``[(J_n − z)^{-1}]_{11}`` of the ``n × n`` truncation by dense
  LAPACK solve (the tail's coefficients extend ``a``, ``b``);
* :func:`moments_exact` — the moments ``⟨δ_1, J^k δ_1⟩``, k ≤ kmax, in exact rationals
  (``fractions.Fraction``) by applying J to δ_1 on a chain long enough that the cut is never
  reached (a walk of length k from site 1 reaches site ``1 + ⌊k/2⌋`` at most and returns).
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np

__all__ = ["m_function_mp", "m_function_dense", "moments_exact"]


def _tail(tail):
    if tail == "free":
        return (2, -1)
    if tail == "dirichlet":
        return None
    return tail


def m_function_mp(z, a, b=None, *, tail="free", dps: int = 50, as_mp: bool = False):
    """mpmath ``m(z)`` (scalar z, ``Im z > 0``; real z off the band for a constant tail)."""
    t = _tail(tail)
    with mpmath.workdps(dps):
        zz = mpmath.mpc(z)
        aa = [mpmath.mpf(float(x)) for x in a]
        n = len(aa)
        nb = n - 1 if t is None else n
        bb = [mpmath.mpf(float(x)) for x in (b if b is not None
                                             else [-1 if t is None else t[1]] * nb)]
        if t is not None and len(bb) == n - 1:
            bb.append(mpmath.mpf(float(t[1])))
        if t is None:
            g = mpmath.mpc(0)
        else:
            ai, bi = mpmath.mpf(float(t[0])), mpmath.mpf(float(t[1]))
            disc = mpmath.sqrt((ai - zz) ** 2 - 4 * bi ** 2)
            r1, r2 = ((ai - zz) - disc) / (2 * bi ** 2), ((ai - zz) + disc) / (2 * bi ** 2)
            if zz.imag > 0:
                g = r1 if r1.imag > 0 else r2
            else:  # real z off the band: the decaying root
                g = r1 if abs(r1) < abs(r2) else r2
        for k in range(n - 1, -1, -1):
            cpl = bb[k] ** 2 * g if k < len(bb) else 0
            g = 1 / (aa[k] - zz - cpl)
        return +g if as_mp else complex(g)


def m_function_dense(z, a, b=None, n: int | None = None, *, tail="free") -> complex:
    """``[(J_n − z)^{-1}]_{11}`` of the truncation (dense ``numpy.linalg.solve``)."""
    t = _tail(tail)
    aa = np.asarray(a, dtype=np.float64)
    n = aa.size if n is None else n
    bb = (np.full(aa.size if t is not None else aa.size - 1,
                  -1.0 if t is None else float(t[1])) if b is None
          else np.asarray(b, dtype=np.float64))
    if n > aa.size:
        aa = np.concatenate([aa, np.full(n - aa.size, float(t[0]))])
        bb = np.concatenate([bb, np.full(n - 1 - bb.size, float(t[1]))])
    J = np.diag(aa[:n]) + np.diag(bb[: n - 1], 1) + np.diag(bb[: n - 1], -1)
    e1 = np.zeros(n)
    e1[0] = 1.0
    return complex(np.linalg.solve(J - z * np.eye(n), e1)[0])


def moments_exact(a, b, kmax: int, *, tail="free") -> list[Fraction]:
    """``[⟨δ_1, J^k δ_1⟩ for k = 0..kmax]`` exactly (floats read as the binary rationals they
    are; the tail's coefficients extend ``a``, ``b`` as far as needed; ``tail="dirichlet"``:
    the finite matrix itself)."""
    t = _tail(tail)
    aq = [Fraction(x) for x in a]
    bq = [Fraction(x) for x in (b if b is not None else [])]
    need = kmax // 2 + 2
    if t is not None:
        while len(aq) < need:
            aq.append(Fraction(t[0]))
        while len(bq) < len(aq) - 1:
            bq.append(Fraction(t[1]))
    n = len(aq)
    u = [Fraction(0)] * n
    u[0] = Fraction(1)
    out = []
    for _ in range(kmax + 1):
        out.append(u[0])
        nu = [aq[i] * u[i] for i in range(n)]
        for i in range(n - 1):
            nu[i] += bq[i] * u[i + 1]
            nu[i + 1] += bq[i] * u[i]
        u = nu
    return out
