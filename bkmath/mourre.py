r"""Mourre estimates: commutators ``[H, iA]`` with a conjugate operator, and Mourre constants.

A *Mourre estimate* for a self-adjoint ``H`` and a self-adjoint conjugate operator ``A`` on an
interval ``I`` is

.. math:: E_I\,[H, iA]\,E_I \;\ge\; c\,E_I + K, \qquad c > 0,\ K \text{ compact},

with ``E_I`` the spectral projection of ``H`` on ``I`` (Mourre 1981; Amrein–Boutet de
Monvel–Georgescu, *C0-groups, commutator methods and spectral theory of N-body Hamiltonians*,
1996, ch. 7). Three settings are implemented (docs/conventions.md §5); each has an exact
symbol ``f`` with ``[H0, iA] = f(H0)``:

``"momentum"``  ``H0 = p = -i d/dx`` on L²(R), ``A = x``:
    ``[H0, iA] = i(px - xp) = I``, so ``f = 1`` (the seeds' "[H0, iA] = I"). For a real
    potential ``[V, ix] = 0``, hence ``[H0 + V, iA] = I`` exactly and ``c = 1`` on every ``I``.
``"continuum"`` ``H0 = p² = -d²/dx²``, dilation generator ``A = (xp + px)/2``:
    ``[p², iA] = 2p²``, ``f(λ) = 2λ``, and ``[V, iA] = -x V'(x)``; so
    ``[H, iA] = 2H - (2V + xV')`` and ``c = 2 inf(I ∩ [0, ∞))``.
``"lattice"``   ``H0 = -Δ`` on ℓ²(Z) (diagonal 2, hopping -1, spectrum [0, 4]) and the lattice
    dilation generator

    .. math:: A = \tfrac12 (S N + N S),\quad S = -i(T - T^*),\quad (Tu)(n) = u(n+1),

    i.e. ``A_{n,n+1} = -i(n + 1/2)``, ``A_{n+1,n} = +i(n + 1/2)`` (``N`` = position). In
    Fourier variables (``u(n) = ∫ û(k) e^{ikn} dk``) ``H0 = 2 - 2cos k``, ``S = 2 sin k``,
    ``N = i d/dk`` and ``[h(k), iN] = h'(k)``, so ``[H0, iA] = S h' = 4 sin² k``, i.e.

    .. math:: [H_0, iA] = H_0\,(4 - H_0) = 2 - T^2 - T^{*2},

    positive on compact subsets of (0, 4) and vanishing at the thresholds 0 and 4. For a
    potential ``V = diag(v)``: ``[V, iA]`` is the tridiagonal matrix with entries
    ``(v_n - v_{n+1})(n + 1/2)`` at ``(n, n+1)`` and ``(n+1, n)`` (finite rank for finitely
    supported v). ``c = min_{λ ∈ I ∩ [0,4]} λ(4 - λ)``.

**Normalisation.** ``c`` is linear in ``A``: ``[H, i sA] = s[H, iA]`` gives ``c(sA) = s c(A)``;
``c`` is only meaningful with ``A`` fixed. All routines take ``scale = s`` and report ``c`` for
``sA``. With ``scale=1`` the lattice ``A`` above behaves at low energy like ``2·(xp+px)/2``
(``2 sin k ≈ 2k``): ``H0(4 - H0) ≈ 4H0 = 2·(2H0)``; ``scale=0.5`` matches the continuum
normalisation.

**Truncation.** Finite sections must be handled with care: ``tr [H_n, A_n] = 0`` for matrices,
so the commutator of truncations ``i[H_n, A_n]`` (the *naive* commutator) cannot equal ``I``;
it carries edge terms of size ~ n at the box boundary (``I - n e_n e_nᵀ`` in the Hermite basis
for the momentum model). Worse, for every eigenvector ``φ`` of ``H_n``,
``⟨φ, i[H_n, A_n] φ⟩ = 0`` (virial theorem), so the naive commutator never gives ``c > 0``.
Here both ``H`` and ``A`` are *banded* in the basis used (lattice sites; Hermite functions for
the line), so the compression ``P_n [H, iA] P_n`` of the infinite commutator is computed exactly
from truncations enlarged by the bandwidth ("enlarge, commute, compress"). The remainder
``R_n = P_n[H, iA]P_n - f(H_n)`` is then of bounded numerical rank as ``n`` grows (the compact
part, localised near supp V, plus a rank-2 norm-1 corner term at the lattice box edge), which
is what the stability check verifies.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import scipy.special

from bkmath._validation import as_real_array, check_positive

__all__ = [
    "MODELS",
    "CommutatorData",
    "MourreSize",
    "MourreEstimate",
    "mourre_commutator",
    "mourre_constant",
    "mourre_symbol",
    "lattice_conjugate_operator",
    "hermite_ladder",
    "default_quadrature_nodes",
    "exact_constant",
    "numerical_slack",
]

MODELS = ("momentum", "continuum", "lattice")

#: Largest allowed growth of ‖K_n‖ between the two largest sections (sizes about doubling):
#: a convergent compact part changes by far less; an edge term ~n doubles.
_NORM_GROWTH = 1.25

#: Essential spectrum of H0 for each model (lo, hi).
_ESS = {"momentum": (-math.inf, math.inf), "continuum": (0.0, math.inf), "lattice": (0.0, 4.0)}


def mourre_symbol(model: str) -> Callable[[np.ndarray], np.ndarray]:
    """The function ``f`` with ``[H0, iA] = f(H0)`` (``scale = 1``).

    ``momentum``: ``f = 1``; ``continuum``: ``f(λ) = 2λ``; ``lattice``: ``f(λ) = λ(4 - λ)``.
    """
    _check_model(model)
    if model == "momentum":
        return lambda lam: np.ones_like(np.asarray(lam, dtype=float))
    if model == "continuum":
        return lambda lam: 2.0 * np.asarray(lam, dtype=float)
    return lambda lam: np.asarray(lam, dtype=float) * (4.0 - np.asarray(lam, dtype=float))


def _check_model(model: object) -> str:
    if not isinstance(model, str):
        raise TypeError(f"model must be a str, got {type(model).__name__}")
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    return model


def _check_size(size: object, name: str = "size", minimum: int = 2) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(size).__name__}")
    if size < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {size}")
    return int(size)


# --------------------------------------------------------------------------- building blocks


def hermite_ladder(m: int) -> np.ndarray:
    """Annihilation operator ``a`` in the Hermite-function basis, truncated to ``m × m``.

    ``a_{k-1,k} = sqrt(k)``; then ``x = (a + a†)/√2`` and ``p = i(a† - a)/√2`` (``p = -i d/dx``).
    Products of ``j`` ladder factors are exact on the leading ``(m - j) × (m - j)`` block.
    """
    m = _check_size(m, "m", 1)
    return np.diag(np.sqrt(np.arange(1, m, dtype=float)), k=1)


def lattice_conjugate_operator(sites: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The lattice dilation generator ``scale · A`` on the given consecutive sites.

    ``A_{n,n+1} = -i(n + 1/2)`` and ``A_{n+1,n} = +i(n + 1/2)`` (Hermitian), so that
    ``[H0, iA] = H0(4 - H0)`` for ``H0 = -Δ``. ``O(n)`` memory as a dense matrix: ``O(n²)``.
    """
    n = np.asarray(sites, dtype=float)
    a = np.zeros((n.size, n.size), dtype=complex)
    idx = np.arange(n.size - 1)
    a[idx, idx + 1] = -1j * scale * (n[:-1] + 0.5)
    a[idx + 1, idx] = 1j * scale * (n[:-1] + 0.5)
    return a


