r"""Scattering theory of ``H = −d²/dx² + V`` on the line, V real and compactly supported.

Setting (docs/conventions.md §1, §2, §6; docs/theory.md, "Continuum scattering"). ``V`` is
real and vanishes outside ``[a, b]``; ``k`` is the momentum, ``z = k²``; the physical sheet is
``Im k > 0`` (``k = √z`` principal, conventions §2) and the boundary values ``λ + i0`` are
``k = √λ > 0``.

Two potentials are exactly solvable cell by cell: a :class:`StepPotential` (piecewise
constant, exact transfer matrices), and a general ``V`` on ``[a, b]`` is reduced to it by
:meth:`StepPotential.from_function` (mid-point cells, a symmetric one-step scheme of order 2
in the cell width ``h``; :func:`jost_function` with ``richardson=True`` combines ``n`` and
``2n`` cells into an O(h⁴) result).

Conventions
-----------
* **Jost solutions.** ``f₊(x, k) = e^{ikx}`` for ``x ≥ b``, ``f₋(x, k) = e^{−ikx}`` for
  ``x ≤ a``; both entire in ``k`` (V compactly supported).
* **Transfer matrix.** Left of ``a`` a solution is ``A e^{ikx} + B e^{−ikx}``, right of ``b``
  ``A' e^{ikx} + B' e^{−ikx}``; ``(A', B')ᵀ = M(k) (A, B)ᵀ``, ``det M = 1`` (Wronskian).
* **Jost function** ``D(k) = W(f₋, f₊)/(2ik) = M₂₂(k) = det(I + V R0(k²)) = 1/t(k)``
  (W(f, g) = f g' − f' g; Jost–Pais, conventions §4). Its zeros with ``Im k > 0`` are
  ``k = iκ``, ``κ > 0``: the bound states ``−κ²``; its zeros with ``Im k < 0`` are the
  resonances (and anti-bound states on ``−iR₊``).
* **S-matrix** (k > 0): incoming from the left ``e^{ikx} + r e^{−ikx}`` → ``t e^{ikx}``; from
  the right ``e^{−ikx} + r' e^{ikx}`` → ``t e^{−ikx}``; ``S = [[t, r'], [r, t]]`` maps the
  incoming amplitudes (left, right) to the outgoing (right, left) ones:
  ``t = 1/M₂₂``, ``r = −M₂₁/M₂₂``, ``r' = M₁₂/M₂₂``. For real V and k > 0, S is unitary and
  ``det S = t² − r r' = M₁₁/M₂₂ = t/t̄`` (as ``M₁₁ = conj M₂₂``).
* **Scattering phase** ``δ(k) = (1/2i) log det S(k) = arg t(k) = −arg D(k)``, the branch
  continuous in ``k > 0`` with ``δ(∞) = 0``; ``δ(k) = −∫V/(2k) + O(k⁻²)``. The anchor is
  exact: ``|D(k) − 1| ≤ (s/2) e^{s}``, ``s = ‖V‖₁/k`` (Volterra bound on ``e^{−ikx}f₊``),
  so for ``k ≥ 2‖V‖₁`` the principal value of ``arg D`` *is* the branch.
* **Birman–Krein.** ``ξ(λ) = (1/π) arg D(√λ + i0)`` (Krein's formula, plus sign, conventions
  §6) is the spectral shift, ``det S(λ) = e^{−2πiξ(λ)}``, ``δ(√λ) = −πξ(λ)``.
* **Levinson on the line** (derived in docs/theory.md). With ``N_b`` the number of bound
  states, ``δ(0+) − δ(∞) = π(N_b − ½)`` generically (``W(f₋, f₊)(0) ≠ 0``: ``t(k) ~ 2ik/W(0)``)
  and ``δ(0+) − δ(∞) = πN_b`` when there is a half-bound state (``W(0) = 0``: a bounded
  zero-energy solution; e.g. ``V ≡ 0``).

Resonances: :func:`line_resonances` refines zeros of ``D`` from given starting points; all the
zeros in a rectangle of the k-plane — resonances, anti-bound and bound states, with an
Arb-certified count and Krawczyk boxes — are found by :func:`bkmath.line_resonances.line_zeros`
(:mod:`bkmath.line_resonances`).

Complexity: O(n_cells) per ``k``, vectorised over ``k`` (one numpy pass per cell).
References: Deift & Trubowitz, *Inverse scattering on the line* (CPAM 1979); Newton,
*Scattering theory of waves and particles*, ch. 12; Yafaev, *Mathematical scattering theory:
analytic theory* (Levinson's theorem, ch. 5).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from bkmath._validation import as_real_array

__all__ = [
    "StepPotential",
    "LineScattering",
    "step_potential",
    "line_transfer_matrix",
    "jost_function",
    "line_scattering",
    "line_scattering_phase",
    "line_bound_states",
    "zero_energy_data",
    "levinson_count",
    "line_resonances",
]


_MAX_GRID = 2_000_000  # the largest k- or κ-grid a routine here builds (~ 130 MB per array)


@dataclasses.dataclass(frozen=True)
class StepPotential:
    """A real piecewise-constant potential: ``V = values[j]`` on ``[edges[j], edges[j+1])``,
    ``V = 0`` outside ``[edges[0], edges[-1]]`` (compact support ``[a, b]``).

    >>> StepPotential.well(-4.0, 0.0, 1.0).support
    (0.0, 1.0)
    """

    edges: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        e = as_real_array(self.edges, "edges", ndim=1).astype(np.float64)
        v = as_real_array(self.values, "values", ndim=1).astype(np.float64)
        if e.size < 2 or v.size != e.size - 1:
            raise ValueError(f"edges must have len(values) + 1 >= 2 entries, got {e.size} "
                             f"edges and {v.size} values")
        if not (np.all(np.isfinite(e)) and np.all(np.isfinite(v))):
            raise ValueError("edges and values must be finite")
        if np.any(np.diff(e) <= 0):
            raise ValueError("edges must be strictly increasing")
        object.__setattr__(self, "edges", e)
        object.__setattr__(self, "values", v)

    @classmethod
    def well(cls, depth: float, a: float, b: float) -> StepPotential:
        """``V = depth · 1_[a, b]`` (a well for depth < 0, a barrier for depth > 0)."""
        return cls(np.array([a, b], float), np.array([depth], float))

    @classmethod
    def from_function(cls, v: Callable[[np.ndarray], np.ndarray], support: tuple[float, float],
                      n_cells: int = 1024) -> StepPotential:
        """Mid-point cells of a general real ``v`` supported in ``support = (a, b)``: ``n_cells``
        equal cells with the value of ``v`` at their centres (order h² in the scattering data).

        ``v`` is sampled outside ``[a, b]`` (on both sides, out to ``4(b − a)``): a nonzero
        value there is a ``ValueError`` ("v is not compactly supported in support").
        """
        a, b = _support(support)
        if isinstance(n_cells, bool) or not isinstance(n_cells, (int, np.integer)) \
                or n_cells < 1:
            raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}")
        if not callable(v):
            raise TypeError(f"v must be a callable v(x), got {type(v).__name__}")
        L = b - a
        out = np.concatenate([a - L * np.geomspace(4.0, 1e-9, 64),
                              b + L * np.geomspace(1e-9, 4.0, 64)])
        vo = np.asarray(v(out), dtype=float)
        if vo.shape != out.shape or not np.all(np.isfinite(vo)):
            raise ValueError("v must return finite real values of the shape of x")
        if np.any(vo != 0):
            x0 = float(out[np.nonzero(vo)[0][0]])
            raise ValueError(f"v is not compactly supported in support={support}: "
                             f"v({x0:.6g}) = {float(v(np.array([x0]))[0]):.3g} != 0")
        edges = np.linspace(a, b, int(n_cells) + 1)
        mids = (edges[:-1] + edges[1:]) / 2
        vals = np.asarray(v(mids), dtype=float)
        if vals.shape != mids.shape or not np.all(np.isfinite(vals)):
            raise ValueError("v must return finite real values of the shape of x")
        return cls(edges, vals)

    @property
    def support(self) -> tuple[float, float]:
        """``(a, b)``: ``V = 0`` outside."""
        return float(self.edges[0]), float(self.edges[-1])

    @property
    def l1_norm(self) -> float:
        """``‖V‖₁ = Σ |V_j| (x_{j+1} − x_j)``."""
        return float(np.sum(np.abs(self.values) * np.diff(self.edges)))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``V(x)`` (right-continuous steps)."""
        x = np.asarray(x, float)
        j = np.searchsorted(self.edges, x, side="right") - 1
        inside = (j >= 0) & (j < self.values.size)
        return np.where(inside, self.values[np.clip(j, 0, self.values.size - 1)], 0.0)


