"""Chunked torch BK scan (``torch_scan.py``) against the naive loop, gradcheck, Herglotz."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bkmodel.ops.bk_scan import bk_scan, scan_stats
from bkmodel.ops.bk_scan.naive import bk_scan_naive
from bkmodel.ops.bk_scan.torch_scan import bk_scan_torch, bk_step, default_chunk

pytestmark = pytest.mark.usefixtures("one_torch_thread")

F64 = torch.float64


def rel_rms(x: torch.Tensor, ref: torch.Tensor) -> float:
    """||x - ref|| / ||ref|| (0 when both vanish); complex tensors as (re, im) pairs."""
    if x.is_complex() or ref.is_complex():
        x, ref = torch.view_as_real(x.to(torch.complex128)), torch.view_as_real(
            ref.to(torch.complex128))
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


# ----------------------------------------------------------------------------- selective scan
# Per-token eta and b (B, N, C) and the initial state g_0 (issue 13): the same recurrence
# with alpha_i = v_i - lam - i eta_i, beta_i = b_i^2 and g_0 given.


def make_selective(B, N, C, *, eta_tok=True, b_tok=True, g0=False, eta_min=0.2, scale=1.0,
                   seed=0):
    """(v, lam, eta, b, g0): eta >= eta_min and b per token where asked, g0 complex (B, C)
    with Im g0 > 0 (a Herglotz state) or None."""
    g = torch.Generator().manual_seed(seed)
    v = scale * torch.randn(B, N, C, generator=g, dtype=F64)
    lam = 2 * torch.randn(C, generator=g, dtype=F64)
    shape_e = (B, N, C) if eta_tok else (C,)
    shape_b = (B, N, C) if b_tok else (C,)
    eta = torch.rand(shape_e, generator=g, dtype=F64) + eta_min
    b = 2 * torch.rand(shape_b, generator=g, dtype=F64) - 1
    s = None
    if g0:
        s = torch.complex(torch.randn(B, C, generator=g, dtype=F64),
                          torch.rand(B, C, generator=g, dtype=F64) + 0.1)
    return v, lam, eta, b, s


def value_and_grads_g0(fn, v, lam, eta, b, g0, seed=1):
    """Like ``value_and_grads`` with the initial state as a fifth input (its gradient is
    complex: dL/dRe g0 + i dL/dIm g0, torch's convention)."""
    xs = [t.detach().clone().requires_grad_() for t in (v, lam, eta, b)]
    s = None if g0 is None else g0.detach().clone().requires_grad_()
    g_re, g_im = fn(*xs, s)
    gen = torch.Generator().manual_seed(seed)
    w_re = torch.randn(g_re.shape, generator=gen, dtype=F64).to(g_re.dtype)
    w_im = torch.randn(g_re.shape, generator=gen, dtype=F64).to(g_re.dtype)
    loss = (g_re * w_re + g_im * w_im).sum()
    leaves = xs + ([] if s is None else [s])
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    grads = [torch.zeros_like(t) if q is None else q for t, q in zip(leaves, grads, strict=True)]
    return [g_re.detach(), g_im.detach()] + grads


NAMES_G0 = NAMES + ("dg0",)

SELECTIVE = [  # (B, N, C, chunk, eta_tok, b_tok, g0)
    (2, 63, 5, None, True, True, False),
    (2, 63, 5, 4, True, True, False),  # 16 chunks, the last one short
    (1, 64, 3, 8, True, False, False),
    (3, 31, 2, 5, False, True, False),
    (2, 33, 3, 7, True, True, True),
    (2, 1, 4, None, True, True, True),
    (1, 20, 2, 20, False, False, True),  # per channel, with an initial state
]


def _sel_id(case):
    B, N, C, ch, et, bt, g0 = case
    kind = {(True, True): "pertoken", (True, False): "eta-tok", (False, True): "b-tok",
            (False, False): "perchannel"}[(et, bt)]
    return f"B{B}-N{N}-C{C}-L{ch}-{kind}" + ("-g0" if g0 else "")


class TestSelective:
    # Same tolerance and reasoning as TestAgainstNaive (both sides float64; the per-token
    # maps are the same Möbius products with per-row entries).
    TOL = TestAgainstNaive.TOL

    @pytest.mark.parametrize("B,N,C,chunk,eta_tok,b_tok,g0", SELECTIVE,
                             ids=[_sel_id(c) for c in SELECTIVE])
    def test_values_and_gradients(self, B, N, C, chunk, eta_tok, b_tok, g0):
        args = make_selective(B, N, C, eta_tok=eta_tok, b_tok=b_tok, g0=g0, seed=N)
        ref = value_and_grads_g0(bk_scan_naive, *args)
        out = value_and_grads_g0(
            lambda *a: bk_scan_torch(*a[:4], chunk=chunk, initial_state=a[4]), *args)
        assert len(out) == len(ref) == 6 + g0
        for name, x, y in zip(NAMES_G0, out, ref, strict=False):
            assert x.shape == y.shape, name
            assert rel_rms(x, y) < self.TOL, name

    @pytest.mark.parametrize("eta,scale", [(1e-3, 1.0), (1e-3, 30.0), (1e-2, 1e4)],
                             ids=["eta1e-3", "eta1e-3-v30", "v1e4"])
    def test_stiff_per_token(self, eta, scale):
        v, lam, eta_, b, g0 = make_selective(2, 120, 3, eta_min=eta, scale=scale, g0=True,
                                             seed=7)
        eta_ = eta + 10 * eta * torch.rand(eta_.shape, dtype=F64)  # eta_i in [eta, 11 eta]
        ref = value_and_grads_g0(bk_scan_naive, v, lam, eta_, b, g0)
        out = value_and_grads_g0(
            lambda *a: bk_scan_torch(*a[:4], chunk=11, initial_state=a[4]),
            v, lam, eta_, b, g0)
        for name, x, y in zip(NAMES_G0, out, ref, strict=True):
            assert rel_rms(x, y) < self.TOL, name

    @pytest.mark.parametrize("N,chunk", [(1, None), (9, 2), (13, 4)])
    def test_gradcheck_per_token(self, N, chunk):
        v, lam, eta, b, g0 = (t.requires_grad_()
                              for t in make_selective(2, N, 2, g0=True, seed=N))
        assert torch.autograd.gradcheck(
            lambda *a: bk_scan_torch(*a[:4], chunk=chunk, initial_state=a[4]),
            (v, lam, eta, b, g0))

    @pytest.mark.parametrize("g0", [False, True], ids=["zero-g0", "g0"])
    def test_constant_per_token_equals_per_channel(self, g0):
        # eta, b constant along (B, N): the per-channel scan; its parameter gradients are the
        # sums of the per-token ones (chain rule through the broadcast).
        v, lam, eta, b, s = make_selective(3, 41, 4, eta_tok=False, b_tok=False, g0=g0, seed=3)
        eta_t = eta.expand(3, 41, 4).clone()
        b_t = b.expand(3, 41, 4).clone()
        per_c = value_and_grads_g0(lambda *a: bk_scan_torch(*a[:4], chunk=6,
                                                            initial_state=a[4]),
                                   v, lam, eta, b, s)
        per_t = value_and_grads_g0(lambda *a: bk_scan_torch(*a[:4], chunk=6,
                                                            initial_state=a[4]),
                                   v, lam, eta_t, b_t, s)
        # the same float64 arithmetic up to the order of the final sums: a few eps64
        tol = 1e-13
        for k, name in enumerate(NAMES_G0[: len(per_c)]):
            x = per_t[k].sum(dim=(0, 1)) if name in ("deta", "db") else per_t[k]
            assert rel_rms(x, per_c[k]) < tol, name

    def test_segments_chain_through_the_final_state(self):
        # scanning [0, n) and then [n, N) from the first segment's final state is the scan
        # of [0, N): the state is the whole memory of the recurrence
        v, lam, eta, b, _ = make_selective(2, 40, 3, seed=4)
        g_re, g_im, g_N = bk_scan(v, lam, eta, b, backend="torch", return_final_state=True)
        assert torch.equal(g_N, torch.complex(g_re[:, -1], g_im[:, -1]))
        a_re, a_im, s = bk_scan(v[:, :17], lam, eta[:, :17], b[:, :17], backend="torch",
                                return_final_state=True)
        c_re, c_im = bk_scan(v[:, 17:], lam, eta[:, 17:], b[:, 17:], backend="torch",
                             initial_state=s)
        assert rel_rms(torch.cat([a_re, c_re], 1), g_re) < 1e-14
        assert rel_rms(torch.cat([a_im, c_im], 1), g_im) < 1e-14
        # an empty segment returns its initial state
        *_, s0 = bk_scan(v[:, :0], lam, eta[:, :0], b[:, :0], backend="torch",
                         initial_state=s, return_final_state=True)
        assert torch.equal(s0, s)

    def test_dispatcher_backends_agree(self):
        args = make_selective(2, 23, 3, g0=True, seed=5)
        for backend in ("naive", "torch"):
            g_re, g_im, stats, g_N = bk_scan(*args[:4], backend=backend, initial_state=args[4],
                                             return_stats=True, return_final_state=True)
            r_re, r_im = bk_scan_naive(*args)
            assert rel_rms(g_re, r_re) < self.TOL and rel_rms(g_im, r_im) < self.TOL
            assert stats.tolist() == [0, 0, 0] and g_N.shape == (2, 3)

    def test_step_equals_scan_per_token(self):
        v, lam, eta, b, g0 = make_selective(2, 20, 3, g0=True, seed=9)
        g_re, g_im = bk_scan_torch(v, lam, eta, b, chunk=6, initial_state=g0)
        g = g0
        for i in range(20):
            g = bk_step(v[:, i], lam, eta[:, i], b[:, i], g)
            assert torch.allclose(g.real, g_re[:, i], rtol=1e-12, atol=0)
            assert torch.allclose(g.imag, g_im[:, i], rtol=1e-12, atol=0)

    @given(N=st.integers(1, 120), log_eta=st.floats(-3, 1), log_scale=st.floats(-3, 4),
           g0=st.booleans(), seed=st.integers(0, 2**31 - 1))
    def test_herglotz_per_token(self, N, log_eta, log_scale, g0, seed):
        eta_min = 10.0**log_eta
        v, lam, eta, b, s = make_selective(2, N, 3, eta_min=eta_min, scale=10.0**log_scale,
                                           g0=g0, seed=seed)
        eta = eta_min * (1 + 9 * torch.rand(eta.shape, dtype=F64,  # eta_i in [m, 10 m]
                                            generator=torch.Generator().manual_seed(seed)))
        b = b * 10.0 ** (log_scale / 2)  # hopping as large as the potentials
        g_re, g_im = bk_scan_torch(v.float(), lam.float(), eta.float(), b.float(),
                                   initial_state=None if s is None else s.to(torch.complex64))
        # exact per token: Im g_i >= eta_i |g_i|^2 > 0 and |g_i| <= 1/eta_i (float32 inputs:
        # compare with the float32-rounded eta; the output rounding is 2^-24 relative)
        e32 = eta.float().double()
        assert bool((g_im > 0).all())
        mod = torch.sqrt(g_re.double() ** 2 + g_im.double() ** 2)
        assert bool((mod * e32 <= 1 + 1e-6).all())
        stats = scan_stats(g_re, g_im, eta.float(), 1e-3)
        assert stats.tolist() == [0, 0, 0]

    @pytest.mark.parametrize(
        "mutate,exc,match",
        [(lambda a: (a[0], a[1], -a[2], a[3], a[4]), ValueError, "eta must be > 0"),
         (lambda a: (a[0], a[1], a[2].index_fill(1, torch.tensor([3]), 0.0), a[3], a[4]),
          ValueError, "eta must be > 0"),
         (lambda a: (a[0], a[1], a[2][:, :-1], a[3], a[4]), ValueError,
          r"eta must have shape \(C,\) or \(B, N, C\)"),
         (lambda a: (a[0], a[1], a[2], a[3][0], a[4]), ValueError,
          r"b must have shape \(C,\) or \(B, N, C\)"),
         (lambda a: (a[0], a[1][None], a[2], a[3], a[4]), ValueError, "lam must have shape"),
         (lambda a: (a[0], a[1], a[2], a[3], a[4].real), TypeError,
          "initial_state must be a complex"),
         (lambda a: (a[0], a[1], a[2], a[3], a[4][:1]), ValueError,
          r"initial_state must have shape \(B, C\)"),
         (lambda a: (a[0], a[1], a[2], a[3], a[4].conj().resolve_conj()), ValueError,
          "initial_state must have Im g_0 >= 0")],
        ids=["eta-negative", "eta-zero-token", "eta-shape", "b-shape", "lam-2d",
             "g0-real", "g0-shape", "g0-lower-half-plane"],
    )
    def test_bad_input(self, mutate, exc, match):
        v, lam, eta, b, s = mutate(make_selective(2, 6, 3, g0=True))
        with pytest.raises(exc, match=match):
            bk_scan_torch(v, lam, eta, b, initial_state=s)
        with pytest.raises(exc, match=match):  # the dispatcher uses the same validator
            bk_scan(v, lam, eta, b, backend="naive", initial_state=s)

    def test_nan_per_token_reaches_the_counters(self):
        # per-token eta is an activation: a NaN there (an upstream fault) is not a ValueError
        # but non-finite output, which the guards' counter reports
        v, lam, eta, b, _ = make_selective(1, 8, 2, seed=1)
        eta[0, 3, 1] = float("nan")
        *_, stats = bk_scan(v, lam, eta, b, backend="torch", return_stats=True)
        assert stats[0] > 0
