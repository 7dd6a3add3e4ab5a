"""Tests of the training loop, evaluation, generation, presets and the Transformer baseline.

Every run uses the ``ci`` preset (Macbeth, byte tokenizer, d_model 32, T 32): seconds each.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bkmodel import cli
from bkmodel.baseline import TransformerBaseline, TransformerConfig, matched_config
from bkmodel.checkpoint import CheckpointError, load_checkpoint, load_run, write_checkpoint
from bkmodel.data import eval_windows, load_split
from bkmodel.demo import tiny_demo
from bkmodel.evaluate import evaluate_checkpoint, evaluate_stream
from bkmodel.factory import build_model
from bkmodel.generation import generate_text
from bkmodel.optim import build_optimizer, lr_at, param_groups
from bkmodel.presets import PRESETS, TrainConfig
from bkmodel.tokenizer import ByteTokenizer, encode_documents
from bkmodel.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ci(model: str = "transformer", **kw) -> TrainConfig:
    return TrainConfig.from_preset("ci", model=model, **kw)


def losses(run_dir) -> list[tuple[int, float]]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r and "event" not in r]


@pytest.fixture(scope="module")
def bk_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bk_run")
    summary = train(ci("bk", max_steps=20), out, progress=False)
    return out, summary


class TestSchedule:
    def test_warmup_then_cosine(self):
        c = TrainConfig(lr=2.0, warmup_steps=4, max_steps=24, min_lr_ratio=0.25)
        lrs = [lr_at(s, c) for s in range(25)]
        assert lrs[:4] == [0.5, 1.0, 1.5, 2.0]
        assert all(a >= b for a, b in zip(lrs[3:], lrs[4:], strict=False))  # non-increasing
        assert lrs[24] == pytest.approx(0.5) and lrs[14] == pytest.approx(1.25)


class TestConfig:
    @pytest.mark.parametrize("field,value,match", [
        ("model", "rnn", "model"), ("max_steps", -1, "max_steps"), ("lr", 0.0, "lr"),
        ("batch_size", 0, "batch_size"), ("spike_factor", 1.0, "spike_factor"),
        ("precision", "fp8", "precision"), ("dropout", 1.0, "dropout"),
        ("eval_tokens", 4, "eval_tokens"),
    ])
    def test_bad_fields_are_named(self, field, value, match):
        with pytest.raises(ValueError, match=match):
            ci(**{field: value})

    def test_unknown_preset_and_field(self):
        with pytest.raises(ValueError, match="preset"):
            TrainConfig.from_preset("huge")
        with pytest.raises(ValueError, match="unknown TrainConfig fields"):
            ci(n_experts=3)

    def test_presets_build(self):
        assert {"ci", "tiny", "small", "medium"} <= set(PRESETS)
        for name in PRESETS:
            TrainConfig.from_preset(name)

    def test_model_options_build_the_bk_config(self):
        c = ci("bk", model_options={"n_channels": 3, "n_seq": 64})
        m = c.bk_model_config(257)
        assert (m.vocab_size, m.d_model, m.n_layers, m.dropout) == (257, 32, 2, 0.0)
        assert m.n_channels == 3 and m.n_seq == 64  # an option overrides a shared field
        assert ci("bk").bk_model_config(257).n_seq == 32  # else n_seq is seq_len
        with pytest.raises(ValueError, match="does not know: .*'n_chanels'"):
            ci("bk", model_options={"n_chanels": 3}).bk_model_config(257)
        with pytest.raises(TypeError, match="model_options must be a dict"):
            ci("bk", model_options=[("n_channels", 3)])

    def test_bk_options_is_a_deprecated_alias(self):
        opts = {"n_channels": 3}
        assert TrainConfig(bk_options=opts) == TrainConfig(model_options=opts)
        assert ci("bk", bk_options=opts).model_options == opts
        c = ci("bk")
        c.bk_options["n_channels"] = 5  # the attribute is the same dict
        assert c.model_options == {"n_channels": 5}
        # a configuration saved before the rename loads with the new name
        old = {k: v for k, v in ci("bk").to_dict().items() if k != "model_options"}
        old["bk_options"] = opts
        assert TrainConfig.from_dict(old) == ci("bk", model_options=opts)
        assert "bk_options" not in c.to_dict()
        with pytest.raises(ValueError, match="not both"):
            TrainConfig(model_options={"n_channels": 2}, bk_options=opts)
        with pytest.raises(ValueError, match="not both"):
            TrainConfig.from_dict({"model_options": {"n_channels": 2}, "bk_options": opts})


class TestOptimizer:
    @pytest.mark.parametrize("model", ["bk", "transformer"])
    def test_groups_decay_matrices_only(self, model):
        m = build_model(ci(model), 257)
        next(m.parameters()).requires_grad_(False)  # a frozen parameter is in no group
        decay, no_decay = param_groups(m, 0.25)
        trainable = [p for p in m.parameters() if p.requires_grad]
        assert [id(p) for p in decay["params"]] == [id(p) for p in trainable if p.ndim >= 2]
        assert [id(p) for p in no_decay["params"]] == [id(p) for p in trainable if p.ndim < 2]
        assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.25, 0.0)
        assert decay["params"] and no_decay["params"]

    def test_training_and_configure_optimizers_use_the_same_groups(self):
        cfg = ci("bk", weight_decay=0.05, beta1=0.8)
        m = build_model(cfg, 257)
        a = build_optimizer(m, cfg).param_groups
        b = m.configure_optimizers(0.05, lr_at(0, cfg), (0.8, cfg.beta2)).param_groups
        for ga, gb in zip(a, b, strict=True):
            assert [id(p) for p in ga["params"]] == [id(p) for p in gb["params"]]
            assert {k: v for k, v in ga.items() if k != "params"} == \
                {k: v for k, v in gb.items() if k != "params"}


class TestCompatibility:
    def test_old_import_paths_still_work(self):
        import bkmodel.checkpoint
        import bkmodel.demo
        import bkmodel.evaluate
        import bkmodel.factory
        import bkmodel.metrics
        import bkmodel.optim
        import bkmodel.train as old

        homes = {"load_run": bkmodel.checkpoint, "load_checkpoint": bkmodel.checkpoint,
                 "CheckpointError": bkmodel.checkpoint, "evaluate_stream": bkmodel.evaluate,
                 "plot_metrics": bkmodel.metrics, "tiny_demo": bkmodel.demo,
                 "build_model": bkmodel.factory, "lr_at": bkmodel.optim}
        for name, home in homes.items():
            assert getattr(old, name) is getattr(home, name), name
        with pytest.raises(AttributeError, match="no_such_name"):
            old.no_such_name  # noqa: B018

    def test_resume_from_a_checkpoint_that_says_bk_options(self, tmp_path):
        out = tmp_path / "run"
        train(ci(max_steps=4, ckpt_every=2, eval_every=4), out, progress=False)
        state, _ = load_checkpoint(out)
        state["train_config"]["bk_options"] = state["train_config"].pop("model_options")
        write_checkpoint(out / "checkpoint.pt", state)  # as written before the rename
        s = train(ci(max_steps=6, ckpt_every=2, eval_every=4), out, resume=True,
                  progress=False)
        assert s["steps"] == 6


class TestBaseline:
    cfg = TransformerConfig(vocab_size=61, d_model=16, n_layers=2, n_heads=2, d_ff=24,
                            max_seq_len=12)

    def test_param_count_formula(self):
        m = TransformerBaseline(self.cfg)
        assert m.num_params() == self.cfg.param_count()

    def test_matched_budget(self):
        target = build_model(ci("bk"), 257).num_params()
        t = matched_config(target, vocab_size=257, d_model=32, n_layers=2, n_heads=2)
        assert abs(t.param_count() - target) <= 2 * 32 * 2 * 4  # half a d_ff step of 8
        assert build_model(ci("transformer"), 257).num_params() == t.param_count()
        with pytest.raises(ValueError, match="too small"):
            matched_config(1000, vocab_size=257, d_model=32, n_layers=2, n_heads=2)

    def test_causal(self):
        m = TransformerBaseline(self.cfg).eval()
        x = torch.randint(0, 61, (2, 10))
        y = x.clone()
        y[:, 6:] = (y[:, 6:] + 7) % 61  # perturb the future of position 5
        with torch.no_grad():
            a, _ = m(x)
            b, _ = m(y)
        torch.testing.assert_close(a[:, :6], b[:, :6], rtol=0, atol=1e-6)
        assert not torch.allclose(a[:, 6:], b[:, 6:])

    def test_loss_is_cross_entropy_and_bad_input_is_named(self):
        m = TransformerBaseline(self.cfg)
        x = torch.randint(0, 61, (3, 7))
        with torch.no_grad():
            logits, loss = m(x, x)
        ref = F.cross_entropy(logits.reshape(-1, 61), x.reshape(-1))
        assert float(loss) == pytest.approx(float(ref), rel=1e-6)
        with pytest.raises(TypeError, match="input_ids"):
            m(x.float())
        with pytest.raises(ValueError, match="input_ids must lie in"):
            m(x + 61)
        with pytest.raises(ValueError, match="targets"):
            m(x, x[:, :3])
        with pytest.raises(ValueError, match="divisible"):
            TransformerConfig(d_model=30, n_heads=4)

    def test_save_load_and_generate(self, tmp_path):
        m = TransformerBaseline(self.cfg)
        m.save_pretrained(tmp_path)
        m2 = TransformerBaseline.from_pretrained(tmp_path)
        x = torch.randint(0, 61, (2, 5))
        torch.testing.assert_close(m(x)[0], m2(x)[0])
        g = m.generate(x, 20, temperature=0)  # beyond max_seq_len: context is cropped
        assert g.shape == (2, 25) and torch.equal(g[:, :5], x)
        assert torch.equal(g, m2.generate(x, 20, temperature=0))
        with pytest.raises(ValueError, match="top_k"):
            m.generate(x, 2, top_k=0)


class TestTraining:
    def test_bk_run_learns_and_writes_every_artifact(self, bk_run):
        out, summary = bk_run
        for name in ("checkpoint.pt", "checkpoint.prev.pt", "metrics.jsonl", "config.json",
                     "tokenizer.json", "summary.json", "model/config.json"):
            assert (out / name).exists(), name
        assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        curve = losses(out)
        assert [s for s, _ in curve] == list(range(1, 21))
        assert curve[-1][1] < curve[0][1] - 1.0  # from ~log(257) = 5.55 towards char stats
        assert summary["val_ppl"] == pytest.approx(math.exp(summary["val_loss"]))
        assert summary["val_ppl"] < 257
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        assert any("guard.scans" in r and r["guard.scans"] > 0 for r in rows)
        assert summary["counters"]["nonfinite_skips"] == 0

    def test_eval_is_held_out_and_matches_a_naive_computation(self, bk_run):
        out, summary = bk_run
        model, tok, _ = load_run(out)
        tokens = encode_documents(tok, load_split("validation", "tiny"))
        fast = evaluate_stream(model, tokens, 32, batch_size=7)
        nll, n = 0.0, 0
        with torch.no_grad():  # one window at a time, log-softmax by hand
            for s in eval_windows(len(tokens), 32):
                w = torch.from_numpy(tokens[s:s + 33].astype(np.int64))[None]
                logp = torch.log_softmax(model(w[:, :-1])[0].double(), dim=-1)
                nll -= float(logp[0].gather(1, w[0, 1:, None]).sum())
                n += 32
        assert fast["tokens"] == n
        assert fast["loss"] == pytest.approx(nll / n, rel=1e-5)
        res = evaluate_checkpoint(out)
        assert res["validation"]["loss"] == pytest.approx(summary["val_loss"], rel=1e-6)
        assert res["test"]["tokens"] > 0 and res["test"]["ppl"] > 1

    def test_seeded_runs_are_identical(self, tmp_path):
        a = train(ci(max_steps=6), tmp_path / "a", progress=False)
        b = train(ci(max_steps=6), tmp_path / "b", progress=False)
        assert losses(tmp_path / "a") == losses(tmp_path / "b")
        assert a["val_loss"] == b["val_loss"]
        c = train(ci(max_steps=6, seed=7), tmp_path / "c", progress=False)
        assert c["val_loss"] != a["val_loss"]

    def test_existing_run_needs_resume_and_same_config(self, bk_run, tmp_path):
        out, _ = bk_run
        with pytest.raises(CheckpointError, match="--resume"):
            train(ci("bk", max_steps=20), out, progress=False)
        with pytest.raises(CheckpointError, match="lr: checkpoint 0.003 vs now 0.1"):
            train(ci("bk", max_steps=20, lr=0.1), out, resume=True, progress=False)
        with pytest.raises(CheckpointError, match="missing"):
            train(ci(), tmp_path / "empty", resume=True, progress=False)

    def test_generation(self, bk_run):
        out, _ = bk_run
        model, tok, _ = load_run(out)
        a = generate_text(model, tok, "MACBETH.\n", 30, seed=3)
        assert a.startswith("MACBETH.\n") and a == generate_text(model, tok, "MACBETH.\n", 30,
                                                                 seed=3)
        assert isinstance(generate_text(model, tok, "", 5), str)
        # a checkpoint file alone is enough: it embeds the tokenizer
        model2, tok2, _ = load_run(out / "checkpoint.pt")
        assert generate_text(model2, tok2, "MACBETH.\n", 30, seed=3) == a
        with pytest.raises(ValueError, match="max_new_tokens"):
            generate_text(model, tok, "x", -1)

    def test_cli_train_eval_generate(self, tmp_path, capsys):
        out = tmp_path / "cli"
        assert cli.main(["train", "--preset", "ci", "--model", "transformer", "--max-steps",
                         "4", "--eval-every", "2", "--out", str(out), "--no-progress"]) == 0
        assert "validation perplexity" in capsys.readouterr().out
        assert cli.main(["eval", str(out), "--max-tokens", "256"]) == 0
        text = capsys.readouterr().out
        assert "validation" in text and "test" in text and "ppl" in text
        assert cli.main(["generate", str(out), "--max-new-tokens", "10"]) == 0
        assert capsys.readouterr().out.startswith("ROMEO.")
        assert cli.main(["eval", str(tmp_path / "none")]) == 1
        assert "missing" in capsys.readouterr().err
        assert cli.main(["train", "--preset", "ci", "--lr", "-1", "--out", str(out)]) == 2
        assert cli.main(["train", "--preset", "ci", "--bk-option", "eta_min=-1"]) == 2
        assert "eta_min" in capsys.readouterr().err
        assert cli.main(["train", "--preset", "ci", "--bk-option", "nonsense"]) == 2
        assert cli.main(["train", "--preset", "ci", "--model-option", "n_chanels=2"]) == 2
        assert "n_chanels" in capsys.readouterr().err

    def test_tiny_demo_interface(self, tmp_path):
        r = tiny_demo(tmp_path, corpus="tiny", tokenizer="byte", d_model=32, seq_len=32,
                      max_steps=3, eval_every=3, ckpt_every=3, eval_tokens=256)
        assert set(r) >= {"val_ppl", "sample"} and r["sample"].startswith("ROMEO.")
        assert math.isfinite(r["val_ppl"])
        assert isinstance(ByteTokenizer().decode([65]), str)


def _bk_cli(*argv: str) -> tuple[int, str, str]:
    """``bk ARGV`` in a fresh process: (exit code, stdout, stderr)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "bkmodel.cli", *argv], capture_output=True,
                       text=True, env=env, timeout=300)
    return p.returncode, p.stdout, p.stderr


