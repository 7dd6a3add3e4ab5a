"""LanguageModel: shapes, gradients, construction, generation, bad input, config validation."""

from __future__ import annotations

import pytest
import torch

from bkmodel.config import GuardConfig, ModelConfig
from bkmodel.model import BKEncoder, LanguageModel, two_sided_diagonal
from bkmodel.ops.bk_scan import bk_scan
from bkmodel.ops.bk_scan.naive import bk_scan_naive

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(vocab_size=37, d_model=16, n_layers=2, n_seq=48, n_channels=3, num_experts=3,
            top_k=2)


def tiny(**kw) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(**{**TINY, **kw})


def ids(B=2, T=20, V=37, seed=0):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


class TestForward:
    def test_shapes_and_loss(self):
        m = tiny()
        x = ids()
        logits, loss = m(x)
        assert logits.shape == (2, 20, 37) and loss is None
        logits, loss = m(x, x)
        assert loss.ndim == 0 and torch.isfinite(loss)
        aux = m.last_aux
        assert {"ce_loss", "aux_loss", "moe_load", "guard", "skip_step"} <= set(aux)
        assert aux["skip_step"] is False
        expected = aux["ce_loss"] + m.config.aux_loss_weight * aux["aux_loss"]
        assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
        assert len(aux["moe_load"]) == 2 and sum(aux["moe_load"][0]) == pytest.approx(1.0)
        assert 0.0 <= aux["moe_load_entropy"] <= 1.0 + 1e-12
        assert 1 / 3 <= aux["moe_max_load"] <= 1.0

    def test_ignore_index(self):
        m = tiny()
        x = ids()
        t = x.clone()
        t[:, :10] = -100
        logits, _ = m(x)
        _, loss = m(x, t)
        ce = torch.nn.functional.cross_entropy(logits[:, 10:].reshape(-1, 37),
                                               x[:, 10:].reshape(-1))
        assert m.last_aux["ce_loss"] == pytest.approx(float(ce.detach()), rel=1e-5)

    def test_every_parameter_gets_a_gradient(self):
        m = tiny(potential="moe")
        x = ids()
        _, loss = m(x, x)
        loss.backward()
        for name, p in m.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
        for blk in m.blocks:  # the spectral parameters z_c and b_c learn
            for p in (blk.bk.lam, blk.bk.eta_raw, blk.bk.hop):
                assert float(p.grad.abs().sum()) > 0

    def test_bk_layer_uses_the_scan(self):
        # The block's g equals the reference scan of its potentials.
        m = tiny()
        x = m.wte(ids())
        blk = m.blocks[0]
        h = blk.ln_1(x)
        _, g_re, g_im, _ = blk.bk(h)
        v = blk.bk.v_proj(h)
        r_re, r_im = bk_scan_naive(v.double(), blk.bk.lam.double(), blk.bk.eta.double(),
                                   blk.bk.hop.double())
        assert torch.allclose(g_re.double(), r_re, rtol=1e-5, atol=1e-6)
        assert torch.allclose(g_im.double(), r_im, rtol=1e-5, atol=1e-6)
        # the features eta_c * g lie in the unit disc (Herglotz bound |g| <= 1/eta)
        mod = torch.sqrt(g_re.double() ** 2 + g_im.double() ** 2) * blk.bk.eta.detach().double()
        assert float(mod.max().detach()) <= 1 + 1e-6

    @pytest.mark.parametrize("backend", ["naive", "torch"])
    def test_scan_backends_agree(self, backend):
        ref, _ = tiny(scan_backend="torch")(ids(T=9))
        out, _ = tiny(scan_backend=backend)(ids(T=9))
        assert torch.allclose(out, ref, atol=1e-5)

    def test_eta_floor(self):
        m = tiny(eta_min=0.05)
        with torch.no_grad():
            m.blocks[0].bk.eta_raw.fill_(-1e4)
        assert float(m.blocks[0].bk.eta.min().detach()) >= 0.05

    def test_keyword_and_config_construction_agree(self):
        torch.manual_seed(0)
        a = LanguageModel(ModelConfig(**TINY))
        torch.manual_seed(0)
        b = LanguageModel(**TINY)
        assert a.config == b.config
        for (ka, pa), (kb, pb) in zip(a.state_dict().items(), b.state_dict().items(),
                                      strict=True):
            assert ka == kb and torch.equal(pa, pb)
        with pytest.raises(TypeError, match="either"):
            LanguageModel(ModelConfig(), d_model=8)

    def test_seed_layout_single_channel(self):
        cfg = ModelConfig.seed_layout(vocab_size=37, d_model=16, n_layers=2, n_seq=48)
        assert cfg.n_channels == 1 and cfg.potential == "moe" and cfg.ffn == "none"
        m = LanguageModel(cfg)
        bk = m.blocks[0].bk
        assert bk.v_proj.out_features == 1
        assert bk.out.in_features == 2  # [Re g, Im g]
        # H = tridiag(1, -2 + v, 1) at z = i  <=>  lam = 2, eta = 1, b = 1
        assert float(bk.lam.detach()) == 2.0 and float(bk.hop.detach()) == 1.0
        assert float(bk.eta.detach()) == pytest.approx(1.0)
        _, loss = m(ids(), ids())
        assert torch.isfinite(loss)
        # the layer returns MoE(h) + W_out [Re g, Im g] (the seeds' residual)
        h = m.blocks[0].ln_1(m.wte(ids(T=5)))
        y, g_re, g_im, _ = bk(h)
        u, _ = bk.v_moe(h)
        assert torch.allclose(y, u + bk.features(g_re, g_im, bk.eta), atol=1e-6)
        assert m.generate(ids(B=1, T=3), 4, temperature=0).shape == (1, 7)

    def test_scattering_router_model(self):
        m = tiny(router="scattering")
        _, loss = m(ids(), ids())
        assert torch.isfinite(loss)
        assert m.last_aux["aux_loss"] == 0.0  # parameter-free: nothing to balance

    def test_tied_and_untied(self):
        m = tiny()
        assert m.lm_head.weight is m.wte.weight
        u = tiny(tie_embeddings=False)
        assert u.lm_head.weight is not u.wte.weight
        assert u.num_params() == m.num_params() + 37 * 16

    def test_training_reduces_loss(self):
        m = tiny(n_layers=1)
        opt = m.configure_optimizers(weight_decay=0.0, lr=3e-2, betas=(0.9, 0.99))
        x = ids(B=4, T=24)
        first = None
        for _ in range(30):
            _, loss = m(x, x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            first = float(loss.detach()) if first is None else first
        assert float(loss.detach()) < 0.5 * first

    def test_configure_optimizers_groups(self):
        opt = tiny().configure_optimizers(0.1, 1e-3, (0.9, 0.95))
        decay, no_decay = opt.param_groups
        assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
        assert all(p.dim() >= 2 for p in decay["params"])
        assert all(p.dim() < 2 for p in no_decay["params"])


class TestGenerate:
    @pytest.mark.parametrize("kw", [{}, {"router": "scattering"}, {"potential": "moe"},
                                    {"ffn": "mlp", "num_experts": 1, "top_k": 1},
                                    {"potential": "moe", "potential_moe_residual": True,
                                     "ffn": "none", "n_channels": 1}],
                             ids=["learned", "scattering", "moe-potential", "mlp", "seeds"])
    def test_greedy_equals_full_forward(self, kw):
        m = tiny(init_std=0.2, **kw)  # larger weights: well separated logits
        prompt = ids(B=2, T=7, seed=3)
        out = m.generate(prompt, 12, temperature=0)
        seq = prompt
        with torch.no_grad():
            for _ in range(12):
                logits, _ = m(seq)
                seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        assert torch.equal(out, seq)

    def test_step_logits_match_forward(self):
        m = tiny(init_std=0.2)
        x = ids(B=1, T=16, seed=4)
        with torch.no_grad():
            full, _ = m(x)
            states = m._prefill(x[:, :5])
            assert torch.allclose(states.pop("logits"), full[:, 4], atol=1e-5)
            for t in range(5, 16):
                step = m._decode_step(x[:, t], states)
                assert torch.allclose(step, full[:, t], atol=1e-5)

    def test_constant_state_no_prefix_rerun(self, monkeypatch):
        # After the prompt, decoding carries one complex g per (layer, channel) and never
        # calls the sequence scan again.
        m = tiny()
        prompt = ids(B=2, T=6)
        with torch.no_grad():
            states = m._prefill(prompt)
        states.pop("logits")
        assert [s.shape for s in states.values()] == [(2, 3)] * 2

        phase = {"decoding": False, "prefills": 0}
        real_prefill, real_scan = m._prefill, m.guard.scan

        def prefill(x):
            phase["prefills"] += 1
            out = real_prefill(x)
            phase["decoding"] = True
            return out

        def scan(*a, **k):
            assert not phase["decoding"], "the prefix was re-run while decoding"
            return real_scan(*a, **k)

        monkeypatch.setattr(m, "_prefill", prefill)
        monkeypatch.setattr(m.guard, "scan", scan)
        out = m.generate(prompt, 20, temperature=0)
        assert out.shape == (2, 26) and phase["prefills"] == 1

    def test_sampling_reproducible_and_top_k(self):
        m = tiny()
        p = ids(B=3, T=4)
        a = m.generate(p, 6, temperature=1.0, generator=torch.Generator().manual_seed(1))
        b = m.generate(p, 6, temperature=1.0, generator=torch.Generator().manual_seed(1))
        assert torch.equal(a, b) and a.shape == (3, 10)
        c = m.generate(p, 6, top_k=1)  # top_k = 1 is greedy whatever the temperature
        assert torch.equal(c, m.generate(p, 6, temperature=0))

    def test_generation_past_n_seq(self):
        m = tiny(n_seq=8)
        out = m.generate(ids(B=1, T=4), 10, temperature=0)
        assert out.shape == (1, 14)

    def test_generate_restores_training_mode(self):
        m = tiny()
        m.train()
        m.generate(ids(B=1, T=3), 2)
        assert m.training

    @pytest.mark.parametrize("kw,match", [({"max_new_tokens": -1}, "max_new_tokens"),
                                          ({"temperature": -1.0}, "temperature"),
                                          ({"top_k": 0}, "top_k")])
    def test_bad_arguments(self, kw, match):
        args = {"max_new_tokens": 2, **kw}
        with pytest.raises(ValueError, match=match):
            tiny().generate(ids(B=1, T=3), **args)


class TestBadInput:
    def test_float_ids(self):
        with pytest.raises(TypeError, match="input_ids"):
            tiny()(torch.zeros(2, 5))

    def test_not_a_tensor(self):
        with pytest.raises(TypeError, match="input_ids"):
            tiny()([[1, 2, 3]])

    def test_wrong_ndim(self):
        with pytest.raises(ValueError, match="input_ids"):
            tiny()(torch.zeros(5, dtype=torch.long))

    def test_id_out_of_vocab(self):
        x = ids()
        x[0, 3] = 37
        with pytest.raises(ValueError, match="vocab_size"):
            tiny()(x)
        x[0, 3] = -1
        with pytest.raises(ValueError, match="vocab_size"):
            tiny()(x)

    def test_too_long(self):
        with pytest.raises(ValueError, match="n_seq"):
            tiny()(ids(T=49))

    def test_targets_checked(self):
        m = tiny()
        with pytest.raises(ValueError, match="targets"):
            m(ids(), ids(T=19))
        bad = ids()
        bad[1, 1] = 99
        with pytest.raises(ValueError, match="targets"):
            m(ids(), bad)

    def test_two_sided_refused(self):
        with pytest.raises(ValueError, match="not causal"):
            tiny(bk_mode="two_sided")

    def test_bad_config_type(self):
        with pytest.raises(TypeError, match="config"):
            LanguageModel("small")


class TestConfig:
    @pytest.mark.parametrize(
        "kw,exc,match",
        [
            ({"eta_min": 0.0}, ValueError, "eta_min"),
            ({"eta_min": -1.0}, ValueError, "eta_min"),
            ({"eta_init": 1e-4, "eta_min": 1e-3}, ValueError, "eta_init"),
            ({"top_k": 3, "num_experts": 2}, ValueError, "top_k"),
            ({"vocab_size": 0}, ValueError, "vocab_size"),
            ({"d_model": 1.5}, TypeError, "d_model"),
            ({"n_seq": True}, TypeError, "n_seq"),
            ({"n_channels": 0}, ValueError, "n_channels"),
            ({"router": "random"}, ValueError, "router"),
            ({"router": "scattering", "ffn": "mlp"}, ValueError, "scattering"),
            ({"bk_mode": "both"}, ValueError, "bk_mode"),
            ({"dropout": 1.0}, ValueError, "dropout"),
            ({"aux_loss_weight": float("nan")}, ValueError, "aux_loss_weight"),
            ({"scan_backend": "cuda"}, ValueError, "scan_backend"),
            ({"tie_embeddings": 1}, TypeError, "tie_embeddings"),
            ({"potential_moe_residual": True}, ValueError, "potential_moe_residual"),
            ({"lam_init_center": float("inf")}, ValueError, "lam_init_center"),
            ({"guard": {"action": "ignore"}}, ValueError, "guard.action"),
            ({"guard": {"tol": 0.0}}, ValueError, "guard.tol"),
            ({"guard": {"sample_rate": 1.5}}, ValueError, "guard.sample_rate"),
            ({"guard": "on"}, TypeError, "guard"),
        ],
    )
    def test_invalid_fields_named(self, kw, exc, match):
        with pytest.raises(exc, match=match):
            ModelConfig(**kw)

    def test_dict_round_trip(self):
        cfg = ModelConfig(**TINY, guard=GuardConfig(action="skip_step", tol=1e-2))
        d = cfg.to_dict()
        assert ModelConfig.from_dict(d) == cfg
        with pytest.raises(ValueError, match="unknown"):
            ModelConfig.from_dict({**d, "n_head": 4})


class TestTwoSided:
    def test_two_sided_matches_dense_inverse(self):
        # G_ii of the full chain = diagonal of (H - z)^{-1}, H = tridiag(b, v, b).
        g = torch.Generator().manual_seed(0)
        N, C = 9, 2
        v = torch.randn(1, N, C, generator=g, dtype=torch.float64)
        lam = torch.tensor([0.3, -1.0], dtype=torch.float64)
        eta = torch.tensor([0.2, 0.7], dtype=torch.float64)
        b = torch.tensor([1.0, -0.6], dtype=torch.float64)
        G_re, G_im = two_sided_diagonal(v, lam, eta, b,
                                        lambda *a: bk_scan(*a, backend="torch"))
        for c in range(C):
            H = torch.diag(v[0, :, c]) + b[c] * (torch.diag(torch.ones(N - 1), 1)
                                                 + torch.diag(torch.ones(N - 1), -1)).double()
            R = torch.linalg.inv(H.to(torch.complex128)
                                 - complex(lam[c], eta[c]) * torch.eye(N, dtype=torch.complex128))
            d = torch.diagonal(R)
            assert torch.allclose(G_re[0, :, c], d.real, rtol=1e-10, atol=1e-12)
            assert torch.allclose(G_im[0, :, c], d.imag, rtol=1e-10, atol=1e-12)

    def test_two_sided_gradcheck(self):
        g = torch.Generator().manual_seed(1)
        args = (torch.randn(1, 7, 2, generator=g, dtype=torch.float64),
                torch.randn(2, generator=g, dtype=torch.float64),
                torch.rand(2, generator=g, dtype=torch.float64) + 0.3,
                torch.randn(2, generator=g, dtype=torch.float64))
        args = tuple(a.requires_grad_() for a in args)
        assert torch.autograd.gradcheck(
            lambda *a: two_sided_diagonal(*a, lambda *x: bk_scan(*x, backend="torch")), args)

    def test_encoder_accepts_two_sided(self):
        e = BKEncoder(**{**TINY, "bk_mode": "two_sided"})
        assert e(ids()).shape == (2, 20, 37)
