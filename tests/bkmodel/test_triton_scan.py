"""Tests of the Triton BK scan (``bkmodel/ops/bk_scan/triton_scan.py``).

On a machine without CUDA the kernels run in Triton's interpreter (``tests/conftest.py``
sets ``TRITON_INTERPRET=1``), so every test below except the ``gpu`` ones runs in CI; sizes
are small because the interpreter executes one program at a time in numpy.

References: ``bk_scan_naive`` (sequential loop, autograd) in float64, and the chunked torch
reference ``bk_scan_torch``. Tolerances:

* float64 kernels: the recurrence is a contraction for Im z > 0 (docs/conventions.md §3), so forward
  rounding errors do not accumulate; we allow 1e-10 relative RMS, ~10^6 eps of slack for
  the stiff cases (eta = 1e-4 makes each step's map nearly an isometry, condition ~1/eta).
* float32 kernels: within 10 × the error of the *same* recurrence evaluated sequentially in
  float32 (the naive loop on float32 input), plus 1e-5 (an absolute floor for errors that
  happen to be ~0). Chunking reassociates the scan, so bitwise equality is not expected.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bkmodel.ops.bk_scan import bk_scan, scan_stats
from bkmodel.ops.bk_scan.naive import bk_scan_naive
from bkmodel.ops.bk_scan.triton_scan import (
    ScanConfig,
    _BKScanTriton,
    _default_config,
    _plan,
    _scan_forward,
    bk_scan_triton,
)

NAMES = ("g_re", "g_im", "dv", "dlam", "deta", "db")
HAS_CUDA = torch.cuda.is_available()
DEV = "cuda" if HAS_CUDA else "cpu"


# ----------------------------------------------------------------------------- helpers


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative RMS error ||a - b|| / ||b|| in float64."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def make_inputs(B, N, C, *, dtype=torch.float64, scale=1.0, eta=None, seed=0, device=DEV):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(B, N, C, generator=g, dtype=torch.float64) * scale
    lam = torch.rand(C, generator=g, dtype=torch.float64) * 4.0 - 0.5
    eta_t = torch.rand(C, generator=g, dtype=torch.float64) * 0.5 + 0.05
    if eta is not None:
        eta_t = torch.full((C,), float(eta), dtype=torch.float64)
    b = torch.rand(C, generator=g, dtype=torch.float64) * 0.5 + 0.75
    return (v.to(device, dtype), lam.to(device), eta_t.to(device), b.to(device))


def forward_backward(fn, inputs, dtype, seed=1):
    """Outputs and gradients of the loss sum(W1 * g_re + W2 * g_im); v is cast to dtype,
    the (C,) parameters to float32 at least (a bf16 v keeps float32 lam, eta, b)."""
    pdt = torch.promote_types(dtype, torch.float32)
    xs = [inputs[0].detach().to(dtype).requires_grad_()]
    xs += [x.detach().to(pdt).requires_grad_() for x in inputs[1:]]
    gen = torch.Generator().manual_seed(seed)
    shape = inputs[0].shape
    W1 = torch.randn(shape, generator=gen, dtype=torch.float64).to(inputs[0].device)
    W2 = torch.randn(shape, generator=gen, dtype=torch.float64).to(inputs[0].device)
    gr, gi = fn(*xs)[:2]
    (gr.double() * W1 + gi.double() * W2).sum().backward()
    # a parameter the loss does not reach (b when N = 1) has no gradient: zero
    grads = [x.grad if x.grad is not None else torch.zeros_like(x) for x in xs]
    return [gr.detach(), gi.detach()] + grads


def check_against_naive(inputs, dtype, chunk, *, f64_tol=1e-10):
    ref = forward_backward(bk_scan_naive, inputs, torch.float64)
    out = forward_backward(lambda *a: bk_scan_triton(*a, chunk=chunk), inputs, dtype)
    errs = {n: rel(o, r) for n, o, r in zip(NAMES, out, ref, strict=True)}
    if dtype == torch.float64:
        bad = {n: e for n, e in errs.items() if not e <= f64_tol}
    else:
        base = forward_backward(bk_scan_naive, inputs, torch.float32)
        errs32 = {n: rel(o, r) for n, o, r in zip(NAMES, base, ref, strict=True)}
        bad = {n: (e, errs32[n]) for n, e in errs.items() if not e <= 10 * errs32[n] + 1e-5}
    assert not bad, f"errors beyond tolerance: {bad} (all: {errs})"
    return errs


@pytest.fixture
def poison_empty(monkeypatch):
    """torch.empty returns NaN-filled float tensors: any output element the kernels fail to
    write stays NaN and fails the comparison."""
    real_empty = torch.empty

    def poisoned(*args, **kwargs):
        t = real_empty(*args, **kwargs)
        if t.is_floating_point():
            t.fill_(float("nan"))
        elif t.dtype in (torch.int32, torch.int64):
            t.fill_(-(2**30))
        return t

    monkeypatch.setattr(torch, "empty", poisoned)
    return poisoned


# ----------------------------------------------------------------------------- values and grads

SHAPES = [  # (B, N, C, chunk)
    (2, 63, 5, None),
    (2, 31, 5, 7),  # 5 chunks, the last one short
    (1, 1, 3, None),
    (1, 3, 1, 1),
    (1, 17, 130, 4),  # two channel blocks, the second partial
]


@pytest.mark.parametrize(
    "B,N,C,chunk", SHAPES, ids=[f"B{b}-N{n}-C{c}-L{ch}" for b, n, c, ch in SHAPES]
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_values_and_gradients_match_naive(B, N, C, chunk, dtype, poison_empty):
    check_against_naive(make_inputs(B, N, C), dtype, chunk)


@pytest.mark.parametrize(
    "case,kw",
    [
        ("stiff-eta1e-4", dict(eta=1e-4)),
        ("bigV-x100", dict(scale=100.0)),
        ("stiff-bigV", dict(eta=1e-4, scale=30.0)),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
@pytest.mark.parametrize("chunk", [None, 5], ids=["L-auto", "L5"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_stiff_cases(case, kw, chunk, dtype):
    # eta = 1e-4 : |g| up to 1e4 and gradients up to 1e8: relative errors stay float-sized
    check_against_naive(make_inputs(1, 29, 6, **kw), dtype, chunk, f64_tol=1e-9)


def test_bf16_input_matches_naive_on_the_rounded_input(poison_empty):
    v, lam, eta, b = make_inputs(2, 33, 7, dtype=torch.bfloat16)
    v = v.requires_grad_()
    gr, gi = bk_scan_triton(v, lam, eta, b, chunk=8)
    assert gr.dtype == torch.float32 and gi.dtype == torch.float32
    rr, ri = bk_scan_naive(v.detach().double(), lam, eta, b)  # same (rounded) potentials
    assert rel(gr, rr) < 1e-5 and rel(gi, ri) < 1e-5
    (gr.sum() + 2 * gi.sum()).backward()
    assert v.grad.dtype == torch.bfloat16
    v64 = v.detach().double().requires_grad_()
    rr, ri = bk_scan_naive(v64, lam, eta, b)
    (rr.sum() + 2 * ri.sum()).backward()
    assert rel(v.grad, v64.grad) < 1e-2  # bf16 rounding of the stored gradient (2^-8)


CONFIGS = [  # (B, N, C, chunk, block_c, group, target_programs)
    (2, 29, 5, None, 32, 8, 8),  # chunks chosen by the planner
    (1, 37, 3, 12, 64, 8, 1),
    (1, 9, 2, 2, 128, 4, 1),
    (2, 21, 40, None, 32, 4, 6),  # two channel blocks, chunks from the planner
    (2, 19, 40, None, 32, 8, 1),  # one chunk, groups of 8 with a ragged last group
]


@pytest.mark.parametrize(
    "B,N,C,chunk,block_c,group,tp",
    CONFIGS,
    ids=[f"B{b}-N{n}-C{c}-L{ch}-bc{bc}-g{g}-tp{tp}" for b, n, c, ch, bc, g, tp in CONFIGS],
)
def test_launch_configurations_match_naive(B, N, C, chunk, block_c, group, tp, poison_empty):
    """The GPU launch shapes (channel blocks, groups of 4 or 8 rows, planned chunks) give the
    same float64 results as the naive loop."""
    cfg = ScanConfig(block_c=block_c, target_programs=tp, min_chunk=1, group=group)
    inputs = make_inputs(B, N, C, seed=11)
    ref = forward_backward(bk_scan_naive, inputs, torch.float64)
    out = forward_backward(
        lambda *a: _BKScanTriton.apply(*a, False, 1e-3, chunk, (cfg, cfg)), inputs, torch.float64
    )
    for n, o, r in zip(NAMES, out, ref, strict=True):
        assert rel(o, r) < 1e-12, n


def test_gpu_planner_shapes():
    """One chunk when batch × channels fills the GPU; chunks of the sequence otherwise."""
    cuda = torch.device("cuda")
    cfg_f, cfg_b = _default_config(cuda, 32, 1024)
    assert _plan(32, 2048, 1024, cfg_f, None)[2] == 1
    assert _plan(32, 2048, 1024, cfg_b, None)[2] == 1
    cfg_f, cfg_b = _default_config(cuda, 1, 1024)
    for cfg in (cfg_f, cfg_b):
        block_c, L, K = _plan(1, 131072, 1024, cfg, None)
        assert K > 1 and L * K >= 131072 and L * (K - 1) < 131072 and L >= cfg.min_chunk
    with pytest.raises(ValueError, match="chunks"):
        _plan(1, 70000, 8, cfg_f, 1)  # 70,000 chunks exceed the CUDA grid
    with pytest.raises(ValueError, match="group must be 4 or 8"):
        _scan_forward(*make_inputs(1, 3, 1), stats=False, tol=0.0, cfg=ScanConfig(group=5))


def test_validate_false_gives_same_result():
    v, lam, eta, b = make_inputs(1, 12, 3, dtype=torch.float32)
    a = bk_scan_triton(v, lam, eta, b, chunk=5)
    c = bk_scan_triton(v, lam, eta, b, chunk=5, validate=False)
    assert all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_agrees_with_torch_reference():
    torch_scan = pytest.importorskip(
        "bkmodel.ops.bk_scan.torch_scan", reason="torch reference (helper H4) not present"
    )
    inputs = make_inputs(2, 50, 9, seed=3)
    ref = forward_backward(torch_scan.bk_scan_torch, inputs, torch.float64)
    out = forward_backward(lambda *a: bk_scan_triton(*a, chunk=6), inputs, torch.float64)
    for n, o, r in zip(NAMES, out, ref, strict=True):
        assert rel(o, r) < 1e-11, n


def test_gradcheck_float64():
    v, lam, eta, b = (x.requires_grad_() for x in make_inputs(1, 4, 1, seed=4))
    assert torch.autograd.gradcheck(
        lambda *a: bk_scan_triton(*a, chunk=2), (v, lam, eta, b), eps=1e-6, atol=1e-7
    )


@settings(max_examples=6, deadline=None)
@given(
    B=st.integers(1, 2),
    N=st.integers(1, 24),
    C=st.integers(1, 4),
    chunk=st.one_of(st.none(), st.integers(1, 30)),
    seed=st.integers(0, 2**16),
)
def test_property_random_shapes_float64(B, N, C, chunk, seed):
    check_against_naive(make_inputs(B, N, C, seed=seed), torch.float64, chunk)


def test_causal():
    v, lam, eta, b = make_inputs(1, 20, 3, seed=5)
    gr, gi = bk_scan_triton(v, lam, eta, b, chunk=6)
    v2 = v.clone()
    v2[:, 13:] += torch.randn_like(v2[:, 13:])
    gr2, gi2 = bk_scan_triton(v2, lam, eta, b, chunk=6)
    assert torch.equal(gr[:, :13], gr2[:, :13]) and torch.equal(gi[:, :13], gi2[:, :13])
    assert not torch.equal(gr[:, 13:], gr2[:, 13:])


def test_empty_sequence():
    v, lam, eta, b = make_inputs(2, 0, 3)
    gr, gi, stats = bk_scan_triton(v, lam, eta, b, return_stats=True)
    assert gr.shape == (2, 0, 3) and gi.shape == (2, 0, 3)
    assert stats.tolist() == [0, 0, 0]


def test_dispatcher_routes_to_triton():
    v, lam, eta, b = make_inputs(1, 9, 2, dtype=torch.float32)
    gr, gi, stats = bk_scan(v, lam, eta, b, backend="triton", return_stats=True)
    rr, ri = bk_scan_naive(v.double(), lam, eta, b)
    assert rel(gr, rr) < 1e-5 and stats.dtype == torch.int64 and stats.tolist() == [0, 0, 0]


# ----------------------------------------------------------------------------- certificates


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # numpy (interpreter) on inf
@pytest.mark.parametrize("chunk", [None, 4], ids=["L-auto", "L4"])
@pytest.mark.parametrize("tol", [0.0, 1e-3, 0.5])
def test_fused_stats_equal_scan_stats_when_violated(chunk, tol, poison_empty):
    # beta < 0 (imaginary hopping) breaks the Herglotz property: Im g < 0 and |g| > 1/eta
    # happen, so all three counters are exercised; NaN and inf potentials add non-finite g.
    v, lam, eta, _ = make_inputs(2, 30, 5, dtype=torch.float32, seed=7)
    v[0, 20, 1] = float("nan")
    v[1, 5, 3] = float("inf")
    beta = torch.tensor([-2.0, -0.5, 1.0, -4.0, -1.0], dtype=torch.float64, device=v.device)
    gr, gi, counts = _scan_forward(v, lam, eta, beta, stats=True, tol=tol, chunk=chunk)
    expected = scan_stats(gr, gi, eta, tol)
    assert counts.tolist() == expected.tolist()
    assert counts[0] > 0 and counts[2] > 0
    if tol <= 1e-3:
        assert counts[1] > 0


def test_fused_stats_zero_for_herglotz_input():
    v, lam, eta, b = make_inputs(2, 40, 6, dtype=torch.float32, scale=10.0, eta=1e-3)
    gr, gi, stats = bk_scan_triton(v, lam, eta, b, return_stats=True, chunk=9)
    assert stats.tolist() == scan_stats(gr, gi, eta, 1e-3).tolist() == [0, 0, 0]
    assert not stats.requires_grad


# ----------------------------------------------------------------------------- validation


def test_rejects_bad_arguments(monkeypatch):
    v, lam, eta, b = make_inputs(1, 4, 3, dtype=torch.float32)
    # value checks: by default on CPU tensors only (a host sync on CUDA), always if asked
    with pytest.raises(ValueError, match="eta must be > 0"):
        bk_scan_triton(v, lam, torch.tensor([0.1, 0.0, 0.2], device=v.device), b, validate=True)
    with pytest.raises(ValueError, match="eta must be > 0"):
        bk_scan_triton(v, lam, -eta, b, validate=True)
    with pytest.raises(ValueError, match="lam must be finite"):
        bk_scan_triton(v, lam + float("inf"), eta, b, validate=True)
    with pytest.raises(ValueError, match="b must be finite"):
        bk_scan_triton(v, lam, eta, b * float("nan"), validate=True)
    with pytest.raises(ValueError, match="eta must be on the device of v"):
        bk_scan_triton(v, lam, eta.to("meta"), b)
    with pytest.raises(ValueError, match="v must have shape"):
        bk_scan_triton(v[0], lam, eta, b)
    with pytest.raises(TypeError, match="v must be a torch.Tensor"):
        bk_scan_triton(v.cpu().numpy(), lam, eta, b)
    with pytest.raises(TypeError, match="v must be float"):
        bk_scan_triton(v.to(torch.int32), lam, eta, b)
    with pytest.raises(ValueError, match="lam must have shape"):
        bk_scan_triton(v, lam[:2], eta, b)
    with pytest.raises(TypeError, match="b must be a torch.Tensor"):
        bk_scan_triton(v, lam, eta, 1.0)
    with pytest.raises(TypeError, match="eta must be a floating"):
        bk_scan_triton(v, lam, torch.ones(3, dtype=torch.int64), b)
    with pytest.raises(ValueError, match="tol must be"):
        bk_scan_triton(v, lam, eta, b, tol=-1.0)
    with pytest.raises(ValueError, match="tol must be"):
        bk_scan_triton(v, lam, eta, b, tol=math.inf)
    with pytest.raises(ValueError, match="chunk must be"):
        bk_scan_triton(v, lam, eta, b, chunk=0)
    if not HAS_CUDA:
        monkeypatch.setitem(os.environ, "TRITON_INTERPRET", "0")
        with pytest.raises(ValueError, match="CUDA tensor"):
            bk_scan_triton(v, lam, eta, b)


# ----------------------------------------------------------------------------- GPU (large N)


GPU_CASES = [  # (B, N, C, eta, scale, chunk)
    (1, 131072, 64, None, 1.0, None),
    (1, 131072, 64, 1e-4, 1.0, None),
    (2, 65536, 32, None, 30.0, 1000),
    (4, 8192, 1024, None, 1.0, None),
    (32, 2048, 1024, None, 1.0, None),  # the default one-chunk path (benchmark shape)
    (16, 4096, 1024, 1e-4, 1.0, None),  # chunked forward, one-chunk backward; stiff
]


@pytest.mark.gpu
@pytest.mark.parametrize(
    "B,N,C,eta,scale,chunk",
    GPU_CASES,
    ids=[f"B{b}-N{n}-C{c}-eta{e}-x{s}-L{ch}" for b, n, c, e, s, ch in GPU_CASES],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_gpu_large_n_against_torch_reference(B, N, C, eta, scale, chunk, dtype, cuda_device):
    from bkmodel.ops.bk_scan.torch_scan import bk_scan_torch

    inputs = make_inputs(B, N, C, eta=eta, scale=scale, device=cuda_device, dtype=dtype)
    # the reference sees the same (possibly bf16-rounded) potentials, in float64
    ref_in = [x.double() for x in inputs]
    ref = forward_backward(bk_scan_torch, ref_in, torch.float64)
    out = forward_backward(lambda *a: bk_scan_triton(*a, chunk=chunk), inputs, dtype)
    errs = {n: rel(o, r) for n, o, r in zip(NAMES, out, ref, strict=True)}
    # float32 state: the recurrence's conditioning (1/eta for the stiff case) times eps32;
    # bf16 only rounds the stored dv (2^-8) — the forward values are float32.
    tol = {n: 2e-3 if eta else 1e-4 for n in NAMES}
    if dtype == torch.bfloat16:
        tol["dv"] = 1e-2
    bad = {n: e for n, e in errs.items() if not e <= tol[n]}
    assert not bad, f"{bad} (all {errs})"
    _, _, stats = bk_scan_triton(*inputs, return_stats=True)
    assert stats.tolist() == [0, 0, 0]


@pytest.mark.gpu
def test_gpu_fused_stats_and_poisoned_outputs(cuda_device, poison_empty):
    v, lam, eta, _ = make_inputs(3, 5000, 300, dtype=torch.float32, device=cuda_device)
    v[0, 100, 5] = float("nan")
    beta = -torch.rand(300, device=cuda_device, dtype=torch.float64)
    gr, gi, counts = _scan_forward(v, lam, eta, beta, stats=True, tol=1e-3)
    assert counts.tolist() == scan_stats(gr, gi, eta, 1e-3).tolist()
    assert counts[0] > 0 and counts[1] > 0 and counts[2] > 0
    v2, lam2, eta2, b2 = make_inputs(2, 70000, 96, dtype=torch.float32, device=cuda_device)
    gr, gi = bk_scan_triton(v2, lam2, eta2, b2)  # default chunking on the GPU
    assert torch.isfinite(gr).all() and torch.isfinite(gi).all()


@pytest.mark.parametrize("scale", [1e4, 1e7])
def test_large_potentials_with_sparse_rescaling(scale):
    """The forward chunk map rescales every 4 rows (not every row): entries grow by at most
    (|v - z| + b^2)^4 in between, so |v| up to ~1e9 cannot overflow float32. Chunks of 8
    (whole groups: the unmasked path) and of 7 (masked) against the float64 loop."""
    for chunk in (8, 7):
        check_against_naive(make_inputs(1, 40, 3, scale=scale, seed=2), torch.float32, chunk)
        check_against_naive(make_inputs(1, 40, 3, scale=scale, seed=2), torch.float64, chunk)


# ----------------------------------------------------------------------------- selective scan
# Per-token eta and b (B, N, C) and the initial state g_0 (issue 13): the TOK and HAS_G0
# specialisations of the kernels, against the naive loop (autograd) in float64.

NAMES_G0 = NAMES + ("dg0",)


def make_selective(B, N, C, *, eta_tok=True, b_tok=True, g0=False, eta_min=0.05, scale=1.0,
                   seed=0, dtype=torch.float64, device=DEV):
    """(v, lam, eta, b, g0): like ``make_inputs``, eta in [eta_min, eta_min + 0.5) and b in
    [0.75, 1.25) per token where asked, g0 complex (B, C) with Im g0 > 0, or None."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(B, N, C, generator=g, dtype=torch.float64) * scale
    lam = torch.rand(C, generator=g, dtype=torch.float64) * 4.0 - 0.5
    eta = torch.rand((B, N, C) if eta_tok else (C,), generator=g, dtype=torch.float64)
    eta = eta * 0.5 + eta_min
    b = torch.rand((B, N, C) if b_tok else (C,), generator=g, dtype=torch.float64) * 0.5 + 0.75
    s = None
    if g0:
        s = torch.complex(torch.randn(B, C, generator=g, dtype=torch.float64),
                          torch.rand(B, C, generator=g, dtype=torch.float64) + 0.1).to(device)
    return v.to(device, dtype), lam.to(device), eta.to(device), b.to(device), s


