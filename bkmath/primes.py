r"""Prime-bump potentials: the von Mangoldt weights placed at ``log n``.

Prime-bump potential (docs/conventions.md §7)
---------------------------------------------
.. math::

    V_\varepsilon(x) = \sum_{n \ge 2} \Lambda(n)\, n^{-1/2}\, \psi_\varepsilon(x - \log n)
                     = \sum_p \sum_{k\ge1} \log p \; p^{-k/2}\, \psi_\varepsilon(x - k\log p),

with ``Λ`` the von Mangoldt function and ``ψ_ε(x) = (2πε²)^{-1/2} exp(-x²/(2ε²))`` the
normalised Gaussian (``∫ψ_ε = 1``). The bump of the prime power ``p^k`` sits at ``k log p``
(the seeds' code put every ``k`` at ``log p`` and used integer positions; that is not this
potential, and it breaks the explicit formula: see ``bkmath.checks.primes_checks``).

``V_ε`` is neither in ``L¹`` nor ``L²`` of the half-line: by the prime number theorem
``Σ_{n≤N} Λ(n) n^{-1/2} ~ 2 sqrt(N)``, so ``∫_{-∞}^X V_ε ~ 2 e^{X/2}``. Every use needs a cutoff;
here it is ``n ≤ n_max`` (default ``n_max = exp(max x + tail·ε)``, so that on the requested
points the omitted bumps are Gaussian tails beyond ``tail`` widths). Birman–Schwinger bounds
for ``V_ε`` are statements about the truncated potential ``V_ε^{(n_max)}``, whose ``L¹`` norm
is ``Σ_{n ≤ n_max} Λ(n) n^{-1/2}`` (:func:`prime_bump_l1_norm`).

The Weil explicit formula, which these weights come from, is in :mod:`bkmath.explicit_formula`
(the floor above this one: it uses the von Mangoldt table and the potential defined here). Its
public names stay importable from this module, ``from bkmath.primes import explicit_formula``,
through a lazy module ``__getattr__`` (PEP 562), as in :mod:`bkmath`'s flat API.
"""

from __future__ import annotations

import functools
import importlib
import math
from typing import Any

import mpmath
import numpy as np

from bkmath._validation import as_real_array, check_positive

#: Public names defined in :mod:`bkmath.explicit_formula` and served from here on first use.
_MOVED = frozenset(
    {
        "GaussianTestFunction",
        "ExplicitFormula",
        "explicit_formula",
        "explicit_formula_float64",
        "zeta_zeros",
        "default_n_max",
        "prime_bump_pairing",
        "ExplicitFormulaBall",
        "explicit_formula_arb",
    }
)

__all__ = [
    "von_mangoldt_table",
    "prime_bump_potential",
    "prime_bump_potential_mp",
    "prime_bump_l1_norm",
    "default_prime_cutoff",
] + sorted(_MOVED)

#: Largest cutoff accepted (the prime sieve up to it, linear in n_max, is the cost).
N_MAX_LIMIT = 10**8


def _check_cutoff(n_max: object) -> int:
    if isinstance(n_max, bool) or not isinstance(n_max, (int, np.integer)):
        raise TypeError(f"n_max must be an int, got {type(n_max).__name__}")
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    if n_max > N_MAX_LIMIT:
        raise ValueError(f"n_max must be <= {N_MAX_LIMIT}, got {n_max}")
    return int(n_max)


