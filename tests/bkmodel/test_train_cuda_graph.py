"""Training with ``cuda_graph=True``: forward + backward replayed from a CUDA graph.

The graph path needs a GPU; on CPU these tests skip with a visible reason (and the deferred
guards it relies on are tested on CPU in ``test_guards.py::TestDeferred``). The
configuration check runs everywhere.
"""

from __future__ import annotations

import json

import pytest
import torch

from bkmodel.presets import TrainConfig
from bkmodel.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ci(model: str, **kw) -> TrainConfig:
    return TrainConfig.from_preset("ci", model=model, device="cuda" if torch.cuda.is_available()
                                   else "cpu", **kw)  # fmt: skip


def losses(run_dir) -> list[float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r and "event" not in r]


def test_cuda_graph_field_is_checked():
    with pytest.raises(TypeError, match="cuda_graph must be a bool"):
        TrainConfig(cuda_graph="yes")


def test_cuda_graph_on_cpu_trains_eagerly(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CPU behaviour")
    s = train(ci("bk", max_steps=3, cuda_graph=True, log_every=1), tmp_path, progress=False)
    assert s["steps"] == 3


@pytest.mark.gpu
@pytest.mark.parametrize("model", ["bk", "transformer"])
def test_graph_training_matches_eager(model, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (run `pytest -m gpu` there)")
    kw = dict(max_steps=12, log_every=1, eval_every=12, ckpt_every=12)
    eager = train(ci(model, **kw), tmp_path / "eager", progress=False)
    graph = train(ci(model, cuda_graph=True, **kw), tmp_path / "graph", progress=False)
    le, lg = losses(tmp_path / "eager"), losses(tmp_path / "graph")
    assert len(le) == len(lg) == 12
    # same data, same initial weights; dropout is 0 in the ci preset, so the only
    # differences are kernel choices (autocast without its weight cache): tiny
    for a, b in zip(le, lg, strict=True):
        assert abs(a - b) <= 1e-2 * abs(a), (le, lg)
    assert graph["val_loss"] == pytest.approx(eager["val_loss"], rel=2e-2)
    if model == "bk":
        assert graph["counters"]["guard_errors"] == 0
