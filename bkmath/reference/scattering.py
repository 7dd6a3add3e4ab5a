"""mpmath references for the Birman–Schwinger / determinant / Schatten / scattering code.

Straightforward, high-precision, slow: dense matrices in ``mpmath.matrix``, closed forms,
quadrature. Precision is scoped with ``mpmath.workdps``; results are returned as mpmath
numbers (convert with ``complex(...)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import mpmath

__all__ = [
    "lattice_w_mp",
    "bs_matrix_mp",
    "fredholm_det_mp",
    "det2_mp",
    "singular_values_mp",
    "scattering_matrix_mp",
    "square_well_jost_mp",
    "box_hs_norm_sq_mp",
    "trace_class_constant_mp",
]


def lattice_w_mp(z: complex) -> mpmath.mpc:
    """w(z), |w| < 1 (Im z > 0), or the λ + i0 boundary value for real z; current precision."""
    z = mpmath.mpc(z)
    if z.imag == 0 and 0 < z.real < 4:
        return mpmath.exp(1j * mpmath.acos(1 - z.real / 2))
    s = mpmath.sqrt((2 - z) ** 2 - 4)
    r1, r2 = ((2 - z) - s) / 2, ((2 - z) + s) / 2
    return r1 if abs(r1) < abs(r2) else r2


def bs_matrix_mp(v: Sequence[float], z: complex, *, dps: int = 50) -> mpmath.matrix:
    """Lattice K_mn = sgn(v_m)|v_m|^{1/2} G0(m, n; z) |v_n|^{1/2} on supp V (mpmath)."""
    with mpmath.workdps(dps):
        sites = [(i, mpmath.mpf(x)) for i, x in enumerate(v) if x != 0]
        w = lattice_w_mp(z)
        c = 1 / (1 / w - w)
        K = mpmath.matrix(len(sites), len(sites))
        for a, (m, vm) in enumerate(sites):
            for b, (n, vn) in enumerate(sites):
                K[a, b] = mpmath.sign(vm) * mpmath.sqrt(abs(vm)) * c * w ** abs(m - n) * (
                    mpmath.sqrt(abs(vn))
                )
        return K


def fredholm_det_mp(K: mpmath.matrix, *, dps: int = 50) -> mpmath.mpc:
    """det(I + K) in mpmath."""
    with mpmath.workdps(dps):
        n = K.rows
        return mpmath.det(mpmath.eye(n) + K) if n else mpmath.mpf(1)


def det2_mp(K: mpmath.matrix, *, dps: int = 50) -> mpmath.mpc:
    """det₂(I + K) = det(I + K) exp(−tr K) in mpmath."""
    with mpmath.workdps(dps):
        tr = sum(K[i, i] for i in range(K.rows)) if K.rows else 0
        return fredholm_det_mp(K, dps=dps) * mpmath.exp(-tr)


def singular_values_mp(K: mpmath.matrix, *, dps: int = 50) -> list:
    """Singular values of K (mpmath's complex SVD), descending."""
    with mpmath.workdps(dps):
        s = mpmath.svd_c(mpmath.matrix(K), compute_uv=False)
        return sorted((s[i] for i in range(len(s))), reverse=True)


def scattering_matrix_mp(v: Sequence[float], lam: float, *, dps: int = 50) -> mpmath.matrix:
    """S(λ) = [[t, r'], [r, t]] of −Δ + V by the transfer recursion in mpmath (sites 0..n−1)."""
    with mpmath.workdps(dps):
        lam = mpmath.mpf(lam)
        e = mpmath.exp(1j * mpmath.acos(1 - lam / 2))
        vv = [mpmath.mpf(0)] + [mpmath.mpf(x) for x in v] + [mpmath.mpf(0)]
        n = len(v)
        hi, lo = e ** (n + 1), e**n
        for m in range(n, -2, -1):
            hi, lo = lo, (2 + vv[m + 1] - lam) * lo - hi
        M = mpmath.matrix([[e**-1, e**1], [e**-2, e**2]])
        A, B = mpmath.lu_solve(M, mpmath.matrix([hi, lo]))
        lo2, hi2 = e**2, e**1
        for m in range(-1, n + 1):
            lo2, hi2 = hi2, (2 + vv[m + 1] - lam) * hi2 - lo2
        M2 = mpmath.matrix([[e**n, e ** (-n)], [e ** (n + 1), e ** (-(n + 1))]])
        A2, B2 = mpmath.lu_solve(M2, mpmath.matrix([lo2, hi2]))
        return mpmath.matrix([[1 / A, A2 / B2], [B / A, 1 / B2]])


def square_well_jost_mp(depth: float, interval: tuple[float, float], z: complex,
                        *, dps: int = 50) -> mpmath.mpc:
    """det(I + V R0(z)) for V = depth · 1_[a, b] (H0 = −d²/dx²), closed form in mpmath."""
    with mpmath.workdps(dps):
        z = mpmath.mpc(z)
        k = mpmath.sqrt(z)
        a, b = mpmath.mpf(interval[0]), mpmath.mpf(interval[1])
        L = a - b
        q = mpmath.sqrt(k * k - depth)
        c = mpmath.cos(q * L)
        s_q = mpmath.sin(q * L) / q if q != 0 else L
        f0, g0 = mpmath.exp(1j * k * b), 1j * k * mpmath.exp(1j * k * b)
        f = c * f0 + s_q * g0
        g = -(q * q) * s_q * f0 + c * g0
        return mpmath.exp(-1j * k * a) * (g + 1j * k * f) / (2j * k)


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
