"""The selective BK layer (layer="selective"): config checks, Herglotz per token, causality,
decoding = parallel forward, Cayley features in the unit disc, and long memory at init."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bkmath.certificate import Status
from bkmodel.causality import causality_certificate
from bkmodel.config import ModelConfig
from bkmodel.model import LanguageModel, SelectiveBKLayer, cayley_features, log_uniform_etas

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEL = dict(vocab_size=29, d_model=16, n_layers=2, n_seq=64, n_channels=6, ffn="mlp",
           layer="selective", scan_backend="torch")


def tiny(**kw) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(**{**SEL, **kw})


def ids(B=2, T=12, V=29, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (B, T), generator=g)


class TestConfig:
    @pytest.mark.parametrize("field,value,match", [
        ("layer", "fancy", "layer must be one of"),
        ("timescales", "random", "timescales must be one of"),
        ("feature_map", "abs", "feature_map must be one of"),
        ("conv_size", -1, "conv_size must be >= 0"),
        ("hop_min", 0.0, "hop_min must be > 0"),
        ("eta_init_min", 1e-9, "eta_min < eta_init_min"),
        ("potential", "moe", "needs potential='linear'"),
        ("hop_init", 0.05, "hop_init must be > hop_min"),
        ("n_energies", 0, "n_energies must be >= 1"),
    ])
    def test_bad_fields_name_the_field(self, field, value, match):
        with pytest.raises(ValueError, match=match):
            ModelConfig(**{**SEL, field: value})

    def test_bool_fields_type_checked(self):
        with pytest.raises(TypeError, match="output_gate must be a bool"):
            ModelConfig(**{**SEL, "output_gate": 1})

    def test_energies_need_the_selective_layer(self):
        with pytest.raises(ValueError, match="n_energies=2 > 1 needs layer='selective'"):
            ModelConfig(n_energies=2)

    def test_old_config_dicts_load_as_classic(self):
        d = ModelConfig().to_dict()
        d.pop("layer")
        assert ModelConfig.from_dict(d).layer == "classic"
        assert ModelConfig.from_dict(ModelConfig(**SEL).to_dict()).layer == "selective"

    def test_eta_min_default_per_layer(self):
        assert ModelConfig().eta_min == 1e-3
        assert ModelConfig(**SEL).eta_min < ModelConfig(**SEL).eta_init_min


class TestTimescales:
    def test_log_uniform_range_and_spread(self):
        e = log_uniform_etas(64, 1e-4, 0.5)
        assert e.shape == (64,)
        assert float(e.min()) == pytest.approx(1e-4, rel=1e-5)
        assert float(e.max()) == pytest.approx(0.5, rel=1e-5)
        logs = torch.sort(torch.log(e.double())).values
        assert torch.allclose(logs.diff(), logs.diff().mean().expand(63), rtol=1e-4)
        # neighbouring chains get far-apart timescales (not a monotone ramp)
        assert (e[1:] > e[:-1]).float().mean() not in (0.0, 1.0)

    def test_energies_share_the_operator(self):
        m = tiny(n_channels=4, n_energies=3, conv_size=0)
        layer = m.blocks[0].bk
        u = layer.in_proj(m.blocks[0].ln_1(m.wte(ids(T=7))))
        v, eta, b = layer._operator(u)
        assert v.shape == eta.shape == b.shape == (2, 7, 12)
        # the three energies of operator c see the same v and b, different lam and eta
        assert torch.equal(v[..., 0], v[..., 2]) and torch.equal(b[..., 3], b[..., 5])
        assert len(set(layer.lam.detach()[:3].tolist())) == 3
        assert not torch.equal(eta[..., 0], eta[..., 1])

    def test_layer_init_uses_them(self):
        m = tiny(n_channels=16)
        layer = m.blocks[0].bk
        assert isinstance(layer, SelectiveBKLayer)
        cfg = m.config
        eta0 = cfg.eta_min + torch.nn.functional.softplus(layer.eta_raw.detach().double())
        assert float(eta0.min()) == pytest.approx(cfg.eta_init_min, rel=1e-4)
        assert float(eta0.max()) == pytest.approx(cfg.eta_init, rel=1e-4)


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e6, 1e6), st.floats(0.0, 1e6))
def test_cayley_maps_upper_half_plane_into_disc(re, im):
    c_re, c_im = cayley_features(torch.tensor(re, dtype=torch.float64),
                                 torch.tensor(im, dtype=torch.float64))
    assert float(c_re) ** 2 + float(c_im) ** 2 <= 1.0 + 1e-12


def test_cayley_negative_control_lower_half_plane_leaves_disc():
    c_re, c_im = cayley_features(torch.tensor(0.0), torch.tensor(-0.5))
    assert float(c_re) ** 2 + float(c_im) ** 2 > 1.0


class TestForward:
    @pytest.mark.parametrize("kw", [{}, {"selective": False}, {"conv_size": 0},
                                    {"output_gate": False, "out_norm": False},
                                    {"feature_map": "eta_g"}, {"timescales": "constant"},
                                    {"ffn": "moe", "router": "scattering"},
                                    {"n_energies": 3}, {"n_energies": 2, "selective": False}],
                             ids=["default", "non-selective", "no-conv", "no-gate-norm",
                                  "eta-g", "constant", "moe-scattering", "energies",
                                  "energies-non-selective"])
    def test_loss_and_gradients_finite(self, kw):
        m = tiny(**kw)
        _, loss = m(ids(), ids(seed=1))
        loss.backward()
        assert torch.isfinite(loss)
        for name, p in m.named_parameters():
            if p.grad is None:  # only an expert that no token was routed to
                assert ".experts." in name, name
                continue
            assert torch.isfinite(p.grad).all(), name

    def test_herglotz_per_token(self):
        m = tiny(init_std=0.2)
        layer = m.blocks[0].bk
        h = m.blocks[0].ln_1(m.wte(ids(T=20)))
        u = layer.conv(layer.in_proj(h).transpose(1, 2))[..., :20].transpose(1, 2)
        v, eta, b = layer._operator(u)
        assert eta.shape == v.shape == b.shape  # per token
        assert float(eta.detach().min()) >= m.config.eta_min
        assert float(b.detach().min()) >= m.config.hop_min
        _, g_re, g_im, _ = layer(h)
        assert float(g_im.detach().min()) > 0
        mod = torch.sqrt(g_re.double() ** 2 + g_im.double() ** 2) * eta.double()
        assert float(mod.max()) <= 1.0 + 1e-5  # |g_i| <= 1/eta_i (float32 scan output)

    def test_causality_certificate(self):
        cert = causality_certificate(tiny(init_std=0.2), length=33, n_cuts=3)
        assert cert.status is Status.VERIFIED and cert.expected

    @pytest.mark.parametrize("kw", [{}, {"n_energies": 3, "conv_size": 0}],
                             ids=["conv4", "energies3"])
    def test_decoding_matches_parallel_forward(self, kw):
        m = tiny(init_std=0.2, **kw).double()
        x = ids(B=2, T=16, seed=4)
        with torch.no_grad():
            full, _ = m(x)
            states = m._prefill(x[:, :2])  # shorter than the convolution's window
            assert torch.allclose(states.pop("logits"), full[:, 1], atol=1e-9)
            for t in range(2, 16):
                step = m._decode_step(x[:, t], states)
                assert torch.allclose(step, full[:, t], atol=1e-9), t

    def test_generate_unallocatable_length_is_a_value_error(self):
        m = tiny()
        with pytest.raises(ValueError, match="max_new_tokens=.*cannot be allocated"):
            m.generate(ids(B=1, T=3), 2**62, temperature=0)

    def test_generate_greedy_matches_forward(self):
        m = tiny(init_std=0.2)
        prompt = ids(B=1, T=5, seed=2)
        out = m.generate(prompt, 8, temperature=0)
        seq = prompt
        with torch.no_grad():
            for _ in range(8):
                logits, _ = m(seq)
                seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        assert torch.equal(out, seq)


def _influence_of_token0(model: LanguageModel, T: int, pos: int) -> float:
    """max |Δ logits at position pos| when token 0 changes, in float64."""
    model = model.double().eval()
    x = ids(B=1, T=T, V=model.config.vocab_size, seed=3)
    y = x.clone()
    y[0, 0] = (x[0, 0] + 1) % model.config.vocab_size
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(y)
    return float((a[0, pos] - b[0, pos]).abs().max())


def test_long_memory_at_initialisation():
    # The target: at init, in float64, the logits at position 1000 change by >= 1e-6
    # when token 0 changes (the log-uniform timescales keep chains with memory ~10^4).
    cfg = dict(vocab_size=37, d_model=32, n_layers=2, n_seq=1024, n_channels=32, ffn="mlp",
               scan_backend="torch")
    torch.manual_seed(0)
    sel = LanguageModel(**cfg, layer="selective")
    assert _influence_of_token0(sel, 1001, 1000) >= 1e-6
    # negative control: the classic layer (one timescale, eta = 0.5) has forgotten token 0
    torch.manual_seed(0)
    classic = LanguageModel(**cfg, layer="classic")
    assert _influence_of_token0(classic, 1001, 1000) < 1e-6
    # and the selective layer with one timescale forgets it too: the timescales do it
    torch.manual_seed(0)
    one = LanguageModel(**cfg, layer="selective", timescales="constant")
    assert _influence_of_token0(one, 1001, 1000) < 1e-6
    assert math.isfinite(_influence_of_token0(sel, 64, 63))