def forward_backward_g0(fn, inputs, dtype, seed=1):
    """``forward_backward`` with an optional initial state as the fifth input: outputs, the
    gradients of v, lam, eta, b and (if given) of g0 (complex: dL/dRe + i dL/dIm)."""
    v, lam, eta, b, s = inputs
    pdt = torch.promote_types(dtype, torch.float32)
    xs = [v.detach().to(dtype).requires_grad_()]
    xs += [x.detach().to(pdt).requires_grad_() for x in (lam, eta, b)]
    sg = None
    if s is not None:
        cdt = torch.complex128 if pdt == torch.float64 else torch.complex64
        sg = s.detach().to(cdt).requires_grad_()
    gen = torch.Generator().manual_seed(seed)
    W1 = torch.randn(v.shape, generator=gen, dtype=torch.float64).to(v.device)
    W2 = torch.randn(v.shape, generator=gen, dtype=torch.float64).to(v.device)
    gr, gi = fn(*xs, sg)[:2]
    (gr.double() * W1 + gi.double() * W2).sum().backward()
    leaves = xs + ([] if sg is None else [sg])
    grads = [x.grad if x.grad is not None else torch.zeros_like(x) for x in leaves]
    return [gr.detach(), gi.detach()] + grads


def rel_c(a, b):
    """``rel`` for real or complex tensors (complex as (re, im) pairs)."""
    if a.is_complex() or b.is_complex():
        a = torch.view_as_real(a.detach().to(torch.complex128))
        b = torch.view_as_real(b.detach().to(torch.complex128))
    return rel(a, b)


