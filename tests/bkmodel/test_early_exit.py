"""bkmodel.early_exit: exactness of the no-halt limit, the copied-state convention, FLOPs
charging and argument errors, for ResNet-BK (classic and selective layers) and the
Transformer baseline; the learned (PonderNet) halting heads: distribution, KL, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bkmodel.baseline import TransformerBaseline, TransformerConfig
from bkmodel.early_exit import (
    EarlyExit,
    HaltingRule,
    PonderHalting,
    evaluate_early_exit,
    geometric_prior,
    halting_distribution,
    ponder_loss,
    train_ponder_halting,
)
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
        (dict(kind="act"), "kind"),
        (dict(kind="ponder"), "threshold"),
        (dict(kind="ponder", threshold=1.0), "threshold"),
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


# -- the learned (PonderNet) halting heads -------------------------------------------------
def heads(scale: float = 0.0, lambda_p: float = 0.2) -> PonderHalting:
    """Halting heads for the 3-block, d = 16 models; ``scale`` > 0: random weights of that
    size (so lambda varies from token to token)."""
    h = PonderHalting(3, 16, lambda_p=lambda_p)
    if scale:
        g = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for lin in h.heads:
                lin.weight.copy_(scale * torch.randn(lin.weight.shape, generator=g))
    return h


def logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


class TestHaltingDistribution:
    def test_sums_to_one(self):
        lam = torch.rand(50, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        lam[0] = 0.0  # never halts early: all mass on the last block
        lam[1, 2] = 1.0  # certain halt at block 2
        p = halting_distribution(lam)
        assert p.shape == (50, 6) and bool((p >= 0).all())
        torch.testing.assert_close(p.sum(-1), torch.ones(50, dtype=torch.float64))
        assert p[0].tolist() == [0, 0, 0, 0, 0, 1]
        assert float(p[1, 3:].sum()) == 0.0

    def test_by_hand(self):
        p = halting_distribution(torch.tensor([0.5, 0.25, 0.2], dtype=torch.float64))
        want = [0.5, 0.5 * 0.25, 0.5 * 0.75 * 0.2, 0.5 * 0.75 * 0.8]
        torch.testing.assert_close(p, torch.tensor(want, dtype=torch.float64))

    def test_prior(self):
        q = geometric_prior(4, 0.3)
        torch.testing.assert_close(q, torch.tensor([0.3, 0.21, 0.147, 0.343],
                                                   dtype=torch.float64))
        assert geometric_prior(1, 0.3).tolist() == [1.0]

    def test_log_space_matches(self):
        """The loss works on logits in log space; exp of it is halting_distribution."""
        from bkmodel.early_exit import _log_halting_distribution

        lam = torch.rand(20, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        torch.testing.assert_close(_log_halting_distribution(logit(lam)).exp(),
                                   halting_distribution(lam))


class TestPonderLoss:
    def test_kl_and_reconstruction_by_hand(self):
        """L = 3, lambda = (0.5, 0.25): p = (1/2, 1/8, 3/8); lambda_p = 1/2: q = (1/2, 1/4,
        1/4)."""
        lam = torch.tensor([[0.5, 0.25]], dtype=torch.float64)
        ce = torch.tensor([[2.0, 1.0, 0.5]], dtype=torch.float64)
        loss, rec, kl = ponder_loss(logit(lam), ce, beta=0.3, lambda_p=0.5)
        want_kl = 0.5 * math.log(1) + 0.125 * math.log(0.125 / 0.25) + 0.375 * math.log(1.5)
        want_rec = 0.5 * 2 + 0.125 * 1 + 0.375 * 0.5
        assert math.isclose(float(kl), want_kl, rel_tol=1e-12)
        assert math.isclose(float(rec), want_rec, rel_tol=1e-12)
        assert math.isclose(float(loss), want_rec + 0.3 * want_kl, rel_tol=1e-12)

    def test_kl_zero_at_the_prior_and_mean_over_tokens(self):
        z = torch.full((4, 3), math.log(0.2 / 0.8), dtype=torch.float64)
        ce = torch.arange(16, dtype=torch.float64).view(4, 4)
        _, rec, kl = ponder_loss(z, ce, beta=1.0, lambda_p=0.2)
        assert abs(float(kl)) < 1e-15
        q = geometric_prior(4, 0.2)
        assert math.isclose(float(rec), float((ce @ q).mean()), rel_tol=1e-12)

    def test_heads_start_at_the_prior(self):
        h = PonderHalting(4, 8, lambda_p=0.3)
        z = h(torch.randn(3, 5, 8))
        assert z.shape == (5, 3)
        torch.testing.assert_close(torch.sigmoid(z), torch.full((5, 3), 0.3))


class TestPonderRule:
    @pytest.mark.parametrize("name", MODELS)
    @pytest.mark.parametrize("threshold", [1 - 1e-9, 1 - 1e-6])
    def test_threshold_to_one_never_halts_early(self, name, threshold):
        m = MODELS[name]()
        ee = EarlyExit(m, heads(scale=0.5))
        x = ids()
        with torch.no_grad():
            out = ee(x, HaltingRule("ponder", threshold))
            assert torch.equal(out.logits, m(x)[0])  # bit for bit
        assert (out.exit_layer == 2).all()
        c = ee.flop_costs(T)  # the full forward plus a halting decision at blocks 0 and 1
        torch.testing.assert_close(out.flops, torch.full_like(out.flops,
                                                              c["model"] + 2 * c["halting"]))
        assert c["halting"] == 7 * 16 + 4 and c["halting"] < 1e-2 * c["model"]

    @pytest.mark.parametrize("name", MODELS)
    def test_halts_where_lambda_reaches_the_threshold(self, name):
        """Exits agree with the heads' lambda on the copied states: the first block with
        lambda >= tau; the FLOPs charge is static@e's plus (e + 1) decisions."""
        m = MODELS[name]()
        h = heads(scale=0.5)
        ee = EarlyExit(m, h)
        x = ids()
        with torch.no_grad():
            hs, ctx = ee._embed(x)
            hs, _ = ee._block(0, hs, ctx)
            lam0 = torch.sigmoid(h.logit(0, hs).double())
            tau = float(lam0.median())
            out = ee(x, HaltingRule("ponder", tau))
            static0 = ee(x, HaltingRule("static", exit_layer=0))
        assert torch.equal(out.exit_layer == 0, lam0 >= tau)
        assert 0 < int((out.exit_layer == 0).sum()) < out.exit_layer.numel()
        i = torch.nonzero(out.exit_layer == 0)[0]
        c = ee.flop_costs(T)
        assert math.isclose(float(out.flops[i[0], i[1]]),
                            float(static0.flops[0, 0]) + c["halting"], rel_tol=1e-12)

    def test_causal(self):
        m = transformer()
        ee = EarlyExit(m, heads(scale=0.5))
        x = ids()
        y = x.clone()
        y[:, 8:] = (y[:, 8:] + 7) % V
        with torch.no_grad():
            a, b = ee(x, HaltingRule("ponder", 0.3)), ee(y, HaltingRule("ponder", 0.3))
        assert torch.equal(a.exit_layer[:, :8], b.exit_layer[:, :8])
        torch.testing.assert_close(a.logits[:, :8], b.logits[:, :8])

    def test_needs_heads(self):
        with pytest.raises(ValueError, match="halting heads"):
            EarlyExit(bk())(ids(), HaltingRule("ponder", 0.5))

    def test_heads_must_fit(self):
        with pytest.raises(ValueError, match="do not fit"):
            EarlyExit(bk(), PonderHalting(4, 16))
        with pytest.raises(TypeError, match="PonderHalting"):
            EarlyExit(bk(), torch.nn.Linear(16, 1))


