r"""Schatten norms of the Birman–Schwinger operator, and bounds on them.

Norms
-----
:func:`schatten_norm` (p = 1, 2, ∞) of a matrix (SVD, O(N³)), or of a
:class:`~bkmath.bs_operator.BirmanSchwingerOperator` (p = 2 in O(N)).

Bounds (proved; the hypotheses are stated with each function)
-------------------------------------------------------------
Let H0 be translation invariant and self-adjoint with symbol h (lattice: h(θ) = 2 − 2cos θ on
[−π, π]; continuum: h(ξ) = ξ²; momentum: h(ξ) = ξ), R0(x, y; z) = r(x − y), Im z > 0.

**S2, exact.** ‖K‖²_S2 = ∬ |V(x)| |r(x − y)|² |V(y)| dx dy (sums on the lattice): the
Hilbert–Schmidt norm is the L² norm of the kernel.

**S2, bound (Schur/Young + Plancherel).** ⟨|V|, |r|² ∗ |V|⟩ ≤ ‖V‖₂² ‖r‖₂², and by
Plancherel and the resolvent identity ‖r‖₂² = (1/2π)∫ |h − z|⁻² = Im G0(0, 0; z) / Im z
(lattice, continuum; the "Ward identity"). Hence

    ‖K‖_S2 ≤ ‖V‖₂ · (Im G0(0,0;z) / Im z)^{1/2}            (:func:`s2_bound`)

with Im G0(0,0;z)/Im z = |w⁻¹ − w|⁻² (1 + |w|²)/(1 − |w|²) (lattice),
1/(4 |k|² Im k) (continuum), 1/(2 Im z) (momentum: ∫_0^∞ e^{−2 Im z t} dt). The constant is
sharp: V = 1 on a long interval attains it asymptotically. Also ‖K‖_S2 ≤ ‖V‖₁ sup|r|
(:func:`s2_bound_l1`).

**S1, bound (factorisation; the p = 2 case of Kato–Seiler–Simon).** K = A B with
A = U|V|^{1/2} |H0 − z|^{−1/2}, B = Φ(H0) |H0 − z|^{−1/2} |V|^{1/2}, Φ unimodular; Hölder
‖AB‖_S1 ≤ ‖A‖_S2 ‖B‖_S2 and ‖|V|^{1/2} g(H0)‖²_S2 = ‖V‖₁ (1/2π)∫|g|² give

    ‖K‖_S1 ≤ ‖V‖₁ · c₁(z),   c₁(z) = (1/2π) ∫ dξ / |h(ξ) − z| = (|H0 − z|⁻¹)(0, 0)
                                                                      (:func:`s1_bound`)

finite for the lattice and the continuum (1D), **infinite for the momentum model**: there K
is a Volterra operator, unitarily-up-to-bounded-factors the integration operator, whose
singular values decay like 1/n; K is *not trace class* when ∫V ≠ 0.

The seeds' versions (stated without setting or proof), implemented as stated:
:func:`seed_s2_bound` ½ (Im z)^{−1/2} ‖V‖₂ and :func:`seed_s1_bound` ½ (Im z)^{−1} ‖V‖₁.
They are false in every setting (see :mod:`bkmath.checks.schatten_checks` for the
counterexamples): the true S2 constant (Im G0/Im z)^{1/2} exceeds ½ (Im z)^{−1/2} whenever
Im G0(0,0;z) > ¼ (momentum: always, by √2; continuum: whenever |k|² < 2 Re k; lattice: e.g.
mid-band); for S1 already |tr K| = |G0(0,0)| |∫V| beats ½ ‖V‖₁/Im z for V ≥ 0 and large Im z
(continuum: Im z > |z|^{1/2}; lattice: |z(z − 4)|^{1/2} < 2 Im z), and in the momentum model
‖K‖_S1 = ∞.
"""

from __future__ import annotations

import math

import numpy as np

from bkmath._validation import as_real_array, as_spectral_parameter
from bkmath.bs_operator import (
    MODELS,
    BirmanSchwingerOperator,
    as_matrix,
    continuum_k,
    free_kernel_diagonal,
    lattice_w_boundary,
)