def _triton_sel(chunk=None):
    return lambda *a: bk_scan_triton(*a[:4], chunk=chunk, initial_state=a[4])


def _naive_sel(*a):
    return bk_scan_naive(*a[:4], a[4])


def check_selective(inputs, dtype, chunk, *, f64_tol=1e-10):
    ref = forward_backward_g0(_naive_sel, inputs, torch.float64)
    out = forward_backward_g0(_triton_sel(chunk), inputs, dtype)
    names = NAMES_G0[: len(ref)]
    errs = {n: rel_c(o, r) for n, o, r in zip(names, out, ref, strict=True)}
    for n, o, r in zip(names, out, ref, strict=True):
        assert o.shape == r.shape, n
    if dtype == torch.float64:
        bad = {n: e for n, e in errs.items() if not e <= f64_tol}
    else:  # same criterion as check_against_naive: 10 x the sequential float32 loop + 1e-5
        base = forward_backward_g0(_naive_sel, inputs, torch.float32)
        errs32 = {n: rel_c(o, r) for n, o, r in zip(names, base, ref, strict=True)}
        bad = {n: (e, errs32[n]) for n, e in errs.items() if not e <= 10 * errs32[n] + 1e-5}
    assert not bad, f"errors beyond tolerance: {bad} (all: {errs})"


