"""Deprecated aliases: the mpmath references of the O(N) core under their old names.

The references now live by library family — :mod:`bkmath.reference.resolvent` and
:mod:`bkmath.reference.determinant` — with an ``_mp`` suffix; this module only re-exports them
under the unsuffixed names it used to define, for existing imports. New code should import
from the family modules (or the flat names of :mod:`bkmath.reference`).
"""

from __future__ import annotations

# deprecated aliases (old name = family-module name)
from bkmath.reference.determinant import det_mp as det
from bkmath.reference.determinant import eigenvalue_count_mp as eigenvalue_count
from bkmath.reference.determinant import log_det_mp as log_det
from bkmath.reference.resolvent import continuants_mp as continuants
from bkmath.reference.resolvent import free_resolvent_continuum_mp as free_resolvent_continuum
from bkmath.reference.resolvent import free_resolvent_mp as free_resolvent
from bkmath.reference.resolvent import lattice_w_mp as lattice_w
from bkmath.reference.resolvent import resolvent_diagonal_mp as resolvent_diagonal

__all__ = [
    "lattice_w",
    "free_resolvent",
    "free_resolvent_continuum",
    "continuants",
    "resolvent_diagonal",
    "det",
    "log_det",
    "eigenvalue_count",
]