def _function_of_position(v: Callable, m: int, k: int) -> np.ndarray:
    """Leading ``k × k`` block of the matrix of multiplication by ``v(x)`` (Hermite basis).

    Gauss–Hermite quadrature with ``m`` nodes, written as the functional calculus
    ``v(X_m)`` of the ``m × m`` truncated position matrix (Golub–Welsch: ``X_m = Q diag(x_i) Qᵀ``
    and the quadrature matrix is ``Q diag(v(x_i)) Qᵀ``); exact for polynomial ``v`` of degree
    ``< 2m - j - k`` in entry ``(j, k)``, spectrally accurate for entire ``v``. No overflow.
    Cost ``O(m²)`` for the nodes plus ``O(k² m)``.
    """
    nodes, weights = scipy.special.roots_hermite(m)
    vals = np.asarray(v(nodes), dtype=float)
    if vals.shape != nodes.shape:
        raise ValueError("v must be a vectorised callable returning an array of the input shape")
    if not np.all(np.isfinite(vals)):
        raise ValueError("v returned NaN or Inf at a quadrature node")
    # rows of the Golub–Welsch eigenvector matrix, Q_{j,i} = sqrt(w_i) p_j(x_i), by the
    # (stable, forward) three-term recurrence of the orthonormal Hermite polynomials p_j
    q = np.empty((k, m))
    q[0] = np.sqrt(weights) * np.pi**-0.25
    if k > 1:
        q[1] = math.sqrt(2.0) * nodes * q[0]
    for j in range(1, k - 1):
        q[j + 1] = math.sqrt(2.0 / (j + 1)) * nodes * q[j] - math.sqrt(j / (j + 1)) * q[j - 1]
    return (q * vals) @ q.T


