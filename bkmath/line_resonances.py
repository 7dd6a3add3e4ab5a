r"""All resonances of a piecewise-constant potential on the line in a region, certified.

Setting (docs/conventions.md §1–2; docs/theory.md, "Resonances on the line";
:mod:`bkmath.continuum`). ``H = −d²/dx² + V`` on L²(R), ``V`` a real
:class:`~bkmath.continuum.StepPotential` (piecewise constant, support ``[a, b]``); ``k`` is the
momentum, ``z = k²``, the physical sheet is ``Im k > 0``. The Jost function
``D(k) = W(f₋, f₊)/(2ik) = 1/t(k)`` is meromorphic in the whole k-plane (entire apart from the
pole of ``1/(2ik)`` at 0); what is searched here is the **entire** function

    G(k) = e^{−ik(b−a)} W(f₋, f₊)(k) = ik (P₁₁ + P₂₂) + k² P₁₂ − P₂₁,

``P(k)`` the propagator of ``(f, f')`` across the cells (exact: ``[[cos qL, sin(qL)/q],
[−q² sin(qL)/q, cos qL]]`` per cell, ``q² = k² − V_j``, entire in ``q²``). ``G`` has the
zeros of ``D`` and in addition ``k = 0`` exactly when the threshold is half-bound
(``W(0) = 0``, where ``D(0)`` is finite and nonzero). ``D = e^{ik(b−a)} G/(2ik)``.

Kinds of zero (for real V; :data:`KINDS`):

* ``"bound"``: ``k = iκ``, ``κ > 0`` (an eigenvalue ``−κ²``; the only zeros with ``Im k > 0``,
  as H is self-adjoint);
* ``"threshold"``: ``k = 0`` (a half-bound state);
* ``"antibound"``: ``k = −iκ``, ``κ > 0`` (a virtual state on the second sheet);
* ``"resonance"``: ``Im k < 0``, ``Re k ≠ 0``; they come in pairs ``k, −k̄`` because
  ``G(−k̄) = conj G(k)`` for real V. Energy ``E = k²``, width ``Γ = −2 Im E``.

Method (:func:`line_zeros`, float64). *Count*: the winding number of ``G`` along the boundary
of the rectangle (argument principle), summing principal increments of ``arg G`` over a
partition refined until on every segment both the measured relative change
``|G(p')/G(p) − 1|`` and the first-order prediction ``|G'(p)||p' − p|/|G(p)|`` are ≤ ½
("rigorous in practice"; :func:`certified_zero_count` makes it rigorous). *Isolation*: the
rectangle is bisected (along its longer side, off-centre, the cut shifted when it passes too
close to a zero) until each piece holds one zero; *refinement*: Newton's method on ``G`` with
the exact derivative ``G'`` (forward-mode jets through the cells) from the piece's centre,
accepted only inside the piece; the counts of the pieces must add up to the parent's.

Certification (:func:`line_zero_balls`, :func:`certified_zero_count`, python-flint Arb; the
edges and values are read exactly as the binary floats they hold). ``G`` and ``G'`` are
evaluated in ball arithmetic (acb ``sin``/``cos``/``sqrt``, power series with a rigorous tail
where ``|k² − V_j| L² ≤ 1``). Each zero gets a Krawczyk test on a small box ``B``
(one simple zero in ``B``; a box symmetric about ``iR`` then certifies ``Re k = 0`` by the
pairing), and the region's count is the winding number from enclosures of ``G`` on boundary
segments that exclude 0 (mean-value form ``G(m) + G'(S)(S − m)``), so that each increment is
the principal ``arg(G(p')/G(p))``: a proof that the list is complete in the region.

Complexity: one evaluation of ``G`` is O(n_cells); a count costs O(n_cells · n_segments),
``n_segments`` ~ perimeter × (b − a) × (1 + |Im k|-growth); the search O(count · log(1/size)).
References: Zworski, *Distribution of poles for scattering on the real line* (J. Funct. Anal.
73, 1987) — the counting law ``#{|k| ≤ r} ~ (2(b − a)/π) r`` for jumps at both ends; Froese,
*Asymptotic distribution of resonances in one dimension* (J. Diff. Eq. 137, 1997); Dyatlov &
Zworski, *Mathematical theory of scattering resonances*, ch. 2; Moore, Kearfott & Cloud,
*Introduction to interval analysis* (Krawczyk).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from bkmath.continuum import StepPotential

__all__ = [
    "KINDS",
    "LineZeros",
    "jost_entire",
    "line_zero_count",
    "line_zeros",
    "line_zero_balls",
    "jost_entire_ball",
    "certified_zero_count",
]

#: the kinds of zero of G, in report order
KINDS = ("bound", "threshold", "antibound", "resonance")

_ARB_THRESH = 0.3  # float pre-partition of the Arb count: relative change per segment
_SERIES = 24  # terms of the power series of cos √u, sin √u/√u where |u L²| ≤ 1


# ----------------------------------------------------------------------------- validation


def _as_pot(pot: object) -> StepPotential:
    if not isinstance(pot, StepPotential):
        raise ValueError(f"pot must be a StepPotential (piecewise constant, compactly "
                         f"supported; StepPotential.from_function cuts a general V into cells), "
                         f"got {type(pot).__name__}")
    return pot


def _as_region(region: object, upper: bool) -> tuple[float, float, float, float]:
    try:
        r = tuple(float(x) for x in region)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"region must be (re_min, re_max, im_min, im_max), got "
                         f"{region!r}") from None
    if len(r) != 4 or not all(math.isfinite(x) for x in r):
        raise ValueError(f"region must be 4 finite numbers (re_min, re_max, im_min, im_max), "
                         f"got {region!r}")
    if not (r[0] < r[1] and r[2] < r[3]):
        raise ValueError(f"region is empty: need re_min < re_max and im_min < im_max, got "
                         f"{region!r}")
    if r[3] > 0 and not upper:
        raise ValueError(f"region reaches into Im k > 0 (im_max = {r[3]}); the resonances lie "
                         f"in Im k ≤ 0 — pass upper=True to include the bound states")
    return r  # type: ignore[return-value]


# ----------------------------------------------------------------------------- float64 G


def _cell_jets(u: np.ndarray, L: float):
    """``c = cos(qL)``, ``s = sin(qL)/q`` (q² = u) and their u-derivatives, entire in u."""
    x = u * (L * L)
    small = np.abs(x) <= 1.0
    c = np.empty_like(u)
    s = np.empty_like(u)
    s_u = np.empty_like(u)
    if np.any(small):  # power series: c = Σ (−x)^n/(2n)!, s = L Σ (−x)^n/(2n+1)!
        xs = x[small]
        cs = np.zeros_like(xs)
        ss = np.zeros_like(xs)
        ds = np.zeros_like(xs)
        for n in range(_SERIES - 1, -1, -1):  # Horner
            cs = cs * (-xs) + 1.0 / math.factorial(2 * n)
            ss = ss * (-xs) + 1.0 / math.factorial(2 * n + 1)
            if n >= 1:  # d/dx of Σ (−x)^n/(2n+1)! = Σ_{n≥1} −n (−x)^{n−1}/(2n+1)!
                ds = ds * (-xs) - n / math.factorial(2 * n + 1)
        c[small] = cs
        s[small] = L * ss
        s_u[small] = L ** 3 * ds
    big = ~small
    if np.any(big):
        q = np.sqrt(u[big])
        cb = np.cos(q * L)
        sb = np.sin(q * L) / q
        c[big] = cb
        s[big] = sb
        s_u[big] = (L * cb - sb) / (2 * u[big])
    c_u = -0.5 * L * s
    return c, s, c_u, s_u


def _G(kk: np.ndarray, pot: StepPotential, derivative: bool = True):
    """G(k) and G'(k) (complex128 arrays of the shape of kk), forward-mode jets."""
    k2 = kk * kk
    one, zero = np.ones_like(kk), np.zeros_like(kk)
    p = [one, zero, zero, one.copy()]
    dp = [zero.copy(), zero.copy(), zero.copy(), zero.copy()]
    with np.errstate(over="ignore", invalid="ignore"):
        for L, vj in zip(np.diff(pot.edges), pot.values, strict=True):
            u = k2 - vj
            c, s, c_u, s_u = _cell_jets(u, float(L))
            m21 = -u * s
            m21_u = -0.5 * (s + L * c)
            # d/dk = 2k d/du
            m = (c, s, m21, c)
            dm = (2 * kk * c_u, 2 * kk * s_u, 2 * kk * m21_u, 2 * kk * c_u)
            p11, p12, p21, p22 = p
            d11, d12, d21, d22 = dp
            p = [m[0] * p11 + m[1] * p21, m[0] * p12 + m[1] * p22,
                 m[2] * p11 + m[3] * p21, m[2] * p12 + m[3] * p22]
            if derivative:
                dp = [dm[0] * p11 + m[0] * d11 + dm[1] * p21 + m[1] * d21,
                      dm[0] * p12 + m[0] * d12 + dm[1] * p22 + m[1] * d22,
                      dm[2] * p11 + m[2] * d11 + dm[3] * p21 + m[3] * d21,
                      dm[2] * p12 + m[2] * d12 + dm[3] * p22 + m[3] * d22]
        p11, p12, p21, p22 = p
        G = 1j * kk * (p11 + p22) + k2 * p12 - p21
        if not derivative:
            return G, None
        d11, d12, d21, d22 = dp
        dG = 1j * (p11 + p22) + 1j * kk * (d11 + d22) + 2 * kk * p12 + k2 * d12 - d21
    return G, dG