# a CUDA device this torch cannot use: "cuda" on a CPU-only build, one past the last GPU else
_NO_SUCH_CUDA = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"


class TestDeviceCheck:
    """``--device`` is checked before anything is loaded or written (issue 21, item 2)."""

    @pytest.mark.parametrize("command", ["train", "eval", "generate"])
    def test_unusable_device_is_one_line_and_writes_nothing(self, command, bk_run, tmp_path):
        out = tmp_path / "run"
        argv = {"train": ["train", "--preset", "ci", "--out", str(out), "--no-progress"],
                "eval": ["eval", str(bk_run[0])],
                "generate": ["generate", str(bk_run[0])]}[command]
        code, stdout, err = _bk_cli(*argv, "--device", _NO_SUCH_CUDA)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert lines[0].startswith(f"bk {command}: --device {_NO_SUCH_CUDA}: ")
        assert "CUDA" in lines[0] and "Traceback" not in err and stdout == ""
        assert not out.exists()

    def test_api_checks_before_writing(self, tmp_path):
        with pytest.raises(ValueError, match="--device"):
            train(ci(device=_NO_SUCH_CUDA), tmp_path / "run", progress=False)
        assert not (tmp_path / "run").exists()
        with pytest.raises(ValueError, match="not a torch device"):
            train(ci(device="gpu0"), tmp_path / "run", progress=False)
        assert not (tmp_path / "run").exists()


