"""The chunk-parallel Triton Green's attention (``bkmodel/ops/green_attn/triton_chunk_par.py``,
backend ``"triton_par"``) against the float64 sequential reference (``naive.py``) and the
sequential Triton kernel (backend ``"triton"``): outputs, final state and the gradients of
q, k, v, g, a and the initial state, with resets (inside a chunk, at a chunk start, at token
0), odd T, T not a multiple of the chunk and several chunks; ``opcheck`` of the custom ops
``bkmodel::green_triton_par`` / ``_bwd``.

Without CUDA the kernels run in the Triton interpreter (``tests/conftest.py`` sets
``TRITON_INTERPRET=1``); they are never skipped: a failing import fails the tests.

Tolerances (as ``test_green_ops.py``'s Triton tests): against float64 the kernel's
relative-RMS error must be within 4x the torch real form's float32 error plus ``T eps32``,
quantity by quantity; against the ``"triton"`` backend (the same float32 operations, the
state recursion in the same order) within ``64 eps32``.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bkmodel.ops.green_attn import green_attention

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPS32 = torch.finfo(torch.float32).eps
NAMES = ("y", "S", "q", "k", "v", "g", "a", "S0")


def _inputs(B: int, T: int, H: int, dk: int, dv: int, seed: int, reset_p: float = 0.0,
            decay: float = 0.95) -> tuple[torch.Tensor, ...]:
    """float64 q, k, v; complex128 g, a (|a| <= decay), S_0; bool resets."""
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    u = lambda *s: torch.rand(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    q, k, v = r(B, T, H, dk) / math.sqrt(dk), r(B, T, H, dk), r(B, T, H, dv)
    g = torch.complex(r(B, T, H), u(B, T, H) + 0.1)
    a = decay * (0.05 + 0.95 * u(B, T, H)) * torch.exp(1j * 6.3 * u(B, T, H))
    reset = u(B, T) < reset_p
    S0 = torch.complex(r(B, H, dk, dv), r(B, H, dk, dv))
    return q, k, v, g, a, reset, S0


def _to32(xs: list[torch.Tensor]) -> list[torch.Tensor]:
    return [x.to(torch.complex64) if x.is_complex() else x.float() for x in xs]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative RMS error ||a - b|| / ||b|| in complex128."""
    a, b = a.detach().to(torch.complex128), b.detach().to(torch.complex128)
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _run(backend: str, xs: list[torch.Tensor], reset: torch.Tensor | None, L: int,
         seed: int) -> list[torch.Tensor]:
    """y, S_T and the six gradients of ``sum Re(conj(W_y) y) + Re(conj(W_s) S_T)``."""
    B, T, H, dk = xs[0].shape
    dv = xs[2].shape[-1]
    gen = torch.Generator().manual_seed(seed + 1)
    c = lambda *s: torch.complex(torch.randn(*s, generator=gen, dtype=torch.float64),  # noqa: E731
                                 torch.randn(*s, generator=gen, dtype=torch.float64))
    Wy, Ws = c(B, T, H, dv), c(B, H, dk, dv)
    xs = [x.detach().clone().requires_grad_() for x in xs]
    y, s = green_attention(*xs[:5], reset=reset, initial_state=xs[5], backend=backend,
                           chunk_size=L)
    loss = (y.to(torch.complex128) * Wy.conj()).real.sum() + \
        (s.to(torch.complex128) * Ws.conj()).real.sum()
    return [y.detach(), s.detach(), *torch.autograd.grad(loss, xs)]


