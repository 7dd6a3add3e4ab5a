"""Tests of ``bkmodel.ops.causal_conv``: the channels-last Triton causal depthwise
convolution against the ``F.conv1d`` reference, forward and all three gradients.

Without CUDA the kernels run in the Triton interpreter (``tests/conftest.py`` sets
``TRITON_INTERPRET=1``); they are never skipped. The reference is the naive path in float64
evaluated on the *same* (float32- or bfloat16-representable) inputs, so only the kernels'
arithmetic is measured.

Tolerances, elementwise, eps32 = 2^-23 (``_bound`` below computes each scale exactly by
running the reference on absolute values):

* y: K products and K + 1 additions (bias last) in float32: the classical bound
  ``|y - y64| <= gamma_{K+1} (|b| + sum_j |w_j| |u_j|)``, gamma_n ~ n eps32 / 2; we allow
  ``(K + 1) eps32`` times that scale (a factor 2 of margin), ``(K + 2) eps32`` for float64
  inputs (rounded to float32 on load);
* du: K taps: ``K eps32 (sum_j |w_j| |dy_{t+K-1-j}|)``;
* dw, dbias: sums of n = B T terms; the tolerance is ``4 sqrt(n) eps32 sum |dy u|`` (resp.
  ``sum |dy|``). It dominates the worst-case bound of the kernel's actual order (a tree of
  depth log2(BWD_BLOCK_T) = 4 per program, then a sum over the B ceil(T / 16) partials:
  ``(4 + n_partials + 1) eps32 / 2``) at every size tested here (at the GPU size, 256 vs 130
  eps32), and the typical error (random rounding, ~ eps32 relative to ``sum |dy u|``) is far
  below it;
* bfloat16 outputs (y, du of a bfloat16 u): the float32 bound doubled plus the final
  rounding to bfloat16, ``eps_bf16 |y64|`` (twice the unit roundoff 2^-8).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bkmodel.ops.causal_conv import causal_conv1d, causal_conv1d_naive

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPS32 = torch.finfo(torch.float32).eps
EPS_BF16 = torch.finfo(torch.bfloat16).eps
F64 = torch.float64


def _dev() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture
def poisoned_empty(monkeypatch):
    """``torch.empty`` / ``torch.empty_like`` return NaN-filled float tensors, so an output
    element or partial-sum slot the kernels forget to write shows up."""
    empty, empty_like = torch.empty, torch.empty_like

    def nan(t):
        return t.fill_(float("nan")) if t.is_floating_point() else t

    monkeypatch.setattr(torch, "empty", lambda *a, **k: nan(empty(*a, **k)))
    monkeypatch.setattr(torch, "empty_like", lambda *a, **k: nan(empty_like(*a, **k)))


def _inputs(B: int, T: int, C: int, K: int, bias: bool, seed: int,
            dtype: torch.dtype = torch.float32, wdtype: torch.dtype = torch.float32,
            device: torch.device | str = "cpu"):
    """u (B, T, C) in ``dtype``, weight (C, 1, K), bias (C,) or None in ``wdtype``, dy."""
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=F64)  # noqa: E731
    u, w, dy = r(B, T, C).to(dtype), (r(C, 1, K) / math.sqrt(K)).to(wdtype), r(B, T, C)
    b = r(C).to(wdtype) if bias else None
    dy = dy.to(dtype)
    return [None if x is None else x.to(device) for x in (u, w, b, dy)]


def _run(backend: str, u, w, b, dy, **kw):
    """(y, du, dw, dbias or None) of ``causal_conv1d``, everything on the CPU."""
    xs = [None if x is None else x.detach().clone().requires_grad_() for x in (u, w, b)]
    y = causal_conv1d(xs[0], xs[1], xs[2], backend=backend, **kw)
    live = [x for x in xs if x is not None]
    grads = list(torch.autograd.grad(y, live, dy))
    if b is None:
        grads.append(None)
    return [None if t is None else t.detach().cpu() for t in (y, *grads)]


def _ref(u, w, b, dy):
    """Float64 reference (y, du, dw, dbias) on the same input values."""
    to64 = [None if x is None else x.detach().cpu().to(F64) for x in (u, w, b, dy)]
    return _run("naive", *to64)


def _bound(u, w, b, dy):
    """Elementwise scales: |b| + sum |w||u| (y), sum |w||dy| (du), sum |dy||u| (dw),
    sum |dy| (dbias), from the reference on absolute values."""
    a = [None if x is None else x.detach().cpu().to(F64).abs() for x in (u, w, b, dy)]
    return _run("naive", *a)


def _check(out, ref, scale, *, K: int, n: int, y_extra: float = 0.0, y_eps: float = 0.0,
           du_eps: float = 0.0) -> None:
    """Every quantity within the module docstring's tolerances."""
    tols = ((K + 1) * EPS32 + y_extra, K * EPS32 + y_extra, 4 * math.sqrt(n) * EPS32,
            4 * math.sqrt(n) * EPS32)
    rel_eps = (y_eps, du_eps, 0.0, 0.0)
    for name, o, r, s, tol, e in zip(("y", "du", "dw", "dbias"), out, ref, scale, tols,
                                     rel_eps, strict=True):
        if r is None:
            assert o is None, name
            continue
        assert o.shape == r.shape, name
        err = (o.to(F64) - r).abs()
        lim = tol * s + e * r.abs()
        worst = float((err - lim).max())
        assert worst <= 0, (f"{name}: max |err| {float(err.max()):.3e} exceeds the bound by "
                            f"{worst:.3e} (tol {tol:.2e} x scale)")


