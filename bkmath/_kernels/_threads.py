"""Thread plumbing of the compiled kernels: rows of a batch split over the CPU cores.

The batched drivers release the GIL (``nogil=True``), so plain threads run them in parallel;
``BKMATH_NUM_THREADS`` overrides the number of threads (default: the cores this process may
run on).
"""

from __future__ import annotations

__all__ = ["run_rows"]


def run_rows(kernel, rows: int, work: int, *args) -> None:
    """Run ``kernel(r0, r1, *args)`` over rows [0, rows), split across the CPU cores.

    The kernels release the GIL (``nogil=True``), so plain threads run them in parallel.
    ``work`` (≈ rows × N) below ~2·10^4 stays on the calling thread (thread start-up costs
    more than it saves).
    """
    nthreads = min(_n_threads(), rows)
    if nthreads <= 1 or work < 20_000:
        kernel(0, rows, *args)
        return
    bounds = [rows * k // nthreads for k in range(nthreads + 1)]
    pool = _pool()
    futs = [pool.submit(kernel, bounds[k], bounds[k + 1], *args) for k in range(nthreads)]
    for f in futs:
        f.result()


_POOL = None


def _n_threads() -> int:
    import os

    env = os.environ.get("BKMATH_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (not Linux)
        return max(1, os.cpu_count() or 1)


def _pool():
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=_n_threads(), thread_name_prefix="bkmath")
    return _POOL
