"""The Birman–Schwinger operator K(z) = |V|^{1/2} U R0(z) |V|^{1/2} on supp V.

Three free operators H0 are supported (docs/conventions.md §1, §4):

``"lattice"``
    H0 = −Δ on ℓ²(Z) (diagonal 2, hopping −1), spectrum [0, 4]. Free resolvent kernel
    G0(m, n; z) = w^{|m−n|} / (w⁻¹ − w), with w = w(z) the root of w² − (2 − z) w + 1 = 0
    with |w| < 1. Boundary values λ + i0, λ ∈ (0, 4): w = e^{iθ}, θ = arccos(1 − λ/2) ∈ (0, π).
``"continuum"``
    H0 = −d²/dx² on L²(R), spectrum [0, ∞). R0(x, y; z) = i e^{ik|x−y|} / (2k), k = √z with
    Im k > 0 (for λ + i0, λ > 0: k = √λ > 0).
``"momentum"``
    H0 = −i d/dx on L²(R), spectrum R. For Im z > 0 the resolvent is the Volterra operator

        ((H0 − z)⁻¹ f)(x) = i ∫_{−∞}^{x} e^{iz(x−y)} f(y) dy,
        R0(x, y; z) = i e^{iz(x−y)} θ(x − y).

    Derivation: (H0 − z) u = f is u' = i z u + i f; the solution in L² for Im z > 0 is the
    one that vanishes at −∞ (e^{izx} decays to the right), which is the formula above.
    Equivalently (1/2π) ∫ e^{iξ(x−y)} / (ξ − z) dξ closed in the upper half-plane for
    x > y (residue at ξ = z) and in the lower half-plane for x < y (no pole). On the
    diagonal the kernel jumps from 0 to i; the Nyström form uses the mid-point value
    θ(0) = ½ (the value that makes the discretised det(I + K) converge to the regularised
    perturbation determinant e^{(i/2)∫V}; see :mod:`bkmath.fredholm`). This K is *not* trace
    class when ∫V ≠ 0 (it is a Volterra operator conjugate to the integration operator,
    whose singular values decay like 1/n), while it is Hilbert–Schmidt for V ∈ L².

Conventions: V = U|V| with U = sgn V (U = 0 off the support), so K = U |V|^{1/2} R0 |V|^{1/2}
and det(I + K) = det(I + V R0). The operator lives on supp V: on the lattice the sites with
v ≠ 0, in the continuum the quadrature nodes.

The kernel of K is *semiseparable*: K(x, y) = a(x) · c · exp(L |x − y|) · b(y) (two-sided,
lattice and continuum) or a(x) · c · exp(L (x − y)) · θ(x − y) · b(y) (one-sided, momentum),
with Re L ≤ 0. :class:`BirmanSchwingerOperator` keeps that form: O(N) matvec and O(N)
Hilbert–Schmidt norm by two sweeps, each multiplying by exp(L Δx) with |·| ≤ 1 (stable).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np

from bkmath._validation import as_numeric_array, as_real_array, as_spectral_parameter
from bkmath.free import (
    _exp_i,
    _lattice_theta,
    free_resolvent,
    free_resolvent_continuum,
    lattice_w,
)

__all__ = [
    "birman_schwinger",
    "BirmanSchwingerOperator",
    "lattice_w_boundary",
    "continuum_k",
    "free_kernel_diagonal",
    "MODELS",
]

MODELS = ("lattice", "continuum", "momentum")


def lattice_w_boundary(z: complex) -> complex:
    """The lattice root w(z) (:func:`bkmath.lattice_w` with ``boundary=True``), thresholds
    rejected.

    For Im z > 0: the root with |w| < 1. For real z = λ: λ < 0 gives w ∈ (0, 1), λ > 4 gives
    w ∈ (−1, 0), and λ ∈ (0, 4) gives the boundary value from above, w = e^{iθ},
    θ = arccos(1 − λ/2) ∈ (0, π). The thresholds λ = 0, 4 (w = ±1, G0 singular) raise
    ``ValueError``. O(1).
    """
    z = complex(z)
    if z.imag == 0.0 and z.real in (0.0, 4.0):
        raise ValueError(f"z = {z.real} is a threshold of the lattice Laplacian (w = ±1)")
    return complex(lattice_w(z, boundary=True))


def continuum_k(z: complex) -> complex:
    """k = √z with Im k > 0 (Im z > 0), or the boundary value (λ > 0: k = √λ; λ < 0: i√|λ|)."""
    z = complex(z)
    if z.imag < 0:
        raise ValueError(f"Im z must be >= 0, got {z.imag}")
    if z == 0:
        raise ValueError("z = 0 is the threshold of −d²/dx² (R0 is singular)")
    return complex(np.sqrt(complex(z.real, abs(z.imag))))


def free_kernel_diagonal(z: complex, model: str = "lattice") -> complex:
    """G0(x, x; z): 1/(w⁻¹ − w) (lattice), i/(2k) (continuum), i/2 (momentum, θ(0) = ½)."""
    c, _, one_sided = _kernel_parameters(complex(z), model)
    return c * (0.5 if one_sided else 1.0)


def _kernel_parameters(z: complex, model: str) -> tuple[complex, complex, bool]:
    """(c, L, one_sided) with R0(x, y) = c exp(L |x − y|) or c exp(L (x − y)) θ(x − y)."""
    if model == "lattice":
        lattice_w_boundary(z)  # rejects the thresholds
        # L = log w = iθ from θ itself: log(w) loses Re L where |w| rounds to 1 (z = 1e-300 i)
        th = complex(_lattice_theta(z, boundary=True))
        return complex(free_resolvent(0, 0, z, boundary=True)), 1j * th, False
    if model == "continuum":
        k = continuum_k(z)
        return complex(free_resolvent_continuum(0.0, 0.0, z, boundary=True)), 1j * k, False
    if model == "momentum":
        return 1j, 1j * z, True
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")


@dataclasses.dataclass(frozen=True)
class BirmanSchwingerOperator:
    """Semiseparable form of K: K_ij = left_i · c · e^{L|x_i − x_j|} · right_j.

    For ``one_sided`` (momentum model) the factor is e^{L(x_i − x_j)} for x_i > x_j,
    ½ on the diagonal and 0 above it. ``left = √w U |V|^{1/2}``, ``right = √w |V|^{1/2}`` with
    quadrature weights w (w = 1 on the lattice), so that the matrix is the Nyström
    discretisation whose singular values approximate those of K.

    ``np.asarray(op)`` gives the dense matrix; ``op @ u`` the O(N) matvec.
    """

    model: str
    z: complex
    nodes: np.ndarray
    left: np.ndarray
    right: np.ndarray
    c: complex
    L: complex
    one_sided: bool

    @property
    def shape(self) -> tuple[int, int]:
        n = self.nodes.size
        return (n, n)

    def kernel(self) -> np.ndarray:
        """The dense matrix c e^{L|x_i − x_j|} (or its one-sided version), O(N²)."""
        d = self.nodes[:, None] - self.nodes[None, :]
        k = -1j * self.L  # e^{L t} = e^{i k t}, Im k >= 0: modulus and phase apart (_exp_i)
        if self.one_sided:
            e = _exp_i(k, np.where(d > 0, d, 0.0), "nodes, z")
            f = np.where(d > 0, e, np.where(d == 0, 0.5, 0.0))
            return self.c * f
        return self.c * _exp_i(k, np.abs(d), "nodes, z")

    def dense(self) -> np.ndarray:
        """The dense N×N matrix of K (O(N²) memory).

        Every factor ``left_i``, ``right_j`` is split into a mantissa and a power of two
        (exact) and ``K_ij = m_i c e^{L|Δx|} m'_j 2^{e_i + e'_j}`` is put together last, so an
        entry is inf only when the true ``|K_ij|`` exceeds float64 (then ValueError naming v;
        the operator form keeps the factors apart and stays usable) and ``v = (1e300, 1e-300)``
        keeps both its ``1e300 G0`` and its ``1e-300 G0`` entries.
        """
        ml, el = _pow2_split(self.left)
        mr, er = _pow2_split(self.right)
        e = el[:, None] + er[None, :]
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            m = ml[:, None] * self.kernel() * mr[None, :]
            out = np.empty(m.shape, dtype=np.complex128)
            out.real = np.ldexp(m.real, e)
            out.imag = np.ldexp(m.imag, e)
        if not np.all(np.isfinite(out)):
            big = int(e.max(initial=0))
            raise ValueError(
                f"v: K(z) = U|V|^(1/2) R0(z) |V|^(1/2) overflows float64 at z = {self.z} "
                f"(max |v_i| w_i ~ 2^{big}, |R0(x, x; z)| = {abs(self.c):.3g})"
                "; form='operator' keeps the factors apart"
            )
        return out

    def __array__(self, dtype=None, copy=None):  # noqa: D105
        a = self.dense()
        return a if dtype is None else a.astype(dtype)

    def matvec(self, u: np.ndarray) -> np.ndarray:
        """K u in O(N) by a forward and a backward sweep (|e^{LΔx}| ≤ 1: no overflow)."""
        u = np.asarray(u, dtype=np.complex128)
        if u.shape != (self.nodes.size,):
            raise ValueError(f"u must have shape ({self.nodes.size},), got {u.shape}")
        s = self.right * u
        fwd, bwd = _sweeps(self.nodes, self.L, s)
        if self.one_sided:
            return self.left * self.c * (fwd - 0.5 * s)
        return self.left * self.c * (fwd + bwd)

    def __matmul__(self, u: np.ndarray) -> np.ndarray:
        return self.matvec(u)

    def trace(self) -> complex:
        """tr K = G0(x, x) Σ left_i right_i = G0(x, x) ∫ V (Nyström trace), O(N)."""
        diag = self.c * (0.5 if self.one_sided else 1.0)
        return complex(diag * np.sum(self.left * self.right))

    def hs_norm(self) -> float:
        """‖K‖_S2 = (Σ_ij |K_ij|²)^{1/2} in O(N): the kernel |c|² e^{2 Re L |Δx|} is again
        semiseparable, so one forward/backward sweep pair computes the double sum."""
        # the factors are scaled to max 1 (powers of two, exact) so that |a_i|² |b_j|² cannot
        # overflow or underflow; the scales come back outside the square root
        sa = _pow2_scale(self.left)
        sb = _pow2_scale(self.right)
        a2 = np.abs(self.left * math.ldexp(1.0, -sa)) ** 2
        b2 = np.abs(self.right * math.ldexp(1.0, -sb)) ** 2
        L2 = 2.0 * self.L.real
        fwd, bwd = _sweeps(self.nodes, L2, b2.astype(np.complex128))
        if self.one_sided:  # strictly lower part + diagonal ¼
            tot = np.sum(a2 * (fwd.real - b2)) + 0.25 * np.sum(a2 * b2)
        else:
            tot = np.sum(a2 * (fwd.real + bwd.real))
        val = abs(self.c) * np.sqrt(max(tot, 0.0))
        try:
            out = float(math.ldexp(float(val), sa + sb)) if val < np.inf else math.inf
        except OverflowError:
            out = math.inf
        if not out < math.inf:
            raise ValueError(f"‖K‖_S2 overflows float64 (scale 2^{sa + sb})")
        return out


def _pow2_split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x = m · 2^e`` entrywise (exact), ``|m| < 1`` and ``e`` from ``frexp(|x|)`` (0 for 0)."""
    x = np.asarray(x, dtype=np.complex128)
    _, e = np.frexp(np.abs(x))
    e = np.maximum(e, -1000)  # 2^{-e} finite for subnormal x
    m = np.empty_like(x)
    m.real = np.ldexp(x.real, -e)
    m.imag = np.ldexp(x.imag, -e)
    return m, e.astype(np.int64)


