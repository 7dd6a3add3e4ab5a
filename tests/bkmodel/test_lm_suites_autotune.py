"""``benchmarks/lm_suites.py --peer-autotune one``: every Triton autotuner keeps one
configuration (so fla peers compile once per kernel instead of autotuning for minutes)."""

from __future__ import annotations

import pytest

triton = pytest.importorskip("triton")
from triton.runtime.autotuner import Autotuner  # noqa: E402

from tests.bkmodel._scripts import load_benchmark  # noqa: E402

suites = load_benchmark("lm_suites")


def _configs() -> list:
    return [triton.Config({"B": 16}, num_warps=2, num_stages=2),
            triton.Config({"B": 32}, num_warps=4, num_stages=4),
            triton.Config({"B": 64}, num_warps=4, num_stages=3),
            triton.Config({"B": 128}, num_warps=8, num_stages=2)]


def test_pick_prefers_four_warps_and_few_stages():
    cs = _configs()
    assert suites.pick_one_config(cs) is cs[2]
    assert suites.pick_one_config([cs[0], cs[3]]) is cs[0]  # none qualifies: the first


@triton.jit
def _copy(x_ptr, y_ptr, n, B: triton.language.constexpr):
    offs = triton.language.program_id(0) * B + triton.language.arange(0, B)
    m = offs < n
    triton.language.store(y_ptr + offs, triton.language.load(x_ptr + offs, mask=m), mask=m)


def test_limit_autotune_leaves_one_config(monkeypatch):
    # undo the class patch after the test (it is process-wide by design)
    monkeypatch.setattr(Autotuner, "prune_configs", Autotuner.prune_configs)
    tuned = triton.autotune(configs=_configs(), key=["n"])(_copy)
    assert len(tuned.prune_configs({})) == 4
    suites.limit_autotune()
    suites.limit_autotune()  # idempotent: not wrapped twice
    kept = tuned.prune_configs({})
    assert len(kept) == 1 and kept[0].kwargs == {"B": 64}


def test_cli_rejects_unknown_mode():
    with pytest.raises(SystemExit):
        suites.main(["--suite", "tiny", "--rows", "gla", "--peer-autotune", "some"])