def jost_entire(k: object, pot: StepPotential, *, derivative: bool = False):
    """The entire Jost function ``G(k) = e^{−ik(b−a)} W(f₋, f₊)(k) = 2ik e^{−ik(b−a)} D(k)``
    (module docstring), and with ``derivative=True`` the pair ``(G, G')``; any complex ``k``
    (k = 0 included), vectorised, O(n_cells) per k.

    >>> from bkmath.continuum import jost_function
    >>> pot = StepPotential.well(5.0, 0.0, 1.0)
    >>> k = 1.3 - 0.4j
    >>> G = jost_entire(k, pot)
    >>> bool(abs(G - 2j * k * np.exp(-1j * k) * jost_function(k, pot)) < 1e-13 * abs(G))
    True
    """
    pot = _as_pot(pot)
    arr = np.asarray(k)
    if arr.dtype.kind not in "biufc":
        raise ValueError(f"k must be numeric, got dtype {arr.dtype}")
    kk = np.atleast_1d(arr).astype(np.complex128)
    if not np.all(np.isfinite(kk)):
        raise ValueError("k must be finite")
    G, dG = _G(kk, pot, derivative)
    if not (np.all(np.isfinite(G)) and (dG is None or np.all(np.isfinite(dG)))):
        raise ValueError("k: G leaves the float64 range (|Im k|(b − a) or the barrier action "
                         "too large)")
    if arr.ndim == 0:
        return (complex(G[0]), complex(dG[0])) if derivative else complex(G[0])
    return (G.reshape(arr.shape), dG.reshape(arr.shape)) if derivative else G.reshape(arr.shape)


