"""Reference implementations: mpmath (arbitrary precision) and dense numpy (LAPACK).

One module per family of the library, named like the module whose routines it checks:

* :mod:`bkmath.reference.resolvent` — ``lattice_w_mp`` (the one mpmath ``w(z)``),
  ``free_resolvent_mp``, ``free_resolvent_continuum_mp``, ``continuants_mp``,
  ``resolvent_diagonal_mp``;
* :mod:`bkmath.reference.determinant` — ``det_mp``, ``log_det_mp``, ``eigenvalue_count_mp``;
* :mod:`bkmath.reference.bs_operator` — ``bs_matrix_mp``;
* :mod:`bkmath.reference.fredholm` — ``fredholm_det_mp``, ``det2_mp``,
  ``square_well_jost_mp``;
* :mod:`bkmath.reference.schatten` — ``singular_values_mp``, ``box_hs_norm_sq_mp``,
  ``trace_class_constant_mp``;
* :mod:`bkmath.reference.scattering` — ``scattering_matrix_mp``;
* :mod:`bkmath.reference.resonances` — ``jost_polynomial_mp``, ``jost_polynomial_exact``,
  ``transparent_qep_zeros``, ``window_eigenvalues`` (import from the module);
* :mod:`bkmath.reference.primes` — ``prime_bump_potential_mp``;
* :mod:`bkmath.reference.dense` — ``resolvent_diagonal``, ``log_det``, ``eigenvalue_count``
  from dense matrices, and ``continuant_diagonal``: the θ/φ formula that overflows.

The mpmath references take a ``dps`` and scope it with ``mpmath.workdps``. The flat names
below carry a ``_mp`` / ``_dense`` suffix. :mod:`bkmath.reference.mp` and
:mod:`bkmath.reference.scattering_ref` are deprecated aliases of the old layout.
"""

from __future__ import annotations

from bkmath.reference import dense, mp
from bkmath.reference.dense import continuant_diagonal
from bkmath.reference.dense import eigenvalue_count as eigenvalue_count_dense
from bkmath.reference.dense import log_det as log_det_dense
from bkmath.reference.dense import resolvent_diagonal as resolvent_diagonal_dense
from bkmath.reference.determinant import det_mp, eigenvalue_count_mp, log_det_mp
from bkmath.reference.resolvent import (
    continuants_mp,
    free_resolvent_continuum_mp,
    free_resolvent_mp,
    lattice_w_mp,
    resolvent_diagonal_mp,
)

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