__all__ = [
    "schatten_norm",
    "potential_norm",
    "resolvent_l2_squared",
    "trace_class_constant",
    "s2_bound",
    "s2_bound_l1",
    "s1_bound",
    "seed_s2_bound",
    "seed_s1_bound",
]


def schatten_norm(K: np.ndarray | BirmanSchwingerOperator, p: float) -> float:
    """Schatten p-norm ‖K‖_Sp = (Σ s_j^p)^{1/p} for p ∈ {1, 2, ∞}.

    p = 2 is the Hilbert–Schmidt (Frobenius) norm: O(N²) for a matrix, O(N) for a
    :class:`BirmanSchwingerOperator` (its semiseparable form). p = 1 (trace norm) and ∞
    (operator norm) use the SVD, O(N³).

    Examples
    --------
    >>> schatten_norm(np.diag([3.0, -4.0]), 1), schatten_norm(np.diag([3.0, -4.0]), 2)
    (7.0, 5.0)
    """
    if p not in (1, 2, np.inf):
        raise ValueError(f"p must be 1, 2 or inf, got {p!r}")
    if p == 2 and isinstance(K, BirmanSchwingerOperator):
        return K.hs_norm()
    A = as_matrix(K)
    if A.size == 0:
        return 0.0
    # scale by a power of two (exact) so that neither |K_ij|² nor the SVD's internal norms
    # over/underflow: ‖K‖ = 2^e ‖2^{-e} K‖
    m = float(np.max(np.abs(A)))
    if m == 0.0:
        return 0.0
    e = max(math.frexp(m)[1], -1000)  # (2^{-e} itself must be finite: subnormal m)
    As = A * math.ldexp(1.0, -e)
    if p == 2:
        val = float(np.linalg.norm(As, "fro"))
    else:
        s = np.linalg.svd(As, compute_uv=False)
        val = float(s.sum() if p == 1 else s.max())
    return _ldexp_checked(val, e, f"‖K‖_S{p}")


def _ldexp_checked(val: float, e: int, what: str) -> float:
    try:
        out = math.ldexp(val, e) if val < math.inf else math.inf
    except OverflowError:
        out = math.inf
    if not out < math.inf:
        raise ValueError(f"{what} = {val:.6g}·2^{e} overflows float64")
    return out


def potential_norm(v: np.ndarray, p: float, weights: np.ndarray | None = None) -> float:
    """‖V‖_p = (Σ w_i |v_i|^p)^{1/p} (weights w = 1 on the lattice, quadrature weights else)."""
    vv = as_real_array(v, "v", ndim=1)
    w = np.ones_like(vv) if weights is None else as_real_array(weights, "weights", ndim=1)
    if w.shape != vv.shape:
        raise ValueError("weights must have the shape of v")
    if p == np.inf:
        return float(np.abs(vv).max(initial=0.0))
    if p not in (1, 2):
        raise ValueError(f"p must be 1, 2 or inf, got {p!r}")
    m = float(np.abs(vv).max(initial=0.0))
    if m == 0.0:
        return 0.0
    e = max(math.frexp(m)[1], -1000)  # ‖V‖_p = 2^e ‖2^{-e} V‖_p: no overflow of |v|^p
    with np.errstate(over="ignore"):
        val = float(np.sum(w * (np.abs(vv) * math.ldexp(1.0, -e)) ** p) ** (1.0 / p))
    return _ldexp_checked(val, e, f"‖V‖_{p}")


def _z(z: complex) -> complex:
    return complex(as_spectral_parameter(z, "z").reshape(()))


def resolvent_l2_squared(z: complex, model: str = "lattice") -> float:
    """‖r‖₂² = ∫ |R0(t; z)|² dt = Im G0(0,0;z)/Im z (lattice, continuum), 1/(2 Im z) (momentum).

    Im z > 0 required. O(1).
    """
    zz = _z(z)
    if model == "lattice":
        w = lattice_w_boundary(zz)
        return float((1 + abs(w) ** 2) / ((1 - abs(w) ** 2) * abs(1 / w - w) ** 2))
    if model == "continuum":
        k = continuum_k(zz)
        return float(1.0 / (4 * abs(k) ** 2 * k.imag))
    if model == "momentum":
        return float(1.0 / (2 * zz.imag))
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")