# ----------------------------------------------------------------------------- counting


def _boundary(r: tuple[float, float, float, float], n_per_unit: float) -> np.ndarray:
    """Points on the rectangle's boundary, counter-clockwise from (re_min, im_min), closed."""
    x0, x1, y0, y1 = r
    corners = [complex(x0, y0), complex(x1, y0), complex(x1, y1), complex(x0, y1),
               complex(x0, y0)]
    pts = []
    for p, q in zip(corners[:-1], corners[1:], strict=True):
        n = max(8, int(math.ceil(abs(q - p) * n_per_unit)))
        pts.append(p + (q - p) * np.arange(n) / n)
    pts.append(np.array([corners[0]]))
    return np.concatenate(pts)


def _winding(pot: StepPotential, r, *, max_points: int = 200_000,
             thresh: float = 0.5) -> tuple[int, np.ndarray]:
    """Float64 winding number of G along the boundary of r (adaptive); returns (count, points).
    Raises ValueError when a zero lies on (numerically at) the boundary."""
    a, b = pot.support
    scale = max(abs(r[0]), abs(r[1]), abs(r[2]), abs(r[3]), 1.0)
    n0 = 2 * ((r[1] - r[0]) + (r[3] - r[2])) * (1.0 + (b - a))
    if not (math.isfinite(n0) and n0 <= max_points):
        raise ValueError(f"region, pot: the boundary of the region needs {n0:.3g} points "
                         f"(perimeter × (1 + (b − a))), more than {max_points}: shrink the "
                         f"region")
    pts = _boundary(r, 1.0 + (b - a))
    G, dG = _G(pts, pot)
    for _ in range(60):
        if not (np.all(np.isfinite(G)) and np.all(np.isfinite(dG))):
            raise ValueError("region: G leaves the float64 range on the boundary "
                             "(|Im k|(b − a) too large)")
        if np.any(G == 0):
            raise ValueError(f"region: a zero of G lies on the boundary, at "
                             f"{complex(pts[np.nonzero(G == 0)[0][0]])}")
        h = np.abs(np.diff(pts))
        rel = np.abs(G[1:] / G[:-1] - 1)
        pred = np.maximum(np.abs(dG[:-1]) / np.abs(G[:-1]), np.abs(dG[1:]) / np.abs(G[1:])) * h
        bad = (rel > thresh) | (pred > thresh)
        if not bad.any():
            inc = np.angle(G[1:] / G[:-1])
            return int(round(float(np.sum(inc)) / (2 * math.pi))), pts
        if np.min(h[bad]) < 1e-13 * scale or pts.size > max_points:
            i = int(np.nonzero(bad)[0][np.argmin(h[bad])])
            raise ValueError(f"region: a zero of G lies on (or within {h[i]:.1e} of) the "
                             f"boundary near k = {complex(pts[i]):.6g}; move the boundary")
        mids = (pts[:-1][bad] + pts[1:][bad]) / 2
        Gm, dGm = _G(mids, pot)
        idx = np.nonzero(bad)[0] + 1
        pts = np.insert(pts, idx, mids)
        G = np.insert(G, idx, Gm)
        dG = np.insert(dG, idx, dGm)
    raise RuntimeError("region: the boundary refinement did not settle")  # pragma: no cover