def _check(B: int, T: int, H: int, dk: int, dv: int, reset: torch.Tensor | None, carry: bool,
           decay: float, seed: int, L: int = 16) -> None:
    """triton_par (float32) vs naive (float64) and vs triton (float32), every quantity."""
    q, k, v, g, a, _, S0 = _inputs(B, T, H, dk, dv, seed, 0.0, decay)
    xs = [q, k, v, g, a, S0 if carry else torch.zeros_like(S0)]
    ref = _run("naive", xs, reset, L, seed)
    real32 = _run("real", _to32(xs), reset, L, seed)
    tri = _run("triton", _to32(xs), reset, L, seed)
    par = _run("triton_par", _to32(xs), reset, L, seed)
    assert par[0].dtype == torch.complex64 and par[1].dtype == torch.complex64
    for name, x, y, z, w in zip(NAMES, par, real32, ref, tri, strict=True):
        assert x.shape == z.shape, name
        assert torch.isfinite(x).all(), name
        err, base = rel(x, z), rel(y, z)
        assert err <= 4 * base + T * EPS32, (name, err, base)
        assert rel(x, w) <= 64 * EPS32, (name, "vs triton", rel(x, w))


@pytest.fixture(scope="module")
def par_backend():
    """Import the module, failing (never skipping) with the reason when it cannot."""
    try:
        from bkmodel.ops.green_attn import triton_chunk_par
    except ImportError as e:  # pragma: no cover - CI installs triton
        pytest.fail(f"the chunk-parallel Triton kernels cannot be tested: importing them "
                    f"failed ({e}); install triton (CPU CI runs them with TRITON_INTERPRET=1)")
    return triton_chunk_par


@pytest.fixture
def poisoned_empty(monkeypatch):
    """``torch.empty`` returns NaN-filled float tensors: uninitialised outputs show up."""
    orig = torch.empty

    def empty(*args, **kwargs):
        t = orig(*args, **kwargs)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    monkeypatch.setattr(torch, "empty", empty)


class TestTritonPar:
    @settings(max_examples=6, deadline=None)
    @given(B=st.integers(1, 2), T=st.integers(1, 70), H=st.integers(1, 2),
           dk=st.sampled_from([16, 32]), dv=st.sampled_from([16, 32]),
           reset_p=st.sampled_from([0.0, 0.1]), carry=st.booleans(),
           decay=st.sampled_from([0.5, 0.99, 1.3]), seed=st.integers(0, 10**6))
    def test_equals_reference_and_triton(self, par_backend, B, T, H, dk, dv, reset_p, carry,
                                         decay, seed):
        gen = torch.Generator().manual_seed(seed + 7)
        reset = (torch.rand(B, T, generator=gen) < reset_p) if reset_p else None
        _check(B, T, H, dk, dv, reset, carry, decay, seed)

    def test_odd_length_many_chunks_resets(self, par_backend, poisoned_empty):
        # T = 67 (4 full chunks and a partial one), resets at token 0, inside a chunk, at a
        # chunk start and on a chunk's last token; dk = dv = 64: two scan tiles in dk, two
        # value blocks in the backward; NaN-poisoned torch.empty
        reset = torch.zeros(1, 67, dtype=torch.bool)
        reset[0, [0, 21, 32, 47]] = True
        _check(1, 67, 1, 64, 64, reset, True, 0.99, seed=11)

    def test_resets_at_chunk_starts_and_token_zero(self, par_backend):
        reset = torch.zeros(2, 49, dtype=torch.bool)
        reset[0, 0] = reset[0, 16] = reset[1, 32] = reset[1, 33] = True
        _check(2, 49, 2, 16, 32, reset, True, 0.95, seed=12)

    def test_bad_input(self, par_backend):
        z = torch.zeros(1, 4, 1)
        for dk, dv, L, match in ((24, 16, 16, "dk a power of two"),
                                 (16, 48, 16, "dv a power of two"),
                                 (16, 16, 8, "chunk_size must")):
            with pytest.raises(ValueError, match=match):
                par_backend.green_attention_triton_par(
                    torch.zeros(1, 4, 1, dk), torch.zeros(1, 4, 1, dk),
                    torch.zeros(1, 4, 1, dv), z, z, z, z, chunk_size=L)


# ----------------------------------------------------------------------------- custom ops

_OPCHECK = ("test_schema", "test_autograd_registration", "test_faketensor")


