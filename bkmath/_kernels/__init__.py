"""Compiled O(N) kernels for tridiagonal operators (numba, private).

Every kernel works on one chain ("row"); a batched driver runs rows ``[r0, r1)`` without the
GIL, and :func:`run_rows` splits the rows over threads (one per core). A ``nogil`` driver
compiles markedly faster than the same driver with ``parallel=True``/``prange``, and the split
over rows is the same. Arithmetic is float64 (inputs are float64 / complex128; the callers
widen float32, so no float32 specialisations are compiled). Complex numbers are carried as
pairs of reals (:mod:`bkmath._kernels._complex`), so the hot loops use one real division per
complex reciprocal. Notation (docs/conventions.md §3): ``alpha_i = a_i - z`` (minus the lead
self-energy ``sigma`` at the two end sites for the transparent boundary), ``beta_i = b_i c_i``.

Layout (one module per kernel family, helpers below them):

* :mod:`~bkmath._kernels.resolvent_diagonal` — ``rd_*``: resolvent diagonal (left ratios g^L,
  right ratios g^R, or the two-sided G_ii);
* :mod:`~bkmath._kernels.log_det` — ``log_det_batch*``: log det(H - z) by scaled continuants
  with winding count for the argument;
* :mod:`~bkmath._kernels.sturm` — ``sturm_batch``: Sturm count of negative pivots of H - lam
  (real symmetric H);
* :mod:`~bkmath._kernels._complex` — complex arithmetic on pairs of reals and the power-of-two
  rescaling of continuant pairs (inlined into the kernels);
* :mod:`~bkmath._kernels._threads` — :func:`run_rows`, the thread pool.

Every compiled function has ``cache=True`` and is defined at module level, so its on-disk
cache (``bkmath/_kernels/__pycache__``) is found again by every new process. Numba checks only
the defining file's timestamp: after editing :mod:`~bkmath._kernels._complex`, delete that
cache directory.
"""

from __future__ import annotations

# _n_threads (benchmarks) and _rd_left_real (tests) are private re-exports
from bkmath._kernels._threads import _n_threads as _n_threads
from bkmath._kernels._threads import run_rows
from bkmath._kernels.log_det import log_det_batch, log_det_batch_real
from bkmath._kernels.resolvent_diagonal import _rd_left_real as _rd_left_real
from bkmath._kernels.resolvent_diagonal import (
    rd_both_cplx,
    rd_both_real,
    rd_left_cplx,
    rd_left_real,
    rd_right_cplx,
    rd_right_real,
)
from bkmath._kernels.sturm import sturm_batch

__all__ = [
    "rd_left_real",
    "rd_right_real",
    "rd_both_real",
    "rd_left_cplx",
    "rd_right_cplx",
    "rd_both_cplx",
    "log_det_batch",
    "log_det_batch_real",
    "sturm_batch",
    "run_rows",
]
