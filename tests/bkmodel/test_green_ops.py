"""The real-arithmetic and Triton forms of Green's-function attention
(``bkmodel/ops/green_attn/{real,triton_chunk}.py``) against the sequential reference
``naive.py`` in float64: values, final state and every gradient, with resets and an initial
state; the backend resolver; bad input; the Triton custom ops (``custom_op.py``):
``opcheck``, no graph break under Dynamo, compiled (aot_eager, fullgraph) == eager.

Without CUDA the Triton kernels run in the interpreter (``tests/conftest.py`` sets
``TRITON_INTERPRET=1`` before anything imports Triton); they are never skipped: a failing
``import triton`` fails the Triton tests with that message.

Tolerances.

* real, float64: it forms the same sums of <= T products of <= T factors as the reference,
  so the error is a few T eps of the output's scale: 64 T eps64 (as ``test_green.py``).
* triton, float32: the kernel and the torch real form on float32 input evaluate the same
  sums in a different order (both errors are dominated by the float32 rounding of the
  inputs; measured ratio 0.3-2), so the kernel's relative-RMS error against float64 must be
  within 4x the torch real form's float32 error plus ``T eps32`` (a floor for cases where
  the torch error happens to be ~0). Gradients: the same rule, gradient by gradient.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bkmodel.ops.green_attn as green_ops
from bkmodel.ops.green_attn import green_attention, resolve_green_backend
from bkmodel.ops.green_attn.real import green_attention_real
from tests.bkmodel import _green_helpers
from tests.bkmodel._green_helpers import (
    _dev,
    _import_kernels,
    _inputs,
    _opcheck_backward,
    _opcheck_forward,
    _run,
    _to32,
    _weights,
    rel,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
poisoned_empty = _green_helpers.poisoned_empty  # the fixture, for usefixtures

EPS64 = torch.finfo(torch.float64).eps
EPS32 = torch.finfo(torch.float32).eps
NAMES = ("q", "k", "v", "g", "a", "S0")


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def triton_backend():
    """Import the Triton module, failing (never skipping) with the reason when it cannot."""
    return _import_kernels("triton_chunk", "the Triton kernels")


# ----------------------------------------------------------------------------- real form


class TestReal:
    @settings(max_examples=40, deadline=None)
    @given(B=st.integers(1, 2), T=st.integers(1, 70), H=st.integers(1, 2),
           dk=st.sampled_from([16, 32]), dv=st.sampled_from([16, 32]),
           L=st.sampled_from([1, 5, 16, 64]), reset_p=st.sampled_from([0.0, 0.1]),
           carry=st.booleans(), decay=st.sampled_from([0.5, 0.99, 1.3]),
           seed=st.integers(0, 10**6))
    def test_equals_sequential_reference(self, B, T, H, dk, dv, L, reset_p, carry, decay,
                                         seed):
        q, k, v, g, a, reset, S0 = _inputs(B, T, H, dk, dv, seed, reset_p, decay)
        rs = reset if reset_p else None
        s0 = S0 if carry else None
        y1, s1 = green_attention(q, k, v, g, a, reset=rs, initial_state=s0, backend="naive")
        yr, yi, (sr, si) = green_attention_real(
            q, k, v, g.real, g.imag, a.real, a.imag, reset=rs,
            initial_state=None if s0 is None else (s0.real, s0.imag), chunk_size=L)
        assert yr.dtype == torch.float64 and sr.dtype == torch.float64
        scale = 1.0 + float(y1.abs().max())
        assert float((torch.complex(yr, yi) - y1).abs().max()) <= 64 * T * EPS64 * scale
        sscale = 1.0 + float(s1.abs().max())
        assert float((torch.complex(sr, si) - s1).abs().max()) <= 64 * T * EPS64 * sscale

    def test_gradcheck_all_inputs(self):
        # every real input, resets (one inside a chunk, one at a chunk start) and S_0
        q, k, v, g, a, _, S0 = _inputs(1, 8, 2, 2, 3, seed=3)
        reset = torch.zeros(1, 8, dtype=torch.bool)
        reset[0, 3] = reset[0, 6] = True
        xs = tuple(t.clone().requires_grad_() for t in
                   (q, k, v, g.real, g.imag, a.real, a.imag, S0.real, S0.imag))

        def f(*x):
            yr, yi, (sr, si) = green_attention_real(*x[:7], reset=reset,
                                                    initial_state=(x[7], x[8]), chunk_size=3)
            return yr, yi, sr, si

        assert torch.autograd.gradcheck(f, xs, eps=1e-6, atol=1e-7)

    def test_gradcheck_complex_boundary(self):
        # the "real" backend behind the complex API: gradients reach complex g, a and S_0
        q, k, v, g, a, reset, S0 = _inputs(1, 7, 1, 2, 2, seed=6, reset_p=0.2)
        xs = tuple(t.clone().requires_grad_() for t in (q, k, v, g, a, S0))

        def f(*x):
            y, s = green_attention(*x[:5], reset=reset, initial_state=x[5], backend="real",
                                   chunk_size=3)
            return torch.view_as_real(y), torch.view_as_real(s)

        assert torch.autograd.gradcheck(f, xs, eps=1e-6, atol=1e-7)

    def test_gradients_match_chunk_backend(self):
        q, k, v, g, a, reset, S0 = _inputs(2, 29, 2, 16, 16, seed=5, reset_p=0.1)
        W = _weights(2, 29, 2, 16, 16, seed=5)
        ref = _run("chunk", (q, k, v, g, a, S0), reset, 8, W)
        out = _run("real", (q, k, v, g, a, S0), reset, 8, W)
        for name, x, y in zip(("y", "S", *NAMES), out, ref, strict=True):
            assert rel(x, y) <= 1e-12, name

    def test_long_stream_phases_stay_accurate(self):
        # |a| ~ 1 and fast rotation: the phase sums grow like T (here ~ 1e4 rad) while the
        # state remembers the whole stream; float32 must stay near float32 accuracy.
        B, T, H, dk, dv = 1, 4000, 1, 2, 2
        gen = torch.Generator().manual_seed(9)
        q, k, v = (torch.randn(B, T, H, d, generator=gen, dtype=torch.float64)
                   for d in (dk, dk, dv))
        g = torch.complex(torch.randn(B, T, H, generator=gen, dtype=torch.float64),
                          torch.ones(B, T, H, dtype=torch.float64))
        a = 0.9995 * torch.exp(1j * (2.5 + 0.1 * torch.rand(B, T, H, generator=gen,
                                                              dtype=torch.float64)))
        y1, s1 = green_attention(q, k, v, g, a, backend="naive")
        # measured: real 5e-7 (the sequential loop in complex64: 1e-6); chunk.py drifted to
        # 2e-4 while it summed log a in float32, and now sums it in float64 like real.py
        for backend in ("real", "chunk"):
            y2, s2 = green_attention(*_to32([q, k, v, g, a]), backend=backend)
            assert rel(y2, y1) < 3e-6 and rel(s2, s1) < 3e-6, backend

    def test_bf16_autocast(self):
        # matmuls may run in bf16; outputs and state are float32 and near the float32 result
        q, k, v, g, a, reset, S0 = _to32(_inputs(1, 40, 2, 16, 16, seed=4, reset_p=0.1))
        args = (q, k, v, g.real, g.imag, a.real, a.imag)
        kw = dict(reset=reset, initial_state=(S0.real, S0.imag), chunk_size=16)
        yr, yi, (sr, si) = green_attention_real(*args, **kw)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            br, bi, (tr, ti) = green_attention_real(*args, **kw)
        assert br.dtype == bi.dtype == tr.dtype == torch.float32
        assert rel(torch.complex(br, bi), torch.complex(yr, yi)) < 3e-2
        assert rel(torch.complex(tr, ti), torch.complex(sr, si)) < 3e-2

    @pytest.mark.parametrize("bad,match", [
        (dict(k=torch.zeros(1, 4, 2, 3)), "q and k"),
        (dict(v=torch.zeros(1, 4, 1, 3)), "v must"),
        (dict(g_re=torch.zeros(1, 4, 1)), "g_re must"),
        (dict(a_im=torch.zeros(1, 4, 2, dtype=torch.complex64)), "a_im must"),
        (dict(reset=torch.zeros(1, 4)), "reset must"),
        (dict(initial_state=torch.zeros(1, 2, 2, 3)), "initial_state must"),
        (dict(initial_state=(torch.zeros(1, 2, 2, 3), torch.zeros(1, 2, 3, 3))),
         "initial_state must"),
        (dict(chunk_size=0), "chunk_size must"),
    ], ids=lambda x: "-".join(x) if isinstance(x, dict) else None)
    def test_bad_input(self, bad, match):
        kw = dict(q=torch.zeros(1, 4, 2, 2), k=torch.zeros(1, 4, 2, 2), v=torch.zeros(1, 4, 2, 3),
                  g_re=torch.zeros(1, 4, 2), g_im=torch.zeros(1, 4, 2),
                  a_re=torch.zeros(1, 4, 2), a_im=torch.zeros(1, 4, 2))
        kw.update(bad)
        with pytest.raises(ValueError, match=match):
            green_attention_real(**kw)


# ----------------------------------------------------------------------------- Triton


def _check_triton(B, T, H, dk, dv, L, reset_p, carry, decay, seed):
    """Triton (float32) vs naive (float64), judged against the torch real form in float32."""
    q, k, v, g, a, reset, S0 = _inputs(B, T, H, dk, dv, seed, reset_p, decay)
    rs = reset if reset_p else None
    xs = (q, k, v, g, a, S0 if carry else torch.zeros_like(S0))
    W = _weights(B, T, H, dv, dk, seed)
    ref = _run("naive", xs, rs, L, W)
    real32 = _run("real", _to32(xs), rs, L, W)
    tri = _run("triton", _to32(xs), rs, L, W)
    assert tri[0].dtype == torch.complex64 and tri[1].dtype == torch.complex64
    for name, x, y, z in zip(("y", "S", *NAMES), tri, real32, ref, strict=True):
        assert torch.isfinite(x).all(), name
        err, base = rel(x, z), rel(y, z)
        assert err <= 4 * base + T * EPS32, (name, err, base)


class TestTriton:
    @settings(max_examples=15, deadline=None)
    @given(B=st.integers(1, 2), T=st.integers(1, 70), H=st.integers(1, 2),
           dk=st.sampled_from([16, 32]), dv=st.sampled_from([16, 32]),
           L=st.sampled_from([16, 32, 64]), reset_p=st.sampled_from([0.0, 0.1]),
           carry=st.booleans(), decay=st.sampled_from([0.5, 0.99, 1.3]),
           seed=st.integers(0, 10**6))
    def test_values_and_gradients_equal_reference(self, triton_backend, B, T, H, dk, dv, L,
                                                  reset_p, carry, decay, seed):
        _check_triton(B, T, H, dk, dv, L, reset_p, carry, decay, seed)

    @pytest.mark.usefixtures("poisoned_empty")
    def test_odd_length_many_chunks_resets_state(self, triton_backend):
        # T = 67: four full chunks and a partial one, resets inside and at a chunk start,
        # two value blocks (dv = 64, BV = 32); NaN-poisoned torch.empty
        _check_triton(2, 67, 2, 16, 64, 16, 0.1, True, 0.99, seed=11)

    def test_reset_at_chunk_start_and_first_token(self, triton_backend):
        q, k, v, g, a, _, S0 = _inputs(1, 40, 1, 16, 16, seed=12)
        reset = torch.zeros(1, 40, dtype=torch.bool)
        reset[0, 0] = reset[0, 16] = reset[0, 31] = True
        y1, s1 = green_attention(q, k, v, g, a, reset=reset, initial_state=S0, backend="naive")
        d = _dev()
        y2, s2 = green_attention(*(x.to(d) for x in _to32([q, k, v, g, a])), reset=reset.to(d),
                                 initial_state=S0.to(torch.complex64).to(d), backend="triton",
                                 chunk_size=16)
        assert rel(y2.cpu(), y1) < 1e-5 and rel(s2.cpu(), s1) < 1e-5

    def test_bf16_inputs(self, triton_backend):
        # bf16 q, k, v: float32 outputs near the float32 run on the same (rounded) values
        q, k, v, g, a, reset, S0 = _to32(_inputs(1, 33, 2, 16, 32, seed=13))
        qb, kb, vb = (x.bfloat16() for x in (q, k, v))
        y1, s1 = green_attention(qb.float(), kb.float(), vb.float(), g, a, initial_state=S0,
                                 backend="real")
        d = _dev()
        xs = [t.to(d).clone().requires_grad_() for t in (qb, kb, vb)]
        y2, s2 = green_attention(*xs, g.to(d), a.to(d), initial_state=S0.to(d), backend="triton")
        assert y2.dtype == torch.complex64
        assert rel(y2.cpu(), y1) < 2e-2 and rel(s2.cpu(), s1) < 2e-2
        (y2.abs().square().sum()).backward()
        assert all(x.grad is not None and x.grad.dtype == torch.bfloat16 for x in xs)

    @pytest.mark.parametrize("dk,dv,L,match", [
        (8, 16, 16, "dk a power of two"), (24, 16, 16, "dk a power of two"),
        (16, 48, 16, "dv a power of two"), (16, 16, 48, "chunk_size must"),
        (16, 16, 8, "chunk_size must")], ids=lambda x: str(x))
    def test_bad_input(self, triton_backend, dk, dv, L, match):
        z = torch.zeros(1, 4, 1)
        with pytest.raises(ValueError, match=match):
            triton_backend.green_attention_triton(
                torch.zeros(1, 4, 1, dk), torch.zeros(1, 4, 1, dk), torch.zeros(1, 4, 1, dv),
                z, z, z, z, chunk_size=L)
        with pytest.raises(ValueError, match="g_re must"):
            triton_backend.green_attention_triton(
                torch.zeros(1, 4, 1, 16), torch.zeros(1, 4, 1, 16), torch.zeros(1, 4, 1, 16),
                torch.zeros(1, 5, 1), z, z, z)


# ----------------------------------------------------------------------------- resolver


class TestResolveBackend:
    @pytest.mark.parametrize("scan,device,want", [
        ("auto", "cpu", "chunk"), ("torch", "cpu", "chunk"), ("torch", "cuda", "chunk"),
        ("naive", "cpu", "naive"), ("auto", "cuda", "triton_par"), ("triton", "cpu", "triton")])
    def test_mapping(self, scan, device, want):
        assert resolve_green_backend(scan, device) == want

    @pytest.mark.parametrize("sizes,want", [
        ((64, 64, 64), "triton_par"), ((32, 16, 16), "triton_par"), ((24, 64, 64), "chunk"),
        ((64, 8, 64), "chunk"), ((64, 64, 256), "chunk"), ((512, 64, 64), "chunk")])
    def test_auto_falls_back_on_unsupported_sizes(self, sizes, want):
        # a model whose head sizes the kernel does not take still runs (chunk) under auto
        assert resolve_green_backend("auto", "cuda", sizes) == want
        assert resolve_green_backend("auto", "cpu", sizes) == "chunk"
        assert resolve_green_backend("torch", "cuda", sizes) == "chunk"

    def test_without_triton(self, monkeypatch):
        monkeypatch.setattr(green_ops, "_HAS_TRITON", False)
        assert resolve_green_backend("auto", "cuda") == "chunk"
        with pytest.raises(ValueError, match="scan_backend='triton'"):
            resolve_green_backend("triton", "cuda")

    def test_bad_value(self):
        with pytest.raises(ValueError, match="scan_backend must be"):
            resolve_green_backend("fast", "cpu")

    def test_unknown_backend_names_argument(self):
        z = torch.zeros(1, 3, 1, 2)
        c = torch.zeros(1, 3, 1, dtype=torch.complex64)
        with pytest.raises(ValueError, match="backend must be one of"):
            green_attention(z, z, z, c, c, backend="fast")


# ----------------------------------------------------------------------------- model


def test_model_triton_backend_matches_torch(triton_backend):
    # GreenBKLayer with scan_backend="triton" (BK scan and Green attention in the
    # interpreter) against scan_backend="torch": logits and the loss gradient
    from bkmodel.model import LanguageModel

    cfg = dict(vocab_size=29, d_model=32, n_layers=1, n_seq=64, n_channels=2, ffn="mlp",
               layer="green", chunk_size=16)
    x = torch.randint(0, 29, (2, 21), generator=torch.Generator().manual_seed(3))
    reset = torch.zeros(2, 21, dtype=torch.bool)
    reset[1, 9] = True
    out = []
    for backend in ("torch", "triton"):
        torch.manual_seed(0)
        d = _dev() if backend == "triton" else torch.device("cpu")  # CUDA when present
        m = LanguageModel(**cfg, scan_backend=backend).to(d)
        logits, loss = m(x[:, :-1].to(d), x[:, 1:].to(d), reset=reset[:, :-1].to(d))
        loss.backward()
        out.append((logits.detach().cpu(), [p.grad.cpu() for p in m.parameters()]))
    assert rel(out[1][0], out[0][0]) < 1e-5
    for g1, g0 in zip(out[1][1], out[0][1], strict=True):
        assert rel(g1, g0) < 1e-4


def test_layer_state_through_real_pair_path(triton_backend):
    # the layer hands the Triton kernels real/imaginary pairs (no complex tensors): the
    # carried state in, the final state out and the output match the complex torch path
    from bkmodel.config import ModelConfig
    from bkmodel.model import GreenBKLayer

    out = []
    for backend in ("torch", "triton"):
        torch.manual_seed(0)
        layer = GreenBKLayer(ModelConfig(vocab_size=29, d_model=32, n_layers=1, n_seq=64,
                                         n_channels=2, ffn="mlp", layer="green",
                                         chunk_size=16, scan_backend=backend))
        h = torch.randn(2, 19, 32, generator=torch.Generator().manual_seed(1))
        y1, *_, st = layer(h[:, :11], return_state=True)
        y2, *_, st2 = layer(h[:, 11:], state=st, return_state=True)
        out.append((torch.cat([y1, y2], 1).detach(), st2["S"].detach(), st2["g"].detach()))
    for a, b in zip(out[1], out[0], strict=True):
        assert a.dtype == b.dtype
        assert rel(a, b) < 1e-5


# ----------------------------------------------------------------------------- custom op


class TestGreenTritonOp:
    """``bkmodel::green_triton`` / ``_bwd`` (``custom_op.py``): registration, no graph break
    under Dynamo, compiled == eager. Under the interpreter (CPU) every check runs."""

    @pytest.mark.parametrize("with_s0", [True, False], ids=["s0", "no_s0"])
    def test_opcheck_forward(self, triton_backend, with_s0):
        from bkmodel.ops.green_attn.custom_op import _green_triton

        _opcheck_forward(_green_triton, with_s0)

    @pytest.mark.parametrize("with_s0", [True, False], ids=["s0", "no_s0"])
    def test_opcheck_backward(self, triton_backend, with_s0):
        from bkmodel.ops.green_attn.custom_op import _green_triton_bwd

        _opcheck_backward(_green_triton_bwd, with_s0)

    @staticmethod
    def _fn(q, k, v, g, a, S0, reset):
        return green_attention(q, k, v, g, a, reset=reset, initial_state=S0, backend="triton",
                               chunk_size=16)

    def _xs(self):
        q, k, v, g, a, reset, S0 = _to32(_inputs(2, 21, 2, 16, 32, seed=23, reset_p=0.1))
        return [x.to(_dev()) for x in (q, k, v, g, a, S0)], reset.to(_dev())

    def test_no_graph_break(self, triton_backend):
        xs, reset = self._xs()
        torch._dynamo.reset()
        ex = torch._dynamo.explain(self._fn)(*xs, reset)
        assert ex.graph_break_count == 0, [r.reason for r in ex.break_reasons]
        assert ex.graph_count == 1

    def test_fullgraph_matches_eager(self, triton_backend):
        """aot_eager, ``fullgraph=True``: y, S_T and the gradients of q, k, v, g, a, S0."""
        xs, reset = self._xs()
        W = _weights(2, 21, 2, 32, 16, seed=23)
        W = [w.to(torch.complex64).to(_dev()) for w in W]
        torch._dynamo.reset()
        fc = torch.compile(self._fn, backend="aot_eager", fullgraph=True)
        out = []
        for f in (fc, self._fn):
            ins = [x.detach().clone().requires_grad_() for x in xs]
            y, s = f(*ins, reset)
            loss = (y * W[0].conj()).real.sum() + (s * W[1].conj()).real.sum()
            out.append([y.detach(), s.detach(), *torch.autograd.grad(loss, ins)])
        for name, c, e in zip(("y", "S", *NAMES), *out, strict=True):
            assert c.dtype == e.dtype and c.shape == e.shape, name
            assert rel(c, e) <= 4 * EPS32, (name, rel(c, e))

    @pytest.mark.skipif(not torch.cuda.is_available(),
                        reason="Inductor with the compiled Triton kernels needs CUDA; on CPU "
                               "the op path under compile is covered by "
                               "TestGreenTritonOp.test_fullgraph_matches_eager (aot_eager)")
    def test_inductor_matches_eager_cuda(self, triton_backend):  # pragma: no cover - GPU only
        xs, reset = self._xs()
        torch._dynamo.reset()
        fc = torch.compile(self._fn, fullgraph=True)
        out = []
        for f in (fc, self._fn):
            ins = [x.detach().clone().requires_grad_() for x in xs]
            y, s = f(*ins, reset)
            loss = y.abs().square().sum() + s.abs().sum()
            out.append([y.detach(), s.detach(), *torch.autograd.grad(loss, ins)])
        for name, c, e in zip(("y", "S", *NAMES), *out, strict=True):
            assert rel(c, e) <= 1e-5, (name, rel(c, e))