def trace_class_constant(z: complex, model: str = "lattice") -> float:
    """c₁(z) = (1/2π) ∫ dξ/|h(ξ) − z| (the diagonal of |H0 − z|⁻¹); ∞ for the momentum model.

    Computed by adaptive quadrature (scipy.integrate.quad, relative accuracy ~1e-12) with
    the near-singular point h(ξ) = Re z as a breakpoint. Im z > 0 required.
    """
    from scipy.integrate import quad

    zz = _z(z)
    lam = zz.real
    if model == "lattice":
        pts = []
        if 0 < lam < 4:
            pts = [float(np.arccos(1 - lam / 2))]
        val, _ = quad(
            lambda t: 1.0 / abs(2 - 2 * np.cos(t) - zz), 0.0, np.pi, points=pts or None,
            limit=400, epsabs=0, epsrel=1e-13,
        )
        return float(val / np.pi)
    if model == "continuum":
        s = float(np.sqrt(lam)) if lam > 0 else 0.0

        def f(x: float) -> float:
            return 1.0 / abs(x * x - zz)

        edge = max(2 * s, 1.0)
        v1, _ = quad(f, 0.0, edge, points=[s] if s > 0 else None, limit=400, epsabs=0,
                     epsrel=1e-13)
        v2, _ = quad(f, edge, np.inf, limit=400, epsabs=0, epsrel=1e-13)
        return float((v1 + v2) / np.pi)
    if model == "momentum":
        return float("inf")
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")


def s2_bound(v: np.ndarray, z: complex, model: str = "lattice",
             weights: np.ndarray | None = None) -> float:
    """‖K(z)‖_S2 ≤ ‖V‖₂ (∫|R0(t;z)|² dt)^{1/2} (Young/Schur + Plancherel; sharp constant).

    Hypotheses: H0 translation invariant (the three models), Im z > 0, V ∈ L² (ℓ²).
    """
    return potential_norm(v, 2, weights) * float(np.sqrt(resolvent_l2_squared(z, model)))


def s2_bound_l1(v: np.ndarray, z: complex, model: str = "lattice",
                weights: np.ndarray | None = None) -> float:
    """‖K(z)‖_S2 ≤ ‖V‖₁ sup|R0| (lattice 1/|w⁻¹ − w|, continuum 1/(2|k|)); momentum ‖V‖₁/√2
    (the kernel is supported on x > y, sup = 1). Hypotheses: V ∈ L¹, Im z > 0."""
    zz = _z(z)
    if model == "momentum":
        c = 1.0 / np.sqrt(2.0)
    else:
        c = abs(free_kernel_diagonal(zz, model))
    return potential_norm(v, 1, weights) * float(c)


def s1_bound(v: np.ndarray, z: complex, model: str = "lattice",
             weights: np.ndarray | None = None) -> float:
    """‖K(z)‖_S1 ≤ ‖V‖₁ c₁(z) (factorisation through |H0 − z|^{−1/2} and Hölder).

    Hypotheses: H0 translation invariant with c₁(z) < ∞ (lattice, continuum in 1D; the
    momentum model has c₁ = ∞ and K ∉ S1), Im z > 0, V ∈ L¹.
    """
    return potential_norm(v, 1, weights) * trace_class_constant(z, model)


def seed_s2_bound(v: np.ndarray, z: complex, weights: np.ndarray | None = None) -> float:
    """The seeds' claim ‖K‖_S2 ≤ ½ (Im z)^{−1/2} ‖V‖₂, as stated (no setting given).
    **False** in general: see the module docstring and the schatten checks."""
    return 0.5 * potential_norm(v, 2, weights) / float(np.sqrt(_z(z).imag))


def seed_s1_bound(v: np.ndarray, z: complex, weights: np.ndarray | None = None) -> float:
    """The seeds' claim ‖K‖_S1 ≤ ½ (Im z)^{−1} ‖V‖₁, as stated (no setting given).
    **False** in general: see the module docstring and the schatten checks."""
    return 0.5 * potential_norm(v, 1, weights) / _z(z).imag
