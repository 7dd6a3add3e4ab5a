"""bkmath: Birman–Schwinger analysis of 1D Schrödinger operators, with certificates.

The flat public API is loaded lazily (PEP 562): ``import bkmath`` is cheap and a name is
imported from its submodule on first use. The table ``_API`` maps each public name to the
submodule that defines it; conventions are fixed in ``docs/conventions.md`` (theorems and
corrections in ``docs/theory.md``).

Conventions (see each function's docstring for details)
--------------------------------------------------------
* Free lattice operator ``H0 = -Δ`` with diagonal 2 and hopping -1; spectrum [0, 4].
* Spectral parameter ``z = λ + iη`` with ``η = Im z > 0`` wherever a resolvent is formed;
  boundary values ``λ + i0`` only in routines that say so.
* ``k = sqrt(z)`` with ``Im k > 0``; lattice ``w(z)`` with ``|w| < 1``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API: dict[str, str] = {
    # certificates (bkmath.certificate)
    "Certificate": "bkmath.certificate",
    "Status": "bkmath.certificate",
    # operators and the O(N) core (issue: bkmath core)
    "JacobiOperator": "bkmath.operators",
    "free_resolvent": "bkmath.free",
    "free_resolvent_continuum": "bkmath.free",
    "lattice_w": "bkmath.free",
    "resolvent_diagonal": "bkmath.resolvent",
    "log_det": "bkmath.determinant",
    "eigenvalue_count": "bkmath.determinant",
    # Birman–Schwinger theory (issue: proofs_checks)
    "birman_schwinger": "bkmath.bs_operator",
    "schatten_norm": "bkmath.schatten",
    "fredholm_det": "bkmath.fredholm",
    "perturbation_determinant": "bkmath.fredholm",
    "jost_determinant": "bkmath.fredholm",
    "det2": "bkmath.fredholm",
    "spectral_shift": "bkmath.scattering",
    "scattering_matrix": "bkmath.scattering",
    "scattering_phase": "bkmath.scattering",
    # lattice resonances (issue 19)
    "jost_polynomial": "bkmath.resonances",
    "lattice_resonances": "bkmath.resonances",
    # Clark measures and m-functions (issue 19)
    "borel_transform": "bkmath.clark",
    "clark_borel": "bkmath.clark",
    "clark_measure": "bkmath.clark",
    "m_function": "bkmath.mfunction",
    "free_m_function": "bkmath.mfunction",
    "half_line_measure": "bkmath.mfunction",
    # continuum scattering on the line and Breit–Wigner (issue 19)
    "StepPotential": "bkmath.continuum",
    "jost_function": "bkmath.continuum",
    "line_scattering": "bkmath.continuum",
    "line_scattering_phase": "bkmath.continuum",
    "line_bound_states": "bkmath.continuum",
    "narrow_resonance": "bkmath.breit_wigner",
    # resonances on the line: all zeros of the entire Jost function in a region (issue 19)
    "LineZeros": "bkmath.line_resonances",
    "jost_entire": "bkmath.line_resonances",
    "line_zero_count": "bkmath.line_resonances",
    "line_zeros": "bkmath.line_resonances",
    "line_zero_balls": "bkmath.line_resonances",
    "certified_zero_count": "bkmath.line_resonances",
    "mourre_commutator": "bkmath.mourre",
    "mourre_constant": "bkmath.mourre",
    "prime_bump_potential": "bkmath.primes",
}

__all__ = sorted(_API) + ["reference", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "reference":
        return importlib.import_module("bkmath.reference")
    try:
        module = _API[name]
    except KeyError:
        raise AttributeError(f"module 'bkmath' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public API and the module dunders; not the helpers of this file (``importlib``,
    ``Any``, ``annotations``, ``_API``)."""
    dunders = {n for n in globals() if n.startswith("__") and n.endswith("__")}
    return sorted(dunders | set(__all__))
