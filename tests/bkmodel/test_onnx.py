"""ONNX export (``bkmodel/export.py``) checked with onnxruntime against eager logits: the
Transformer baseline here, ResNet-BK's classic and selective layers in test_export_bk.py, the
green layer (``layer="green"``) and its real-arithmetic pieces (``export_green.py``) below."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxscript", reason="onnxscript not installed (pip install .[export])")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install .[export])")

from bkmodel.baseline import TransformerBaseline, TransformerConfig  # noqa: E402
from bkmodel.export import check_onnx, export_onnx  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_transformer_baseline_matches_onnxruntime(tmp_path):
    torch.manual_seed(0)
    m = TransformerBaseline(TransformerConfig(vocab_size=40, d_model=16, n_layers=1,
                                              max_seq_len=16, n_heads=2, d_ff=32))
    ids = torch.randint(0, 40, (2, 16), generator=torch.Generator().manual_seed(1))
    p = export_onnx(m, tmp_path / "base.onnx", ids)
    other = torch.randint(0, 40, (2, 16), generator=torch.Generator().manual_seed(2))
    assert check_onnx(p, m, other) < 1e-5


def test_baseline_needs_example_ids_and_has_no_decode(tmp_path):
    """The baseline's graph has the example's shape; it has no cache to step (ResNet-BK's
    export: tests/bkmodel/test_export_bk.py)."""
    from bkmodel.export import export_onnx_decode

    m = TransformerBaseline(TransformerConfig(vocab_size=40, d_model=16, n_layers=1,
                                              max_seq_len=16, n_heads=2, d_ff=32))
    with pytest.raises(ValueError, match="example_ids"):
        export_onnx(m, tmp_path / "base.onnx")
    with pytest.raises(ValueError, match="no KV cache"):
        export_onnx_decode(m, tmp_path / "d.onnx")


# --------------------------------------------------------------------------------------------
# layer="green": the real-arithmetic pieces (export_green.py) and the exported model
# --------------------------------------------------------------------------------------------
def _rel(got, ref) -> float:
    got, ref = np.asarray(got), np.asarray(ref)
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-300))


def _green_data(B: int, T: int, H: int, dk: int, dv: int, eta0: float, seed: int,
                dtype: torch.dtype = torch.float64):
    """q, k, v and the g, a = -b g of a real BK chain (a float64 scan of random potentials
    with absorptions in [eta0, 2 eta0] and hoppings in [0.5, 1.5])."""
    from bkmodel.ops.bk_scan import bk_scan_naive

    gen = torch.Generator().manual_seed(seed)
    d = torch.float64

    def rnd(*shape):
        return torch.randn(*shape, dtype=d, generator=gen)

    q, k, v = rnd(B, T, H, dk), rnd(B, T, H, dk), rnd(B, T, H, dv)
    eta = eta0 * (1 + torch.rand(B, T, H, dtype=d, generator=gen))
    b = 0.5 + torch.rand(B, T, H, dtype=d, generator=gen)
    g = torch.complex(*bk_scan_naive(rnd(B, T, H), rnd(H), eta, b))
    return (*(t.to(dtype) for t in (q, k, v)), g, -b * g)


def _prefill_args(q, k, v, g, a, dtype=torch.float64):
    return tuple(t.to(dtype) for t in (q, k, v, g.real, g.imag, a.real, a.imag))


def _err(y, S, y_re, y_im, s_re, s_im) -> tuple[float, float]:
    """Errors of (y, S) relative to the largest |y|, |S| of the reference."""
    c = lambda re, im: torch.complex(torch.as_tensor(re).double(),  # noqa: E731
                                     torch.as_tensor(im).double())
    return (float((c(y_re, y_im) - y).abs().max() / y.abs().max()),
            float((c(s_re, s_im) - S).abs().max() / S.abs().max()))


class TestGreenReal:
    """``export_green.py`` against the naive complex recurrence, in float64."""

    @pytest.mark.parametrize("differences", ["pairwise", "cumulative"])
    @pytest.mark.parametrize("initial", [False, True], ids=["S0=0", "S0"])
    def test_prefill_matches_naive(self, differences, initial):
        from bkmodel.ops.green_attn.export_green import green_prefill_real
        from bkmodel.ops.green_attn.naive import green_attention_naive

        q, k, v, g, a = _green_data(2, 13, 3, 4, 5, 0.1, seed=0)
        gen = torch.Generator().manual_seed(1)
        S0 = torch.complex(torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=gen),
                           torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=gen))
        y, S = green_attention_naive(q, k, v, g, a, initial_state=S0 if initial else None)
        extra = (S0.real, S0.imag) if initial else ()
        out = green_prefill_real(*_prefill_args(q, k, v, g, a), *extra, differences=differences)
        assert all(t.dtype == torch.float64 for t in out)
        assert out[0].shape == (2, 13, 3, 5) and out[2].shape == (2, 3, 4, 5)
        e_y, e_s = _err(y, S, *out)
        assert e_y < 1e-13 and e_s < 1e-13, (e_y, e_s)

    def test_prefill_one_token_and_tiny_a(self):
        """T = 1 (no off-diagonal entries); |a| below the floor: exp(-large) is 0, not nan."""
        from bkmodel.ops.green_attn.export_green import green_prefill_real
        from bkmodel.ops.green_attn.naive import green_attention_naive

        q, k, v, g, a = _green_data(1, 6, 2, 3, 3, 0.2, seed=2)
        a = a.clone()
        a[:, 3] = 1e-200  # the chain forgets everything before token 3
        for T in (1, 6):
            y, S = green_attention_naive(q[:, :T], k[:, :T], v[:, :T], g[:, :T], a[:, :T])
            out = green_prefill_real(*_prefill_args(q[:, :T], k[:, :T], v[:, :T], g[:, :T],
                                                    a[:, :T]))
            assert all(torch.isfinite(t).all() for t in out)
            e_y, e_s = _err(y, S, *out)
            assert e_y < 1e-13 and e_s < 1e-13, (T, e_y, e_s)

    def test_step_matches_green_step(self):
        from bkmodel.ops.green_attn import green_step
        from bkmodel.ops.green_attn.export_green import green_step_real

        q, k, v, g, a = _green_data(2, 1, 3, 4, 5, 0.1, seed=3)
        q, k, v, g, a = q[:, 0], k[:, 0], v[:, 0], g[:, 0], a[:, 0]
        gen = torch.Generator().manual_seed(4)
        S0 = torch.complex(torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=gen),
                           torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=gen))
        for prev in (None, S0):
            y, S = green_step(q, k, v, g, a, prev)
            p = torch.zeros_like(S0) if prev is None else prev
            e_y, e_s = _err(y, S, *green_step_real(q, k, v, g.real, g.imag, a.real, a.imag,
                                                   p.real, p.imag))
            assert e_y < 1e-15 and e_s < 1e-15, (e_y, e_s)

    def test_steps_continue_the_prefill(self):
        """Prefill of 7 tokens, then 5 steps = prefill of all 12 (and the naive loop)."""
        from bkmodel.ops.green_attn.export_green import green_prefill_real, green_step_real
        from bkmodel.ops.green_attn.naive import green_attention_naive

        q, k, v, g, a = _green_data(1, 12, 2, 3, 4, 0.05, seed=5)
        y, S = green_attention_naive(q, k, v, g, a)
        *_, s_re, s_im = green_prefill_real(*_prefill_args(q[:, :7], k[:, :7], v[:, :7],
                                                           g[:, :7], a[:, :7]))
        for i in range(7, 12):
            y_re, y_im, s_re, s_im = green_step_real(q[:, i], k[:, i], v[:, i], g[:, i].real,
                                                     g[:, i].imag, a[:, i].real,
                                                     a[:, i].imag, s_re, s_im)
            assert _err(y[:, i], S, y_re, y_im, s_re, s_im)[0] < 1e-13
        assert _err(y, S, y_re, y_im, s_re, s_im)[1] < 1e-13

    def test_arg_float64_is_atan2(self):
        """The float64 angle (float32 atan2 + one Newton step: onnxruntime has no float64
        Atan) equals torch.atan2 to float64 rounding, over 40 decades and every quadrant."""
        from bkmodel.ops.green_attn.export_green import _arg

        gen = torch.Generator().manual_seed(6)
        mag = 10.0 ** (40 * torch.rand(10000, dtype=torch.float64, generator=gen) - 20)
        th = (2 * torch.rand(10000, dtype=torch.float64, generator=gen) - 1) * torch.pi
        x, y = mag * torch.cos(th), mag * torch.sin(th)
        edge = dict(dtype=torch.float64)  # axes, -pi / pi, beyond float32's range
        x = torch.cat([x, torch.tensor([0.0, 0.0, -1.0, -1.0, 1.0, 0.0, -1e-300, 1e300], **edge)])
        y = torch.cat([y, torch.tensor([0.0, 1.0, 0.0, -0.0, 0.0, -3.0, 1e-300, -1e300], **edge)])
        ref = torch.atan2(y, x)
        got = _arg(x, y)
        diff = (got - ref).abs()
        diff = torch.minimum(diff, (diff - 2 * torch.pi).abs())  # -pi and pi are one angle
        assert float(diff.max()) < 4 * 2.0**-52 * torch.pi

    def test_errors(self):
        from bkmodel.ops.green_attn.export_green import green_prefill_real

        args = _prefill_args(*_green_data(1, 3, 1, 2, 2, 0.1, seed=7))
        with pytest.raises(ValueError, match="differences must be"):
            green_prefill_real(*args, differences="chunked")
        with pytest.raises(ValueError, match="both s0_re and s0_im"):
            green_prefill_real(*args, torch.zeros(1, 1, 2, 2))

    def test_float32_phase_at_T512(self):
        """Why the differences are pairwise: in float32 at T = 512 (|cumulative phase| ~ 740
        rad, eta ~ 1e-3) the difference of two cumulative sums loses ~1e-5, the pairwise
        sums keep the naive float32 loop's error (measured 4.0e-7 / 1.5e-7 for y / S against
        1.7e-5 / 2.9e-5; the eager chunked form, L = 64: 2.2e-6 / 2.9e-6)."""
        from bkmodel.ops.green_attn.export_green import green_prefill_real
        from bkmodel.ops.green_attn.naive import green_attention_naive

        q, k, v, g, a = _green_data(1, 512, 2, 16, 16, 1e-3, seed=1)
        y, S = green_attention_naive(q, k, v, g, a)
        args = _prefill_args(q, k, v, g, a, torch.float32)
        pair = _err(y, S, *green_prefill_real(*args))
        cum = _err(y, S, *green_prefill_real(*args, differences="cumulative"))
        assert max(pair) < 2e-6, pair
        assert min(cum) > 5 * max(pair), (pair, cum)

    def test_onnx_float64_at_T512(self, tmp_path):
        """The float64 prefill as exported (T symbolic, exported at T = 5) run by
        onnxruntime at T = 512: within 1e-12 of the naive float64 loop (measured 4e-15 on
        this chain, 7e-14 on a model layer's; float32 in onnxruntime gave 1.2e-6 here and
        3.6e-5 / 7.1e-5 for y / S there, which is why the export runs it in float64)."""
        import onnxruntime as ort

        from bkmodel.export import _save
        from bkmodel.ops.green_attn.export_green import green_prefill_real
        from bkmodel.ops.green_attn.naive import green_attention_naive

        class Prefill(torch.nn.Module):
            def forward(self, q, k, v, g_re, g_im, a_re, a_im):  # noqa: ANN001, ANN202
                return green_prefill_real(q, k, v, g_re, g_im, a_re, a_im)

        q, k, v, g, a = _green_data(1, 512, 2, 8, 8, 1e-3, seed=8)
        y, S = green_attention_naive(q, k, v, g, a)
        args = _prefill_args(q, k, v, g, a)
        names = ["q", "k", "v", "g_re", "g_im", "a_re", "a_im"]
        T = torch.export.Dim("T")
        p = _save(Prefill(), tuple(t[:, :5] for t in args), tmp_path / "green.onnx",
                  input_names=names, output_names=["y_re", "y_im", "s_re", "s_im"],
                  dynamic_shapes=tuple({1: T} for _ in args))
        sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        out = sess.run(None, {n: t.numpy() for n, t in zip(names, args, strict=True)})
        assert all(o.dtype == np.float64 for o in out)
        e_y, e_s = _err(y, S, *out)
        assert e_y < 1e-12 and e_s < 1e-12, (e_y, e_s)


GREEN_V = 40
GREEN_CONFIGS = {
    "green-conv4": dict(conv_size=4, ffn="mlp"),
    "green-noconv-moe": dict(conv_size=0, ffn="moe", num_experts=2),
}
# Tolerances (float32 model, float64 recurrences in both): logits within 1e-5 of the largest
# logit (measured <= 1.5e-6). The states are compared at 5e-4 relative to each array's largest
# entry: g and S are ill-conditioned in the scan's float32 inputs (|dg/dv| = |g|^2 with eta
# down to eta_init_min = 1e-4 at initialisation), so the few-ulp differences between
# onnxruntime's and torch's float32 kernels (and the eager layer's complex64 chunked form,
# against the exported float64 quadratic one) come out at up to 6e-5 on these prompts; the
# eager float32 model itself differs from its float64 copy by as much.
GREEN_TOL, GREEN_STATE_TOL = 1e-5, 5e-4


def _green_model(name: str):
    from bkmodel.model import LanguageModel

    torch.manual_seed(0)
    return LanguageModel(vocab_size=GREEN_V, d_model=32, n_layers=2, n_seq=16, n_channels=2,
                         layer="green", **GREEN_CONFIGS[name]).eval()


@pytest.fixture(scope="module", params=[
    "green-conv4", pytest.param("green-noconv-moe", marks=pytest.mark.slow)])
def green_exported(request, tmp_path_factory):
    """(eager green model, OnnxBK, out dir): conv4 through ``bk export`` (the CLI), the
    other through export_onnx / export_onnx_decode."""
    from bkmodel.checkpoint import model_spec, write_checkpoint
    from bkmodel.cli import main
    from bkmodel.export import OnnxBK, export_onnx_decode
    from bkmodel.tokenizer import ByteTokenizer, save_tokenizer

    m = _green_model(request.param)
    d = tmp_path_factory.mktemp("green") / request.param
    if request.param == "green-conv4":
        d.mkdir(parents=True)
        save_tokenizer(ByteTokenizer(), d / "tokenizer.json")
        write_checkpoint(d / "checkpoint.pt", {"model_spec": model_spec(m),
                                               "model": m.state_dict(), "tokenizer": ""})
        assert main(["export", str(d), "--format", "onnx"]) == 0
        d = d / "onnx"
    else:
        export_onnx(m, d / "forward.onnx")
        export_onnx_decode(m, d / "decode.onnx")
    return m, OnnxBK.from_directory(d), d


def _gids(B: int, T: int, seed: int) -> torch.Tensor:
    return torch.randint(0, GREEN_V, (B, T), generator=torch.Generator().manual_seed(seed))


class TestExportedGreen:
    def test_state_signature(self, green_exported):
        from bkmodel.export import state_names

        m, sess, _ = green_exported
        conv = m.config.conv_size > 1
        per = ["g_re", "g_im", "S_re", "S_im", *(["conv"] if conv else [])]
        assert state_names(m) == [f"state.{i}.{n}" for i in range(2) for n in per]
        assert sess.names == state_names(m)
        shapes = {i.name: i.shape[1:] for i in sess.dec.get_inputs()}
        assert shapes["state.0.S_re"] == [2, 16, 16]  # (B, H, dk, dv)
        types = {i.name: i.type for i in sess.dec.get_inputs()}
        assert types["state.1.S_im"] == "tensor(double)"

    @pytest.mark.parametrize("shape", [(3, 13), (1, 1), (2, 16)],
                             ids=["B3-T13", "B1-T1", "B2-T16"])
    def test_forward_matches_eager(self, green_exported, shape):
        """Exported at (2, 3), run at other B and T: logits and every state array."""
        from bkmodel.export import state_names, state_to_onnx

        m, sess, _ = green_exported
        ids = _gids(*shape, seed=shape[1])
        with torch.no_grad():
            ref_logits, _, ref_state = m(ids, return_state=True)
        logits, state = sess.prefill(ids.numpy())
        assert _rel(logits, ref_logits.numpy()) < GREEN_TOL
        ref = state_to_onnx(m, ref_state, shape[0])
        assert sorted(state) == sorted(ref) == sorted(state_names(m))
        for n in ref:
            assert state[n].dtype == ref[n].dtype, n
            assert _rel(state[n], ref[n]) < GREEN_STATE_TOL, n

    def test_decode_matches_eager(self, green_exported):
        """Six steps from the prompt's state: logits and the float64 state each step."""
        from bkmodel.export import state_to_onnx

        m, sess, _ = green_exported
        ids = _gids(2, 7, seed=3)
        with torch.no_grad():
            states = m._prefill(ids)
            tok = states.pop("logits").argmax(-1)
            _, st = sess.prefill(ids.numpy())
            for _ in range(6):
                ref_logits = m._decode_step(tok, states)
                logits, st = sess.step(tok.numpy(), st)
                assert _rel(logits, ref_logits.numpy()) < GREEN_TOL
                ref = state_to_onnx(m, [states[str(i)] for i in range(2)], 2)
                for n in ref:
                    assert _rel(st[n], ref[n]) < GREEN_STATE_TOL, n
                tok = ref_logits.argmax(-1)

    def test_eager_step_from_exported_state(self, green_exported):
        """The exported prefill's state, converted back (state_from_onnx), drives the eager
        step: the same logits as the exported decode graph."""
        from bkmodel.export import state_from_onnx

        m, sess, _ = green_exported
        _, st = sess.prefill(_gids(2, 9, seed=4).numpy())
        eager = {str(i): s for i, s in enumerate(state_from_onnx(m, st))}
        tok = torch.tensor([3, 17])
        with torch.no_grad():
            for _ in range(4):
                ref = m._decode_step(tok, eager)
                logits, st = sess.step(tok.numpy(), st)
                assert _rel(logits, ref.numpy()) < GREEN_TOL
                tok = ref.argmax(-1)

    def test_greedy_generate_equals_eager(self, green_exported):
        m, sess, _ = green_exported
        ids = _gids(2, 5, seed=5)
        assert np.array_equal(sess.generate(ids.numpy(), 8), m.generate(ids, 8, temperature=0))

    def test_state_round_trip(self, green_exported):
        from bkmodel.export import state_from_onnx, state_to_onnx

        m, sess, _ = green_exported
        _, st = sess.prefill(_gids(2, 4, seed=6).numpy())
        back = state_to_onnx(m, state_from_onnx(m, st), 2)
        assert all(np.array_equal(back[n], st[n]) for n in st)

    def test_bad_state_is_refused(self, green_exported):
        m, sess, _ = green_exported
        _, st = sess.prefill(_gids(2, 4, seed=7).numpy())
        tok = np.zeros(2, dtype=np.int64)
        with pytest.raises(ValueError, match=r"state\['state.0.S_re'\] must have shape "
                                             r"\(2, 2, 16, 16\)"):
            sess.step(tok, {**st, "state.0.S_re": st["state.0.S_re"][..., :8]})
        with pytest.raises(ValueError, match="must be float64"):
            sess.step(tok, {**st, "state.1.S_im": st["state.1.S_im"].astype(np.float32)})

    def test_export_metadata(self, green_exported):
        """``bk export`` (the conv4 model) recorded the signature and its own check."""
        import json

        from bkmodel.export import META_NAME, state_names

        m, _, d = green_exported
        if m.config.conv_size == 0:  # exported through the Python API: no metadata
            assert not (d / META_NAME).exists()
            return
        meta = json.loads((d / META_NAME).read_text())
        assert meta["state"] == state_names(m)
        assert meta["forward"]["max_abs_diff_logits"] < 1e-5
        assert meta["decode"]["max_abs_diff_logits"] < 1e-5