def step_potential(edges: object, values: object) -> StepPotential:
    """The :class:`StepPotential` with these edges and values (validated)."""
    return StepPotential(np.asarray(edges, float), np.asarray(values, float))


def _support(support: object) -> tuple[float, float]:
    arr = as_real_array(support, "support", ndim=1)
    if arr.size != 2 or not np.all(np.isfinite(arr)) or not arr[1] > arr[0]:
        raise ValueError(f"support must be a finite interval (a, b) with a < b, got {support!r}")
    return float(arr[0]), float(arr[1])


def _as_k(k: object, *, positive: bool) -> tuple[np.ndarray, bool]:
    arr = np.asarray(k)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"k must be numeric, got dtype {arr.dtype}")
    scalar = arr.ndim == 0
    kk = np.atleast_1d(arr).astype(np.complex128)
    if not np.all(np.isfinite(kk)):
        raise ValueError("k must be finite")
    if np.any(kk == 0):
        raise ValueError("k must be nonzero (k = 0 is the threshold; W(f-, f+)/(2ik) is "
                         "singular there)")
    if positive and (np.any(kk.imag != 0) or np.any(kk.real <= 0)):
        raise ValueError("k must be real and > 0 (on-shell scattering, λ = k² + i0)")
    return kk, scalar


def _as_pot(pot: object) -> StepPotential:
    if not isinstance(pot, StepPotential):
        raise TypeError(f"pot must be a StepPotential, got {type(pot).__name__}")
    return pot