def default_quadrature_nodes(size: int, length: float) -> int:
    """``2·size + 40 + ⌈40 L²⌉`` Gauss–Hermite nodes: enough for potentials varying on the
    unit scale in a basis of length scale ``L`` (measured: commutator identity to 1e-12)."""
    return 2 * size + 40 + int(math.ceil(40 * length * length))


# --------------------------------------------------------------------------- commutators


@dataclasses.dataclass(frozen=True)
class CommutatorData:
    """Finite sections of ``H``, ``A`` and of the commutator ``[H, iA]``.

    Attributes
    ----------
    model : str
    size : int
        Dimension ``n`` of the section (lattice: sites ``-(n-1)/2 .. (n-1)/2``; line: Hermite
        functions ``φ_0 .. φ_{n-1}``).
    h, a : ndarray (n, n)
        ``P_n H P_n`` and ``P_n (sA) P_n`` (Hermitian).
    commutator : ndarray (n, n)
        ``P_n [H, i sA] P_n``: the exact compression of the infinite commutator.
    naive : ndarray (n, n)
        ``i[h, a]``: the commutator of the truncations, with its edge terms.
    symbol : callable
        ``f`` with ``[H0, iA] = f(H0)`` at ``scale = 1`` (multiply by ``scale``).
    scale : float
    sites : ndarray or None
        Lattice sites of the section (``None`` for the line models).
    """

    model: str
    size: int
    h: np.ndarray
    a: np.ndarray
    commutator: np.ndarray
    naive: np.ndarray
    symbol: Callable[[np.ndarray], np.ndarray]
    scale: float
    sites: np.ndarray | None = None

    @property
    def edge_term(self) -> np.ndarray:
        """``naive - commutator``: the truncation artefact (supported at the box edge)."""
        return self.naive - self.commutator


def _herm(m: np.ndarray) -> np.ndarray:
    """Return the Hermitian part as a real array when the imaginary part is zero."""
    m = 0.5 * (m + m.conj().T)
    if np.iscomplexobj(m) and np.all(m.imag == 0):
        return m.real.copy()
    return m


