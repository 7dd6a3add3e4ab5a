"""Fixtures shared by the bkmodel tests.

This conftest is loaded after ``tests/conftest.py``, which sets ``TRITON_INTERPRET`` before
anything imports Triton; importing torch here does not change that order.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module on one torch thread, restoring the previous count afterwards.

    Tiny tensors and models: with ``pytest -n 2`` on 2 cores, torch's default 2 threads per
    worker oversubscribe the CPU and spin-wait (measured 40x slower). A module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def cuda_device(request):
    """CUDA or an explicit outcome for the ``gpu``-marked tests: fail when they were asked for
    (``-m gpu``) on a machine without CUDA, otherwise a skip whose reason shows in the ``-ra``
    summary (their CPU counterparts run in the Triton interpreter)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    markexpr = request.config.getoption("-m") or ""
    if "gpu" in markexpr and "not gpu" not in markexpr:
        pytest.fail("gpu tests requested but no CUDA device is available")
    pytest.skip("needs a CUDA GPU (run `pytest -m gpu` there); the same code is covered on "
                "CPU by the interpreter tests")