def _cell_product(kk: np.ndarray, pot: StepPotential) -> tuple[np.ndarray, ...]:
    """The propagator ``P(k)`` of ``(f, f')`` from ``a`` to ``b`` (entries P11..P22, each of
    the shape of ``kk``): the product ``M_n ⋯ M_1`` of the exact cell matrices
    ``[[cos qL, sin(qL)/q], [−q sin qL, cos qL]]``, ``q² = k² − V_j`` (entire in q²).

    All cells at once, multiplied pairwise (a binary tree, log₂ n vectorised levels; the
    rounding error of a product of n factors then grows like log n rather than n), over
    blocks of k so that a level holds at most ~2²⁰ matrices."""
    shape = kk.shape
    kf = kk.reshape(-1)
    L = np.diff(pot.edges)[:, None]
    vj = np.asarray(pot.values, dtype=np.float64)[:, None]
    out = [np.empty(kf.shape, np.complex128) for _ in range(4)]
    if L.shape[0] == 0:  # no cell: the identity
        return tuple(np.full(shape, float(i in (0, 3)), np.complex128) for i in range(4))
    step = max(1, (1 << 20) // max(1, L.shape[0]))
    for lo in range(0, kf.size, step):
        k2 = (kf[lo:lo + step] * kf[lo:lo + step])[None, :]  # (1, nk)
        q2 = k2 - vj  # (n, nk)
        q = np.sqrt(q2)
        qL = q * L
        c = np.cos(qL)
        s = L * np.sinc(qL / np.pi)  # sin(qL)/q
        m = [c, s, -q2 * s, c]  # M11, M12, M21, M22 of each cell
        while m[0].shape[0] > 1:
            n = m[0].shape[0]
            a = [x[0:n - 1:2] for x in m]  # the earlier cell of each pair (right factor)
            b = [x[1::2] for x in m]  # the later one (left factor)
            prod = [b[0] * a[0] + b[1] * a[2], b[0] * a[1] + b[1] * a[3],
                    b[2] * a[0] + b[3] * a[2], b[2] * a[1] + b[3] * a[3]]
            # odd n: the last cell has no partner and is carried to the next level
            m = prod if n % 2 == 0 else [np.concatenate([x, y[n - 1:]])
                                         for x, y in zip(prod, m, strict=True)]
        for o, x in zip(out, m, strict=True):
            o[lo:lo + step] = x[0]
    return tuple(o.reshape(shape) for o in out)


def _transfer(kk: np.ndarray, pot: StepPotential) -> np.ndarray:
    a, b = pot.support
    p11, p12, p21, p22 = _cell_product(kk, pot)
    ik = 1j * kk
    M = np.empty(kk.shape + (2, 2), np.complex128)
    with np.errstate(over="ignore", invalid="ignore"):
        M[..., 0, 0] = 0.5 * np.exp(ik * (a - b)) * (p11 + ik * p12 + p21 / ik + p22)
        M[..., 0, 1] = 0.5 * np.exp(-ik * (a + b)) * (p11 - ik * p12 + p21 / ik - p22)
        M[..., 1, 0] = 0.5 * np.exp(ik * (a + b)) * (p11 + ik * p12 - p21 / ik - p22)
        M[..., 1, 1] = 0.5 * np.exp(ik * (b - a)) * (p11 - ik * p12 - p21 / ik + p22)
    if not np.all(np.isfinite(M)):
        raise ValueError("k: the transfer matrix leaves the float64 range (|Im k|(b − a) or "
                         "the barrier action too large)")
    return M


def line_transfer_matrix(k: object, pot: StepPotential) -> np.ndarray:
    """The plane-wave transfer matrix ``M(k)`` (conventions in the module docstring), shape
    ``k.shape + (2, 2)``; any complex ``k ≠ 0`` (M is entire in k apart from the 1/k of the
    plane-wave basis). O(n_cells) per k.

    >>> M = line_transfer_matrix(1.5, StepPotential.well(2.0, -0.5, 0.5))
    >>> bool(abs(np.linalg.det(M) - 1) < 1e-14)
    True
    """
    kk, scalar = _as_k(k, positive=False)
    M = _transfer(kk, _as_pot(pot))
    return M[0] if scalar else M


def jost_function(k: object, pot: StepPotential, *, richardson: StepPotential | None = None):
    """The Jost function ``D(k) = W(f₋, f₊)/(2ik) = 1/t(k) = det(I + V R0(k²))``, any complex
    ``k ≠ 0`` (physical sheet Im k > 0, bound states at its zeros ``iκ``; resonances at its
    zeros with Im k < 0). Vectorised over ``k``; O(n_cells) per k.

    ``richardson``: the same ``v`` on twice as many mid-point cells (from
    :meth:`StepPotential.from_function`); then ``(4 D_{2n} − D_n)/3``, an O(h⁴) value (the
    mid-point scheme is symmetric, so its error expands in even powers of h).

    >>> D = jost_function(2.0, StepPotential.well(0.0, 0.0, 1.0))   # V ≡ 0: D ≡ 1
    >>> bool(abs(D - 1) < 1e-15)
    True
    """
    kk, scalar = _as_k(k, positive=False)
    D = _transfer(kk, _as_pot(pot))[..., 1, 1]
    if richardson is not None:
        D = (4 * _transfer(kk, _as_pot(richardson))[..., 1, 1] - D) / 3
    return complex(D[0]) if scalar else D


@dataclasses.dataclass(frozen=True)
class LineScattering:
    """On-shell scattering data at momenta ``k > 0``: ``t``, ``r`` (from the left), ``r_prime``
    (from the right), ``jost`` = ``D = 1/t``; :attr:`S` = ``[[t, r'], [r, t]]`` and
    :attr:`det_S` = ``t² − r r'`` (= ``t/t̄`` for real V)."""

    k: np.ndarray
    t: np.ndarray
    r: np.ndarray
    r_prime: np.ndarray
    jost: np.ndarray

    @property
    def S(self) -> np.ndarray:
        """The S-matrix, shape ``k.shape + (2, 2)``."""
        return np.stack([np.stack([self.t, self.r_prime], -1),
                         np.stack([self.r, self.t], -1)], -2)

    @property
    def det_S(self) -> np.ndarray:
        """``det S = t² − r r'``."""
        return self.t * self.t - self.r * self.r_prime


def line_scattering(k: object, pot: StepPotential) -> LineScattering:
    """Transmission and reflection of ``−d²/dx² + V`` at momenta ``k > 0`` (real; a
    ``ValueError`` naming ``k`` otherwise), from the transfer matrix: ``t = 1/M₂₂``,
    ``r = −M₂₁/M₂₂``, ``r' = M₁₂/M₂₂``. O(n_cells) per k.

    >>> s = line_scattering([0.5, 1.0, 3.0], StepPotential.well(-3.0, -1.0, 1.0))
    >>> bool(np.allclose(abs(s.t) ** 2 + abs(s.r) ** 2, 1, atol=1e-13))
    True
    """
    kk, _ = _as_k(k, positive=True)
    M = _transfer(kk.real.astype(np.complex128), _as_pot(pot))
    D = M[..., 1, 1]
    shape = np.shape(k)
    return LineScattering(kk.real.reshape(shape), (1 / D).reshape(shape),
                          (-M[..., 1, 0] / D).reshape(shape), (M[..., 0, 1] / D).reshape(shape),
                          D.reshape(shape))


def line_scattering_phase(k: object, pot: StepPotential, *, max_step: float = 0.25) -> np.ndarray:
    """The scattering phase ``δ(k) = (1/2i) log det S(k) = arg t(k) = −arg D(k)``, continuous in
    ``k > 0`` with ``δ(∞) = 0`` (so ``δ = −πξ(k²)``).

    The branch is anchored at ``K = max(k_max, 2‖V‖₁)``, where ``|D − 1| ≤ (s/2)e^s < 1``
    (``s = ‖V‖₁/k ≤ ½`` on ``[K, ∞)``) makes the principal value the branch; it is continued
    down a geometric grid through every requested ``k``, refined until every principal phase
    increment is below ``max_step``. Returns an array of the shape of ``k``.

    >>> round(float(line_scattering_phase(50.0, StepPotential.well(1.0, 0.0, 1.0))), 5)  # −∫V/2k
    -0.01
    """
    kk, scalar = _as_k(k, positive=True)
    pot = _as_pot(pot)
    if isinstance(max_step, bool) or not isinstance(max_step, (int, float, np.floating,
                                                              np.integer)) \
            or not (0 < max_step < 1):
        raise ValueError(f"max_step must lie in (0, 1), got {max_step!r}")
    if kk.size == 0:
        return np.zeros(np.shape(k))
    want = np.unique(kk.real)
    K = max(float(want[-1]), 2.0 * pot.l1_norm)
    a, b = pot.support
    with np.errstate(over="ignore"):
        n_f = 16 + 8 * (K * (b - a) + math.log(K / want[0])) if want[0] > 0 else math.inf
    if not (math.isfinite(n_f) and n_f <= _MAX_GRID):
        raise ValueError(f"k, pot: the phase continuation from K = max(k_max, 2‖V‖₁) = {K:.3g} "
                         f"down to k_min = {want[0]:.3g} over the support of length {b - a:.3g} "
                         f"needs {n_f:.3g} grid points (more than {_MAX_GRID:.0e})")
    n = int(n_f)
    grid = np.unique(np.concatenate([want, np.geomspace(K, want[0], n)]))[::-1]
    for _ in range(30):
        D = _transfer(grid.astype(np.complex128), pot)[..., 1, 1]
        inc = np.angle(D[1:] / D[:-1])
        big = np.abs(inc) > max_step
        if not big.any():
            break
        mids = np.sqrt(grid[:-1][big] * grid[1:][big])
        grid = np.unique(np.concatenate([grid, mids]))[::-1]
    else:  # pragma: no cover (a zero of D on k > 0 is impossible: |t| ≤ 1)
        raise RuntimeError("line_scattering_phase: the phase continuation did not converge")
    delta = -(np.angle(D[0]) + np.concatenate([[0.0], np.cumsum(inc)]))
    out = np.interp(kk.real, grid[::-1], delta[::-1])  # exact: every k is a grid point
    return float(out[0]) if scalar else out.reshape(np.shape(k))


def zero_energy_data(pot: StepPotential) -> dict:
    """The zero-energy solution ``u`` with ``u = 1`` on ``x ≥ b``, integrated exactly cell by
    cell to ``a``: returns ``{"zeros": #zeros of u on R, "u_a", "du_a", "half_bound"}``.

    On ``x ≤ a``, ``u = u(a) + u'(a)(x − a)``, a zero there iff ``u(a)u'(a) > 0``;
    ``W(f₋, f₊)(0) = −u'(a)`` up to the sign convention, so the threshold is half-bound iff
    ``u'(a) = 0`` (reported when ``|u'(a)| ≤ 1e-12 (|u(a)| + 1)/(b − a)``). By Sturm
    oscillation the number of zeros is the number of bound states ``N_b`` (in the
    half-bound case too). Prüfer angle per cell: where ``V_j < 0`` the scaled angle of
    ``(u, u'/q)`` advances by exactly ``qL``; where ``V_j ≥ 0`` u has at most one zero in the
    cell, present iff u changes sign. O(n_cells).
    """
    pot = _as_pot(pot)
    u, du = 1.0, 0.0
    zeros = 0
    for L, vj in zip(np.diff(pot.edges)[::-1], pot.values[::-1], strict=True):
        # propagate from the right end of the cell to its left end (length −L)
        if vj < 0:
            q = math.sqrt(-vj)
            th0 = math.atan2(u, du / q)  # u = ρ sin θ, u'/q = ρ cos θ; θ' = q
            th1 = th0 - q * L  # going left, θ decreases
            zeros += math.floor(th0 / math.pi) - math.floor(th1 / math.pi)
            if math.sin(th0) == 0.0:  # u = 0 exactly at the right end: counted once
                zeros -= 1
            rho = math.hypot(u, du / q)
            u, du = rho * math.sin(th1), rho * q * math.cos(th1)
        else:
            q = math.sqrt(vj)
            ch = math.cosh(q * L)
            sh_q = L if q == 0 else math.sinh(q * L) / q
            u1 = ch * u - sh_q * du
            du1 = -q * q * sh_q * u + ch * du
            if u1 * u < 0:
                zeros += 1
            u, du = u1, du1
        m = max(abs(u), abs(du), 1.0)
        if m > 1e250:  # pragma: no cover (rescale: only the zeros and the ratio matter)
            u, du = u / m, du / m
    a, b = pot.support
    half = abs(du) <= 1e-12 * (abs(u) + 1.0) / (b - a)
    if not half and u * du > 0:
        zeros += 1
    return {"zeros": zeros, "u_a": u, "du_a": du, "half_bound": bool(half)}


def line_bound_states(pot: StepPotential, *, n_grid: int | None = None) -> np.ndarray:
    """The bound-state energies ``−κ_j²`` of ``−d²/dx² + V`` (ascending): the zeros ``k = iκ``
    of the Jost function, ``0 < κ ≤ √(−min V)``.

    ``W(iκ)·e^{−κ(b − a)}`` is real for real V; its sign changes on a grid of ``n_grid`` points
    (default ``200 (1 + (b − a)√(−min V))``, finer than the oscillation length) are refined by
    Brent's method. The count is cross-checked against :func:`zero_energy_data`'s oscillation
    count; a mismatch (a pair of zeros closer than the grid) raises ``RuntimeError``.

    >>> E = line_bound_states(StepPotential.well(-16.0, 0.0, 1.0))   # √16 · 1/π ≈ 1.27: two
    >>> E.round(6).tolist()
    [-11.7575, -1.628406]
    """
    from scipy.optimize import brentq

    pot = _as_pot(pot)
    vmin = float(pot.values.min())
    if vmin >= 0:
        return np.zeros(0)
    a, b = pot.support
    kmax = math.sqrt(-vmin)
    if n_grid is not None and (isinstance(n_grid, bool) or not isinstance(n_grid, (int, np.integer))
                               or not 2 <= n_grid <= _MAX_GRID):
        raise ValueError(f"n_grid must be an integer in [2, {_MAX_GRID:.0e}], got {n_grid!r}")
    n_f = 200 * (1 + (b - a) * kmax)
    if n_grid is None and not (math.isfinite(n_f) and n_f <= _MAX_GRID):
        raise ValueError(f"pot: the κ-grid of line_bound_states needs 200 (1 + (b − a)√(−min V)) "
                         f"= {n_f:.3g} points (more than {_MAX_GRID:.0e}): the well is too deep "
                         f"or too wide")
    n = n_grid or int(n_f)

    def F(kap):
        kap = np.atleast_1d(np.asarray(kap, float))
        D = _transfer(1j * kap.astype(np.complex128), pot)[..., 1, 1]
        return (D.real * (-2.0 * kap) * np.exp(-kap * (b - a)))  # W(iκ) scaled, real

    kap = np.linspace(kmax * 1e-9, kmax, n)
    f = F(kap)
    roots = []
    for i in np.nonzero(np.sign(f[:-1]) * np.sign(f[1:]) < 0)[0]:
        roots.append(brentq(lambda x: float(F(x)[0]), kap[i], kap[i + 1], xtol=1e-15,
                            rtol=4 * np.finfo(float).eps))
    zed = zero_energy_data(pot)
    if len(roots) != zed["zeros"] and not (zed["half_bound"]
                                           and abs(len(roots) - zed["zeros"]) <= 1):
        raise RuntimeError(f"line_bound_states: {len(roots)} sign changes of W(iκ) but "
                           f"{zed['zeros']} zeros of the zero-energy solution; raise n_grid")
    return np.sort(-np.asarray(roots) ** 2)


def levinson_count(pot: StepPotential) -> float:
    """The right side of Levinson's theorem, ``δ(0+) − δ(∞)`` predicted as ``π(N_b − ½)``
    (generic) or ``πN_b`` (half-bound threshold), in units of π: returns ``N_b − ½`` or
    ``N_b`` with ``N_b`` from :func:`zero_energy_data`.

    >>> levinson_count(StepPotential.well(-1.0, 0.0, 1.0)), levinson_count(
    ...     StepPotential.well(-(np.pi ** 2), 0.0, 1.0))
    (0.5, 1)
    """
    z = zero_energy_data(_as_pot(pot))
    return z["zeros"] if z["half_bound"] else z["zeros"] - 0.5


def line_resonances(pot: StepPotential, guesses: object, *, tol: float = 1e-12,
                    max_iter: int = 60) -> np.ndarray:
    """Zeros of the Jost function ``D(k)`` from starting points ``guesses`` by Newton's
    method with a central-difference derivative (D is entire): resonances have ``Im k < 0``
    (``Re k ≠ 0``; in pairs ``k, −k̄``), bound states ``k = iκ``. Returns the converged zeros
    (a ``RuntimeError`` when one does not converge). Energies: ``E = k²``, width
    ``Γ = −2 Im E``.

    This refines zeros near known guesses only. To find *all* zeros in a region of the
    k-plane (winding-number count, bisection, Newton with the exact derivative) use
    :func:`bkmath.line_resonances.line_zeros`; the Arb certificates of the zeros and of the
    count are :func:`bkmath.line_resonances.line_zero_balls` and
    :func:`bkmath.line_resonances.certified_zero_count`.
    """
    pot = _as_pot(pot)
    g, _ = _as_k(guesses, positive=False)
    out = []
    for k0 in g:
        k = complex(k0)
        for _ in range(max_iter):
            h = 1e-6 * max(1.0, abs(k))
            D = jost_function(k, pot)
            dD = (jost_function(k + h, pot) - jost_function(k - h, pot)) / (2 * h)
            step = D / dD
            k -= step
            if abs(step) <= tol * max(1.0, abs(k)):
                break
        else:
            raise RuntimeError(f"line_resonances: Newton did not converge from {k0}")
        out.append(k)
    return np.array(out)
