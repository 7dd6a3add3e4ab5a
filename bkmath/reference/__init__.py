"""Reference implementations: mpmath (arbitrary precision) and dense numpy (LAPACK).

* :mod:`bkmath.reference.mp` — ``lattice_w``, ``free_resolvent``, ``free_resolvent_continuum``,
  ``continuants``, ``resolvent_diagonal``, ``det``, ``log_det``, ``eigenvalue_count`` at a
  chosen ``dps`` (precision scoped with ``mpmath.workdps``);
* :mod:`bkmath.reference.dense` — ``resolvent_diagonal``, ``log_det``, ``eigenvalue_count``
  from dense matrices, and ``continuant_diagonal``: the θ/φ formula that overflows.

The flat names below carry a ``_mp`` / ``_dense`` suffix.
"""

from __future__ import annotations

from bkmath.reference import dense, mp
from bkmath.reference.dense import continuant_diagonal
from bkmath.reference.dense import eigenvalue_count as eigenvalue_count_dense
from bkmath.reference.dense import log_det as log_det_dense
from bkmath.reference.dense import resolvent_diagonal as resolvent_diagonal_dense
from bkmath.reference.mp import continuants as continuants_mp
from bkmath.reference.mp import det as det_mp
from bkmath.reference.mp import eigenvalue_count as eigenvalue_count_mp
from bkmath.reference.mp import free_resolvent as free_resolvent_mp
from bkmath.reference.mp import free_resolvent_continuum as free_resolvent_continuum_mp
from bkmath.reference.mp import lattice_w as lattice_w_mp
from bkmath.reference.mp import log_det as log_det_mp
from bkmath.reference.mp import resolvent_diagonal as resolvent_diagonal_mp

__all__ = [
    "mp",
    "dense",
    "continuant_diagonal",
    "continuants_mp",
    "det_mp",
    "eigenvalue_count_dense",
    "eigenvalue_count_mp",
    "free_resolvent_continuum_mp",
    "free_resolvent_mp",
    "lattice_w_mp",
    "log_det_dense",
    "log_det_mp",
    "resolvent_diagonal_dense",
    "resolvent_diagonal_mp",
]