def line_zero_count(pot: StepPotential, region: Sequence[float], *,
                    upper: bool = False) -> int:
    """Number of zeros of ``G`` (with multiplicity) inside the rectangle
    ``region = (re_min, re_max, im_min, im_max)`` of the k-plane, by the float64 winding
    number of G along its boundary (module docstring; rigorous version:
    :func:`certified_zero_count`). ``upper=False`` refuses a region reaching into
    ``Im k > 0``. A zero on the boundary is a ``ValueError`` naming ``region``.

    >>> line_zero_count(StepPotential.well(5.0, 0.0, 1.0), (-10.0, 10.0, -3.0, 0.0))
    2
    """
    pot = _as_pot(pot)
    return _winding(pot, _as_region(region, upper))[0]


# ----------------------------------------------------------------------------- search


@dataclasses.dataclass(frozen=True)
class LineZeros:
    """All zeros of ``G`` in a rectangle of the k-plane, sorted by kind, then ``Re k``.

    ``k``: the zeros (complex128; on-axis zeros have ``Re k = 0`` exactly); ``kind``: one of
    :data:`KINDS` per zero; ``multiplicity``: per zero (1 unless a cluster below the
    resolution was found); ``count``: the winding-number count of the region (= the sum of
    the multiplicities); ``region``: ``(re_min, re_max, im_min, im_max)``.
    """

    k: np.ndarray
    kind: tuple[str, ...]
    multiplicity: np.ndarray
    count: int
    region: tuple[float, float, float, float]

    @property
    def energies(self) -> np.ndarray:
        """``E = k²`` (``Im E = −Γ/2`` for a resonance)."""
        return self.k * self.k

    def of_kind(self, kind: str) -> np.ndarray:
        """The zeros ``k`` of one kind."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        return self.k[[x == kind for x in self.kind]]


def _newton(pot: StepPotential, k0: complex, tol: float, max_iter: int = 60):
    k = complex(k0)
    for _ in range(max_iter):
        G, dG = _G(np.array([k]), pot)
        G, dG = complex(G[0]), complex(dG[0])
        if not (np.isfinite(G) and np.isfinite(dG)) or dG == 0:
            return None
        step = G / dG
        k -= step
        if abs(step) <= tol * max(1.0, abs(k)):
            return k
    return None


def _inside(k: complex, r, slack: float) -> bool:
    return (r[0] - slack <= k.real <= r[1] + slack) and (r[2] - slack <= k.imag <= r[3] + slack)


def _split(r, frac: float):
    x0, x1, y0, y1 = r
    if x1 - x0 >= y1 - y0:
        xm = x0 + frac * (x1 - x0)
        return (x0, xm, y0, y1), (xm, x1, y0, y1)
    ym = y0 + frac * (y1 - y0)
    return (x0, x1, y0, ym), (x0, x1, ym, y1)


def _search(pot, r, n, tol, out, depth=0):
    if n == 0:
        return
    size = max(r[1] - r[0], r[3] - r[2])
    scale = max(abs(r[0]), abs(r[1]), abs(r[2]), abs(r[3]), 1.0)
    centre = complex((r[0] + r[1]) / 2, (r[2] + r[3]) / 2)
    if n == 1:
        k = _newton(pot, centre, tol)
        if k is not None and _inside(k, r, 1e-12 * scale):
            out.append((k, 1))
            return
    if size < 1e-9 * scale or depth > 80:  # a cluster (multiple zero) below the resolution
        k = _newton(pot, centre, tol)
        out.append((centre if k is None or not _inside(k, r, size) else k, n))
        return
    for frac in (0.4871, 0.5237, 0.4513, 0.5719, 0.4137):
        r1, r2 = _split(r, frac)
        try:
            n1 = _winding(pot, r1)[0]
            n2 = _winding(pot, r2)[0]
        except ValueError:  # the cut passes (numerically) through a zero: move it
            continue
        if n1 + n2 == n:
            break
    else:
        raise RuntimeError(f"line_zeros: the counts of the halves of {r} never add up to {n}")
    _search(pot, r1, n1, tol, out, depth + 1)
    _search(pot, r2, n2, tol, out, depth + 1)


def _classify(k: complex, tol: float) -> tuple[complex, str]:
    if abs(k) <= tol:
        return 0j, "threshold"
    if abs(k.real) <= tol * abs(k):
        k = complex(0.0, k.imag)
        return k, ("bound" if k.imag > 0 else "antibound")
    if k.imag < 0:
        return k, "resonance"
    # impossible for real V (H self-adjoint): reported so that a check can refute it
    return k, "upper"


def line_zeros(pot: StepPotential, region: Sequence[float], *, upper: bool = False,
               tol: float = 1e-13) -> LineZeros:
    """All zeros of the Jost function ``G`` (equivalently of ``D = 1/t``, plus ``k = 0`` at a
    half-bound threshold) in the rectangle ``region = (re_min, re_max, im_min, im_max)`` of
    the k-plane: resonances (``Im k < 0``, pairs ``k, −k̄``), anti-bound states
    (``−iR₊``), and with ``upper=True`` the bound states (``iR₊``).

    Count by the winding number, isolate by bisection with counts that must add up, refine
    by Newton on ``G`` with the exact ``G'`` (module docstring); ``tol`` is Newton's relative
    step tolerance and the classification's tolerance on ``Re k/|k|`` (certified
    classification: :func:`line_zero_balls`). Cost: O(count · n_cells · n_segments · depth).

    ``ValueError`` naming ``region`` for an empty region, a region reaching into
    ``Im k > 0`` without ``upper=True``, or a zero on its boundary; naming ``pot`` when it
    is not a :class:`~bkmath.continuum.StepPotential`.

    >>> z = line_zeros(StepPotential.well(-2.0, 0.0, 1.0), (-4.0, 4.0, -3.6, 1.8), upper=True)
    >>> z.count, z.kind, np.round(z.k.imag, 6).tolist()
    (2, ('bound', 'antibound'), [0.784757, -3.301136])
    """
    pot = _as_pot(pot)
    r = _as_region(region, upper)
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating)) or not (
            math.isfinite(tol) and 0 < tol < 1e-6):
        raise ValueError(f"tol must lie in (0, 1e-6), got {tol!r}")
    n = _winding(pot, r)[0]
    found: list[tuple[complex, int]] = []
    _search(pot, r, n, tol, found)
    ks, kinds, mult = [], [], []
    for k, m in found:
        k = _newton(pot, k, tol / 10) or k  # polish
        k, kind = _classify(k, 1e3 * tol)
        ks.append(k)
        kinds.append(kind)
        mult.append(m)
    order = sorted(range(len(ks)), key=lambda i: (KINDS.index(kinds[i]) if kinds[i] in KINDS
                                                  else len(KINDS), ks[i].real, ks[i].imag))
    return LineZeros(np.array([ks[i] for i in order], complex),
                     tuple(kinds[i] for i in order),
                     np.array([mult[i] for i in order], int), n, r)


# ----------------------------------------------------------------------------- Arb


def _acb_jets(k, pot: StepPotential):
    """``(G(k), G'(k))`` as acb balls for an acb ``k`` (a box): exact cell data, rigorous."""
    from flint import acb, arb

    k2 = k * k
    one, zero = acb(1), acb(0)
    p = [one, zero, zero, one]
    dp = [zero, zero, zero, zero]
    edges = [arb(float(e)) for e in pot.edges]
    for j, vj in enumerate(pot.values):
        L = edges[j + 1] - edges[j]
        u = k2 - arb(float(vj))
        x = u * (L * L)
        if abs(x).upper() <= 1:  # power series with the tail bound Σ_{n≥N} |x|^n/(2n)! ≤ 2/(2N)!
            c = s = ds = acb(0)
            for n in range(_SERIES - 1, -1, -1):
                c = c * (-x) + arb(1) / math.factorial(2 * n)
                s = s * (-x) + arb(1) / math.factorial(2 * n + 1)
                if n >= 1:
                    ds = ds * (-x) - arb(n) / math.factorial(2 * n + 1)
            t = arb(0, 2.0 / math.factorial(2 * _SERIES))
            td = arb(0, 2.0 * _SERIES / math.factorial(2 * _SERIES + 1))
            c = c + acb(t, t)
            s = (s + acb(t, t)) * L
            s_u = (ds + acb(td, td)) * L ** 3
        else:  # c, s even in q: any branch of √u continuous on the ball
            q = u.sqrt() if u.real.mid() >= 0 else acb(0, 1) * (-u).sqrt()
            c = (q * L).cos()
            s = (q * L).sin() / q
            s_u = (L * c - s) / (2 * u)
        c_u = -L * s / 2
        m = (c, s, -u * s, c)
        dm = (2 * k * c_u, 2 * k * s_u, -k * (s + L * c), 2 * k * c_u)
        p11, p12, p21, p22 = p
        d11, d12, d21, d22 = dp
        p = [m[0] * p11 + m[1] * p21, m[0] * p12 + m[1] * p22,
             m[2] * p11 + m[3] * p21, m[2] * p12 + m[3] * p22]
        dp = [dm[0] * p11 + m[0] * d11 + dm[1] * p21 + m[1] * d21,
              dm[0] * p12 + m[0] * d12 + dm[1] * p22 + m[1] * d22,
              dm[2] * p11 + m[2] * d11 + dm[3] * p21 + m[3] * d21,
              dm[2] * p12 + m[2] * d12 + dm[3] * p22 + m[3] * d22]
    p11, p12, p21, p22 = p
    d11, d12, d21, d22 = dp
    ik = acb(0, 1) * k
    G = ik * (p11 + p22) + k2 * p12 - p21
    dG = acb(0, 1) * (p11 + p22) + ik * (d11 + d22) + 2 * k * p12 + k2 * d12 - d21
    return G, dG


def _acb_G_planewave(k, pot: StepPotential):
    """``G(k) = 2ik M^loc_22`` (an acb ball, value only) in the local plane-wave basis
    ``e^{±iq_j(x − x_j)}`` of each cell: interface matching ``A' = ½[(1 + ρ)A + (1 − ρ)B]``,
    ``B' = ½[(1 − ρ)A + (1 + ρ)B]``, ``ρ = q/q'``, then the phases ``e^{±iqL}``. Equal to G
    (``e^{ik(b−a)}`` is the change to the global basis), but without the cancellation of
    ``cos qL``, ``sin qL`` in ``Im k < 0``: the enclosure over a box is tight there. Wide (or
    infinite) where some ``q_j`` is near 0; the caller then uses the mean-value form."""
    from flint import acb, arb

    def root(u):
        return u.sqrt() if u.real.mid() >= 0 else acb(0, 1) * (-u).sqrt()

    k2 = k * k
    I = acb(0, 1)
    edges = [arb(float(e)) for e in pot.edges]
    A, B = acb(0), acb(1)
    q = k
    for j, vj in enumerate(pot.values):
        qn = root(k2 - arb(float(vj)))
        rho = q / qn
        A, B = ((1 + rho) * A + (1 - rho) * B) / 2, ((1 - rho) * A + (1 + rho) * B) / 2
        L = edges[j + 1] - edges[j]
        e = (I * qn * L).exp()
        A, B = A * e, B / e
        q = qn
    rho = q / k
    B = ((1 - rho) * A + (1 + rho) * B) / 2
    return 2 * I * k * B


def jost_entire_ball(k, pot: StepPotential, *, prec: int = 128):
    """Arb enclosures ``(G(k), G'(k))`` (acb) for a complex ``k`` (read exactly) or an acb
    box ``k``: the edges and values of ``pot`` are read exactly as the binary floats they
    hold, so the balls are a proof about *that* step potential. O(n_cells) ball operations.

    >>> G, dG = jost_entire_ball(1.3 - 0.4j, StepPotential.well(5.0, 0.0, 1.0))
    >>> bool(G.contains(G.mid())) and G.rad() < 1e-30
    True
    """
    from flint import acb

    from bkmath.enclosure import arb_precision

    pot = _as_pot(pot)
    with arb_precision(prec):
        kb = k if isinstance(k, acb) else acb(complex(k).real, complex(k).imag)
        return _acb_jets(kb, pot)


def line_zero_balls(pot: StepPotential, zeros: Sequence[complex], *,
                    rel_radius: float = 1e-10, prec: int = 128) -> list[dict]:
    """Arb certificates of zeros of ``G``: around each approximate zero ``k0`` (re-centred by
    a few Newton steps on midpoints in ``prec``-bit arithmetic, keeping ``Re k0 = 0`` when it
    is 0) the box ``B = m ± r`` (real and imaginary part), ``r = ρ max(1, |k0|)`` for the first
    ``ρ`` in ``rel_radius, rel_radius·10⁻³, …`` that passes the Krawczyk test

        K(B) = m − G(m)/G'(m) + (1 − G'(B)/G'(m)) (B − m) ⊂ interior(B):

    then ``B`` holds exactly one zero of ``G``, a simple one. For ``Re k0 = 0`` the box is
    symmetric about ``iR``, and as ``−k̄`` is a zero in ``B`` too, the zero is on the axis.
    Returns per zero: ``ball``, ``unique``, ``on_axis`` (certified ``Re k = 0``), ``lower`` /
    ``upper`` (``Im k < 0`` / ``> 0`` on all of B), ``off_axis`` (``Re k ≠ 0`` on all of B),
    ``kind`` (the certified kind, or ``None``), ``radius``, ``contains_input``.
    """
    import flint
    from flint import acb, arb

    from bkmath.enclosure import arb_precision

    pot = _as_pot(pot)
    if isinstance(rel_radius, bool) or not isinstance(rel_radius, (int, float, np.floating)) \
            or not (math.isfinite(rel_radius) and 1e-30 < rel_radius < 1e-2):
        raise ValueError(f"rel_radius must lie in (1e-30, 1e-2), got {rel_radius!r}")
    if isinstance(zeros, (str, bytes)):
        raise TypeError(f"zeros must be a sequence of complex numbers, got {type(zeros).__name__}")
    try:
        zarr = np.asarray(zeros)
    except (TypeError, ValueError):  # ragged nesting
        raise TypeError(f"zeros must be a sequence of complex numbers, got {zeros!r:.80}") from None
    if zarr.dtype.kind not in "biufc" or zarr.ndim != 1:
        raise TypeError(f"zeros must be a 1-D sequence of complex numbers, got dtype "
                        f"{zarr.dtype} and shape {zarr.shape}")
    if not np.all(np.isfinite(zarr)):
        raise ValueError("zeros must be finite")
    zeros = zarr.astype(np.complex128).tolist()
    rhos = [rel_radius * 10.0 ** (-3 * j) for j in range(8) if rel_radius * 10.0 ** (-3 * j)
            >= 1e-30] or [rel_radius]
    out = []
    with arb_precision(prec):
        for k0 in zeros:
            k0 = complex(k0)
            axis = k0.real == 0.0
            inp = acb(k0.real, k0.imag)
            m = inp
            for _ in range(4):
                G, dG = _acb_jets(m, pot)
                if dG.contains(0):
                    break
                m = (m - G / dG).mid()
                if axis:
                    m = acb(0, m.imag)
            ok, B, r = False, None, 0.0
            G0, d0 = _acb_jets(m, pot)
            for rho in rhos:
                r = rho * max(1.0, abs(k0))
                B = acb(arb(m.real.mid(), r), arb(m.imag.mid(), r))
                if d0.contains(0):
                    break
                _, dB = _acb_jets(B, pot)
                K = m - G0 / d0 + (1 - dB / d0) * (B - m)
                if B.contains_interior(K):
                    ok = True
                    break
            lower, upper_ = bool(B.imag < 0), bool(B.imag > 0)
            off = bool(B.real > 0) or bool(B.real < 0)
            zero_in = B.contains(acb(0))
            kind = None
            if ok:
                if axis and zero_in and B.imag.contains(0) and k0 == 0:
                    kind = "threshold"
                elif axis and upper_:
                    kind = "bound"
                elif axis and lower:
                    kind = "antibound"
                elif off and lower:
                    kind = "resonance"
            out.append({"ball": B, "unique": ok, "on_axis": ok and axis, "lower": lower,
                        "upper": upper_, "off_axis": off, "kind": kind, "radius": r,
                        "contains_input": bool(B.contains(inp))})
    del flint
    return out


def certified_zero_count(pot: StepPotential, region: Sequence[float], *, upper: bool = True,
                         prec: int = 128, max_segments: int = 20_000) -> dict:
    """The number of zeros of ``G`` in the rectangle ``region``, **proved** in Arb.

    The boundary is cut into segments ``S`` (starting from the float64 partition of
    :func:`line_zero_count`); on each, the mean-value enclosure ``G(m) + G'(S)(S − m)`` must
    exclude 0 (else ``S`` is bisected), so ``G(S)`` lies in an open half-plane through 0 and
    the increment of ``arg G`` along ``S`` is the principal ``arg(G(p')/G(p))``, enclosed from
    the point balls. The sum over the segments, divided by 2π, is a ball; when it contains
    exactly one integer that integer is the count (with multiplicity). Returns ``{"count":
    int or None, "winding": arb, "segments": n, "float_count": int}``.

    >>> certified_zero_count(StepPotential.well(5.0, 0.0, 1.0), (-5.0, 5.0, -2.0, 0.0))["count"]
    2
    """
    from flint import acb, arb

    from bkmath.enclosure import arb_precision

    pot = _as_pot(pot)
    r = _as_region(region, upper)
    if isinstance(max_segments, bool) or not isinstance(max_segments, (int, np.integer)) \
            or max_segments < 1:
        raise ValueError(f"max_segments must be a positive integer, got {max_segments!r}")
    n_float, pts = _winding(pot, r, thresh=_ARB_THRESH)
    with arb_precision(prec):
        pi2 = 2 * arb.pi()
        total = arb(0)
        n_seg = 0
        todo = [(complex(p), complex(q)) for p, q in zip(pts[:-1], pts[1:], strict=True)]
        todo.reverse()
        cache: dict[complex, object] = {}

        def point(p: complex):
            if p not in cache:
                kp = acb(p.real, p.imag)
                g = _acb_G_planewave(kp, pot)
                cache[p] = g if g.rad() < 1e-6 * abs(g).upper() else _acb_jets(kp, pot)[0]
            return cache[p]

        while todo:
            p, q = todo.pop()
            n_seg += 1
            if n_seg > max_segments:
                return {"count": None, "winding": arb(0, 1e9), "segments": n_seg,
                        "float_count": n_float}
            mid = (p + q) / 2
            S = acb(arb(p.real).union(arb(q.real)), arb(p.imag).union(arb(q.imag)))
            enc = _acb_G_planewave(S, pot)
            if enc.contains(0):  # near k² = V_j: the mean-value form in the cell basis
                mb = acb(mid.real, mid.imag)
                _, dS = _acb_jets(S, pot)
                enc = _acb_jets(mb, pot)[0] + dS * (S - mb)
            ratio = point(q) / point(p)
            inc = ratio.arg() if not enc.contains(0) and not (
                ratio.real < 0 and ratio.imag.contains(0)) else None
            if inc is None or inc.rad() > 0.25:
                if abs(q - p) < 1e-14 * max(1.0, abs(p)):
                    return {"count": None, "winding": arb(0, 1e9), "segments": n_seg,
                            "float_count": n_float}
                todo.append((mid, q))
                todo.append((p, mid))
                continue
            total += inc
        w = total / pi2
        lo, hi = math.ceil(float(w.lower())), math.floor(float(w.upper()))
        count = lo if lo == hi and w.rad() < 0.5 else None
        return {"count": count, "winding": w, "segments": n_seg, "float_count": n_float}
