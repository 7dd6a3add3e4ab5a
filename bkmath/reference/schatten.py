"""mpmath references for :mod:`bkmath.schatten`: singular values, exact Hilbert–Schmidt norms,
the trace-class constant c₁(z).

Straightforward, high-precision, slow: mpmath's SVD, a closed-form double integral,
``mpmath.quad``. Precision is scoped with ``mpmath.workdps``; results are mpmath numbers.
"""

from __future__ import annotations

import mpmath

__all__ = ["singular_values_mp", "box_hs_norm_sq_mp", "trace_class_constant_mp"]


def singular_values_mp(K: mpmath.matrix, *, dps: int = 50) -> list:
    """Singular values of K (mpmath's complex SVD), descending."""
    with mpmath.workdps(dps):
        s = mpmath.svd_c(mpmath.matrix(K), compute_uv=False)
        return sorted((s[i] for i in range(len(s))), reverse=True)


def box_hs_norm_sq_mp(height: float, length: float, z: complex, model: str,
                      *, dps: int = 50) -> mpmath.mpf:
    """‖K(z)‖²_S2 for V = height · 1_[0, L], exactly (closed-form double integral).

    continuum: h² ∬ e^{−2κ|x−y|}/(4|k|²) = h²/(4|k|²) · 2[L/(2κ) − (1 − e^{−2κL})/(4κ²)],
    κ = Im k; momentum: h² ∬_{x>y} e^{−2η(x−y)} = h² [L/(2η) − (1 − e^{−2ηL})/(4η²)].
    """
    with mpmath.workdps(dps):
        h, L, z = mpmath.mpf(height), mpmath.mpf(length), mpmath.mpc(z)

        def j(kappa):
            return L / (2 * kappa) - (1 - mpmath.exp(-2 * kappa * L)) / (4 * kappa**2)

        if model == "continuum":
            k = mpmath.sqrt(z)
            return h**2 / (4 * abs(k) ** 2) * 2 * j(k.imag)
        if model == "momentum":
            return h**2 * j(z.imag)
        raise ValueError(f"model must be 'continuum' or 'momentum', got {model!r}")


def trace_class_constant_mp(z: complex, model: str, *, dps: int = 30) -> mpmath.mpf:
    """c₁(z) = (1/2π) ∫ dξ/|h(ξ) − z| by mpmath.quad (lattice, continuum)."""
    with mpmath.workdps(dps):
        z = mpmath.mpc(z)
        if model == "lattice":
            pts = [0, mpmath.pi]
            if 0 < z.real < 4:
                pts = [0, mpmath.acos(1 - z.real / 2), mpmath.pi]
            return mpmath.quad(lambda t: 1 / abs(2 - 2 * mpmath.cos(t) - z), pts) / mpmath.pi
        if model == "continuum":
            pts = [0, 1, mpmath.inf]
            if z.real > 0:
                s = mpmath.sqrt(z.real)
                pts = [0, s, 2 * s + 1, mpmath.inf]
            return mpmath.quad(lambda x: 1 / abs(x * x - z), pts) / mpmath.pi
        raise ValueError(f"model must be 'lattice' or 'continuum', got {model!r}")
