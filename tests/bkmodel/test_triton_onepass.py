"""Tests of the single-pass (decoupled look-back) forward ``bk_scan_triton_onepass``.

Without CUDA the kernel runs in Triton's interpreter (``tests/conftest.py`` sets
``TRITON_INTERPRET=1``): programs run one after the other in ticket order, so the
look-back always finds its predecessor's inclusive value; the test-only knobs of
``_onepass_forward`` (``inc_every``, ``publish_agg``, ``max_spin``) force the aggregate
composition, the polling loop and its timeout. Concurrency (programs that really wait,
the fences) is only exercised by the ``gpu`` tests on a CUDA machine. On CUDA every test
runs on the GPU.

References: ``bk_scan_naive`` in float64 and the three-kernel forward ``bk_scan_triton``.
Tolerances as in ``test_triton_scan.py``: float64 kernels 1e-10 relative RMS (1e-9 for the
stiff cases, eta down to 1e-4: the recurrence is a contraction for Im z > 0, so rounding
errors do not accumulate, but the condition of one step is ~1/eta); float32 kernels within
10 × the error of the same recurrence run sequentially in float32 (the naive loop on
float32 input) plus 1e-5; chunking reassociates the scan, so bitwise equality with the
sequential loop is not expected. Against ``bk_scan_triton`` with the same chunks the
arithmetic is the same operations (same map, carry and step functions), so the
agreement is checked at 1e-12 (float64) and 1e-6 (float32).
"""

from __future__ import annotations

import math
import os

import pytest
import torch
import triton
from hypothesis import given, settings
from hypothesis import strategies as st

from bkmodel.ops.bk_scan import scan_stats
from bkmodel.ops.bk_scan.naive import bk_scan_naive
from bkmodel.ops.bk_scan.triton_onepass import (
    _WORKSPACES,
    HAS_ATOMIC_LOAD_STORE,
    OnepassConfig,
    _onepass_forward,
    _plan_onepass,
    _workspace_header,
    _ws_key,
    bk_scan_triton_onepass,
)
from bkmodel.ops.bk_scan.triton_scan import bk_scan_triton
from tests.bkmodel.test_triton_scan import make_selective

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HAS_CUDA = torch.cuda.is_available()
DEV = torch.device("cuda" if HAS_CUDA else "cpu")


# ----------------------------------------------------------------------------- helpers


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative RMS error ||a - b|| / ||b|| in float64."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def make(B, N, C, *, eta_tok=False, b_tok=False, **kw):
    """(v, lam, eta, b, g0) of ``test_triton_scan.make_selective`` (v ~ N(0, scale²), lam in
    [-0.5, 3.5), eta in [eta_min, eta_min + 0.5), b in [0.75, 1.25), g0 with Im g0 > 0 or
    None), with eta and b per channel unless asked per token."""
    return make_selective(B, N, C, eta_tok=eta_tok, b_tok=b_tok, **kw)


def cast(inputs, dtype):
    """v to dtype, lam, eta, b to float32 at least, g0 to the matching complex dtype."""
    v, lam, eta, b, s = inputs
    pdt = torch.promote_types(dtype, torch.float32)
    cdt = torch.complex128 if pdt == torch.float64 else torch.complex64
    return (v.to(dtype), lam.to(pdt), eta.to(pdt), b.to(pdt),
            None if s is None else s.to(cdt))  # fmt: skip


def naive(inputs, dtype=torch.float64):
    v, lam, eta, b, s = cast(inputs, dtype)
    return bk_scan_naive(v, lam, eta, b, s)


def onepass(inputs, dtype, chunk=None):
    v, lam, eta, b, s = cast(inputs, dtype)
    return bk_scan_triton_onepass(v, lam, eta, b, initial_state=s, chunk=chunk)


def check_naive(inputs, dtype, chunk, *, f64_tol=1e-10):
    """onepass(dtype) against the float64 naive loop (module docstring: tolerances)."""
    ref = naive(inputs)
    out = onepass(inputs, dtype, chunk)
    for o, r in zip(out, ref, strict=True):
        assert o.shape == r.shape
        assert o.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    errs = [rel(o, r) for o, r in zip(out, ref, strict=True)]
    if dtype == torch.float64:
        assert max(errs) <= f64_tol, errs
    else:
        base = [rel(o, r) for o, r in zip(naive(inputs, torch.float32), ref, strict=True)]
        bad = [(e, e32) for e, e32 in zip(errs, base, strict=True) if not e <= 10 * e32 + 1e-5]
        assert not bad, (errs, base)
    return out


