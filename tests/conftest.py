"""Shared test configuration.

* Hypothesis profiles: ``ci`` (default, fast) and ``thorough`` (>= 10^4 examples per
  property), chosen with ``BK_HYPOTHESIS_PROFILE=thorough``.
* mpmath precision is reset after every test so no test leaks precision into the next.
* Without CUDA, Triton kernels run in the interpreter (``TRITON_INTERPRET=1`` is set before
  Triton is imported): the kernel tests run on CPU, they are never skipped.
"""

from __future__ import annotations

import os

try:  # must happen before anything imports triton
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # One worker per core: intra-op threads would oversubscribe the CPU (tiny tensors
        # ran 40x slower with 2 threads per worker on 2 cores).
        torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    torch = None  # type: ignore[assignment]

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.register_profile(
    "thorough",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("BK_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _reset_precision_and_seeds():
    """Restore mpmath's precision and seed the global RNGs around every test."""
    dps = mpmath.mp.dps
    np.random.seed(12345)  # noqa: NPY002  (legacy global RNG some libraries still use)
    if torch is not None:
        torch.manual_seed(12345)
    try:
        yield
    finally:
        mpmath.mp.dps = dps


@pytest.fixture
def rng() -> np.random.Generator:
    """A per-test numpy Generator with a fixed seed."""
    return np.random.default_rng(20261124)