@functools.lru_cache(maxsize=16)
def _prime_powers(n_max: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    from sympy import primerange

    ns: list[int] = []
    ps: list[int] = []
    for p in primerange(2, n_max + 1):
        q = p
        while q <= n_max:
            ns.append(q)
            ps.append(p)
            q *= p
    order = sorted(range(len(ns)), key=ns.__getitem__)
    return tuple(ns[i] for i in order), tuple(ps[i] for i in order)


def von_mangoldt_table(n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Prime powers ``n = p^k ≤ n_max`` (increasing) and ``Λ(n) = log p``.

    Primes from ``sympy.primerange``. ``O(n_max log log n_max)``.

    Examples
    --------
    >>> n, lam = von_mangoldt_table(10)
    >>> n.tolist()
    [2, 3, 4, 5, 7, 8, 9]
    >>> bool(np.isclose(lam[2], np.log(2)))
    True
    """
    n_max = _check_cutoff(n_max)
    ns, ps = _prime_powers(n_max)
    return np.array(ns, dtype=np.int64), np.log(np.array(ps, dtype=float))


def default_prime_cutoff(x_max: float, eps: float, tail: float = 12.0) -> int:
    """``n_max = ⌈exp(x_max + tail·ε)⌉``: every bump within ``tail`` widths of ``x ≤ x_max``."""
    top = x_max + tail * eps
    if not top <= math.log(N_MAX_LIMIT):
        raise ValueError(
            f"x, eps: the default cutoff n_max = exp(max x + tail·eps) = exp({top:.6g}) "
            f"exceeds the largest sieve N_MAX_LIMIT = {N_MAX_LIMIT} "
            f"(max x ≤ {math.log(N_MAX_LIMIT):.4g} - tail·eps); pass n_max explicitly"
        )
    return max(1, int(math.ceil(math.exp(top))))  # exp underflows to 0 for x ≪ 0: n_max = 1


def prime_bump_potential(
    x: object, eps: float, *, n_max: int | None = None, tail: float = 12.0
) -> np.ndarray:
    """The prime-bump potential ``V_ε(x) = Σ_{2 ≤ n ≤ n_max} Λ(n) n^{-1/2} ψ_ε(x - log n)``.

    Parameters
    ----------
    x : array_like
        Real points.
    eps : float
        Width ``ε > 0`` of the normalised Gaussian ``ψ_ε`` (``∫ψ_ε = 1``).
    n_max : int, optional
        The cutoff (``V_ε`` is not integrable without one, see the module docstring). Default
        :func:`default_prime_cutoff` ``(max x, ε, tail)``: then the omitted bumps lie more than
        ``tail`` widths to the right of every point.
    tail : float
        Bumps farther than ``tail·ε`` from a point are skipped (relative error ``< e^{-tail²/2}``
        per bump: ``1.5e-32`` for the default 12).

    Returns
    -------
    ndarray
        ``V_ε`` at ``x`` (float64, same shape).

    Notes
    -----
    Cost ``O(len(x) · B)`` with ``B`` the number of prime powers within ``tail·ε`` of a point.
    The bump of ``p^k`` sits at ``k log p`` with weight ``log p · p^{-k/2}``.

    Examples
    --------
    >>> v = prime_bump_potential([np.log(2.0)], 0.01, n_max=2)
    >>> bool(np.isclose(v[0], np.log(2) / np.sqrt(2) / np.sqrt(2 * np.pi * 1e-4)))
    True
    """
    xa = as_real_array(x, "x")
    eps = check_positive(eps, "eps")
    tail = check_positive(tail, "tail")
    if xa.size == 0:
        return np.zeros(xa.shape)
    if n_max is None:
        n_max = default_prime_cutoff(float(xa.max()), eps, tail)
    n_max = _check_cutoff(n_max)
    ns, lam = von_mangoldt_table(n_max)
    pos = np.log(ns.astype(float))
    w = lam / np.sqrt(ns.astype(float))
    flat = xa.ravel()
    order = np.argsort(flat, kind="stable")
    xs = flat[order]
    out = np.zeros_like(xs)
    norm = 1.0 / (math.sqrt(2.0 * math.pi) * eps)  # eps² underflows for eps < 1e-162
    if not norm < math.inf:
        raise ValueError(f"eps = {eps} is too small: the bump height 1/(√(2π) eps) overflows")
    lo = np.searchsorted(xs, pos - tail * eps, side="left")
    hi = np.searchsorted(xs, pos + tail * eps, side="right")
    for j in np.nonzero(hi > lo)[0]:
        seg = slice(lo[j], hi[j])
        with np.errstate(over="ignore", under="ignore"):
            d = (xs[seg] - pos[j]) / eps
            out[seg] += w[j] * norm * np.exp(-0.5 * d * d)
    res = np.empty_like(out)
    res[order] = out
    return res.reshape(xa.shape)


def prime_bump_potential_mp(x: float, eps: float, n_max: int, dps: int = 30) -> mpmath.mpf:
    """Reference: ``V_ε(x)`` summed over all ``n ≤ n_max`` in mpmath at ``dps`` digits."""
    eps = check_positive(eps, "eps")
    n_max = _check_cutoff(n_max)
    ns, ps = _prime_powers(n_max)
    with mpmath.workdps(dps):
        xm, em = mpmath.mpf(x), mpmath.mpf(eps)
        norm = 1 / mpmath.sqrt(2 * mpmath.pi * em**2)
        total = mpmath.mpf(0)
        for n, p in zip(ns, ps, strict=True):
            d = (xm - mpmath.log(n)) / em
            total += mpmath.log(p) / mpmath.sqrt(n) * norm * mpmath.exp(-d * d / 2)
        return +total


def prime_bump_l1_norm(n_max: int) -> float:
    """``‖V_ε^{(n_max)}‖_{L¹(R)} = Σ_{n ≤ n_max} Λ(n) n^{-1/2}`` (``~ 2 sqrt(n_max)``, PNT)."""
    ns, lam = von_mangoldt_table(n_max)
    return float(np.sum(lam / np.sqrt(ns.astype(float))))


# ------------------------------------------------------------------ names moved to explicit_formula


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        value = getattr(importlib.import_module("bkmath.explicit_formula"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bkmath.primes' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _MOVED)