def mourre_commutator(
    model: str,
    size: int,
    *,
    v: np.ndarray | Callable | None = None,
    scale: float = 1.0,
    length: float = 1.0,
    quadrature_nodes: int | None = None,
) -> CommutatorData:
    """Finite section of ``[H, iA]`` for ``H = H0 + V`` with the model's conjugate operator.

    Parameters
    ----------
    model : {"momentum", "continuum", "lattice"}
        See the module docstring for ``H0``, ``A`` and the symbol ``f``.
    size : int
        Dimension ``n`` of the section. Lattice: odd, sites ``-(n-1)/2 .. (n-1)/2``.
    v : array_like or callable, optional
        Lattice: real values on consecutive sites, centred (entry ``j`` sits at site
        ``j - (len(v)-1)//2``); must fit in the box with one free site on each side.
        Line models: a vectorised real callable ``v(x)`` (matrix elements by Gauss–Hermite
        quadrature, see ``quadrature_nodes``).
    scale : float
        ``s > 0`` in ``sA`` (the normalisation of ``A``; ``c`` scales with it).
    length : float
        Line models: length scale ``L`` of the Hermite functions ``L^{-1/2} φ_k(x/L)`` (the
        section then resolves ``|x| ≲ L sqrt(2n)`` and ``|p| ≲ sqrt(2n)/L``). ``A = (xp+px)/2``
        is invariant under this dilation. Ignored on the lattice.
    quadrature_nodes : int, optional
        Gauss–Hermite nodes for ``v`` (default :func:`default_quadrature_nodes`).

    Returns
    -------
    CommutatorData
        ``commutator = P_n [H, i sA] P_n`` computed exactly from truncations enlarged by the
        bandwidth of ``A`` (1 on the lattice, 2 in the Hermite basis), and the naive
        ``i[P_n H P_n, P_n sA P_n]`` for comparison.

    Notes
    -----
    Cost: lattice ``O(n²)`` memory / ``O(n²)`` time (dense banded products); line models
    ``O(m³)`` for the quadrature with ``m`` nodes.

    Examples
    --------
    >>> d = mourre_commutator("momentum", 6)
    >>> bool(np.allclose(d.commutator, np.eye(6)))
    True
    >>> float(np.trace(d.naive).real)  # tr of a finite commutator is 0: edge term -(n-1)
    0.0
    """
    _check_model(model)
    size = _check_size(size, "size", 3)
    scale = check_positive(scale, "scale")
    length = check_positive(length, "length")
    # built at scale 1 and multiplied by s last: s·A alone may overflow (A_{n,n+1} ~ n/2)
    # where s·[H, iA] does not, and every overflow is then one ValueError naming v / scale
    if model == "lattice":
        d = _lattice_commutator(size, v, 1.0)
    else:
        d = _line_commutator(model, size, v, 1.0, length, quadrature_nodes)
    return _with_scale(d, scale)


def _with_scale(d: CommutatorData, scale: float) -> CommutatorData:
    """``d`` (built at scale 1) with ``A``, ``[H, iA]`` and the naive commutator times
    ``scale``; ValueError if H or one of them leaves the float64 range."""
    if not (np.all(np.isfinite(d.h)) and np.all(np.isfinite(d.commutator))
            and np.all(np.isfinite(d.naive))):
        raise ValueError("v: H or [H, iA] leaves the float64 range")
    if scale == 1.0:
        return d
    with np.errstate(over="ignore", invalid="ignore"):
        a, comm, naive = scale * d.a, scale * d.commutator, scale * d.naive
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(comm)) and np.all(np.isfinite(naive))):
        raise ValueError(
            f"scale = {scale}: s·A or [H, i sA] leaves the float64 range "
            f"(max |[H, iA]| = {float(np.abs(d.commutator).max(initial=0.0)):.3g}, "
            f"max |A| = {float(np.abs(d.a).max(initial=0.0)):.3g})"
        )
    return dataclasses.replace(d, a=a, commutator=comm, naive=naive, scale=scale)


def _lattice_commutator(size: int, v: object, scale: float) -> CommutatorData:
    if size % 2 == 0:
        raise ValueError(f"size must be odd for the lattice model (centred box), got {size}")
    half = (size - 1) // 2
    big = size + 2  # enlarge by the bandwidth (1) of H and A
    sites_big = np.arange(-half - 1, half + 2, dtype=float)
    vv = np.zeros(big)
    if v is not None:
        varr = as_real_array(v, "v", ndim=1)
        if varr.size + 2 > size:
            raise ValueError(f"v (length {varr.size}) must fit in the box of size {size} - 2")
        start = (big - 1) // 2 - (varr.size - 1) // 2
        vv[start : start + varr.size] = varr
    hb = np.diag(2.0 + vv) - np.eye(big, k=1) - np.eye(big, k=-1)
    ab = lattice_conjugate_operator(sites_big, scale)
    comm_big = 1j * (hb @ ab - ab @ hb)
    inner = slice(1, big - 1)
    h = hb[inner, inner].copy()
    a = ab[inner, inner].copy()
    return CommutatorData(
        model="lattice",
        size=size,
        h=h,
        a=a,
        commutator=_herm(comm_big[inner, inner]),
        naive=_herm(1j * (h @ a - a @ h)),
        symbol=mourre_symbol("lattice"),
        scale=scale,
        sites=sites_big[inner].copy(),
    )


