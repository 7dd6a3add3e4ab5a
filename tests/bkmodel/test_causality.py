"""Causality certificate: the causal LM verifies, the two-sided encoder is refuted."""

from __future__ import annotations

import json

import pytest
import torch

from bkmath.certificate import Kind, Status
from bkmodel.causality import causality_certificate
from bkmodel.cli import main
from bkmodel.model import BKEncoder, LanguageModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = dict(vocab_size=41, d_model=16, n_layers=2, n_seq=40, n_channels=3, num_experts=2,
           top_k=1, init_std=0.2)


@pytest.mark.parametrize("kw", [{}, {"router": "scattering"}, {"potential": "moe"}],
                         ids=["learned", "scattering", "moe-potential"])
def test_causal_model_verified(kw):
    torch.manual_seed(0)
    cert = causality_certificate(LanguageModel(**CFG, **kw), length=33, n_cuts=3)
    assert cert.kind is Kind.THEOREM
    assert cert.status is Status.VERIFIED and cert.expected
    assert cert.margin > 0 and cert.details["min_response"] > cert.tolerance


def test_two_sided_negative_control_refuted():
    torch.manual_seed(0)
    enc = BKEncoder(**CFG, bk_mode="two_sided")
    cert = causality_certificate(enc, length=33, n_cuts=3)
    assert cert.kind is Kind.NEGATIVE_CONTROL
    assert cert.status is Status.REFUTED and cert.expected
    ce = cert.counterexample
    assert ce["position"] <= ce["cut"] and ce["leak"] > cert.tolerance


def test_insensitive_model_inconclusive():
    def constant(x):
        return torch.zeros(*x.shape, 5)

    cert = causality_certificate(constant, vocab_size=5, length=10)
    assert cert.status is Status.INCONCLUSIVE


def test_a_leaky_callable_is_caught():
    # A causal-looking model that peeks at the last token: refuted as a theorem.
    def leaky(x):
        return torch.nn.functional.one_hot(x, 7).float() + x[:, -1:, None].float()

    cert = causality_certificate(leaky, vocab_size=7, length=12, n_cuts=2)
    assert cert.status is Status.REFUTED and not cert.expected


def test_bad_arguments():
    with pytest.raises(ValueError, match="vocab_size"):
        causality_certificate(lambda x: x)
    with pytest.raises(ValueError, match="length"):
        causality_certificate(lambda x: x, vocab_size=3, length=1)


def test_cli(tmp_path, capsys):
    out = tmp_path / "cert.json"
    common = ["--vocab-size", "31", "--d-model", "16", "--n-channels", "2", "--length", "24"]
    assert main(["causality", *common, "--json", str(out)]) == 0
    model, control = json.loads(out.read_text())
    assert model["status"] == "verified" and model["kind"] == "theorem"
    assert control["status"] == "refuted" and control["kind"] == "negative_control"
    assert main(["causality", *common, "--bk-mode", "two_sided"]) == 0  # refuted, as expected
    assert "refuted" in capsys.readouterr().out
    assert main(["causality", *common, "--no-control", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["status"] == "verified"


def test_cli_checkpoint(tmp_path):
    torch.manual_seed(0)
    LanguageModel(**CFG).save_pretrained(tmp_path)
    assert main(["causality", "--checkpoint", str(tmp_path), "--length", "20"]) == 0


# --- bk causality --checkpoint: run directories and one-line errors (issue 21, item 1) ---


def _bk_cli(*argv: str, cwd=None):
    """``bk ARGV`` in a fresh process: (exit code, stdout, stderr)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "bkmodel.cli", *argv], capture_output=True,
                       text=True, env=env, cwd=cwd, timeout=300)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished two-step ResNet-BK run and a Transformer run (``ci`` preset, seconds)."""
    from bkmodel.presets import TrainConfig
    from bkmodel.train import train

    root = tmp_path_factory.mktemp("causality_runs")
    for model in ("bk", "transformer"):
        cfg = TrainConfig.from_preset("ci", model=model, max_steps=2, eval_every=2,
                                      ckpt_every=2, eval_tokens=256)
        train(cfg, root / model, progress=False)
    return root


def test_cli_accepts_a_run_directory_and_its_checkpoint_file(runs, capsys):
    for path in (runs / "bk", runs / "bk" / "checkpoint.pt", runs / "bk" / "model"):
        assert main(["causality", "--checkpoint", str(path), "--length", "16"]) == 0, path
        out = capsys.readouterr().out
        assert "model: " in out and "verified" in out.split("\n")[0]


@pytest.mark.parametrize("what", ["missing", "transformer-run", "transformer-export",
                                  "not-a-run"])
def test_cli_bad_checkpoint_is_one_line(runs, tmp_path, what):
    (tmp_path / "empty").mkdir()
    path = {"missing": tmp_path / "nonexistent", "transformer-run": runs / "transformer",
            "transformer-export": runs / "transformer" / "model",
            "not-a-run": tmp_path / "empty"}[what]
    code, out, err = _bk_cli("causality", "--checkpoint", str(path))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("bk causality: ") and "Traceback" not in err
    assert str(path) in lines[0]
    expect = {"missing": "does not exist", "transformer-run": "Transformer",
              "transformer-export": "Transformer", "not-a-run": "neither a run directory"}
    assert expect[what] in lines[0]