@pytest.mark.parametrize("conv_size", [0, 1, 4])
def test_green_export_modules_in_eager_torch(conv_size):
    """The exported modules (_BKForward, _BKDecode) run as torch code equal the model's
    forward and step (conv_size = 1: a convolution without a tail state); no export."""
    from bkmodel import export as E
    from bkmodel.model import LanguageModel

    torch.manual_seed(0)
    m = LanguageModel(vocab_size=GREEN_V, d_model=32, n_layers=2, n_seq=16, n_channels=2,
                      layer="green", conv_size=conv_size, ffn="mlp").eval()
    ids = _gids(2, 11, seed=9)
    names = E.state_names(m)
    with torch.no_grad():
        ref_logits, _, ref_state = m(ids, return_state=True)
        logits, *state = E._BKForward(m)(ids)
        assert _rel(logits, ref_logits) < GREEN_TOL
        ref = E.state_to_onnx(m, ref_state, 2)
        for n, s in zip(names, state, strict=True):
            assert _rel(s, ref[n]) < GREEN_STATE_TOL, n
        states = {str(i): s for i, s in enumerate(ref_state)}
        tok = ref_logits[:, -1].argmax(-1)
        for _ in range(3):
            ref_l = m._decode_step(tok, states)
            logits, *state = E._BKDecode(m)(tok, tuple(state))
            assert _rel(logits, ref_l) < GREEN_TOL
            tok = ref_l.argmax(-1)