def _line_commutator(
    model: str, size: int, v: object, scale: float, length: float, quadrature_nodes: int | None
) -> CommutatorData:
    big = size + 8  # products of up to 4 ladder factors are exact on the leading size+4 block
    a_op = hermite_ladder(big)
    ad = a_op.T
    x = length * (a_op + ad) / math.sqrt(2.0)
    p = 1j * (ad - a_op) / (math.sqrt(2.0) * length)
    if model == "momentum":
        h0 = p
        aa = scale * x
    else:
        h0 = (p @ p).real  # p² = -d²/dx²
        aa = scale * 0.5 * (x @ p + p @ x)  # = (i/2)(a†² - a²)
    h_big = h0.astype(complex)
    if v is not None:
        if not callable(v):
            raise TypeError("v must be a callable v(x) for the line models")
        m = quadrature_nodes
        if m is None:
            m = default_quadrature_nodes(size, length)
        m = _check_size(m, "quadrature_nodes", size + 8)
        h_big = h_big + _function_of_position(lambda t: v(length * t), m, big)
    comm_big = 1j * (h_big @ aa - aa @ h_big)
    inner = slice(0, size)
    h = h_big[inner, inner].copy()
    a = aa[inner, inner].copy()
    return CommutatorData(
        model=model,
        size=size,
        h=_herm(h),
        a=a,
        commutator=_herm(comm_big[inner, inner]),
        naive=_herm(1j * (h @ a - a @ h)),
        symbol=mourre_symbol(model),
        scale=scale,
    )


# --------------------------------------------------------------------------- Mourre constant


@dataclasses.dataclass(frozen=True)
class MourreSize:
    """Mourre data of one finite section (see :class:`MourreEstimate`)."""

    size: int
    rank_projection: int  # rank of E_I (eigenvalues of H_n in I)
    discrete_in_interval: int  # eigenvalues of H_n in I outside σ_ess(H0)
    compact_rank: int  # numerical rank of K_n = E_I (M_n - s f(H_n)) E_I
    compact_norm: float  # ‖K_n‖ (operator norm)
    mu_min: float  # min eigenvalue of E_I M_n E_I on ran E_I
    c_hat: float  # μ_{r+1}(E_I M_n E_I), r = compact_rank + discrete_in_interval (Weyl)
    count_below: int  # #{μ_j < c_claim - δ}
    naive_mu_max: float  # max eigenvalue of E_I i[H_n, A_n] E_I (the naive commutator)
    naive_diag_max: float  # max_j |⟨φ_j, i[H_n, A_n] φ_j⟩| (virial theorem: 0)
    edge_norm: float  # ‖i[H_n, A_n] - P_n[H, iA]P_n‖ (grows with n)


@dataclasses.dataclass(frozen=True)
class MourreEstimate:
    """A Mourre estimate ``E_I [H, i sA] E_I ≥ c E_I + K`` checked on growing sections.

    Attributes
    ----------
    model, interval, scale
    c : float
        The exact constant ``s · inf {f(λ) : λ ∈ I ∩ σ_ess(H0)}`` (``+inf`` if the intersection
        is empty: then ``E_I`` is finite rank and any ``c`` works). The estimate is a Mourre
        estimate when ``c > 0``.
    c_claim : float
        The constant tested (default ``c``).
    delta : float
        Slack in ``count_below`` (``μ < c_claim - δ``); see :func:`mourre_constant`.
    sizes : list of MourreSize
    stable : bool
        ``count_below`` is the same on the two largest sections and never exceeds the rank of
        the compact part, and ``‖K_n‖`` never grows by more than ``_NORM_GROWTH`` from one size to
        the next:
        the eigenvalues below ``c_claim`` are accounted for by a compact ``K`` of bounded rank
        and norm, uniformly in the box size.
    holds : bool
        ``stable`` and ``c_claim > 0``.
    """

    model: str
    interval: tuple[float, float]
    scale: float
    c: float
    c_claim: float
    delta: float
    sizes: list[MourreSize]
    stable: bool
    holds: bool

    def table(self) -> list[dict[str, float]]:
        return [dataclasses.asdict(s) for s in self.sizes]