def _op_args(with_s0: bool, B: int = 1, T: int = 21, H: int = 1, dk: int = 16, dv: int = 16,
             L: int = 16) -> tuple:
    """Tiny real arguments of ``bkmodel::green_triton_par`` (two chunks, resets)."""
    from bkmodel.ops.green_attn.real import chunk_phases

    q, k, v, g, a, reset, S0 = _inputs(B, T, H, dk, dv, seed=21, reset_p=0.3)
    q, k, v, g, a, S0 = _to32([q, k, v, g, a, S0])
    rho, phi, seg = chunk_phases(a.real, a.imag, reset, L)
    args = [x.contiguous() for x in (q, k, v, g.real, g.imag, rho.reshape(B, H, -1),
                                     phi.reshape(B, H, -1),
                                     seg.reshape(B, -1).to(torch.int32))]
    s0 = [S0.real.contiguous(), S0.imag.contiguous()] if with_s0 else [None, None]
    return (*args, *s0, L)


class TestTritonParOp:
    @pytest.mark.parametrize("with_s0", [True, False], ids=["s0", "no_s0"])
    def test_opcheck_forward(self, par_backend, with_s0):
        from bkmodel.ops.green_attn.custom_op import _green_triton_par

        args = list(_op_args(with_s0))
        for i in (0, 1, 2, 3, 4, 5, 6, 8, 9):  # every float input differentiable
            if args[i] is not None:
                args[i] = args[i].requires_grad_()
        torch.library.opcheck(_green_triton_par, tuple(args), test_utils=_OPCHECK)

    @pytest.mark.parametrize("with_s0", [True, False], ids=["s0", "no_s0"])
    def test_opcheck_backward(self, par_backend, with_s0):
        from bkmodel.ops.green_attn.custom_op import _green_triton_par_bwd

        *fwd, L = _op_args(with_s0)
        B, T, H, dk = fwd[0].shape
        dv = fwd[2].shape[-1]
        gen = torch.Generator().manual_seed(22)
        grads = [torch.randn(*s, generator=gen)
                 for s in ((B, T, H, dv),) * 2 + ((B, H, dk, dv),) * 2]
        torch.library.opcheck(_green_triton_par_bwd, (*fwd, *grads, L), test_utils=_OPCHECK)

    def test_ops_equal_sequential_ops(self, par_backend):
        # the two op pairs on the same arguments: forward outputs and every gradient
        from bkmodel.ops.green_attn.custom_op import _green_triton_bwd, _green_triton_par_bwd

        *fwd, L = _op_args(True)
        B, T, H, dk = fwd[0].shape
        dv = fwd[2].shape[-1]
        gen = torch.Generator().manual_seed(23)
        grads = [torch.randn(*s, generator=gen)
                 for s in ((B, T, H, dv),) * 2 + ((B, H, dk, dv),) * 2]
        for x, y in zip(torch.ops.bkmodel.green_triton_par(*fwd, L),
                        torch.ops.bkmodel.green_triton(*fwd, L), strict=True):
            assert rel(x, y) <= 64 * EPS32
        for x, y in zip(_green_triton_par_bwd(*fwd, *grads, L),
                        _green_triton_bwd(*fwd, *grads, L), strict=True):
            assert x.shape == y.shape and rel(x, y) <= 64 * EPS32

    def test_no_graph_break(self, par_backend):
        q, k, v, g, a, reset, S0 = _inputs(1, 21, 1, 16, 16, seed=23, reset_p=0.1)
        xs = _to32([q, k, v, g, a, S0])

        def fn(q, k, v, g, a, S0, reset):
            return green_attention(q, k, v, g, a, reset=reset, initial_state=S0,
                                   backend="triton_par", chunk_size=16)

        torch._dynamo.reset()
        ex = torch._dynamo.explain(fn)(*xs, reset)
        assert ex.graph_break_count == 0, [r.reason for r in ex.break_reasons]
        assert ex.graph_count == 1