class TestResumeFinished:
    """``--resume`` on a finished run keeps its summary (issue 21, item 5)."""

    def test_summary_keeps_its_numbers(self, tmp_path, capsys):
        out = tmp_path / "done"
        first = train(ci(max_steps=6, eval_every=6, ckpt_every=6), out, progress=False)
        assert first["train_tokens_per_s"] and first["train_tokens_per_s"] > 0
        before = (out / "summary.json").read_text()
        events = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
                  if r.get("event") == "end"]
        again = train(ci(max_steps=6, eval_every=6, ckpt_every=6), out, resume=True,
                      progress=False)
        assert again == json.loads(before)
        assert (out / "summary.json").read_text() == before
        after = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
                 if r.get("event") == "end"]
        assert after == events  # no second end event
        assert cli.main(["train", "--preset", "ci", "--model", "transformer", "--max-steps",
                         "6", "--eval-every", "6", "--ckpt-every", "6", "--out", str(out),
                         "--resume", "--no-progress"]) == 0
        line = capsys.readouterr().out
        assert f"{first['train_tokens_per_s']:,.0f} train tokens/s" in line
        assert " 0 train tokens/s" not in line
        assert (out / "summary.json").read_text() == before


class TestDemoOutput:
    """``bk demo``'s training half: run directory, a sample cut at a word, progress off
    (issue 21, item 8)."""

    @pytest.mark.parametrize(
        ("text", "cut", "was_cut"),
        [
            ("ROMEO.\nWhat light thro", "ROMEO.\nWhat light …", True),
            ("ROMEO.\nWhat light\nthro", "ROMEO.\nWhat light …", True),
            ("ROMEO.\nSoft, what light.", "ROMEO.\nSoft, what light.", False),
            ("ROMEO.\nSoft what ", "ROMEO.\nSoft what ", False),
            ("ROMEO.\nSoftwhat", "ROMEO.\nSoftwhat…", True),  # no boundary after the prompt
        ],
    )
    def test_cut_at_word(self, text, cut, was_cut):
        from bkmodel.demo import cut_at_word

        assert cut_at_word(text, keep=len("ROMEO.\n")) == (cut, was_cut)

    def test_run_prints_the_run_directory_and_a_whole_word_sample(self, tmp_path, monkeypatch,
                                                                   capsys):
        import argparse

        import bkmodel.demo as demo

        calls = {}

        def fake_main(argv):
            calls["certify"] = argv
            return 0

        def small_demo(out_dir, *, progress=True):
            calls["progress"] = progress
            return tiny_demo(out_dir, progress=progress, corpus="tiny", tokenizer="byte",
                             d_model=32, seq_len=32, max_steps=3, eval_every=3, ckpt_every=3,
                             eval_tokens=256)

        monkeypatch.setattr(demo.cli, "main", fake_main)
        monkeypatch.setattr(demo, "tiny_demo", small_demo)
        args = argparse.Namespace(out=tmp_path, skip_train=False, no_progress=False)
        assert demo.run(args) == 0
        out = capsys.readouterr().out
        # captured output is not a terminal: no progress bars, in either half
        assert "--no-progress" in calls["certify"] and calls["progress"] is False
        assert f"run directory: {tmp_path / 'tiny'}" in out
        assert (tmp_path / "tiny" / "summary.json").exists()
        sample = out.split("sample (", 1)[1].split("\n", 1)[1].rstrip("\n")
        assert sample.startswith("ROMEO.")
        assert sample[-1].isspace() or sample[-1] in ".,;:!?…"

    def test_interrupted_certificates_stop_the_demo(self, tmp_path, monkeypatch):
        import argparse

        import bkmodel.demo as demo

        monkeypatch.setattr(demo.cli, "main", lambda argv: 130)
        monkeypatch.setattr(demo, "tiny_demo", lambda *a, **k: pytest.fail("trained"))
        args = argparse.Namespace(out=tmp_path, skip_train=False, no_progress=True)
        assert demo.run(args) == 130

    def test_interrupted_training_is_one_line(self, tmp_path, monkeypatch, capsys):
        import argparse

        import bkmodel.demo as demo

        def interrupted(*a, **k):
            raise KeyboardInterrupt

        monkeypatch.setattr(demo.cli, "main", lambda argv: 0)
        monkeypatch.setattr(demo, "tiny_demo", interrupted)
        args = argparse.Namespace(out=tmp_path, skip_train=False, no_progress=True)
        assert demo.run(args) == 130
        err = capsys.readouterr().err.strip()
        assert err == (f"bk demo: interrupted; the training run in {tmp_path / 'tiny'} keeps "
                       "its last checkpoint")