def exact_constant(model: str, interval: tuple[float, float], scale: float = 1.0) -> float:
    """``scale · inf {f(λ) : λ ∈ I ∩ σ_ess(H0)}`` in closed form (``+inf`` if empty)."""
    lo, hi = _ESS[model]
    a, b = max(interval[0], lo), min(interval[1], hi)
    if a > b:
        return math.inf
    if model == "momentum":
        return scale * 1.0
    if model == "continuum":
        return scale * 2.0 * a
    return scale * min(a * (4.0 - a), b * (4.0 - b))  # concave: min at an endpoint


def _check_interval(interval: object) -> tuple[float, float]:
    arr = as_real_array(interval, "interval", ndim=1)
    if arr.size != 2:
        raise ValueError(f"interval must be (a, b), got {arr.size} numbers")
    a, b = float(arr[0]), float(arr[1])
    if not a < b:
        raise ValueError(f"interval must have a < b, got ({a}, {b})")
    return a, b


def _support_norm(e: np.ndarray) -> float:
    """Operator norm of a Hermitian matrix supported on few rows/columns (the edge term)."""
    idx = np.nonzero(np.abs(e).max(axis=1) > 0)[0]
    if idx.size == 0:
        return 0.0
    return float(np.abs(np.linalg.eigvalsh(e[np.ix_(idx, idx)])).max())


def _section_data(
    d: CommutatorData, interval: tuple[float, float], c_claim: float, delta: float, rtol: float
) -> MourreSize:
    lam, vec = np.linalg.eigh(d.h)
    a, b = interval
    sel = (lam >= a) & (lam <= b)
    lo, hi = _ESS[d.model]
    disc = int(np.sum(sel & ((lam < lo) | (lam > hi))))
    phi = vec[:, sel]
    m_i = _herm(phi.conj().T @ d.commutator @ phi)  # E_I M E_I on ran E_I
    f_i = d.scale * d.symbol(lam[sel])
    k_i = m_i - np.diag(f_i)  # compact part on ran E_I: E_I (M - s f(H)) E_I
    if phi.shape[1]:
        mu = np.linalg.eigvalsh(m_i)
        sv = np.linalg.svd(k_i, compute_uv=False)
        knorm = float(sv[0]) if sv.size else 0.0
        scale_ref = max(1.0, float(np.abs(d.commutator).max()))
        krank = int(np.sum(sv > rtol * scale_ref))
        nv_i = _herm(phi.conj().T @ d.naive @ phi)
        naive_mu = float(np.linalg.eigvalsh(nv_i).max())
        naive_diag = float(np.abs(np.diag(nv_i)).max())
    else:
        mu = np.zeros(0)
        knorm, krank, naive_mu, naive_diag = 0.0, 0, math.nan, math.nan
    r = krank + disc
    c_hat = float(mu[r]) if r < mu.size else math.inf
    return MourreSize(
        size=d.size,
        rank_projection=int(phi.shape[1]),
        discrete_in_interval=disc,
        compact_rank=krank,
        compact_norm=knorm,
        mu_min=float(mu[0]) if mu.size else math.inf,
        c_hat=c_hat,
        count_below=int(np.sum(mu < c_claim - delta)),
        naive_mu_max=naive_mu,
        naive_diag_max=naive_diag,
        edge_norm=_support_norm(d.edge_term),
    )


#: Constant of the float64 error bounds of :func:`numerical_slack` (Higham-style γ_n = c n u
#: with a generous c: dense eigh and the two products E_I M E_I).
_EIG_ERR_CONST = 16.0


