"""The analytic FLOPs of bkmodel.flops against torch's FlopCounterMode, per architecture."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from bkmodel.baseline import TransformerBaseline, TransformerConfig
from bkmodel.cli import main
from bkmodel.flops import bk_flops, flops_table, model_flops, transformer_flops
from bkmodel.model import LanguageModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = dict(vocab_size=53, d_model=16, n_layers=2, n_seq=24, n_channels=4, scan_backend="torch")


def counted(model, T: int) -> int:
    ids = torch.zeros(2, T, dtype=torch.long)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(ids)
    return fc.get_total_flops() // 2  # per sequence (batch of 2)


@pytest.mark.parametrize("kw", [
    dict(ffn="mlp"),
    dict(ffn="moe", num_experts=3, top_k=2, moe_dispatch="sparse"),
    dict(ffn="moe", num_experts=3, top_k=1, router="scattering", moe_dispatch="sparse"),
    dict(potential="moe", ffn="none", num_experts=2, top_k=1, moe_dispatch="sparse"),
    dict(layer="selective", ffn="mlp"),
    dict(layer="selective", ffn="mlp", conv_size=0, output_gate=False, n_energies=3),
    dict(layer="selective", ffn="mlp", selective=False),
    dict(layer="green", ffn="mlp", chunk_size=8),
    dict(layer="green", ffn="mlp", conv_size=0, output_gate=False, selective=False,
         key_dim=3, value_dim=5, chunk_size=4),
], ids=["classic-mlp", "classic-moe-top2", "classic-scattering", "classic-potential-moe",
        "selective", "selective-energies", "selective-constant", "green", "green-dims"])
@pytest.mark.parametrize("T", [1, 17])
def test_bk_matmul_flops_match_flop_counter(kw, T):
    torch.manual_seed(0)
    m = LanguageModel(**{**BASE, **kw})
    rows = bk_flops(m.config, T)
    assert sum(r.matmul for r in rows) == counted(m, T)
    scan = [r for r in rows if r.name.endswith("bk.scan")]
    assert len(scan) == m.config.n_layers and all(r.other > 0 for r in scan)


@pytest.mark.parametrize("T", [1, 9])
def test_transformer_flops_match_flop_counter(T):
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=41, d_model=16, n_layers=2, n_heads=2, d_ff=40,
                            max_seq_len=16)
    m = TransformerBaseline(cfg)
    rows = transformer_flops(cfg, T)
    scores = sum(r.matmul for r in rows if r.name.endswith("attn.scores"))
    # FlopCounterMode does not see the CPU SDPA kernel: everything else must agree exactly
    assert sum(r.matmul for r in rows) - scores == counted(m, T)
    # and the attention formula is what it counts for the math path (QK^T, AV)
    B, H, h = 1, cfg.n_heads, cfg.d_model // cfg.n_heads
    q = torch.randn(B, H, T, h)
    with FlopCounterMode(display=False) as fc:
        F.softmax(q @ q.transpose(-1, -2), -1) @ q
    assert scores == cfg.n_layers * fc.get_total_flops()


def test_dense_dispatch_note_and_table():
    m = LanguageModel(**{**BASE, "ffn": "moe", "num_experts": 4, "top_k": 1})
    rows = model_flops(m, 8)
    assert any("dense dispatch computes all 4" in r.note for r in rows)
    text = flops_table(rows, 8)
    assert "total (forward)" in text and "lm_head" in text


def test_cli_prints_tables(capsys):
    assert main(["flops", "--preset", "ci", "--seq-len", "16"]) == 0
    out = capsys.readouterr().out
    assert "ci-bk" in out and "ci-transformer" in out and "attn.scores" in out


def test_cli_bad_run_dir(tmp_path, capsys):
    assert main(["flops", str(tmp_path / "nope")]) == 2
    assert "bk flops:" in capsys.readouterr().err