SEL_SHAPES = [  # (B, N, C, chunk, eta_tok, b_tok, g0)
    (2, 63, 5, None, True, True, False),
    (2, 31, 5, 7, True, True, True),  # 5 chunks, the last one short, initial state
    (1, 1, 3, None, True, True, True),
    (1, 17, 130, 4, True, True, True),  # two channel blocks, the second partial
    (2, 20, 3, 6, True, False, False),  # mixed: eta per token, b per channel
    (1, 19, 2, 5, False, False, True),  # per-channel kernels with an initial state
]


def _sel_id(c):
    B, N, C, ch, et, bt, g0 = c
    kind = {(True, True): "pertoken", (True, False): "eta-tok", (False, True): "b-tok",
            (False, False): "perchannel"}[(et, bt)]
    return f"B{B}-N{N}-C{C}-L{ch}-{kind}" + ("-g0" if g0 else "")


@pytest.mark.parametrize("B,N,C,chunk,eta_tok,b_tok,g0", SEL_SHAPES,
                         ids=[_sel_id(c) for c in SEL_SHAPES])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_selective_values_and_gradients_match_naive(B, N, C, chunk, eta_tok, b_tok, g0, dtype,
                                                    poison_empty):
    inputs = make_selective(B, N, C, eta_tok=eta_tok, b_tok=b_tok, g0=g0, seed=N)
    check_selective(inputs, dtype, chunk)