# --------------------------------------------------------------------------------------------
# the Triton kernels against the float64 reference
# --------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("poisoned_empty")
class TestTritonVsReference:
    @settings(max_examples=15, deadline=None)
    @given(B=st.integers(1, 2), T=st.one_of(st.integers(1, 70), st.sampled_from([63, 65, 70])),
           C=st.integers(1, 40), K=st.integers(1, 5), bias=st.booleans(),
           seed=st.integers(0, 2**16))
    def test_property_float32(self, B, T, C, K, bias, seed):
        # T odd, T < K, T not a multiple of the block (16) and several blocks all drawn
        u, w, b, dy = _inputs(B, T, C, K, bias, seed, device=_dev())
        out = _run("triton", u, w, b, dy)
        assert out[0].dtype == torch.float32 and out[0].is_contiguous()
        _check(out, _ref(u, w, b, dy), _bound(u, w, b, dy), K=K, n=B * T)

    @pytest.mark.parametrize(("T", "C", "K", "bt", "bc"),
                             [(37, 40, 4, 16, 16), (9, 33, 5, 8, 32), (3, 17, 4, 16, 8)],
                             ids=lambda v: str(v))
    def test_small_blocks(self, T, C, K, bt, bc):
        # several blocks along T and C (and T < K): the host wrappers with small tiles
        from bkmodel.ops.causal_conv.triton_conv import causal_conv1d_bwd, causal_conv1d_fwd

        B = 2
        u, w, b, dy = _inputs(B, T, C, K, True, 7, device=_dev())
        w2 = w.reshape(C, K).contiguous()
        y = causal_conv1d_fwd(u, w2, b, block_t=bt, block_c=bc)
        du, dw, db = causal_conv1d_bwd(dy, u, w2, b, block_t=bt, block_c=bc)
        out = [t.cpu() for t in (y, du, dw.reshape(C, 1, K), db)]
        _check(out, _ref(u, w, b, dy), _bound(u, w, b, dy), K=K, n=B * T)

    def test_bfloat16(self):
        # bf16 u and dy with float32 parameters (the model under autocast)
        B, T, C, K = 2, 67, 24, 4
        u, w, b, dy = _inputs(B, T, C, K, True, 3, dtype=torch.bfloat16, device=_dev())
        out = _run("triton", u, w, b, dy)
        assert [t.dtype for t in out] == [torch.bfloat16, torch.bfloat16, torch.float32,
                                          torch.float32]
        _check(out, _ref(u, w, b, dy), _bound(u, w, b, dy), K=K, n=B * T,
               y_extra=(K + 1) * EPS32, y_eps=EPS_BF16, du_eps=EPS_BF16)

    def test_float64_computed_in_float32(self):
        B, T, C, K = 1, 45, 12, 3
        u, w, b, dy = _inputs(B, T, C, K, True, 4, dtype=F64, wdtype=F64, device=_dev())
        out = _run("triton", u, w, b, dy)
        assert all(t.dtype == F64 for t in out)
        # each input rounded to float32 once on load: one more eps32 per term
        _check(out, _ref(u, w, b, dy), _bound(u, w, b, dy), K=K, n=B * T, y_extra=2 * EPS32)

    def test_non_contiguous_u_and_weight_shapes(self):
        B, T, C, K = 2, 20, 10, 4
        u, w, b, dy = _inputs(B, T, C, K, True, 5, device=_dev())
        u_nc = u.transpose(1, 2).contiguous().transpose(1, 2)  # (B, T, C), strides of (B, C, T)
        assert not u_nc.is_contiguous()
        ref = _run("triton", u, w, b, dy)
        for uu, ww in ((u_nc, w), (u, w.reshape(C, K))):
            out = _run("triton", uu, ww, b, dy)
            assert out[2].shape == ww.shape
            out[2] = out[2].reshape(C, 1, K)
            for o, r in zip(out, ref, strict=True):
                assert torch.equal(o, r)

    def test_deterministic(self):
        u, w, b, dy = _inputs(2, 70, 9, 4, True, 6, device=_dev())
        a, c = _run("triton", u, w, b, dy), _run("triton", u, w, b, dy)
        for x, y in zip(a, c, strict=True):
            assert torch.equal(x, y)


