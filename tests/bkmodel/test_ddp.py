"""DDP: ``bk train`` under ``torchrun --nproc_per_node=2`` (gloo, CPU) equals one process
training on the same global batch.

Each rank takes rows ``r::2`` of the global batch and DDP averages the two half-batch
gradients, which equals the full-batch mean gradient; the only difference is float32 summation
order in the all-reduce, so losses and weights agree to ~1e-6 relative, not bitwise. The
ResNet-BK run uses ``potential=linear, ffn=mlp``: an MoE's load-balance loss is computed from
the statistics of the batch it sees, so with MoE the per-rank losses are (by design) not the
full-batch loss.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from bkmodel.checkpoint import load_checkpoint
from bkmodel.distributed import may_leave_parameters_unused
from bkmodel.factory import build_model
from bkmodel.presets import TrainConfig
from bkmodel.train import train

STEPS = 6
BK_OPTS = {"potential": "linear", "ffn": "mlp"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def curve(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r and "event" not in r]


def test_two_gloo_processes_equal_one_process(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    common = ["--preset", "ci", "--max-steps", str(STEPS), "--eval-every", str(STEPS),
              "--ckpt-every", "3", "--no-progress"]
    procs = {}
    for model in ("transformer", "bk"):
        extra = [f"--bk-option={k}={v}" for k, v in BK_OPTS.items()] if model == "bk" else []
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "bkmodel.cli", "train", "--model", model,
               "--out", str(tmp_path / f"ddp_{model}"), *common, *extra]
        procs[model] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
    for p in procs.values():
        out, _ = p.communicate(timeout=150)
        assert p.returncode == 0, out.decode()[-3000:]
        assert "world size 2" in out.decode()
        # find_unused_parameters comes from the model (no MoE here: False), so DDP prints
        # no "find_unused_parameters=True ... did not find any unused parameters" warning
        assert "find_unused_parameters" not in out.decode()

    for model in ("transformer", "bk"):
        opts = {"model_options": dict(BK_OPTS)} if model == "bk" else {}
        cfg = TrainConfig.from_preset("ci", model=model, max_steps=STEPS, eval_every=STEPS,
                                      ckpt_every=3, **opts)
        single = tmp_path / f"single_{model}"
        train(cfg, single, progress=False)
        ddp = tmp_path / f"ddp_{model}"
        a, b = curve(single), curve(ddp)
        assert [s for s, _ in a] == [s for s, _ in b] == list(range(1, STEPS + 1))
        for (_, la), (_, lb) in zip(a, b, strict=True):
            assert lb == pytest.approx(la, rel=2e-5), model
        sa, sb = load_checkpoint(single)[0], load_checkpoint(ddp)[0]
        assert sa["step"] == sb["step"] == STEPS
        for k, v in sa["model"].items():
            torch.testing.assert_close(sb["model"][k], v, rtol=1e-4, atol=1e-5, msg=k)
        # data sharding: the DDP run saw the same global batches (same sampler position)
        assert sa["tokens"] == sb["tokens"] and sa["skip"] == sb["skip"] == 0


@pytest.mark.parametrize(
    ("model", "options", "unused"),
    [
        ("transformer", {}, False),
        ("bk", BK_OPTS, False),  # every parameter gets a gradient
        ("bk", {"potential": "linear", "ffn": "moe", "num_experts": 4, "top_k": 1}, True),
        ("bk", {"potential": "moe", "ffn": "mlp", "num_experts": 4, "top_k": 2}, True),
    ],
)
def test_find_unused_parameters_from_the_model(model, options, unused):
    # DDP's find_unused_parameters: True only where an MoE may leave an expert unchosen
    opts = {"model_options": dict(options)} if model == "bk" else {}
    cfg = TrainConfig.from_preset("ci", model=model, **opts)
    assert may_leave_parameters_unused(build_model(cfg, 257)) is unused