@pytest.mark.parametrize("case,kw", [("stiff-eta1e-4", dict(eta_min=1e-4)),
                                     ("bigV-x30", dict(scale=30.0))],
                         ids=lambda x: x if isinstance(x, str) else "")
def test_selective_stiff_cases(case, kw):
    # per-token eta down to 1e-4: |g| up to 1e4, gradients up to 1e8 (as test_stiff_cases)
    inputs = make_selective(1, 29, 4, g0=True, seed=3, **kw)
    check_selective(inputs, torch.float64, 5, f64_tol=1e-9)
    check_selective(inputs, torch.float32, 5)


SEL_CONFIGS = [  # (B, N, C, chunk, block_c, group, target_programs)
    (2, 29, 5, None, 32, 8, 8),  # chunks chosen by the planner
    (1, 37, 3, 12, 64, 8, 1),
    (1, 9, 2, 2, 128, 4, 1),
    (2, 19, 40, None, 32, 8, 1),  # one chunk, groups of 8 with a ragged last group
]


@pytest.mark.parametrize(
    "B,N,C,chunk,block_c,group,tp", SEL_CONFIGS,
    ids=[f"B{b}-N{n}-C{c}-L{ch}-bc{bc}-g{g}-tp{tp}-pertoken-g0"
         for b, n, c, ch, bc, g, tp in SEL_CONFIGS],
)
def test_selective_launch_configurations_match_naive(B, N, C, chunk, block_c, group, tp,
                                                     poison_empty):
    cfg = ScanConfig(block_c=block_c, target_programs=tp, min_chunk=1, group=group)
    inputs = make_selective(B, N, C, g0=True, seed=11)
    ref = forward_backward_g0(_naive_sel, inputs, torch.float64)

    def fn(v, lam, eta, b, s):
        return _BKScanTriton.apply(v, lam, eta, b, False, 1e-3, chunk, (cfg, cfg), s.real,
                                   s.imag)

    out = forward_backward_g0(fn, inputs, torch.float64)
    for n, o, r in zip(NAMES_G0, out, ref, strict=True):
        assert rel_c(o, r) < 1e-12, n