def _toy(name: str) -> tuple[torch.nn.Module, np.ndarray]:
    """A model whose first exit is already confident and whose deeper blocks only hurt.

    The stream is a noisy bigram (``t -> 3t + 1 mod V`` with probability 0.9); the model is
    trained on the loss of its exit after block 0 alone, then blocks 1 and 2 are made to add
    a fixed random vector to the residual stream (forward hooks), so the deeper exits are
    worse for every token.
    """
    rng = np.random.default_rng(0)
    t = [0]
    for _ in range(3000):
        t.append((3 * t[-1] + 1) % V if rng.random() < 0.9 else int(rng.integers(V)))
    tokens = np.array(t)
    m = MODELS[name]().train()
    ee = EarlyExit(m)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(120):
        s = rng.integers(0, len(tokens) - 17, 16)
        rows = torch.from_numpy(np.stack([tokens[i: i + 17] for i in s]))
        x, ctx = ee._embed(rows[:, :-1])
        x, _ = ee._block(0, x, ctx)
        loss = torch.nn.functional.cross_entropy(ee._logits(x).reshape(-1, V),
                                                 rows[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval().requires_grad_(False)
    g = torch.Generator().manual_seed(5)
    for block in m.blocks[1:]:
        shift = 3 * torch.randn(16, generator=g)
        block.register_forward_hook(lambda mod, inp, out, s=shift: out + s)
    return m, tokens


class TestPonderTraining:
    @pytest.mark.parametrize("name", ["bk-classic", "transformer"])
    def test_learns_to_halt_early_when_the_first_exit_is_confident(self, name):
        m, tokens = _toy(name)
        before = {k: v.clone() for k, v in m.state_dict().items()}
        kw = dict(seq_len=16, windows=32, lambda_p=0.2)
        h0, _ = train_ponder_halting(m, tokens, steps=0, **kw)
        h, info = train_ponder_halting(m, tokens, steps=100, **kw)
        ce = info["exit_ce"]
        assert ce[0] < 0.5 * min(ce[1:])  # the toy: the first exit is the best one
        assert info["model_weights"] == "frozen"
        assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
        assert info["loss_final"] < 0.5 * info["loss_init"]
        assert info["expected_exit_final"] < info["expected_exit_init"] - 0.8
        assert math.isclose(info["kl_init"], 0.0, abs_tol=1e-6)  # heads start at the prior
        r0, r = (evaluate_early_exit(m, tokens, HaltingRule("ponder", 0.5), seq_len=16,
                                     max_tokens=1024, halting=hh) for hh in (h0, h))
        assert r0["exit_fraction"][0] == 0.0 and r0["exit_fraction"][2] == 1.0  # at init
        assert r["exit_fraction"][0] > 0.6  # trained: most tokens halt after block 0
        assert r["flops_fraction"] < 0.75 * r0["flops_fraction"]
        assert r["ppl"] < r0["ppl"]

    def test_deterministic(self):
        m, tokens = _toy("transformer")
        a, ia = train_ponder_halting(m, tokens, seq_len=16, windows=8, steps=5)
        b, ib = train_ponder_halting(m, tokens, seq_len=16, windows=8, steps=5)
        assert ia == ib
        assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


class TestPonderBadArguments:
    @pytest.mark.parametrize("beta", [-0.1, -1e-12, math.nan, math.inf, "0.1", True])
    def test_beta(self, beta):
        z, ce = torch.zeros(2, 2), torch.zeros(2, 3)
        with pytest.raises(ValueError, match="beta"):
            ponder_loss(z, ce, beta=beta, lambda_p=0.5)
        with pytest.raises(ValueError, match="beta"):
            train_ponder_halting(bk(), np.zeros(100, dtype=np.int64), seq_len=16, beta=beta)

    @pytest.mark.parametrize("lambda_p", [0.0, 1.0, -0.2, 1.5, math.nan, "0.5"])
    def test_lambda_p(self, lambda_p):
        z, ce = torch.zeros(2, 2), torch.zeros(2, 3)
        with pytest.raises(ValueError, match="lambda_p"):
            ponder_loss(z, ce, beta=0.1, lambda_p=lambda_p)
        with pytest.raises(ValueError, match="lambda_p"):
            geometric_prior(3, lambda_p)
        with pytest.raises(ValueError, match="lambda_p"):
            PonderHalting(3, 16, lambda_p=lambda_p)
        with pytest.raises(ValueError, match="lambda_p"):
            train_ponder_halting(bk(), np.zeros(100, dtype=np.int64), seq_len=16,
                                 lambda_p=lambda_p)

    @pytest.mark.parametrize("tau", [0.0, 1.0, -0.5, 2.0, math.nan])
    def test_threshold(self, tau):
        with pytest.raises(ValueError, match="threshold"):
            HaltingRule("ponder", tau)

    @pytest.mark.parametrize("kw, match", [
        (dict(steps=-1), "steps"), (dict(windows=0), "windows"), (dict(lr=0.0), "lr"),
        (dict(seq_len=200), "shorter than one window"),
    ])
    def test_training_arguments(self, kw, match):
        kw = {"seq_len": 16, **kw}
        with pytest.raises(ValueError, match=match):
            train_ponder_halting(bk(), np.zeros(100, dtype=np.int64), **kw)

    def test_shapes(self):
        with pytest.raises(ValueError, match="ce"):
            ponder_loss(torch.zeros(2, 2), torch.zeros(2, 2), beta=0.1, lambda_p=0.5)
        with pytest.raises(ValueError, match="n_layers"):
            PonderHalting(1, 16)