def _symbol_lipschitz(model: str, interval: tuple[float, float]) -> float:
    """max |f'| on I ∩ σ_ess(H0) (f the symbol of [H0, iA]): 0, 2, max|4 - 2λ|."""
    if model == "momentum":
        return 0.0
    if model == "continuum":
        return 2.0
    lo, hi = max(interval[0], 0.0), min(interval[1], 4.0)
    return max(abs(4.0 - 2.0 * lo), abs(4.0 - 2.0 * hi)) if lo <= hi else 0.0


def numerical_slack(d: CommutatorData, interval: tuple[float, float], rtol: float) -> float:
    """The slack δ of a Mourre count on one section, from the numerical errors it covers.

    The claim checked is ``#{μ_j(E_I M_n E_I) < c - δ} ≤ r_n`` (r_n the numerical rank of the
    compact part plus the discrete eigenvalues). In exact arithmetic, with
    ``M_n = s f(H_n) + K_n`` on ``ran E_I`` and ``s f(λ_j) ≥ c`` for every eigenvalue ``λ_j ∈ I``,
    Weyl's inequalities give ``#{μ_j < c - ‖K_n - K_r‖} ≤ rank K_r``, K_r the truncation of
    K_n to its singular values above the rank threshold ``τ_n = rtol · max(1, max|M_n|)``, so
    ``‖K_n - K_r‖ ≤ τ_n``. Float64 adds (Weyl again, each term a backward error):

    * the spectrum of ``E_I M_n E_I`` from dense ``eigh`` and the two products with the
      computed eigenvectors (orthonormal to ``γ_n = 16 n u``, u = 2⁻⁵³): ``γ_n ‖M_n‖``;
    * the eigenvalues ``λ_j`` of ``H_n`` (error ``γ_n ‖H_n‖``) that decide membership in I
      and the value ``s f(λ_j)``: ``s · max_I |f'| · γ_n ‖H_n‖``.

    Hence ``δ_n = τ_n + γ_n (‖M_n‖ + s L_f ‖H_n‖)`` (norms bounded by the max row sum).
    Nothing else: in particular no fraction of ``c``, so a constant claimed above the true
    one by more than δ is counted against (the spectrum of ``s f(H_n)`` fills ``[c, s sup_I f]``
    densely as n grows, and the count below ``c_claim - δ`` grows with n).
    """
    n = d.h.shape[0]
    gam = _EIG_ERR_CONST * n * (np.finfo(np.float64).eps / 2)
    norm_m = float(np.abs(d.commutator).sum(axis=1).max())
    norm_h = float(np.abs(d.h).sum(axis=1).max())
    tau = rtol * max(1.0, float(np.abs(d.commutator).max()))
    return tau + gam * (norm_m + d.scale * _symbol_lipschitz(d.model, interval) * norm_h)