def test_selective_gradcheck_float64():
    # odd length, three chunks of 2 (the last short), per-token eta and b, initial state
    v, lam, eta, b, s = make_selective(1, 5, 1, g0=True, seed=4)
    xs = [x.requires_grad_() for x in (v, lam, eta, b, s)]
    assert torch.autograd.gradcheck(
        lambda *a: bk_scan_triton(*a[:4], chunk=2, initial_state=a[4]), xs, eps=1e-6,
        atol=1e-7)


def test_selective_agrees_with_torch_reference():
    from bkmodel.ops.bk_scan.torch_scan import bk_scan_torch

    inputs = make_selective(2, 40, 6, g0=True, seed=3)
    ref = forward_backward_g0(lambda *a: bk_scan_torch(*a[:4], chunk=7, initial_state=a[4]),
                              inputs, torch.float64)
    out = forward_backward_g0(_triton_sel(6), inputs, torch.float64)
    for n, o, r in zip(NAMES_G0, out, ref, strict=True):
        assert rel_c(o, r) < 1e-11, n


def test_constant_per_token_equals_per_channel():
    # eta, b constant along (B, N) through the per-token kernels = the per-channel kernels:
    # the same float64 operations (b^2 squared in the kernel instead of on the host), so
    # equal up to the order of the final gradient sums (a few eps64)
    v, lam, eta, b, s = make_selective(2, 23, 5, eta_tok=False, b_tok=False, g0=True, seed=8)
    eta_t, b_t = eta.expand(v.shape).clone(), b.expand(v.shape).clone()
    per_c = forward_backward_g0(_triton_sel(5), (v, lam, eta, b, s), torch.float64)
    per_t = forward_backward_g0(_triton_sel(5), (v, lam, eta_t, b_t, s), torch.float64)
    for k, n in enumerate(NAMES_G0):
        x = per_t[k].sum(dim=(0, 1)) if n in ("deta", "db") else per_t[k]
        assert rel_c(x, per_c[k]) < 1e-13, n