def _pow2_scale(x: np.ndarray) -> int:
    """Exponent e with max|x| 2^{-e} in [1/2, 1) (0 for an empty or zero array)."""
    m = float(np.max(np.abs(x), initial=0.0))
    return max(math.frexp(m)[1], -1000) if m > 0 else 0  # 2^{-e} finite for subnormal m


def _sweeps(x: np.ndarray, L: complex, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """fwd_i = Σ_{j≤i} e^{L(x_i−x_j)} s_j and bwd_i = Σ_{j>i} e^{L(x_j−x_i)} s_j, O(N).

    Uniformly spaced nodes use a first-order IIR filter (vectorised); otherwise a loop.
    """
    n = x.size
    if n == 0:
        return np.zeros(0, complex), np.zeros(0, complex)
    dx = np.diff(x)
    if n > 1 and np.allclose(dx, dx[0], rtol=0, atol=1e-14 * max(1.0, abs(dx[0]))):
        from scipy.signal import lfilter

        rho = np.exp(L * dx[0])
        fwd = lfilter([1.0], [1.0, -rho], s)
        rev = lfilter([1.0], [1.0, -rho], s[::-1])[::-1]  # Σ_{j≥i}
        return fwd, rev - s
    ex = np.exp(L * dx).tolist() if n > 1 else []
    sl = s.tolist()
    fwd = [0j] * n
    acc = 0j
    for i in range(n):
        acc = (acc * ex[i - 1] if i else 0j) + sl[i]
        fwd[i] = acc
    bwd = [0j] * n
    acc = 0j
    for i in range(n - 2, -1, -1):
        acc = ex[i] * (acc + sl[i + 1])
        bwd[i] = acc
    return np.array(fwd), np.array(bwd)


def gauss_legendre(interval: tuple[float, float], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [a, b] (n points)."""
    a, b = (float(t) for t in interval)
    if not b > a:
        raise ValueError(f"interval must satisfy a < b, got {interval}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    t, w = _legendre_nodes(int(n))
    return 0.5 * (b - a) * t + 0.5 * (a + b), 0.5 * (b - a) * w


@functools.lru_cache(maxsize=64)
def _legendre_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.special import roots_legendre

    t, w = roots_legendre(n)
    t.setflags(write=False)
    w.setflags(write=False)
    return t, w


def birman_schwinger(
    v: np.ndarray | Callable[[np.ndarray], np.ndarray],
    z: complex,
    *,
    model: str = "lattice",
    nodes: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    interval: tuple[float, float] | None = None,
    n: int | None = None,
    boundary: bool = False,
    form: str = "dense",
) -> np.ndarray | BirmanSchwingerOperator:
    r"""The Birman–Schwinger operator K(z) = U |V|^{1/2} R0(z) |V|^{1/2} on supp V.

    Parameters
    ----------
    v : array_like or callable
        Lattice: the real potential v_n on sites ``nodes`` (default 0, 1, ..., len(v) − 1);
        sites with v_n = 0 are dropped (K acts on supp V). Continuum / momentum: real values
        at the quadrature ``nodes`` (with ``weights``), or a callable evaluated at the
        Gauss–Legendre nodes of ``interval`` (``n`` points).
    z : complex
        Spectral parameter, Im z > 0. With ``boundary=True`` Im z ≥ 0 is accepted and a real
        z means the boundary value λ + i0 (lattice: λ ∉ {0, 4}; continuum: λ ≠ 0).
    model : {"lattice", "continuum", "momentum"}
        The free operator H0 (see the module docstring for the kernels).
    form : {"dense", "operator"}
        ``"dense"``: the N×N complex matrix (O(N²)). ``"operator"``: a
        :class:`BirmanSchwingerOperator` with O(N) matvec, trace and Hilbert–Schmidt norm.

    Returns
    -------
    ndarray or BirmanSchwingerOperator
        Matrix entries K_ij = √w_i U_i |v_i|^{1/2} R0(x_i, x_j; z) |v_j|^{1/2} √w_j.

    Examples
    --------
    >>> K = birman_schwinger([0.0, -1.0, 0.0], 1j)      # one site: K = v G0(0, 0; z)
    >>> from bkmath.bs_operator import lattice_w_boundary
    >>> w = lattice_w_boundary(1j)
    >>> bool(np.isclose(K[0, 0], -1.0 / (1 / w - w)))
    True
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if form not in ("dense", "operator"):
        raise ValueError(f"form must be 'dense' or 'operator', got {form!r}")
    zz = complex(as_spectral_parameter(z, "z", boundary=boundary).reshape(()))
    if model == "lattice":
        vv = as_real_array(v, "v", ndim=1)
        x = np.arange(vv.size, dtype=float) if nodes is None else as_real_array(
            nodes, "nodes", ndim=1
        )
        if x.shape != vv.shape:
            raise ValueError(f"nodes must have the shape of v {vv.shape}, got {x.shape}")
        if np.any(x != np.round(x)):
            raise ValueError("nodes must be integer sites on the lattice")
        wq = np.ones_like(vv)
    else:
        if callable(v):
            if interval is None or n is None:
                raise ValueError("a callable v needs interval=(a, b) and n (quadrature size)")
            x, wq = gauss_legendre(interval, n)
            vv = as_real_array(v(x), "v(x)", ndim=1)
            if vv.shape != x.shape:
                raise ValueError(f"v(x) must have shape {x.shape}, got {vv.shape}")
        else:
            if nodes is None or weights is None:
                raise ValueError(
                    "continuum/momentum models need nodes and weights (or a callable v)"
                )
            vv = as_real_array(v, "v", ndim=1)
            x = as_real_array(nodes, "nodes", ndim=1)
            wq = as_real_array(weights, "weights", ndim=1)
            if not (x.shape == vv.shape == wq.shape):
                raise ValueError("v, nodes and weights must have the same shape")
            if np.any(wq <= 0):
                raise ValueError("weights must be > 0")
    order = np.argsort(x, kind="stable")
    x, vv, wq = x[order], vv[order], wq[order]
    if np.any(np.diff(x) == 0):
        raise ValueError("nodes must be distinct")
    with np.errstate(over="ignore"):
        spread = x[-1] - x[0] if x.size else 0.0
    if not np.isfinite(spread):
        raise ValueError("nodes: the spread max - min overflows float64")
    keep = vv != 0
    x, vv, wq = x[keep], vv[keep], wq[keep]
    c, L, one_sided = _kernel_parameters(zz, model)
    root = np.sqrt(np.abs(vv)) * np.sqrt(wq)  # not sqrt(|v| w): |v| w may overflow
    op = BirmanSchwingerOperator(
        model=model,
        z=zz,
        nodes=x,
        left=(np.sign(vv) * root).astype(np.complex128),
        right=root.astype(np.complex128),
        c=complex(c),
        L=complex(L),
        one_sided=one_sided,
    )
    return op.dense() if form == "dense" else op


def as_matrix(K: object, name: str = "K") -> np.ndarray:
    """A square complex matrix from an ndarray or a :class:`BirmanSchwingerOperator`."""
    if isinstance(K, BirmanSchwingerOperator):
        return K.dense()
    a = as_numeric_array(K, name, ndim=2)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be square, got shape {a.shape}")
    return a.astype(np.complex128)
