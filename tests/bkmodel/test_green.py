"""Green's-function attention (bkmodel.ops.green_attn) and the layer built on it
(layer="green"): chunked form = sequential reference, gradients, resets, state, decoding,
causality, long memory at initialisation, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bkmath.certificate import Status
from bkmodel.causality import causality_certificate
from bkmodel.config import ModelConfig
from bkmodel.model import GreenBKLayer, LanguageModel
from bkmodel.ops.green_attn import green_attention, green_step

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPS64 = torch.finfo(torch.float64).eps


def _inputs(B, T, H, dk, dv, seed, reset_p=0.0, decay=0.95, dtype=torch.float64):
    """Random q, k, v, Herglotz-like g and transfer factors |a| <= decay, resets."""
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=dtype)  # noqa: E731
    u = lambda *s: torch.rand(*s, generator=gen, dtype=dtype)  # noqa: E731
    q, k, v = r(B, T, H, dk), r(B, T, H, dk), r(B, T, H, dv)
    g = torch.complex(r(B, T, H), u(B, T, H) + 0.1)
    a = decay * u(B, T, H) * torch.exp(1j * 6.3 * u(B, T, H))
    reset = u(B, T) < reset_p
    S0 = torch.complex(r(B, H, dk, dv), r(B, H, dk, dv))
    return q, k, v, g, a, reset, S0


@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 2), T=st.integers(1, 45), H=st.integers(1, 3),
       dk=st.integers(1, 5), dv=st.integers(1, 5), L=st.sampled_from([1, 3, 8, 16, 64]),
       reset_p=st.sampled_from([0.0, 0.15]), carry=st.booleans(),
       decay=st.sampled_from([0.5, 0.99, 1.3]), seed=st.integers(0, 10**6))
def test_chunked_equals_sequential_reference(B, T, H, dk, dv, L, reset_p, carry, decay, seed):
    # float64; both sides form the same sums of <= T products of <= T factors, so the error is
    # a few T eps relative to the largest term: 64 T eps of the output's scale.
    # decay 1.3 lets |a| exceed 1 for a few steps, as -b g can transiently in the model.
    q, k, v, g, a, reset, S0 = _inputs(B, T, H, dk, dv, seed, reset_p, decay)
    S0 = S0 if carry else None
    rs = reset if reset_p else None
    y1, s1 = green_attention(q, k, v, g, a, reset=rs, initial_state=S0, backend="naive")
    y2, s2 = green_attention(q, k, v, g, a, reset=rs, initial_state=S0, backend="chunk",
                             chunk_size=L)
    scale = 1.0 + float(y1.abs().max())
    assert float((y1 - y2).abs().max()) <= 64 * T * EPS64 * scale
    sscale = 1.0 + float(s1.abs().max())
    assert float((s1 - s2).abs().max()) <= 64 * T * EPS64 * sscale


def test_gradients_match_the_reference():
    q, k, v, g, a, reset, S0 = _inputs(2, 13, 2, 3, 4, seed=5, reset_p=0.15)
    args = [t.clone().requires_grad_() for t in (q, k, v, g, a, S0)]

    def f(backend, *xs):
        y, s = green_attention(*xs[:5], reset=reset, initial_state=xs[5], backend=backend,
                               chunk_size=4)
        return (y.real.sin().sum() + (y.imag * 0.3).cos().sum() + s.abs().square().sum())

    grads = torch.autograd.grad(f("chunk", *args), args)
    ref = torch.autograd.grad(f("naive", *args), args)
    for name, x, y in zip("q k v g a S0".split(), grads, ref, strict=True):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-10), name


def test_gradcheck_chunked():
    q, k, v, g, a, reset, S0 = _inputs(1, 7, 1, 2, 2, seed=6, reset_p=0.2)
    args = tuple(t.clone().requires_grad_() for t in (q, k, v, g, a, S0))

    def f(*xs):
        y, s = green_attention(*xs[:5], reset=reset, initial_state=xs[5], chunk_size=3)
        return torch.view_as_real(y), torch.view_as_real(s)

    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-7)


def test_resets_cut_the_past():
    q, k, v, g, a, _, _ = _inputs(1, 20, 2, 3, 3, seed=7)
    reset = torch.zeros(1, 20, dtype=torch.bool)
    reset[0, 9] = True
    y1, _ = green_attention(q, k, v, g, a, reset=reset, chunk_size=4)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    k2[:, :9] += 1.0
    v2[:, :9] -= 2.0
    y2, _ = green_attention(q2, k2, v2, g, a, reset=reset, chunk_size=4)
    assert torch.equal(y1[:, 9:], y2[:, 9:])
    assert not torch.allclose(y1[:, :9], y2[:, :9])  # control: before the reset it matters


def test_step_is_the_recurrence():
    q, k, v, g, a, _, S0 = _inputs(2, 6, 3, 2, 4, seed=8)
    y, s = green_attention(q, k, v, g, a, initial_state=S0, backend="naive")
    state = S0
    for t in range(6):
        yt, state = green_step(q[:, t], k[:, t], v[:, t], g[:, t], a[:, t], state)
        assert torch.allclose(yt, y[:, t], atol=1e-12)
    assert torch.allclose(state, s, atol=1e-12)


@pytest.mark.parametrize("bad,match", [
    (dict(k=torch.zeros(1, 4, 2, 2)), "q and k must have the same shape"),
    (dict(v=torch.zeros(1, 4, 1, 3)), "v must have shape"),
    (dict(g=torch.zeros(1, 4, 2)), "g must be a complex tensor"),
    (dict(reset=torch.zeros(1, 5, dtype=torch.bool)), "reset must be a bool tensor"),
    (dict(initial_state=torch.zeros(1, 2, 3, 4, dtype=torch.complex64)), "initial_state"),
    (dict(backend="fast"), "backend must be"),
    (dict(chunk_size=0), "chunk_size must be"),
])
def test_bad_input_names_the_argument(bad, match):
    kw = dict(q=torch.zeros(1, 4, 2, 3), k=torch.zeros(1, 4, 2, 3), v=torch.zeros(1, 4, 2, 3),
              g=torch.zeros(1, 4, 2, dtype=torch.complex64),
              a=torch.zeros(1, 4, 2, dtype=torch.complex64))
    kw.update(bad)
    with pytest.raises(ValueError, match=match):
        green_attention(**kw)


# ---- the layer -------------------------------------------------------------------------------
GREEN = dict(vocab_size=29, d_model=16, n_layers=2, n_seq=64, n_channels=4, ffn="mlp",
             layer="green", scan_backend="torch", chunk_size=8)


def tiny(**kw) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(**{**GREEN, **kw})


def ids(B=2, T=12, V=29, seed=0) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


class TestLayer:
    def test_config_checks(self):
        with pytest.raises(ValueError, match="n_channels to divide d_model"):
            ModelConfig(layer="green", d_model=30, n_channels=4)
        with pytest.raises(ValueError, match="n_energies=2 > 1 needs layer=.selective."):
            ModelConfig(layer="green", n_energies=2)
        with pytest.raises(ValueError, match="chunk_size must be >= 1"):
            ModelConfig(layer="green", chunk_size=0)
        with pytest.raises(ValueError, match="key_dim must be >= 0"):
            ModelConfig(layer="green", key_dim=-1)
        with pytest.raises(ValueError, match="qkv_act"):
            ModelConfig(layer="green", qkv_act="relu")
        with pytest.raises(ValueError, match="need layer='green'"):
            ModelConfig(layer="selective", qk_norm=True)
        with pytest.raises(ValueError, match="need layer='green'"):
            ModelConfig(layer="selective", qkv_act="silu")
        assert ModelConfig(layer="green").eta_min == 1e-6
        cfg = ModelConfig(layer="green", d_model=30, n_channels=4, key_dim=5, value_dim=7)
        layer = GreenBKLayer(cfg)
        assert (layer.dk, layer.dv) == (5, 7)

    @pytest.mark.parametrize("kw", [{}, {"conv_size": 0}, {"selective": False},
                                    {"output_gate": False, "out_norm": False},
                                    {"key_dim": 3, "value_dim": 5},
                                    {"qkv_act": "silu", "qk_norm": True}],
                             ids=["default", "no-conv", "non-selective", "no-gate-norm", "dims",
                                  "silu-l2"])
    def test_loss_and_gradients_finite(self, kw):
        m = tiny(**kw)
        _, loss = m(ids(), ids(seed=1))
        loss.backward()
        assert torch.isfinite(loss)
        for name, p in m.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name

    @pytest.mark.parametrize("kw", [{}, {"qkv_act": "silu", "qk_norm": True}],
                             ids=["default", "silu-l2"])
    def test_causality_certificate(self, kw):
        cert = causality_certificate(tiny(init_std=0.2, **kw), length=33, n_cuts=3)
        assert cert.status is Status.VERIFIED and cert.expected

    def test_qk_norm_and_silu_act_on_q_k_v(self):
        # qk_norm: every q (before the 1/sqrt(dk) scale) and k of unit norm; silu: q, k, v
        # are silu of the convolved projections; the operator inputs are untouched
        plain = tiny(init_std=0.2).blocks[0].bk.double()
        act = tiny(init_std=0.2, qkv_act="silu", qk_norm=True).blocks[0].bk.double()
        u = torch.randn(2, 7, plain.n_in, dtype=torch.float64)
        op0, q0, k0, v0 = plain._split(u)
        op1, q1, k1, v1 = act._split(u)
        assert torch.equal(op0, op1)
        dk = plain.dk
        sq = torch.nn.functional.silu(q0 * dk ** 0.5)
        assert torch.allclose(q1 * dk ** 0.5, sq / sq.norm(dim=-1, keepdim=True))
        sk = torch.nn.functional.silu(k0)
        assert torch.allclose(k1, sk / sk.norm(dim=-1, keepdim=True))
        assert torch.allclose(v1, torch.nn.functional.silu(v0))

    @staticmethod
    def _split_dtypes(device: torch.device) -> set[torch.dtype]:
        bk = tiny(init_std=0.2, qkv_act="silu", qk_norm=True).blocks[0].bk.to(device)
        u = torch.randn(2, 7, bk.n_in, device=device, dtype=torch.bfloat16)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return {t.dtype for t in bk._split(u)}

    def test_qk_norm_keeps_the_input_dtype(self):
        # the kernels get q, k, v of one dtype (a float32 q, k with bf16 v ran 3.7x slower)
        assert self._split_dtypes(torch.device("cpu")) == {torch.bfloat16}

    @pytest.mark.gpu
    def test_qk_norm_keeps_the_input_dtype_under_cuda_autocast(self, cuda_device):
        # CUDA autocast runs norms in float32 (CPU autocast does not): the case that regressed
        assert self._split_dtypes(cuda_device) == {torch.bfloat16}

    @pytest.mark.parametrize("kw", [{}, {"conv_size": 0}, {"qkv_act": "silu", "qk_norm": True}],
                             ids=["conv4", "no-conv", "silu-l2"])
    def test_decoding_matches_parallel_forward(self, kw):
        m = tiny(init_std=0.2, **kw).double()
        x = ids(B=2, T=16, seed=4)
        with torch.no_grad():
            full, _ = m(x)
            states = m._prefill(x[:, :2])
            assert torch.allclose(states.pop("logits"), full[:, 1], atol=1e-9)
            for t in range(2, 16):
                step = m._decode_step(x[:, t], states)
                assert torch.allclose(step, full[:, t], atol=1e-9), t

    def test_streaming_and_resets(self):
        m = tiny(init_std=0.2).double().eval()
        x = ids(B=2, T=30, seed=5)
        with torch.no_grad():
            full, _ = m(x)
            a, _, st = m(x[:, :11], return_state=True)
            b, _, _ = m(x[:, 11:], state=st, return_state=True)
            assert torch.allclose(torch.cat([a, b], 1), full, atol=1e-10)
            reset = torch.zeros(2, 30, dtype=torch.bool)
            reset[:, 17] = True
            y = x.clone()
            y[:, :17] = (y[:, :17] + 3) % 29
            r1, _ = m(x, reset=reset)
            r2, _ = m(y, reset=reset)
            assert torch.allclose(r1[:, 17:], r2[:, 17:], atol=1e-12)
            assert not torch.allclose(r1[:, :17], r2[:, :17])

    def test_bad_state_names_the_field(self):
        m = tiny()
        x = ids(B=2, T=5)
        _, _, st = m(x, return_state=True)
        st[0] = {**st[0], "S": torch.zeros(2, 4, 4, 3, dtype=torch.complex64)}
        with pytest.raises(ValueError, match=r"\['S'\]"):
            m(x, state=st)


def test_long_memory_at_initialisation():
    # The target for the new layer too: at init, in float64, the logits at position
    # 1000 change by >= 1e-6 when token 0 changes; one timescale forgets it (control).
    cfg = dict(vocab_size=37, d_model=32, n_layers=2, n_seq=1024, n_channels=4, ffn="mlp",
               scan_backend="torch", layer="green")

    def influence(model):
        model = model.double().eval()
        x = ids(B=1, T=1001, V=37, seed=3)
        y = x.clone()
        y[0, 0] = (x[0, 0] + 1) % 37
        with torch.no_grad():
            return float((model(x)[0][0, 1000] - model(y)[0][0, 1000]).abs().max())

    torch.manual_seed(0)
    assert influence(LanguageModel(**cfg)) >= 1e-6
    torch.manual_seed(0)
    assert influence(LanguageModel(**cfg, timescales="constant")) < 1e-6


def test_bf16_autocast_runs_in_float32_arithmetic():
    # under bf16 autocast the matmuls run in bf16 and come back as float32 before the
    # complex arithmetic; relative error ~ a few bf16 ulps (2^-8) of the output's scale
    q, k, v, g, a, _, _ = _inputs(2, 70, 2, 8, 8, seed=9, dtype=torch.float32)
    g, a = g.to(torch.complex64), a.to(torch.complex64)
    ref, _ = green_attention(q, k, v, g, a, chunk_size=16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, s = green_attention(q, k, v, g, a, chunk_size=16)
    assert y.dtype == torch.complex64 and s.dtype == torch.complex64
    assert float((y - ref).abs().max() / ref.abs().max()) < 4 * 2.0 ** -8

