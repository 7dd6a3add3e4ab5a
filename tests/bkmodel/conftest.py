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