# --------------------------------------------------------------------------------------------
# the reference and the dtype rules
# --------------------------------------------------------------------------------------------
class TestNaive:
    def test_equals_model_conv(self):
        # exactly the transposed nn.Conv1d path of GreenBKLayer
        B, T, C, K = 2, 13, 6, 4
        conv = torch.nn.Conv1d(C, C, K, groups=C, padding=K - 1).double()
        u = torch.randn(B, T, C, dtype=F64)
        want = conv(u.transpose(1, 2))[..., :T].transpose(1, 2)
        got = causal_conv1d(u, conv.weight, conv.bias, backend="naive")
        assert got.is_contiguous() and torch.equal(got, want)

    def test_definition(self):
        # y_t = bias + sum_j w_j u_{t-(K-1)+j}, zero before t = 0, by an explicit loop
        B, T, C, K = 1, 7, 3, 3
        u = torch.randn(B, T, C, dtype=F64)
        w, b = torch.randn(C, K, dtype=F64), torch.randn(C, dtype=F64)
        want, scale = b.expand(B, T, C).clone(), b.abs().expand(B, T, C).clone()
        for t in range(T):
            for j in range(K):
                s = t - (K - 1) + j
                if s >= 0:
                    want[:, t] += w[:, j] * u[:, s]
                    scale[:, t] += (w[:, j] * u[:, s]).abs()
        err = (causal_conv1d(u, w, b, backend="naive") - want).abs()
        assert bool((err <= 2 * (K + 1) * torch.finfo(F64).eps * scale).all())

    def test_autocast_dtype(self):
        u = torch.randn(1, 9, 4).to(torch.bfloat16)
        w, b = torch.randn(4, 1, 3), torch.randn(4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert causal_conv1d(u, w, b, backend="naive").dtype == torch.bfloat16
            assert causal_conv1d(u.float(), w, b, backend="naive").dtype == torch.float32

    def test_auto_on_cpu_is_naive(self):
        u, w = torch.randn(1, 5, 2, dtype=F64), torch.randn(2, 1, 3, dtype=F64)
        assert torch.equal(causal_conv1d(u, w), causal_conv1d_naive(u, w))


# --------------------------------------------------------------------------------------------
# custom ops
# --------------------------------------------------------------------------------------------
class TestCustomOps:
    @pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
    def test_opcheck_forward(self, bias):
        from bkmodel.ops.causal_conv.custom_op import _causal_conv1d

        u, w, b, _ = _inputs(2, 11, 5, 3, bias, 8, device=_dev())
        args = (u.requires_grad_(), w.reshape(5, 3).contiguous().requires_grad_(),
                None if b is None else b.requires_grad_())
        torch.library.opcheck(_causal_conv1d, args)

    @pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
    def test_opcheck_backward(self, bias):
        from bkmodel.ops.causal_conv.custom_op import _causal_conv1d_bwd

        u, w, b, dy = _inputs(2, 11, 5, 3, bias, 9, device=_dev())
        torch.library.opcheck(_causal_conv1d_bwd, (dy, u, w.reshape(5, 3).contiguous(), b))

    def test_compile_fullgraph(self):
        # the fakes and the registered backward under Dynamo / AOTAutograd, no graph break
        u, w, b, dy = _inputs(1, 21, 6, 4, True, 10, device=_dev())
        fn = torch.compile(lambda u, w, b: causal_conv1d(u, w, b, backend="triton"),
                           backend="aot_eager", fullgraph=True)
        xs = [x.clone().requires_grad_() for x in (u, w, b)]
        y = fn(*xs)
        got = [y.detach(), *torch.autograd.grad(y, xs, dy)]
        for o, r in zip(got, _run("triton", u, w, b, dy), strict=True):
            assert torch.equal(o.cpu(), r)


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------
class TestBadInput:
    @pytest.mark.parametrize(("case", "exc", "name"), [
        ("u_2d", ValueError, "u"), ("u_int", TypeError, "u"), ("T0", ValueError, "u"),
        ("C_mismatch", ValueError, "weight"), ("w_4d", ValueError, "weight"),
        ("K9", ValueError, "weight"), ("w_int", TypeError, "weight"),
        ("bias_shape", ValueError, "bias"), ("bias_int", TypeError, "bias"),
        ("w_device", ValueError, "weight"), ("backend", ValueError, "backend"),
    ])
    def test_message_names_argument(self, case, exc, name):
        u, w, b = torch.randn(2, 5, 4), torch.randn(4, 1, 3), torch.randn(4)
        backend = "triton"
        if case == "u_2d":
            u = u[0]
        elif case == "u_int":
            u = u.long()
        elif case == "T0":
            u = u[:, :0]
        elif case == "C_mismatch":
            w = torch.randn(5, 1, 3)
        elif case == "w_4d":
            w = w[None]
        elif case == "K9":
            w = torch.randn(4, 1, 9)
        elif case == "w_int":
            w = w.int()
        elif case == "bias_shape":
            b = torch.randn(3)
        elif case == "bias_int":
            b = b.long()
        elif case == "w_device":
            w = w.to("meta")
        elif case == "backend":
            backend = "cudnn"
        with pytest.raises(exc, match=rf"^{name}\b"):
            causal_conv1d(u, w, b, backend=backend)


# --------------------------------------------------------------------------------------------
# GPU: the model's size, compiled kernels
# --------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_gpu_model_size(cuda_device, dtype):
    B, T, C, K = 2, 2048, 792, 4
    u, w, b, dy = _inputs(B, T, C, K, True, 11, dtype=dtype, device=cuda_device)
    out = _run("auto", u, w, b, dy)  # auto = triton on CUDA
    low = dtype == torch.bfloat16
    _check(out, _ref(u, w, b, dy), _bound(u, w, b, dy), K=K, n=B * T,
           y_extra=(K + 1) * EPS32 if low else 0.0, y_eps=EPS_BF16 if low else 0.0,
           du_eps=EPS_BF16 if low else 0.0)