def mourre_constant(
    model: str,
    interval: Sequence[float],
    *,
    v: np.ndarray | Callable | None = None,
    sizes: Sequence[int] | None = None,
    scale: float = 1.0,
    c_claim: float | None = None,
    delta: float | None = None,
    rtol: float = 1e-9,
    length: float = 1.0,
    naive: bool = False,
) -> MourreEstimate:
    """Mourre constant of ``H = H0 + V`` on ``I`` with the model's conjugate operator.

    The constant is ``c = s · inf_{λ ∈ I ∩ σ_ess(H0)} f(λ)`` (module docstring), valid because
    ``[H, iA] = f(H) + K0`` with ``f(H) - f(H0)`` and the potential terms relatively compact;
    the compact part reported is ``K = E_I ([H, i sA] - s f(H)) E_I`` plus the discrete
    eigenvalues of ``H`` in ``I`` outside ``σ_ess(H0)``.

    The estimate is *checked* on finite sections ``n ∈ sizes``: ``M_n = P_n[H, i sA]P_n``
    (exact compression, see :func:`mourre_commutator`), ``E_I`` from the eigenvectors of
    ``H_n = P_n H P_n``. For each ``n`` the spectrum ``μ`` of ``E_I M_n E_I`` on ``ran E_I`` is
    compared with ``c_claim``: a Mourre estimate with constant ``c_claim`` means the number of
    ``μ_j < c_claim`` stays bounded as ``n → ∞`` (it is at most the rank of the compact part);
    at a threshold it grows with ``n``. Also reported: ``c_hat = μ_{r+1}`` (Weyl's bound with
    ``r`` the rank of the compact part) and the naive commutator's edge term and virial zeros.

    Parameters
    ----------
    model : {"momentum", "continuum", "lattice"}
    interval : (a, b)
        The energy interval ``I = [a, b]``.
    v : see :func:`mourre_commutator`.
    sizes : sequence of int
        Increasing section sizes (default: lattice 201, 401, 801; line 60, 120, 240).
    scale : float
        Normalisation ``s`` of ``A``.
    c_claim : float, optional
        Constant to test (default: the exact ``c``).
    delta : float, optional
        Slack: eigenvalues below ``c_claim - δ`` are counted. Default: the largest
        :func:`numerical_slack` over the sections, ``δ = τ_n + γ_n (‖M_n‖ + s L_f ‖H_n‖)``
        (rank threshold of the compact part plus the float64 error of the eigenvalues), the
        numerical error the count has to tolerate and nothing more: on a section the
        eigenvalues below ``c`` are at most the rank of the compact part by Weyl's inequality,
        so no slack proportional to ``c`` is needed, and one would let an over-claimed
        constant pass (the former default ``0.1 · c_claim`` accepted any claim up to
        ``c / 0.9``; issue 16).
    rtol : float
        Singular values of ``K_n`` above ``rtol · max(1, max|M_n|)`` count towards its rank.
    length : float
        Line models: length scale of the Hermite basis (see :func:`mourre_commutator`).
    naive : bool
        Test the naive truncated commutator ``i[H_n, A_n]`` instead of the exact compression
        (a negative control: by the virial theorem it cannot give ``c > 0``).

    Returns
    -------
    MourreEstimate

    Notes
    -----
    Cost: one dense ``eigh`` per size, ``O(n³)``.
    """
    _check_model(model)
    iv = _check_interval(interval)
    scale = check_positive(scale, "scale")
    if sizes is None:
        sizes = (201, 401, 801) if model == "lattice" else (60, 120, 240)
    sizes = [_check_size(s, "sizes", 3) for s in sizes]
    if len(sizes) < 2 or any(b <= a for a, b in itertools.pairwise(sizes)):
        raise ValueError(f"sizes must be at least two increasing ints, got {sizes}")
    c = exact_constant(model, iv, scale)
    cc = c if c_claim is None else float(c_claim)
    if not math.isfinite(cc):
        cc = 0.0 if not math.isfinite(c) else cc
    rtol = check_positive(rtol, "rtol")
    data = []
    for n in sizes:
        d = mourre_commutator(model, n, v=v, scale=scale, length=length)
        if naive:
            d = dataclasses.replace(d, commutator=d.naive)
        data.append(d)
    if not all(np.all(np.isfinite(d.commutator)) and np.all(np.isfinite(d.h)) for d in data):
        raise ValueError(f"scale = {scale}: [H, i sA] or H leaves the float64 range")
    if delta is None:
        dl = max(numerical_slack(d, iv, rtol) for d in data)
        if not math.isfinite(dl):
            raise ValueError(
                f"scale = {scale}, interval = {iv}: the numerical slack δ overflows float64"
            )
    else:
        dl = check_positive(delta, "delta")
    rows = [_section_data(d, iv, cc, dl, rtol) for d in data]
    last, prev = rows[-1], rows[-2]
    counts_ok = last.count_below == prev.count_below and all(
        r.count_below <= r.compact_rank + r.discrete_in_interval for r in rows
    )
    # A compact K is a norm limit: its norm must settle, not grow with the box (an edge term
    # of size ~n, as in the naive commutator, is not a compact part of the infinite operator).
    norm_ok = all(
        b.compact_norm <= _NORM_GROWTH * a.compact_norm + dl for a, b in itertools.pairwise(rows)
    )
    stable = counts_ok and norm_ok
    return MourreEstimate(
        model=model,
        interval=iv,
        scale=scale,
        c=c,
        c_claim=cc,
        delta=dl,
        sizes=rows,
        stable=bool(stable),
        holds=bool(stable and cc > 0),
    )
