"""Figure 10 (bkpaper.long_context_figs) on a results file of the benchmark's format, and the
bucket helpers of benchmarks/length_extrapolation.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from bkpaper import framework
from bkpaper.long_context_figs import figure_length_extrapolation

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "length_extrapolation", ROOT / "benchmarks" / "length_extrapolation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bucket_edges_and_means() -> None:
    b = _bench()
    edges = b.bucket_edges(4, 20)
    assert edges == [1, 4, 8, 16, 21]
    rows = [np.arange(20, dtype=float), np.arange(20, dtype=float) + 1]
    means, counts = b.bucket_means(rows, edges)
    assert counts == [6, 8, 16, 10]  # contexts 1-3, 4-7, 8-15, 16-20 over two rows
    assert means[0] == pytest.approx(np.mean([0, 1, 2, 1, 2, 3]))
    short = b.bucket_means([np.zeros(5)], edges)
    assert short[0][2] is None and short[1][2] == 0


def test_figure_from_a_results_file(tmp_path: Path) -> None:
    doc = {"label": "cpu-smoke", "date": "2026-12-03T10:00:00",
           "buckets": [[1, 127], [128, 255], [256, 512]],
           "curves": {"bk_carried": [80.0, 70.0, 69.0], "transformer_sliding": [75.0, 72, 72],
                      "transformer_direct": [75.0, 90.0, None]},
           "models": {"bk": {"seq_len": 128}, "transformer": {"seq_len": 128}}}
    (tmp_path / "length_extrapolation_cpu-smoke_2026-12-03.json").write_text(json.dumps(doc))
    ctx = framework.FigureContext(quick=True, out=tmp_path / "out", results=tmp_path)
    res = figure_length_extrapolation(ctx)
    assert res.checks and all(res.checks.values()), res.checks
    assert res.numbers["bkcarriedlast"] == 69.0 and res.numbers["transformerdirectlast"] == 90.0
    assert "CPU smoke" in res.caption
    doc["curves"]["bk_carried"][1] = float("nan")
    (tmp_path / "length_extrapolation_cpu-smoke_2026-12-03.json").write_text(json.dumps(doc))
    res = figure_length_extrapolation(ctx)
    assert not all(res.checks.values())


def test_thin_buckets_are_not_drawn(tmp_path: Path) -> None:
    # the direct forward capped inside the last bucket scores 2 tokens there: no point
    doc = {"label": "gpu", "date": "2026-12-04T10:00:00",
           "buckets": [[1, 127], [128, 255], [256, 512]],
           "curves": {"bk_carried": [80.0, 70.0, 69.0], "transformer_sliding": [75.0, 72, 72],
                      "transformer_direct": [75.0, 90.0, 40.0]},
           "tokens_per_bucket": {"bk_carried": [254, 256, 514],
                                 "transformer_sliding": [254, 256, 514],
                                 "transformer_direct": [254, 256, 2]},
           "models": {"bk": {"seq_len": 128}, "transformer": {"seq_len": 128}}}
    (tmp_path / "length_extrapolation_gpu_2026-12-04.json").write_text(json.dumps(doc))
    ctx = framework.FigureContext(quick=True, out=tmp_path / "out", results=tmp_path)
    res = figure_length_extrapolation(ctx)
    assert all(res.checks.values()), res.checks
    assert res.numbers["transformerdirectlast"] == 90.0 and res.numbers["bkcarriedlast"] == 69.0
    assert "fewer than 64 tokens" in res.caption


def test_per_token_nll_of_the_stream_evaluations() -> None:
    import torch

    from bkmodel.baseline import TransformerBaseline, TransformerConfig
    from bkmodel.evaluate import evaluate_carried, evaluate_sliding
    from bkmodel.model import LanguageModel

    torch.manual_seed(0)
    bk = LanguageModel(vocab_size=50, d_model=16, n_layers=1, n_seq=16, n_channels=2).double()
    tf = TransformerBaseline(TransformerConfig(vocab_size=50, d_model=16, n_layers=1,
                                               n_heads=2, d_ff=32, max_seq_len=16))
    tokens = np.random.default_rng(0).integers(0, 50, 70)
    for r in (evaluate_carried(bk, tokens, 16, return_nll=True),
              evaluate_sliding(tf, tokens, 16, stride=8, return_nll=True),
              evaluate_sliding(tf, tokens, 69, stride=69, return_nll=True)):
        assert r["nll"].shape == (69,)
        assert r["nll"].mean() == pytest.approx(r["loss"], rel=1e-6)
    # the carried evaluation's per-token NLL is the full forward's (chunks of 16, state carried)
    with torch.no_grad():
        state, parts = None, []
        for s in range(0, 69, 16):
            lg, _, state = bk(torch.tensor(tokens[None, s: min(s + 16, 69)]), state=state,
                              return_state=True)
            parts.append(lg)
        ref = torch.nn.functional.cross_entropy(torch.cat(parts, 1)[0],
                                                torch.tensor(tokens[1:70]), reduction="none")
    np.testing.assert_allclose(evaluate_carried(bk, tokens, 7, return_nll=True)["nll"],
                               ref.numpy(), rtol=1e-6)
