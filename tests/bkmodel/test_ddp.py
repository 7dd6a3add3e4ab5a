"""DDP: ``bk train`` under ``torchrun --nproc_per_node=2`` (gloo, CPU) equals one process
training on the same global batch.

Each rank takes rows ``r::2`` of the global batch and DDP averages the two half-batch
gradients, which equals the full-batch mean gradient; the only difference is float32 summation
order in the all-reduce, so losses and weights agree to ~1e-6 relative, not bitwise. The
ResNet-BK run uses ``potential=linear, ffn=mlp``; the MoE test checks that the load-balance
loss is the global batch's (``bkmodel.moe.global_balance_correction``: without it each rank's
aux loss is its shard's). The other tests run ``_ddp_worker.py`` under ``torchrun``: a fault
on rank 1 only (a ``GuardError``, NaN logits, a NaN weight) must be handled the same on both
ranks with no hang, and FSDP2 (``parallel="fsdp"``) must train like one process and leave a
full checkpoint that resumes on one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bkmodel.checkpoint import load_checkpoint
from bkmodel.distributed import may_leave_parameters_unused
from bkmodel.factory import build_model
from bkmodel.moe import MoE, global_balance_correction
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


# --- MoE: the load-balance loss of the global batch ------------------------------------------

MOE_OPTS = {"potential": "linear", "ffn": "moe", "num_experts": 4, "top_k": 2,
            "aux_loss_weight": 1.0}  # weight 1 (not 1e-2) so the aux loss shows in the curve
WORKER = Path(__file__).with_name("_ddp_worker.py")
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")


def test_balance_correction_gives_the_global_batch_loss_and_gradient():
    # two "ranks" in one process: rank r sees rows r::2; the correction uses the fractions
    # averaged over both, exactly what the all-reduce gives
    torch.manual_seed(0)
    moe = MoE(8, 16, 8, num_experts=4, top_k=2)
    x = torch.randn(6, 5, 8)
    _, full = moe(x)
    g_full = torch.autograd.grad(full["aux_loss"], moe.gate.weight)[0]
    moe.balance_records = []
    halves = [moe(x[r::2])[1] for r in range(2)]
    recs = list(moe.balance_records)
    f_global = (recs[0][0] + recs[1][0]) / 2
    losses, grads = [], []
    for r, st in enumerate(halves):
        moe.balance_records[:] = [recs[r]]
        corr = global_balance_correction(moe, lambda t: f_global)
        assert moe.balance_records == []  # popped
        loss = st["aux_loss"] + corr
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, moe.gate.weight, retain_graph=True)[0])
    mean = (losses[0] + losses[1]) / 2
    torch.testing.assert_close(mean, full["aux_loss"], rtol=1e-6, atol=0)
    torch.testing.assert_close((grads[0] + grads[1]) / 2, g_full, rtol=1e-5, atol=1e-7)
    # negative control: the per-shard aux losses alone are not the global one
    local = (halves[0]["aux_loss"] + halves[1]["aux_loss"]).detach() / 2
    err = abs(float(mean.detach() - full["aux_loss"].detach()))
    assert abs(float(local - full["aux_loss"].detach())) > 1e3 * err


@pytest.mark.slow  # ~30 s on a loaded 2-core machine; measured max rel. loss difference 7.5e-8
def test_moe_two_gloo_processes_equal_one_process(tmp_path):
    out = tmp_path / "ddp_moe"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "bkmodel.cli", "train", "--model", "bk", "--out", str(out), "--preset", "ci",
           "--max-steps", str(STEPS), "--eval-every", str(STEPS), "--ckpt-every", "3",
           "--no-progress", *[f"--bk-option={k}={v}" for k, v in MOE_OPTS.items()]]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    cfg = TrainConfig.from_preset("ci", model="bk", max_steps=STEPS, eval_every=STEPS,
                                  ckpt_every=3, model_options=dict(MOE_OPTS))
    train(cfg, tmp_path / "single_moe", progress=False)
    text, _ = proc.communicate(timeout=150)
    assert proc.returncode == 0, text.decode()[-3000:]
    a, b = curve(tmp_path / "single_moe"), curve(out)
    assert [s for s, _ in a] == [s for s, _ in b] == list(range(1, STEPS + 1))
    for (_, la), (_, lb) in zip(a, b, strict=True):
        assert lb == pytest.approx(la, rel=1e-6)
    sa, sb = load_checkpoint(tmp_path / "single_moe")[0], load_checkpoint(out)[0]
    for k, v in sa["model"].items():
        torch.testing.assert_close(sb["model"][k], v, rtol=1e-4, atol=1e-5, msg=k)


# --- a fault on one rank ---------------------------------------------------------------------

def _worker(out: Path, cfg: TrainConfig, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(WORKER), str(out), json.dumps(cfg.to_dict()), *extra]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_fault_on_one_rank_is_handled_the_same_on_every_rank(tmp_path):
    # rank 1 alone: a GuardError in the forward at step 3, NaN logits at step 5, a NaN
    # weight at step 8 (the BK guard raises on it; the weight check then rolls both back)
    cfg = TrainConfig.from_preset("ci", model="bk", max_steps=9, eval_every=9, ckpt_every=3,
                                  model_options={k: v for k, v in MOE_OPTS.items()
                                                 if k != "aux_loss_weight"})
    proc = _worker(tmp_path, cfg, "--fault", "guard@2:1", "--fault", "nan_loss@4:1",
                   "--fault", "nan_weight@7:1")
    try:
        text, _ = proc.communicate(timeout=120)  # a hang fails here
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, text.decode()[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["counters"] == r1["counters"]
    assert (r0["step"], r0["skip"], r0["tokens"]) == (r1["step"], r1["skip"], r1["tokens"])
    assert r0["checksum"] == r1["checksum"]  # the replicas stayed equal
    c = r0["counters"]
    assert (c["guard_errors"], c["nonfinite_skips"], c["rollbacks"]) == (2, 1, 1), c
    assert r0["step"] == 9 and r0["skip"] == 2  # the rollback from step 8 to 6 skips 2


# --- FSDP2 -----------------------------------------------------------------------------------

@pytest.mark.slow  # ~26 s on a loaded 2-core machine; measured max rel. loss difference 9.1e-8
def test_fsdp_two_gloo_processes_equal_one_process_and_resume_on_one(tmp_path):
    steps = 9
    cfg = TrainConfig.from_preset("ci", model="bk", max_steps=steps, eval_every=steps,
                                  ckpt_every=3, parallel="fsdp", model_options=dict(BK_OPTS))
    fsdp = tmp_path / "fsdp"
    env = dict(ENV, BK_FAULT_KILL_AT_STEP="6")  # SIGKILL after step 6 and its checkpoint
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(WORKER), str(fsdp), json.dumps(cfg.to_dict())]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    single = tmp_path / "single"
    train(cfg, single, progress=False)  # one process: parallel="fsdp" shards nothing
    text, _ = proc.communicate(timeout=150)
    assert proc.returncode != 0  # killed on purpose
    assert "world size 2" in text.decode(), text.decode()[-3000:]
    state, _ = load_checkpoint(fsdp)  # full, one-process format
    assert state["step"] == 6
    ref = load_checkpoint(single)[0]["model"]
    assert set(state["model"]) == set(ref)
    assert all(not type(v).__name__.startswith("DTensor") for v in state["model"].values())
    assert state["optimizer"]["param_groups"][0]["params"][0] == 0  # integer ids
    train(cfg, fsdp, resume=True, progress=False)  # one process resumes the FSDP run
    a, b = curve(single), curve(fsdp)
    assert [s for s, _ in a] == [s for s, _ in b] == list(range(1, steps + 1))
    for (_, la), (_, lb) in zip(a, b, strict=True):
        assert lb == pytest.approx(la, rel=1e-6)
    end = load_checkpoint(fsdp)[0]["model"]
    for k, v in load_checkpoint(single)[0]["model"].items():
        torch.testing.assert_close(end[k], v, rtol=1e-4, atol=1e-5, msg=k)
