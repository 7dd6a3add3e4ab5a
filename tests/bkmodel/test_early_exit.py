"""bkmodel.early_exit: exactness of the no-halt limit, the copied-state convention, FLOPs
charging and argument errors, for ResNet-BK (classic and selective layers) and the
Transformer baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bkmodel.baseline import TransformerBaseline, TransformerConfig
from bkmodel.early_exit import EarlyExit, HaltingRule, evaluate_early_exit
from bkmodel.flops import model_flops
from bkmodel.model import LanguageModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

V, T = 61, 13  # odd sizes


def bk(**kw) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(vocab_size=V, d_model=16, n_layers=3, n_seq=32, n_channels=4,
                         scan_backend="torch", ffn="mlp", **kw).eval()


def transformer() -> TransformerBaseline:
    torch.manual_seed(0)
    return TransformerBaseline(TransformerConfig(vocab_size=V, d_model=16, n_layers=3,
                                                 n_heads=2, d_ff=32)).eval()


MODELS = {"bk-classic": lambda: bk(), "bk-selective": lambda: bk(layer="selective"),
          "transformer": transformer}


def ids(B: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def rules_for(name: str, threshold: float) -> list[HaltingRule]:
    rules = [HaltingRule("none"), HaltingRule("confidence", threshold)]
    if name != "transformer":
        rules += [HaltingRule("scattering", threshold, s) for s in ("coherence", "phase")]
    return rules


class TestExactLimit:
    @pytest.mark.parametrize("name", MODELS)
    @pytest.mark.parametrize("threshold", [1 - 1e-9, 1 - 1e-6])
    def test_threshold_to_one_is_the_full_model_exactly(self, name, threshold):
        m = MODELS[name]()
        x = ids()
        with torch.no_grad():
            ref = m(x)[0]
            for rule in rules_for(name, threshold):
                out = EarlyExit(m)(x, rule)
                assert torch.equal(out.logits, ref), rule.label  # bit for bit
                assert (out.exit_layer == 2).all()

    @pytest.mark.parametrize("name", MODELS)
    def test_last_static_exit_is_the_full_model(self, name):
        m = MODELS[name]()
        with torch.no_grad():
            out = EarlyExit(m)(ids(), HaltingRule("static", exit_layer=2))
            assert torch.equal(out.logits, m(ids())[0])


class TestCopiedState:
    @pytest.mark.parametrize("name", MODELS)
    def test_static_exit_is_the_truncated_model(self, name):
        """Every token exits after block 0: the logits are head(LN_f(block_0(embed)))."""
        m = MODELS[name]()
        ee = EarlyExit(m)
        x = ids()
        with torch.no_grad():
            h, ctx = ee._embed(x)
            h, _ = ee._block(0, h, ctx)
            ref = ee._logits(h)
            out = ee(x, HaltingRule("static", exit_layer=0))
        torch.testing.assert_close(out.logits, ref, rtol=0, atol=0)
        assert (out.exit_layer == 0).all()

    @pytest.mark.parametrize("name", ["bk-selective", "transformer"])
    def test_causal(self, name):
        """Halting and logits at positions <= i do not depend on tokens > i."""
        m = MODELS[name]()
        x = ids()
        y = x.clone()
        y[:, 8:] = (y[:, 8:] + 7) % V
        with torch.no_grad():
            for rule in rules_for(name, 0.2)[1:]:
                a, b = EarlyExit(m)(x, rule), EarlyExit(m)(y, rule)
                assert torch.equal(a.exit_layer[:, :8], b.exit_layer[:, :8])
                torch.testing.assert_close(a.logits[:, :8], b.logits[:, :8])

    def test_some_tokens_halt_at_a_middle_threshold(self):
        m = bk(layer="selective")
        with torch.no_grad():
            ee = EarlyExit(m)
            h, ctx = ee._embed(ids())
            h, g = ee._block(0, h, ctx)
            s = ee._score(HaltingRule("scattering", 0.5), h, g)
            t = float(s.median())
            out = ee(ids(), HaltingRule("scattering", t))
        assert 0 < int((out.exit_layer == 0).sum()) < out.exit_layer.numel()


class TestScores:
    def test_scattering_statistics_in_unit_interval(self):
        m = bk(layer="selective")
        ee = EarlyExit(m)
        with torch.no_grad():
            h, ctx = ee._embed(ids())
            h, g = ee._block(0, h, ctx)
            for stat in ("coherence", "phase"):
                s = ee._score(HaltingRule("scattering", 0.5, stat), h, g)
                assert s.shape == (3, T) and bool((s > 0).all() and (s <= 1 + 1e-6).all())

    def test_scattering_needs_bk(self):
        with pytest.raises(ValueError, match="ResNet-BK only"):
            EarlyExit(transformer())(ids(), HaltingRule("scattering", 0.5))


class TestFlops:
    @pytest.mark.parametrize("name", MODELS)
    def test_none_is_charged_the_whole_forward(self, name):
        m = MODELS[name]()
        out = EarlyExit(m)(ids(), HaltingRule("none"))
        total = sum(r.total for r in model_flops(m, T)) / T
        torch.testing.assert_close(out.flops, torch.full_like(out.flops, total))

    @pytest.mark.parametrize("name", MODELS)
    def test_static_charge(self, name):
        m = MODELS[name]()
        ee = EarlyExit(m)
        c = ee.flop_costs(T)
        out = ee(ids(), HaltingRule("static", exit_layer=0))
        want = c["full"][0] + sum(c["state"][1:]) + c["head"]
        assert math.isclose(float(out.flops[0, 0]), want, rel_tol=1e-12)
        assert 0 < sum(c["state"]) < sum(c["full"])

    def test_confidence_pays_a_head_per_block(self):
        m = bk()
        ee = EarlyExit(m)
        c = ee.flop_costs(T)
        out = ee(ids(), HaltingRule("confidence", 1 - 1e-9))  # nobody halts
        assert math.isclose(float(out.flops[0, 0]), c["model"] + 2 * c["head"], rel_tol=1e-12)


class TestEvaluate:
    def test_none_matches_the_model_loss(self):
        m = bk()
        tokens = np.random.default_rng(0).integers(0, V, 200)
        r = evaluate_early_exit(m, tokens, HaltingRule("none"), seq_len=16, batch_size=4)
        assert r["tokens"] == 12 * 16 and math.isclose(r["flops_fraction"], 1.0)
        x = torch.from_numpy(tokens[: 12 * 16 + 1])
        rows = torch.stack([x[i * 16: i * 16 + 17] for i in range(12)])
        with torch.no_grad():
            loss = float(m(rows[:, :-1], rows[:, 1:])[1])
        assert math.isclose(r["loss"], loss, rel_tol=1e-5)
        assert r["exit_fraction"] == [0.0, 0.0, 1.0]


class TestBadArguments:
    @pytest.mark.parametrize("t", [0.0, 1.0, -0.1, 1.5, math.nan, math.inf])
    @pytest.mark.parametrize("kind", ["scattering", "confidence"])
    def test_threshold_outside_open_unit_interval(self, kind, t):
        with pytest.raises(ValueError, match="threshold"):
            HaltingRule(kind, t)

    @pytest.mark.parametrize("kw, match", [
        (dict(kind="ponder"), "kind"),
        (dict(kind="scattering", threshold=None), "threshold"),
        (dict(kind="confidence", threshold="0.5"), "threshold"),
        (dict(kind="none", threshold=0.5), "threshold"),
        (dict(kind="scattering", threshold=0.5, statistic="modulus"), "statistic"),
        (dict(kind="static"), "exit_layer"),
        (dict(kind="static", exit_layer=-1), "exit_layer"),
        (dict(kind="none", exit_layer=1), "exit_layer"),
    ])
    def test_rule_fields(self, kw, match):
        with pytest.raises(ValueError, match=match):
            HaltingRule(**kw)

    def test_static_exit_past_the_last_block(self):
        with pytest.raises(ValueError, match="exit_layer must be < n_layers=3"):
            EarlyExit(bk())(ids(), HaltingRule("static", exit_layer=3))

    def test_not_a_model(self):
        with pytest.raises(TypeError, match="LanguageModel or TransformerBaseline"):
            EarlyExit(torch.nn.Linear(2, 2))

    def test_rule_type(self):
        with pytest.raises(TypeError, match="HaltingRule"):
            EarlyExit(bk())(ids(), "none")

    def test_ids_checked_by_the_model(self):
        with pytest.raises(ValueError):
            EarlyExit(bk())(torch.full((1, 4), V), HaltingRule("none"))
