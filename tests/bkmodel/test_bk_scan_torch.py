"""Chunked torch BK scan (``torch_scan.py``) against the naive loop, gradcheck, Herglotz."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bkmodel.ops.bk_scan import bk_scan
from bkmodel.ops.bk_scan.naive import bk_scan_naive
from bkmodel.ops.bk_scan.torch_scan import bk_scan_torch, bk_step, default_chunk

pytestmark = pytest.mark.usefixtures("one_torch_thread")

F64 = torch.float64


def rel_rms(x: torch.Tensor, ref: torch.Tensor) -> float:
    """||x - ref|| / ||ref|| (0 when both vanish)."""
    den = float(ref.double().norm())
    num = float((x.double() - ref.double()).norm())
    return num / den if den > 0 else num


def make_inputs(B, N, C, *, eta=None, scale=1.0, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    v = (scale * torch.randn(B, N, C, generator=g, dtype=F64)).to(dtype)
    lam = 2 * torch.randn(C, generator=g, dtype=F64)
    eta_ = torch.rand(C, generator=g, dtype=F64) + 0.2 if eta is None else torch.full((C,), eta)
    b = 2 * torch.rand(C, generator=g, dtype=F64) - 1
    return v, lam, eta_.to(F64), b


def value_and_grads(fn, v, lam, eta, b, seed=1):
    """Outputs and the gradients of a random linear functional of (Re g, Im g)."""
    v, lam, eta, b = (t.detach().clone().requires_grad_() for t in (v, lam, eta, b))
    g_re, g_im = fn(v, lam, eta, b)
    gen = torch.Generator().manual_seed(seed)
    w_re = torch.randn(g_re.shape, generator=gen, dtype=F64).to(g_re.dtype)
    w_im = torch.randn(g_re.shape, generator=gen, dtype=F64).to(g_re.dtype)
    loss = (g_re * w_re + g_im * w_im).sum()
    grads = torch.autograd.grad(loss, (v, lam, eta, b), allow_unused=True)
    grads = tuple(torch.zeros_like(t) if q is None else q for t, q in zip((v, lam, eta, b), grads,
                                                                             strict=True))
    return (g_re.detach(), g_im.detach()) + grads


NAMES = ("g_re", "g_im", "dv", "dlam", "deta", "db")


class TestAgainstNaive:
    # Both sides evaluate the same recurrence in float64. The chunk carries go through 2x2
    # Möbius products (renormalised), which lose about L * eps64 * kappa, kappa the
    # condition of the map; over 300 random stiff cases (eta down to 1e-4, |v| up to 1e3)
    # the worst relative error seen was 6.4e-12 (values and all four gradients). 1e-9 keeps
    # three orders of margin; a wrong term in the adjoint gives O(1) errors.
    TOL = 1e-9

    @pytest.mark.parametrize(
        "B,N,C,chunk",
        [(2, 63, 3, None), (2, 63, 3, 1), (1, 63, 2, 7), (3, 64, 1, 8), (2, 1, 2, None),
         (2, 2, 2, 1), (1, 100, 4, 100), (1, 257, 2, 16)],
        ids=lambda x: str(x),
    )
    def test_values_and_gradients(self, B, N, C, chunk):
        args = make_inputs(B, N, C, seed=N)
        ref = value_and_grads(bk_scan_naive, *args)
        out = value_and_grads(lambda *a: bk_scan_torch(*a, chunk=chunk), *args)
        for name, x, y in zip(NAMES, out, ref, strict=True):
            assert rel_rms(x, y) < self.TOL, name

    @pytest.mark.parametrize("eta,scale", [(1e-4, 1.0), (1e-4, 30.0), (1e-2, 1e5), (1.0, 1e-3)],
                             ids=["eta1e-4", "eta1e-4-v30", "v1e5", "tiny-v"])
    def test_stiff_cases(self, eta, scale):
        args = make_inputs(2, 150, 3, eta=eta, scale=scale, seed=7)
        ref = value_and_grads(bk_scan_naive, *args)
        out = value_and_grads(bk_scan_torch, *args)
        for name, x, y in zip(NAMES, out, ref, strict=True):
            assert rel_rms(x, y) < self.TOL, name

    def test_long_chunks_large_potentials(self):
        # Chunk maps are products of 100 matrices with entries ~1e5: ~1e500 without the
        # periodic renormalisation (float64 overflows at 1.8e308) — guards that rescaling.
        args = make_inputs(1, 300, 2, eta=1e-2, scale=1e5, seed=11)
        ref = value_and_grads(bk_scan_naive, *args)
        out = value_and_grads(lambda *a: bk_scan_torch(*a, chunk=100), *args)
        for name, x, y in zip(NAMES, out, ref, strict=True):
            assert rel_rms(x, y) < self.TOL, name

    @given(
        B=st.integers(1, 3), N=st.integers(1, 90), C=st.integers(1, 3),
        log_eta=st.floats(-4, 0), log_scale=st.floats(-2, 3),
        chunk_frac=st.floats(0, 1), seed=st.integers(0, 2**31 - 1),
    )
    def test_property(self, B, N, C, log_eta, log_scale, chunk_frac, seed):
        args = make_inputs(B, N, C, eta=10.0**log_eta, scale=10.0**log_scale, seed=seed)
        chunk = max(1, round(chunk_frac * N))
        ref = value_and_grads(bk_scan_naive, *args)
        out = value_and_grads(lambda *a: bk_scan_torch(*a, chunk=chunk), *args)
        for name, x, y in zip(NAMES, out, ref, strict=True):
            assert rel_rms(x, y) < self.TOL, name

    def test_float32_input(self):
        # Internally complex128: the only error is the final rounding to float32 (and the
        # float32 potentials, which are the same for both sides): a few eps32 relative.
        v, lam, eta, b = make_inputs(2, 200, 4, seed=3, dtype=torch.float32)
        g_re, g_im = bk_scan_torch(v, lam.float(), eta.float(), b.float())
        assert g_re.dtype == torch.float32 and g_im.dtype == torch.float32
        r_re, r_im = bk_scan_naive(v.double(), lam.float().double(), eta.float().double(),
                                   b.float().double())
        assert rel_rms(g_re, r_re) < 4 * torch.finfo(torch.float32).eps
        assert rel_rms(g_im, r_im) < 4 * torch.finfo(torch.float32).eps

    def test_dispatcher_uses_torch_backend(self):
        args = make_inputs(1, 33, 2, seed=2)
        a = bk_scan(*args, backend="torch")
        b_ = bk_scan_torch(*args)
        assert torch.equal(a[0], b_[0]) and torch.equal(a[1], b_[1])
        *_, stats = bk_scan(*args, backend="torch", return_stats=True)
        assert stats.tolist() == [0, 0, 0]


class TestGradcheck:
    @pytest.mark.parametrize("N,chunk", [(1, None), (9, 2), (13, 13), (17, 4)])
    def test_gradcheck_all_inputs(self, N, chunk):
        v, lam, eta, b = (t.requires_grad_() for t in make_inputs(2, N, 2, seed=N))
        assert torch.autograd.gradcheck(lambda *a: bk_scan_torch(*a, chunk=chunk),
                                        (v, lam, eta, b))

    def test_gradcheck_stiff(self):
        v, lam, eta, b = make_inputs(1, 12, 2, eta=1e-2, scale=3.0, seed=5)
        v, lam, eta, b = (t.requires_grad_() for t in (v, lam, eta, b))
        assert torch.autograd.gradcheck(lambda *a: bk_scan_torch(*a, chunk=5),
                                        (v, lam, eta, b), atol=1e-6, rtol=1e-5)

    def test_gradgrad_not_claimed(self):
        # The adjoint is a custom backward (once differentiable only): a double backward
        # must fail loudly, not return a silent wrong answer.
        v, lam, eta, b = (t.requires_grad_() for t in make_inputs(1, 5, 1))
        g_re, _ = bk_scan_torch(v, lam, eta, b)
        (gv,) = torch.autograd.grad(g_re.sum(), v, create_graph=True)
        with pytest.raises(RuntimeError, match="twice|does not require grad"):
            torch.autograd.grad(gv.sum(), v)


class TestHerglotz:
    @given(N=st.integers(1, 200), log_eta=st.floats(-4, 1), log_scale=st.floats(-3, 4),
           seed=st.integers(0, 2**31 - 1))
    def test_upper_half_plane_and_bound(self, N, log_eta, log_scale, seed):
        eta = 10.0**log_eta
        v, lam, eta_, b = make_inputs(2, N, 3, eta=eta, scale=10.0**log_scale, seed=seed,
                                      dtype=torch.float32)
        g_re, g_im = bk_scan_torch(v, lam, eta_, b)
        # exact: Im g >= eta |g|^2 > 0 and |g| <= 1/eta; float32 output rounding only.
        assert bool((g_im > 0).all())
        mod = torch.sqrt(g_re.double() ** 2 + g_im.double() ** 2)
        assert float(mod.max()) <= (1 + 1e-6) / eta


class TestStepAndChunk:
    def test_step_equals_scan(self):
        v, lam, eta, b = make_inputs(2, 20, 3, seed=9)
        g_re, g_im = bk_scan_torch(v, lam, eta, b, chunk=6)
        g = None
        for i in range(20):
            g = bk_step(v[:, i], lam, eta, b, g)
            assert torch.allclose(g.real, g_re[:, i], rtol=1e-12, atol=0)
            assert torch.allclose(g.imag, g_im[:, i], rtol=1e-12, atol=0)

    def test_default_chunk(self):
        for n in (1, 2, 100, 1024, 8192):
            L = default_chunk(n)
            assert 1 <= L and abs(L - math.sqrt(n / 2)) <= 1

    def test_bad_chunk(self):
        with pytest.raises(ValueError, match="chunk"):
            bk_scan_torch(*make_inputs(1, 4, 1), chunk=0)

    @pytest.mark.parametrize(
        "mutate,exc,match",
        [(lambda a: (a[0][0],) + a[1:], ValueError, "v must have shape"),
         (lambda a: (a[0].long(),) + a[1:], TypeError, "v must be a real floating"),
         (lambda a: (a[0].numpy(),) + a[1:], TypeError, "v must be a torch.Tensor"),
         (lambda a: (a[0], a[1][:1], a[2], a[3]), ValueError, "lam must have shape"),
         (lambda a: (a[0], a[1], a[2], a[3].tolist()), TypeError, "b must be a torch.Tensor"),
         (lambda a: (a[0], a[1], 0 * a[2], a[3]), ValueError, "eta must be > 0"),
         (lambda a: (a[0], a[1], -a[2], a[3]), ValueError, "eta must be > 0")],
        ids=["v-ndim", "v-int", "v-numpy", "lam-shape", "b-list", "eta-zero", "eta-negative"],
    )
    def test_bad_input(self, mutate, exc, match):
        with pytest.raises(exc, match=match):
            bk_scan_torch(*mutate(make_inputs(1, 4, 2)))

    def test_empty_sequence(self):
        g_re, g_im = bk_scan_torch(*make_inputs(2, 0, 3))
        assert g_re.shape == (2, 0, 3) and g_im.shape == (2, 0, 3)
