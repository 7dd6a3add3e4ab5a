"""Helpers shared by the Green's-attention tests (``test_green_ops.py``,
``test_green_par.py``): random inputs, the relative error, a run returning outputs and every
gradient, the NaN-poisoned ``torch.empty`` fixture and the custom ops' tiny arguments."""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from bkmodel.ops.green_attn import green_attention


def _inputs(B, T, H, dk, dv, seed, reset_p=0.0, decay=0.95, dtype=torch.float64):
    """Random q, k, v, Herglotz-like g, transfer factors |a| <= decay, resets, S_0."""
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=dtype)  # noqa: E731
    u = lambda *s: torch.rand(*s, generator=gen, dtype=dtype)  # noqa: E731
    q, k, v = r(B, T, H, dk) / math.sqrt(dk), r(B, T, H, dk), r(B, T, H, dv)
    g = torch.complex(r(B, T, H), u(B, T, H) + 0.1)
    a = decay * (0.05 + 0.95 * u(B, T, H)) * torch.exp(1j * 6.3 * u(B, T, H))
    reset = u(B, T) < reset_p
    S0 = torch.complex(r(B, H, dk, dv), r(B, H, dk, dv))
    return q, k, v, g, a, reset, S0


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative RMS error ||a - b|| / ||b|| in float64 (complex allowed)."""
    a, b = a.detach().to(torch.complex128), b.detach().to(torch.complex128)
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _weights(B, T, H, dv, dk, seed):
    """Complex weights ``(W_y, W_s)`` of the test loss."""
    gen = torch.Generator().manual_seed(seed + 1)
    c = lambda *s: torch.complex(torch.randn(*s, generator=gen, dtype=torch.float64),  # noqa: E731
                                 torch.randn(*s, generator=gen, dtype=torch.float64))
    return c(B, T, H, dv), c(B, H, dk, dv)


def _run(backend, xs, reset, L, weights):
    """Outputs and all six gradients of sum Re(conj(W_y) y) + Re(conj(W_s) S) (complex API).

    The Triton backends run on CUDA when it is present (compiled kernels) and on the CPU
    otherwise (the interpreter); everything returned is on the CPU."""
    dev = _dev() if backend.startswith("triton") else torch.device("cpu")
    xs = [x.detach().to(dev).clone().requires_grad_() for x in xs]
    reset = None if reset is None else reset.to(dev)
    y, s = green_attention(*xs[:5], reset=reset, initial_state=xs[5], backend=backend,
                           chunk_size=L)
    Wy, Ws = (w.to(dev) for w in weights)
    loss = (y.to(torch.complex128) * Wy.conj()).real.sum() + \
        (s.to(torch.complex128) * Ws.conj()).real.sum()
    grads = torch.autograd.grad(loss, xs)
    return [t.detach().cpu() for t in (y, s, *grads)]


def _to32(xs):
    """complex -> complex64, float -> float32, bool unchanged."""
    return [x.to(torch.complex64) if x.is_complex() else x if x.dtype == torch.bool
            else x.float() for x in xs]


def _import_kernels(name: str, what: str):
    """``bkmodel.ops.green_attn.<name>``, failing (never skipping) with the reason when it
    cannot be imported; ``what`` names the kernels in the message."""
    try:
        return importlib.import_module(f"bkmodel.ops.green_attn.{name}")
    except ImportError as e:  # pragma: no cover - CI installs triton
        pytest.fail(f"{what} cannot be tested: importing them failed ({e}); install triton "
                    f"(CPU CI runs them with TRITON_INTERPRET=1)")


@pytest.fixture
def poisoned_empty(monkeypatch):
    """``torch.empty`` returns NaN-filled float tensors: uninitialised outputs show up."""
    orig = torch.empty

    def empty(*args, **kwargs):
        t = orig(*args, **kwargs)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    monkeypatch.setattr(torch, "empty", empty)


def _dev() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _op_args(with_s0: bool, B: int = 1, T: int = 5, H: int = 1, dk: int = 16, dv: int = 16,
             L: int = 16) -> tuple:
    """Tiny real arguments of ``bkmodel::green_triton`` / ``green_triton_par`` (phases from
    ``real.chunk_phases``, resets)."""
    from bkmodel.ops.green_attn.real import chunk_phases

    q, k, v, g, a, reset, S0 = _to32(_inputs(B, T, H, dk, dv, seed=21, reset_p=0.3))
    rho, phi, seg = chunk_phases(a.real, a.imag, reset, L)
    dev = _dev()
    args = [x.contiguous().to(dev) for x in (q, k, v, g.real, g.imag, rho.reshape(B, H, -1),
                                             phi.reshape(B, H, -1),
                                             seg.reshape(B, -1).to(torch.int32))]
    s0 = [S0.real.contiguous().to(dev), S0.imag.contiguous().to(dev)] if with_s0 else \
        [None, None]
    return (*args, *s0, L)


def _op_grads(fwd, seed: int) -> list[torch.Tensor]:
    """Random incoming gradients ``(dy_re, dy_im, dsT_re, dsT_im)`` for the backward ops."""
    B, T, H, dk = fwd[0].shape
    dv = fwd[2].shape[-1]
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=gen).to(fwd[0].device)
            for s in ((B, T, H, dv),) * 2 + ((B, H, dk, dv),) * 2]


_OPCHECK = ("test_schema", "test_autograd_registration", "test_faketensor")


def _opcheck_forward(op, with_s0: bool, **sizes) -> None:
    """``opcheck`` of a forward op with every float input differentiable."""
    args = list(_op_args(with_s0, **sizes))
    for i in (0, 1, 2, 3, 4, 5, 6, 8, 9):
        if args[i] is not None:
            args[i] = args[i].requires_grad_()
    torch.library.opcheck(op, tuple(args), test_utils=_OPCHECK)


def _opcheck_backward(op, with_s0: bool, **sizes) -> None:
    """``opcheck`` of a backward op on random incoming gradients."""
    *fwd, L = _op_args(with_s0, **sizes)
    torch.library.opcheck(op, (*fwd, *_op_grads(fwd, 22), L), test_utils=_OPCHECK)