def test_selective_final_state_and_segments():
    v, lam, eta, b, _ = make_selective(2, 24, 3, seed=6)
    g_re, g_im, g_N = bk_scan(v, lam, eta, b, backend="triton", return_final_state=True)
    assert torch.equal(g_N, torch.complex(g_re[:, -1], g_im[:, -1]))
    a_re, _, s = bk_scan(v[:, :11], lam, eta[:, :11], b[:, :11], backend="triton",
                         return_final_state=True)
    c_re, _ = bk_scan(v[:, 11:], lam, eta[:, 11:].contiguous(), b[:, 11:].contiguous(),
                      backend="triton", initial_state=s)
    assert rel(torch.cat([a_re, c_re], dim=1), g_re) < 1e-14


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # numpy (interpreter) on inf
@pytest.mark.parametrize("chunk", [None, 4], ids=["L-auto", "L4"])
@pytest.mark.parametrize("tol", [0.0, 1e-3])
def test_fused_stats_per_token_forged_violations(chunk, tol, poison_empty):
    # Negative control for the per-token counters: the bounds are per token,
    # |g_i| <= (1 + tol)/eta_i and Im g_i >= -tol/eta_i. Forge violations below the public
    # API (which rejects eta <= 0): a few tokens with eta_i < 0 (dissipation of the wrong
    # sign) give Im g < 0 and |g| > 1/|eta_i| downstream, and NaN/inf potentials non-finite
    # g. The fused counts must equal scan_stats with the per-token eta.
    v, lam, eta, b, _ = make_selective(2, 30, 5, dtype=torch.float32, seed=7)
    eta = eta.float()
    eta[0, 3:9, 1] = -0.02
    eta[1, 12, 4] = -0.5
    v[0, 20, 2] = float("nan")
    v[1, 5, 3] = float("inf")
    gr, gi, counts = _scan_forward(v, lam, eta, b.float(), stats=True, tol=tol, chunk=chunk)
    expected = scan_stats(gr, gi, eta, tol)
    assert counts.tolist() == expected.tolist()
    assert counts[0] > 0 and counts[1] > 0 and counts[2] > 0
    # the kernel's bound is the per-token one: a per-channel bound (largest eta_i of each
    # channel) counts differently on the same output
    assert scan_stats(gr, gi, eta.amax(dim=(0, 1)), tol).tolist() != counts.tolist()


def test_fused_stats_zero_for_herglotz_per_token_input():
    v, lam, eta, b, s = make_selective(2, 40, 6, dtype=torch.float32, scale=10.0, eta_min=1e-3,
                                       g0=True)
    gr, gi, stats = bk_scan_triton(v, lam, eta, b, return_stats=True, chunk=9,
                                   initial_state=s.to(torch.complex64))
    assert stats.tolist() == scan_stats(gr, gi, eta, 1e-3).tolist() == [0, 0, 0]


