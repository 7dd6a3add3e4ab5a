"""Certificates: first-class records of a numerical check of a theorem.

A :class:`Certificate` records what was claimed, under which hypotheses, what was computed,
against which bound or reference, at which precision and tolerance, and the verdict:

* ``verified``     — the claim holds on these inputs with a positive margin;
* ``refuted``      — the claim fails; ``counterexample`` holds the inputs that break it;
* ``inconclusive`` — the computation could not decide (margin within tolerance, or a
  hypothesis could not be checked).

``kind`` says which outcome is *expected*:

* ``theorem``          — a proved statement; anything but ``verified`` is unexpected;
* ``seed_claim``       — a claim of the seed documents under test; ``verified`` and
  ``refuted`` are both legitimate, reported outcomes;
* ``negative_control`` — a deliberately violated hypothesis; the check must say ``refuted``
  (this shows the check can fail).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from bkmath.io import atomic_write

__all__ = ["Certificate", "Status", "Kind", "to_jsonable", "from_jsonable", "timed"]


class Status(str, Enum):
    VERIFIED = "verified"
    REFUTED = "refuted"
    INCONCLUSIVE = "inconclusive"


class Kind(str, Enum):
    THEOREM = "theorem"
    SEED_CLAIM = "seed_claim"
    NEGATIVE_CONTROL = "negative_control"


def to_jsonable(x: Any) -> Any:
    """Convert numbers, complex values, arrays, mpmath and flint values to JSON data.

    Complex numbers become ``{"re": ..., "im": ...}``; non-finite floats become strings
    (``"nan"``, ``"inf"``, ``"-inf"``) so the JSON stays standard; other objects (mpmath
    ``mpf``, flint ``arb``) become their ``str``.
    """
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, Enum):
        return x.value
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        return f if math.isfinite(f) else str(f)
    if isinstance(x, (complex, np.complexfloating)):
        return {"re": to_jsonable(x.real), "im": to_jsonable(x.imag)}
    if isinstance(x, np.ndarray):
        return [to_jsonable(v) for v in x.tolist()] if x.ndim else to_jsonable(x.item())
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    return str(x)


def from_jsonable(x: Any) -> Any:
    """Inverse of :func:`to_jsonable` for the types it produces (arrays come back as lists)."""
    if isinstance(x, dict):
        if set(x) == {"re", "im"}:
            return complex(from_jsonable(x["re"]), from_jsonable(x["im"]))
        return {k: from_jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [from_jsonable(v) for v in x]
    if x in ("nan", "inf", "-inf"):
        return float(x)
    return x


@dataclasses.dataclass
class Certificate:
    """The record of one numerical check (docs/conventions.md §9).

    Attributes
    ----------
    theorem : str
        Short name, e.g. ``"schatten_s2_bound"``.
    statement : str
        The exact statement checked, with its source.
    status : Status
        ``verified``, ``refuted`` or ``inconclusive``.
    kind : Kind
        Which outcome is expected (see module docstring).
    hypotheses : dict
        Each hypothesis and whether it was checked to hold (e.g. ``{"V real": True}``).
    inputs : dict
        The inputs, or the seed that regenerates them.
    value : Any
        The computed quantity (left side of the inequality / identity).
    bound : Any
        The bound or reference value it is compared with.
    margin : float or None
        Signed slack: positive when the claim holds with room (e.g. ``bound - value`` or
        ``tolerance - error``), negative when it fails. :meth:`from_bound` derives it (and
        the status) from ``value``, ``bound`` and ``tolerance``.
    precision : str
        Working precision, e.g. ``"float64"``, ``"mpmath dps=50"``, ``"arb prec=200"``.
    tolerance : float or None
        Tolerance used in the decision, and ``tolerance_reason`` why it is that size.
    counterexample : dict or None
        For ``refuted``: the inputs (V, z, ...) that break the claim and the numbers.
    wall_time : float
        Seconds spent computing.
    details : dict
        Anything else worth keeping (convergence rates, tables).
    """

    theorem: str
    statement: str
    status: Status
    kind: Kind = Kind.THEOREM
    hypotheses: dict[str, Any] = dataclasses.field(default_factory=dict)
    inputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    value: Any = None
    bound: Any = None
    margin: float | None = None
    precision: str = "float64"
    tolerance: float | None = None
    tolerance_reason: str = ""
    counterexample: dict[str, Any] | None = None
    wall_time: float = 0.0
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = Status(self.status)
        self.kind = Kind(self.kind)
        if self.status is Status.REFUTED and self.counterexample is None:
            raise ValueError("a refuted certificate must carry its counterexample")

    @property
    def expected(self) -> bool:
        """True when the status is an expected outcome for this kind of check."""
        if self.kind is Kind.THEOREM:
            return self.status is Status.VERIFIED
        if self.kind is Kind.NEGATIVE_CONTROL:
            return self.status is Status.REFUTED
        return self.status in (Status.VERIFIED, Status.REFUTED)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["expected"] = self.expected
        return to_jsonable(d)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_bound(
        cls,
        theorem: str,
        statement: str,
        *,
        value: Any,
        bound: Any,
        sense: str = "<=",
        tol: float | None = None,
        strict: bool = False,
        requires: bool = True,
        kind: Kind = Kind.THEOREM,
        counterexample: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Certificate:
        """The certificate of a scalar claim, with margin and status derived from the numbers.

        ``sense`` says what is claimed about the computed ``value`` and the ``bound`` (or, for
        an identity, the reference value); the margin is the signed slack of that claim:

        ==========  ===========================  ==========================
        ``sense``   claim                        ``margin``
        ==========  ===========================  ==========================
        ``"<="``    value ≤ bound                bound − value
        ``"<"``     value < bound                bound − value
        ``">="``    value ≥ bound                value − bound
        ``">"``     value > bound                value − bound
        ``"=="``    |value − bound| ≤ tol        tol − |value − bound|
        ==========  ===========================  ==========================

        The status is ``verified`` when the margin is ≥ 0 (> 0 for ``"<"``, ``">"`` and for
        ``"=="`` with ``strict=True``: |value − bound| < tol) and every side condition
        ``requires`` holds, ``refuted`` otherwise, and ``inconclusive`` when the margin is NaN
        (a NaN value or bound decides nothing). For IEEE floats the sign of ``bound − value``
        is exact, so the verdict is the comparison ``value <= bound`` itself.

        A non-finite ``value``, ``bound`` or (for ``"=="``) ``tol`` — NaN or ±inf, real or
        complex — makes the certificate ``inconclusive``, never ``verified`` nor ``refuted``:
        ±inf is where a float64 computation overflowed (or divided by zero), not a measured
        number, so ``-inf <= bound`` holds only vacuously and ``inf > bound`` may be an
        artefact. The margin is still recorded. For finite complex numbers ``|value − bound|``
        is formed without OverflowError (``math.hypot``: a difference beyond float64 is +inf,
        which is then truly larger than any finite tolerance: refuted).

        Parameters
        ----------
        value, bound : float
            The computed quantity and the bound (or reference) it is compared with; stored
            as given.
        sense : {"<=", "<", ">=", ">", "=="}
            The claim, see the table.
        tol : float, optional
            The tolerance, recorded as ``tolerance``. Required for ``"=="``, where it decides;
            for an inequality the bound already contains it (often the bound *is* the
            tolerance: ``value=error, bound=tol``), so it is only recorded.
        strict : bool
            ``"=="`` only: decide with ``|value − bound| < tol``.
        requires : bool
            Side conditions (e.g. an mpmath confirmation, a measured order) that must hold too
            for ``verified``. They do not enter the margin: when one fails the certificate is
            refuted with the margin of the main claim.
        kind, counterexample, **fields
            As for :class:`Certificate`. The counterexample is dropped when verified; a
            refuted certificate without one records its inputs, value, bound and margin.

        Examples
        --------
        >>> c = Certificate.from_bound("t", "err <= 1e-12", value=3e-13, bound=1e-12, tol=1e-12)
        >>> c.status.value, c.margin, c.tolerance
        ('verified', 7e-13, 1e-12)
        >>> c = Certificate.from_bound("t", "x = 1", value=1.5, bound=1.0, sense="==", tol=0.1)
        >>> c.status.value, c.margin, c.counterexample
        ('refuted', -0.4, {'value': 1.5, 'bound': 1.0, 'margin': -0.4})
        """
        def finite(x: Any) -> bool:  # numbers only; other objects fail in the arithmetic
            try:
                c = complex(x)
            except (TypeError, ValueError):
                return True
            return math.isfinite(c.real) and math.isfinite(c.imag)

        def modulus(d: Any) -> float:  # |d| without OverflowError for complex d
            try:
                c = complex(d)
            except (TypeError, ValueError):
                return abs(d)
            return math.hypot(c.real, c.imag)

        if sense in ("<=", "<"):
            margin = bound - value
        elif sense in (">=", ">"):
            margin = value - bound
        elif sense == "==":
            if tol is None:
                raise ValueError("sense '==' needs the tolerance tol")
            with np.errstate(over="ignore", invalid="ignore"):
                margin = tol - modulus(value - bound)
        else:
            raise ValueError(f"sense must be '<=', '<', '>=', '>' or '==', got {sense!r}")
        if strict and sense != "==":
            raise ValueError(f"strict applies to sense '==' only (use '<' or '>'), got {sense!r}")
        if isinstance(margin, complex | np.complexfloating):
            raise TypeError(
                f"value, bound: sense {sense!r} compares real numbers, got the complex margin "
                f"{margin!r} (use '==' with tol for a complex identity)"
            )
        margin = float(margin)
        decidable = finite(value) and finite(bound) and (sense != "==" or finite(tol))
        if math.isnan(margin) or not decidable:
            status = Status.INCONCLUSIVE
        elif margin > 0 or (margin == 0 and not (strict or sense in ("<", ">"))):
            status = Status.VERIFIED if requires else Status.REFUTED
        else:
            status = Status.REFUTED
        if status is Status.VERIFIED:
            counterexample = None
        elif status is Status.REFUTED and counterexample is None:
            counterexample = {k: fields[k] for k in ("inputs",) if k in fields}
            counterexample.update(value=value, bound=bound, margin=margin)
        return cls(
            theorem=theorem,
            statement=statement,
            status=status,
            kind=kind,
            value=value,
            bound=bound,
            margin=margin,
            tolerance=tol,
            counterexample=counterexample,
            **fields,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Certificate:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names - {"expected"}
        if unknown:
            raise ValueError(f"unknown certificate fields: {sorted(unknown)}")
        return cls(**{k: from_jsonable(v) for k, v in d.items() if k in names})

    @classmethod
    def from_json(cls, s: str) -> Certificate:
        return cls.from_dict(json.loads(s))

    def summary(self) -> str:
        m = "—" if self.margin is None else f"{self.margin:.3g}"
        return f"{self.theorem}: {self.status.value} ({self.kind.value}, margin {m})"


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Context manager measuring wall time: ``with timed() as t: ...; t["seconds"]``."""
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - t0


def write_report(certs: list[Certificate], json_path: str | Path, md_path: str | Path) -> None:
    """Write certificates as JSON (a list of dicts) and as a markdown table, atomically."""
    json_path, md_path = Path(json_path), Path(md_path)
    data = [c.to_dict() for c in certs]
    atomic_write(json_path, json.dumps(data, indent=1))
    atomic_write(md_path, markdown_table(certs))


def markdown_table(certs: list[Certificate]) -> str:
    lines = [
        "| theorem | kind | status | expected | margin | precision | time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in certs:
        m = "—" if c.margin is None else f"{c.margin:.3g}"
        lines.append(
            f"| {c.theorem} | {c.kind.value} | **{c.status.value}** | "
            f"{'yes' if c.expected else 'NO'} | {m} | {c.precision} | {c.wall_time:.2f} |"
        )
    return "\n".join(lines) + "\n"
