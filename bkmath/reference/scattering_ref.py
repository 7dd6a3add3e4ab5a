"""Deprecated aliases: the mpmath references of the Birman–Schwinger, Fredholm, Schatten and
scattering code under their old module.

The references now live by library family — :mod:`bkmath.reference.bs_operator`,
:mod:`bkmath.reference.fredholm`, :mod:`bkmath.reference.schatten`,
:mod:`bkmath.reference.scattering` — and the one mpmath ``w(z)`` is
:func:`bkmath.reference.resolvent.lattice_w_mp`. This module re-exports them for existing
imports; new code should import from the family modules.
"""

from __future__ import annotations

import mpmath

# deprecated aliases
from bkmath.reference import resolvent as _resolvent
from bkmath.reference.bs_operator import bs_matrix_mp
from bkmath.reference.fredholm import det2_mp, fredholm_det_mp, square_well_jost_mp
from bkmath.reference.scattering import scattering_matrix_mp
from bkmath.reference.schatten import (
    box_hs_norm_sq_mp,
    singular_values_mp,
    trace_class_constant_mp,
)

__all__ = [
    "lattice_w_mp",
    "bs_matrix_mp",
    "fredholm_det_mp",
    "det2_mp",
    "singular_values_mp",
    "scattering_matrix_mp",
    "square_well_jost_mp",
    "box_hs_norm_sq_mp",
    "trace_class_constant_mp",
]


def lattice_w_mp(z: complex) -> mpmath.mpc:
    """Deprecated alias of :func:`bkmath.reference.resolvent.lattice_w_mp` with this module's
    old calling convention: the current precision, an mpmath result, ``Im z >= 0`` (λ + i0
    for real z on the band)."""
    return _resolvent.lattice_w_mp(z, boundary=True, dps=mpmath.mp.dps, as_mp=True)
