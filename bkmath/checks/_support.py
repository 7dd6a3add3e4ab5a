"""Small helpers shared by the check modules: certificate building, convergence rates,
adaptive integrals against a spectral measure, EPS."""

from __future__ import annotations

from typing import Any

import numpy as np

from bkmath.certificate import Certificate, Kind, Status

__all__ = ["make_cert", "loglog_rate", "adaptive_integral", "EPS"]

EPS = float(np.finfo(np.float64).eps)


def make_cert(
    theorem: str,
    statement: str,
    holds: bool,
    *,
    kind: Kind = Kind.THEOREM,
    counterexample: dict[str, Any] | None = None,
    **fields: Any,
) -> Certificate:
    """A certificate whose status is ``verified`` if ``holds`` else ``refuted``, with the
    margin given by the caller: for a verdict that is not one scalar comparison (several
    quantities, a dict value, a per-sample tolerance). A claim ``value <= bound`` (or ``<``,
    ``>=``, ``>``, ``|value - bound| <= tol``) is :meth:`Certificate.from_bound`, which
    derives the margin and the status from the numbers.

    A refuted certificate must carry the counterexample; if the caller gave none, the
    inputs/value/bound are recorded as the counterexample (they are what breaks the claim).
    """
    status = Status.VERIFIED if holds else Status.REFUTED
    if not holds and counterexample is None:
        counterexample = {
            k: fields.get(k) for k in ("inputs", "value", "bound", "margin") if k in fields
        }
    return Certificate(
        theorem=theorem,
        statement=statement,
        status=status,
        kind=kind,
        counterexample=None if holds else counterexample,
        **fields,
    )


def loglog_rate(h: np.ndarray, err: np.ndarray) -> float:
    """Least-squares slope p of log err ≈ p log h + c (the measured convergence order)."""
    h = np.asarray(h, dtype=float)
    err = np.asarray(err, dtype=float)
    ok = err > 0
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(h[ok]), np.log(err[ok]), 1)[0])


def adaptive_integral(m: Any, f: Any, n0: int = 256, tol: float = 1e-14, nmax: int = 2**16,
                      **kw: Any) -> tuple[Any, int]:
    """``(∫ f dμ, n)`` with the θ-midpoint rule ``m.integrate(f, n=n, **kw)`` of a measure
    (:class:`bkmath.mfunction.SpectralMeasure`: Clark and half-line measures), doubling
    n from ``n0`` until two values agree to ``tol`` (relative to ``1 + |value|``) or n reaches
    ``nmax``."""
    a, n = m.integrate(f, n=n0, **kw), n0
    while n < nmax:
        n *= 2
        b = m.integrate(f, n=n, **kw)
        if abs(b - a) <= tol * (1 + abs(b)):
            return b, n
        a = b
    return a, n
