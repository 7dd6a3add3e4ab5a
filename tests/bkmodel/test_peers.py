"""The fla peer adapter (bkmodel.peers): config checks, parameter matching, the training loop
and checkpoints. fla's Triton kernels need a GPU, so the inner fla model is replaced here by
a small torch module with the same interface (``inner(input_ids=...).logits`` and a SwiGLU
width ``intermediate_size``); the GPU suites run the real fla models."""

from __future__ import annotations

import shutil
import types

import pytest
import torch

import bkmodel.peers as peers
from bkmodel.peers import FlaPeerLM, PeerConfig, matched_peer_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _StandIn(torch.nn.Module):
    def __init__(self, cfg: PeerConfig) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.up = torch.nn.Linear(cfg.d_model, cfg.intermediate_size)
        self.head = torch.nn.Linear(cfg.intermediate_size, cfg.vocab_size)

    def forward(self, input_ids, use_cache=False):
        return types.SimpleNamespace(logits=self.head(torch.tanh(self.up(self.emb(input_ids)))))


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr(peers, "_fla_model", _StandIn)


def test_config_checks():
    with pytest.raises(ValueError, match="kind must be one of gla, hgrn2"):
        PeerConfig(kind="mamba")
    with pytest.raises(ValueError, match="intermediate_size must be an int >= 1"):
        PeerConfig(intermediate_size=0)
    c = PeerConfig(kind="hgrn2", d_model=64)
    assert PeerConfig.from_dict(c.to_dict()) == c


def test_matching_solves_the_width(stand_in):
    target = 50_000
    c = matched_peer_config("gla", target, vocab_size=97, d_model=16, n_layers=1, n_heads=2)
    got = FlaPeerLM(c).num_params()
    per_unit = 16 + 1 + 97  # one more SwiGLU unit in the stand-in: up row + bias + head column
    assert abs(got - target) <= per_unit


def test_loss_save_load_and_training_loop(stand_in, tmp_path):
    from bkmodel.evaluate import evaluate_checkpoint
    from bkmodel.presets import TrainConfig
    from bkmodel.train import train

    m = FlaPeerLM(PeerConfig(vocab_size=31, d_model=8, n_layers=1, n_heads=2,
                             intermediate_size=12))
    ids = torch.randint(0, 31, (2, 9))
    logits, loss = m(ids, ids)
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, 31), ids.reshape(-1))
    assert torch.allclose(loss, ref)
    m.save_pretrained(tmp_path / "m")
    m2 = FlaPeerLM.from_pretrained(tmp_path / "m")
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(),
                                                 m2.state_dict().values(), strict=True))
    cfg = TrainConfig.from_preset("ci", model="gla", max_steps=4, eval_every=2, ckpt_every=2)
    run = tmp_path / "run"
    summary = train(cfg, run, progress=False)
    assert summary["steps"] == 4
    ev = evaluate_checkpoint(run, ("validation",), batch_size=4, device="cpu")
    assert torch.isfinite(torch.tensor(ev["validation"]["ppl"]))
    shutil.rmtree(run)


class _Block(torch.nn.Module):
    """fla's block layout: ``attn`` returns a tuple, ``mlp`` a tensor, residuals outside."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.attn = _TupleOut(d)
        self.mlp = torch.nn.Linear(d, d)

    def forward(self, x):
        x = x + self.attn(x)[0]
        return x + self.mlp(x)


class _TupleOut(torch.nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(d, d)

    def forward(self, x):
        return self.lin(x), None, None


class _StructuredStandIn(torch.nn.Module):
    def __init__(self, cfg: PeerConfig) -> None:
        super().__init__()
        self.model = torch.nn.Module()
        self.model.embeddings = torch.nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.model.layers = torch.nn.ModuleList(_Block(cfg.d_model) for _ in range(cfg.n_layers))
        self.up = torch.nn.Linear(cfg.d_model, cfg.intermediate_size)  # the matched width
        self.head = torch.nn.Linear(cfg.intermediate_size, cfg.vocab_size)

    def forward(self, input_ids, use_cache=False):
        x = self.model.embeddings(input_ids)
        for layer in self.model.layers:
            x = layer(x)
        return types.SimpleNamespace(logits=self.head(torch.tanh(self.up(x))))


def test_dropout_hooks_train_only_and_config(monkeypatch):
    monkeypatch.setattr(peers, "_fla_model", _StructuredStandIn)
    with pytest.raises(ValueError, match="dropout must be a float in"):
        PeerConfig(dropout=1.0)
    cfg = PeerConfig(vocab_size=23, d_model=8, n_layers=2, n_heads=2, dropout=0.5)
    torch.manual_seed(0)
    m = FlaPeerLM(cfg)
    torch.manual_seed(0)
    plain = FlaPeerLM(PeerConfig(**{**cfg.to_dict(), "dropout": 0.0}))
    plain.load_state_dict(m.state_dict())
    ids = torch.randint(0, 23, (2, 7))
    m.eval()
    plain.eval()
    assert torch.equal(m(ids)[0], plain(ids)[0])  # no dropout in evaluation
    m.train()
    a, b = m(ids)[0], m(ids)[0]
    assert not torch.equal(a, b)  # stochastic in training
    # every hooked site drops: zeroed embedding rows appear at p = 0.5
    seen = []
    m.inner.model.embeddings.register_forward_hook(lambda mod, i, o: seen.append(o))
    m(ids)
    assert (seen[0] == 0).float().mean() > 0.2


def test_factory_gives_peers_the_run_dropout(monkeypatch):
    from bkmodel.factory import build_model
    from bkmodel.presets import TrainConfig

    monkeypatch.setattr(peers, "_fla_model", _StructuredStandIn)
    cfg = TrainConfig.from_preset("ci", model="gla", dropout=0.1)
    assert build_model(cfg, 64).config.dropout == 0.1
    cfg = TrainConfig.from_preset("ci", model="gla", dropout=0.1,
                                  model_options={"peer_dropout": 0.0})
    assert build_model(cfg, 64).config.dropout == 0.0