@settings(max_examples=6, deadline=None)
@given(
    B=st.integers(1, 2), N=st.integers(1, 24), C=st.integers(1, 4),
    chunk=st.one_of(st.none(), st.integers(1, 30)), g0=st.booleans(),
    log_eta=st.floats(-3, 0), seed=st.integers(0, 2**16),
)
def test_property_selective_float64(B, N, C, chunk, g0, log_eta, seed):
    inputs = make_selective(B, N, C, g0=g0, eta_min=10.0**log_eta, seed=seed)
    check_selective(inputs, torch.float64, chunk, f64_tol=1e-9)
    # Herglotz per token (exact for these inputs; float64 rounding only)
    gr, gi = bk_scan_triton(*inputs[:4], chunk=chunk, initial_state=inputs[4])
    assert bool((gi > 0).all())
    assert bool(((gr.square() + gi.square()).sqrt() * inputs[2] <= 1 + 1e-12).all())


def test_selective_rejects_bad_arguments():
    v, lam, eta, b, s = make_selective(1, 4, 3, dtype=torch.float32, g0=True)
    with pytest.raises(ValueError, match="eta must be > 0"):
        bk_scan_triton(v, lam, -eta, b, validate=True)
    with pytest.raises(ValueError, match=r"eta must have shape \(C,\) or \(B, N, C\)"):
        bk_scan_triton(v, lam, eta[:, :2], b)
    with pytest.raises(ValueError, match=r"b must have shape \(C,\) or \(B, N, C\)"):
        bk_scan_triton(v, lam, eta, b[0])
    with pytest.raises(ValueError, match="b must be on the device of v"):
        bk_scan_triton(v, lam, eta, b.to("meta"))
    with pytest.raises(TypeError, match="initial_state must be a complex"):
        bk_scan_triton(v, lam, eta, b, initial_state=s.real)
    with pytest.raises(ValueError, match="initial_state must have Im g_0 >= 0"):
        bk_scan_triton(v, lam, eta, b, initial_state=s.conj().resolve_conj(), validate=True)


GPU_SEL_CASES = [  # (B, N, C, eta_min, chunk, g0)
    (1, 131072, 64, 0.05, None, True),  # chunked forward and backward
    (2, 65536, 32, 1e-3, 1000, False),
    (32, 2048, 1024, 0.05, None, True),  # the one-chunk path (benchmark shape)
    (16, 4096, 1024, 1e-3, None, False),
]


@pytest.mark.gpu
@pytest.mark.parametrize(
    "B,N,C,eta_min,chunk,g0", GPU_SEL_CASES,
    ids=[f"B{b}-N{n}-C{c}-eta{e}-L{ch}-pertoken" + ("-g0" if g else "")
         for b, n, c, e, ch, g in GPU_SEL_CASES],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_gpu_selective_against_torch_reference(B, N, C, eta_min, chunk, g0, dtype,
                                               cuda_device):
    from bkmodel.ops.bk_scan.torch_scan import bk_scan_torch

    v, lam, eta, b, s = make_selective(B, N, C, eta_min=eta_min, g0=g0, device=cuda_device,
                                       dtype=dtype)
    eta, b = eta.to(dtype), b.to(dtype)  # bf16 eta and b too (the selective layer's case)
    ref_in = (v.double(), lam, eta.double(), b.double(), s)  # the same rounded inputs
    ref = forward_backward_g0(
        lambda *a: bk_scan_torch(*a[:4], initial_state=a[4]), ref_in, torch.float64)
    out = forward_backward_g0(_triton_sel(chunk), (v, lam, eta, b, s), dtype)
    names = NAMES_G0[: len(ref)]
    errs = {n: rel_c(o, r) for n, o, r in zip(names, out, ref, strict=True)}
    # float32 state: conditioning (1/eta) times eps32, as the per-channel GPU test; bf16
    # rounds the stored dv, deta and db (2^-8)
    tol = {n: 2e-3 if eta_min < 0.01 else 1e-4 for n in names}
    if dtype == torch.bfloat16:
        tol.update(dv=1e-2, deta=1e-2, db=1e-2)
    bad = {n: e for n, e in errs.items() if not e <= tol[n]}
    assert not bad, f"{bad} (all {errs})"
    *_, stats = bk_scan_triton(v, lam, eta, b, return_stats=True, initial_state=s)
    assert stats.tolist() == [0, 0, 0]


@pytest.mark.gpu
def test_gpu_selective_fused_stats(cuda_device, poison_empty):
    v, lam, eta, b, _ = make_selective(3, 5000, 300, dtype=torch.float32, device=cuda_device)
    eta = eta.float()
    eta[:, 100:140, 7] = -0.01  # forged (below the API): wrong-sign dissipation
    v[0, 100, 5] = float("nan")
    gr, gi, counts = _scan_forward(v, lam, eta, b.float(), stats=True, tol=1e-3)
    assert counts.tolist() == scan_stats(gr, gi, eta, 1e-3).tolist()
    assert counts[0] > 0 and counts[1] > 0 and counts[2] > 0