# ----------------------------------------------------------------------------- against naive

CASES = [  # (B, N, C, chunk, eta_tok, b_tok, g0)
    (1, 1, 3, None, False, False, False),  # N = 1
    (2, 23, 5, 4, False, False, True),  # 6 chunks, the last one short (odd N)
    (2, 17, 3, 5, True, True, True),  # selective, 4 chunks
    (1, 19, 4, 8, True, False, False),  # per-token eta, per-channel b (expanded)
    (1, 16, 2, 8, False, True, True),  # per-channel eta, per-token b; whole groups (EVEN)
    (1, 9, 130, 3, False, False, False),  # two channel blocks, the second partial
]


@pytest.mark.parametrize(
    "B,N,C,chunk,eta_tok,b_tok,g0", CASES,
    ids=[f"B{c[0]}-N{c[1]}-C{c[2]}-L{c[3]}-e{int(c[4])}b{int(c[5])}g{int(c[6])}" for c in CASES],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_matches_naive(B, N, C, chunk, eta_tok, b_tok, g0, dtype):
    inputs = make(B, N, C, eta_tok=eta_tok, b_tok=b_tok, g0=g0, seed=N)
    check_naive(inputs, dtype, chunk)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("tok", [False, True], ids=["chan", "tok"])
def test_stiff_cases(tok, dtype):
    # eta down to 1e-4 with large potentials: |g| up to 1e4, maps close to isometries
    inputs = make(1, 21, 3, eta_tok=tok, b_tok=tok, g0=True, eta_min=1e-4, scale=30.0, seed=3)
    if not tok:
        inputs = (inputs[0], inputs[1], torch.full_like(inputs[2], 1e-4), *inputs[3:])
    check_naive(inputs, dtype, 4, f64_tol=1e-9)


def test_bf16_input_matches_naive_on_the_rounded_input():
    v, lam, eta, b, s = make(2, 21, 5, g0=True, seed=2)
    vb = v.to(torch.bfloat16)
    gr, gi = bk_scan_triton_onepass(vb, lam, eta, b, initial_state=s.to(torch.complex64),
                                    chunk=8)
    assert gr.dtype == torch.float32 and gi.dtype == torch.float32
    rr, ri = bk_scan_naive(vb.double(), lam, eta, b, s)  # the same (rounded) potentials
    assert rel(gr, rr) < 1e-5 and rel(gi, ri) < 1e-5


@settings(max_examples=6, deadline=None)
@given(
    B=st.integers(1, 2), N=st.integers(1, 24), C=st.integers(1, 4),
    chunk=st.one_of(st.none(), st.integers(1, 30)), tok=st.booleans(), g0=st.booleans(),
    log_eta=st.floats(-4, 0), seed=st.integers(0, 2**16),
)
def test_property_float64(B, N, C, chunk, tok, g0, log_eta, seed):
    inputs = make(B, N, C, eta_tok=tok, b_tok=tok, g0=g0, eta_min=10.0**log_eta, seed=seed)
    gr, gi = check_naive(inputs, torch.float64, chunk, f64_tol=1e-9)
    # Herglotz per token (exact for these inputs; float64 rounding only)
    assert bool((gi > 0).all())
    assert bool(((gr.square() + gi.square()).sqrt() * inputs[2] <= 1 + 1e-12).all())


# --------------------------------------------------------------- against bk_scan_triton


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("tok", [False, True], ids=["chan", "tok"])
def test_matches_three_kernel_forward(tok, dtype):
    inputs = make(2, 27, 6, eta_tok=tok, b_tok=tok, g0=True, seed=5)
    v, lam, eta, b, s = cast(inputs, dtype)
    with torch.no_grad():
        ref = bk_scan_triton(v, lam, eta, b, initial_state=s, chunk=6)
    out = bk_scan_triton_onepass(v, lam, eta, b, initial_state=s, chunk=6)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    for o, r in zip(out, ref, strict=True):
        assert o.dtype == r.dtype and o.shape == r.shape
        assert rel(o, r) <= tol


@pytest.mark.parametrize("group", [4, 8])
def test_launch_configurations(group):
    """Groups of 4 or 8 rows, several channel blocks, planned chunks: as the naive loop."""
    inputs = make(2, 29, 40, g0=True, seed=11)
    v, lam, eta, b, s = inputs
    cfg = OnepassConfig(block_c=16, chunk=8, group=group, wide=10**9, lookback=2)  # 4 chunks
    gr, gi, _ = _onepass_forward(v, lam, eta, b.square(), cfg=cfg, g0=(s.real, s.imag))
    rr, ri = naive(inputs)
    assert rel(gr, rr) < 1e-12 and rel(gi, ri) < 1e-12


def test_planner():
    """GPU default: one chunk per chain when B·C fills the GPU, else chunks of 64 rows
    (whole groups); a forced chunk wins; the interpreter's default is one chunk."""
    gpu = OnepassConfig()
    assert _plan_onepass(32, 2048, 1024, gpu, None) == (64, 2048, 1)
    assert _plan_onepass(1, 131072, 1024, gpu, None) == (64, 64, 2048)
    assert _plan_onepass(8, 8192, 1024, gpu, None) == (64, 64, 128)
    assert _plan_onepass(1, 100, 3, gpu, None) == (4, 64, 2)
    assert _plan_onepass(1, 100, 3, OnepassConfig(chunk=60), None)[1:] == (64, 2)
    assert _plan_onepass(1, 100, 3, gpu, 7)[1:] == (7, 15)
    assert _plan_onepass(1, 5, 3, gpu, 9)[1:] == (5, 1)
    assert _plan_onepass(1, 131072, 1024, OnepassConfig(block_c=128, wide=0), None)[2] == 1
    with pytest.raises(ValueError, match="group must be 4 or 8"):
        _plan_onepass(1, 100, 3, OnepassConfig(group=6), None)
    with pytest.raises(ValueError, match="lookback must be a power of 2"):
        _plan_onepass(1, 100, 3, OnepassConfig(lookback=6), None)


# ----------------------------------------------------------------------------- look-back paths


def _chan(inputs):
    v, lam, eta, b, s = inputs
    return v, lam, eta, b.square(), (s.real, s.imag)


@pytest.fixture(scope="module")
def lookback_case():
    """Inputs (7 chunks of 3 rows), the naive result and the default one-pass result."""
    inputs = make(1, 21, 3, g0=True, seed=7)
    return inputs, naive(inputs), _onepass_forward(*_chan(inputs)[:4], chunk=3,
                                                   g0=_chan(inputs)[4])


@pytest.mark.parametrize(
    "kw", [dict(inc_every=2), dict(inc_every=3), dict(inc_every=10**6), dict(rmw_flags=False),
           dict(inc_every=3, rmw_flags=False),
           dict(inc_every=10**6, cfg=OnepassConfig(block_c=128, wide=0, lookback=1)),
           dict(inc_every=3, cfg=OnepassConfig(block_c=128, wide=0, lookback=8))],
    ids=["inc2", "inc3", "agg-only", "ldst", "inc3-ldst", "agg-only-win1", "inc3-win8"],
)
def test_lookback_over_aggregates(kw, lookback_case):
    """Chunks that publish only their aggregate make successors compose maps further back
    (up to chunk 0 with agg-only; windows of 4 flags by default in the interpreter, 1 and
    8 here too); the result is the same scan."""
    if kw.get("rmw_flags") is False and not HAS_ATOMIC_LOAD_STORE:
        pytest.skip(f"needs tl.atomic_load/atomic_store, not in Triton {triton.__version__}")
    inputs, ref, base = lookback_case
    v, lam, eta, beta, g0 = _chan(inputs)
    out = _onepass_forward(v, lam, eta, beta, chunk=3, g0=g0, **kw)
    for o, b, r in zip(out[:2], base[:2], ref, strict=True):
        assert rel(o, r) < 1e-12
        assert rel(o, b) < 1e-13


def test_load_store_flags_refused_without_the_atomics(monkeypatch):
    import bkmodel.ops.bk_scan.triton_onepass as onepass_mod

    monkeypatch.setattr(onepass_mod, "HAS_ATOMIC_LOAD_STORE", False)
    v, lam, eta, beta, _ = _chan(make(1, 8, 4, g0=True))
    with pytest.raises(ValueError, match="rmw_flags=False needs"):
        _onepass_forward(v, lam, eta, beta, rmw_flags=False)


def test_poll_timeout_gives_nan_not_a_hang():
    """A flag that is never published (forced: odd chunks publish nothing) makes the chunk
    after it poll ``max_spin`` times, then give up with NaN, which propagates; the earlier
    chunks are exact, the timeouts are counted and the workspace is reset for the next call."""
    inputs = make(1, 20, 2, seed=9)
    v, lam, eta, b, _ = inputs
    beta = b.square()
    before = (_workspace_header(v.device) or [0, 0, 0, 0])[3]
    gr, gi, _ = _onepass_forward(v, lam, eta, beta, chunk=4, inc_every=2, publish_agg=False,
                                 max_spin=2)
    rr, ri = naive(inputs)
    # chunks 0, 1 (rows 0..7) exact; chunk 2 timed out; 3 takes chunk 2's (NaN) value; ...
    assert rel(gr[:, :8], rr[:, :8]) < 1e-12 and rel(gi[:, :8], ri[:, :8]) < 1e-12
    assert bool(torch.isnan(gr[:, 8:]).all()) and bool(torch.isnan(gi[:, 8:]).all())
    hdr = _workspace_header(v.device)
    assert hdr[0] == 0 and hdr[1] == 0
    assert hdr[3] - before == 2  # chunks 2 and 4 (chunk 3's predecessor published INC)
    gr, gi = bk_scan_triton_onepass(*inputs[:4], chunk=4)  # the next call is clean
    assert rel(gr, rr) < 1e-12 and rel(gi, ri) < 1e-12


def test_workspace_resets_itself_between_launches():
    """Ticket and done counters are back to 0 after every launch and the epoch advances by
    one, whatever the grid (a larger grid grows the workspace, re-zeroed)."""
    _WORKSPACES.clear()  # deterministic sizes: 8 words for the first launch
    inputs = make(1, 12, 3, seed=4)
    bk_scan_triton_onepass(*inputs[:4], chunk=3)
    h0 = _workspace_header(DEV)
    assert h0[:2] == [0, 0]
    bk_scan_triton_onepass(*inputs[:4], chunk=3)
    h1 = _workspace_header(DEV)
    assert h1[:2] == [0, 0] and h1[2] == h0[2] + 1
    n = _WORKSPACES[_ws_key(DEV)].numel()
    big = make(1, n, 1, seed=4)  # n flags with chunks of 1 row: the workspace must grow
    gr, gi = bk_scan_triton_onepass(*big[:4], chunk=1)
    rr, ri = naive(big)
    assert rel(gr, rr) < 1e-12 and rel(gi, ri) < 1e-12
    assert _WORKSPACES[_ws_key(DEV)].numel() >= 4 + n
    assert _workspace_header(DEV)[:3] == [0, 0, 1]  # fresh, one launch


# ----------------------------------------------------------------------------- stats, edge cases


def test_fused_stats_equal_scan_stats():
    v, lam, eta, b, _ = make(2, 19, 5, dtype=torch.float32, seed=8)
    gr, gi, stats = bk_scan_triton_onepass(v, lam, eta, b, chunk=5, return_stats=True)
    assert stats.tolist() == scan_stats(gr, gi, eta, 1e-3).tolist() == [0, 0, 0]
    beta = -torch.rand(5, dtype=torch.float64, device=DEV)  # not Herglotz: counters fire
    v[0, 7, 2] = float("nan")
    gr, gi, stats = _onepass_forward(v, lam, eta, beta, stats=True, tol=1e-3, chunk=5)
    assert stats.tolist() == scan_stats(gr, gi, eta, 1e-3).tolist()
    assert stats[0] > 0 and stats[1] > 0 and stats[2] > 0


def test_empty_sequence_and_outputs_detached():
    v, lam, eta, b, _ = make(2, 0, 3)
    gr, gi = bk_scan_triton_onepass(v, lam, eta, b)
    assert gr.shape == gi.shape == (2, 0, 3)
    v, lam, eta, b, _ = make(1, 5, 2)
    with torch.no_grad():
        gr, gi = bk_scan_triton_onepass(v.requires_grad_(), lam, eta, b)
    assert not gr.requires_grad and not gi.requires_grad


def test_causal():
    inputs = make(1, 14, 2, seed=5)
    gr, gi = bk_scan_triton_onepass(*inputs[:4], chunk=4)
    v2 = inputs[0].clone()
    v2[:, 9] += 1.0
    hr, hi = bk_scan_triton_onepass(v2, *inputs[1:4], chunk=4)
    assert torch.equal(gr[:, :9], hr[:, :9]) and torch.equal(gi[:, :9], hi[:, :9])
    assert not torch.equal(gr[:, 9:], hr[:, 9:])


def test_rejects_bad_arguments(monkeypatch):
    v, lam, eta, b, s = make(1, 4, 3, dtype=torch.float32, g0=True)
    f = bk_scan_triton_onepass
    with pytest.raises(ValueError, match="eta must be > 0"):
        f(v, lam, -eta, b, validate=True)
    with pytest.raises(ValueError, match="eta must be > 0"):
        f(v, lam, torch.full((1, 4, 3), -1.0, device=v.device), b, validate=True)
    with pytest.raises(ValueError, match="lam must be finite"):
        f(v, lam + math.inf, eta, b, validate=True)
    with pytest.raises(ValueError, match="b must be finite"):
        f(v, lam, eta, b * math.nan, validate=True)
    with pytest.raises(ValueError, match="v must have shape"):
        f(v[0], lam, eta, b)
    with pytest.raises(ValueError, match="lam must have shape"):
        f(v, lam[:2], eta, b)
    with pytest.raises(ValueError, match=r"eta must have shape \(C,\) or \(B, N, C\)"):
        f(v, lam, eta[:2], b)
    with pytest.raises(ValueError, match=r"b must have shape \(C,\) or \(B, N, C\)"):
        f(v, lam, eta, torch.ones(1, 3, 3, device=v.device))
    with pytest.raises(ValueError, match="b must be on the device of v"):
        f(v, lam, eta, b.to("meta"))
    with pytest.raises(ValueError, match="initial_state must have shape"):
        f(v, lam, eta, b, initial_state=s[:, :2])
    with pytest.raises(ValueError, match="initial_state must have Im g_0 >= 0"):
        f(v, lam, eta, b, initial_state=s.conj().resolve_conj(), validate=True)
    with pytest.raises(TypeError, match="initial_state must be a complex"):
        f(v, lam, eta, b, initial_state=s.real)
    with pytest.raises(TypeError, match="v must be float"):
        f(v.to(torch.int32), lam, eta, b)
    with pytest.raises(ValueError, match="chunk must be"):
        f(v, lam, eta, b, chunk=0)
    with pytest.raises(ValueError, match="tol must be"):
        f(v, lam, eta, b, tol=-1.0)
    with pytest.raises(ValueError, match="v requires grad"):
        f(v.clone().requires_grad_(), lam, eta, b)
    with pytest.raises(ValueError, match="eta requires grad"):
        f(v, lam, eta.clone().requires_grad_(), b)
    with pytest.raises(ValueError, match="inc_every must be"):
        _onepass_forward(v, lam, eta, b, inc_every=0)
    if not HAS_CUDA:
        monkeypatch.setitem(os.environ, "TRITON_INTERPRET", "0")
        with pytest.raises(ValueError, match="CUDA tensor"):
            f(v, lam, eta, b)


# ----------------------------------------------------------------------------- GPU (concurrency)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "B,N,C,chunk,tok,dtype",
    [
        (1, 131072, 256, None, False, torch.bfloat16),  # many chunks per chain
        (2, 20000, 300, 64, True, torch.float32),  # selective, ragged channels
        (1, 50000, 64, 8, False, torch.float32),  # 6,250 chunks in one chain: long waits
    ],
)
@pytest.mark.parametrize("rmw", [True, False], ids=["rmw-flags", "load-store-flags"])
def test_gpu_concurrent_lookback_matches_three_kernel_forward(B, N, C, chunk, tok, dtype, rmw,
                                                             cuda_device):
    if not rmw and not HAS_ATOMIC_LOAD_STORE:
        pytest.skip(f"the load/store flag variant needs tl.atomic_load/atomic_store, not in "
                    f"Triton {triton.__version__} (the default read-modify-write flags ran)")
    inputs = make(B, N, C, eta_tok=tok, b_tok=tok, g0=True, seed=1, device=cuda_device)
    v, lam, eta, b, s = cast(inputs, dtype)
    with torch.no_grad():
        ref = bk_scan_triton(v.double(), lam.double(), eta.double(), b.double(),
                             initial_state=s.to(torch.complex128), chunk=chunk)
    before = _workspace_header(cuda_device)
    for _ in range(3):  # repeated launches: the self-resetting workspace
        gr, gi, _ = _onepass_forward(
            v, lam, eta, b if tok else b.square(), chunk=chunk, g0=(s.real, s.imag),
            rmw_flags=rmw,
        )
        torch.cuda.synchronize()
        assert rel(gr, ref[0]) < 1e-4 and rel(gi, ref[1]) < 1e-4
    hdr = _workspace_header(cuda_device)
    assert hdr[:2] == [0, 0]
    assert hdr[3] == (0 if before is None else before[3])  # no look-back gave up
