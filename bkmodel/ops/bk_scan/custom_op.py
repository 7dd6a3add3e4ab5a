"""The BK scan as ``torch.library`` custom ops, for ``torch.compile`` and ``torch.export``.

Dynamo cannot trace into a ``torch.autograd.Function`` whose forward loops over chunks with
data-dependent Python state cheaply, and it cannot trace the Triton launches' host logic at
all; it can, however, treat a registered custom op as one opaque node with a *fake*
implementation (shapes and dtypes only) and a registered backward. This module wraps the
two fast backends that way, without touching their code:

=========================  =========================================================
``bkmodel::scan_torch``    :class:`~bkmodel.ops.bk_scan.torch_scan._BKScan` forward,
                           returns ``(g_re, g_im, g)``, ``g`` the complex128 states
                           stored as float64 (B, N, C, 2) for the backward
``bkmodel::scan_torch_bwd`` its exact adjoint backward (``_BKScan.backward``)
``bkmodel::scan_triton``   :class:`~bkmodel.ops.bk_scan.triton_scan._BKScanTriton`
                           forward: ``(g_re, g_im, counts)`` (fused guard counters)
``bkmodel::scan_triton_bwd`` its backward kernels
=========================  =========================================================

The backward ops are custom ops too, so AOTAutograd sees one node per scan in the backward
graph as well (no unrolled chunk loops, nothing recompiled when the chunk length changes).
Both backward functions are the kernels' own ``backward`` static methods called with a small
context object (:class:`_Ctx`): the arithmetic is exactly the eager one, bit for bit.

:func:`bk_scan_op` is the one entry point; :func:`bkmodel.ops.bk_scan.bk_scan` calls it while
Dynamo traces (``torch.compiler.is_compiling()``), after the shape checks. The value checks
(``eta > 0``, finite parameters: a host read) then run inside the op's real implementation,
at run time, where reading a CPU tensor is allowed. Eager calls keep the direct path (a
custom-op dispatch costs tens of microseconds per call for nothing there).

The Triton ops are registered like the torch ones; they run on CUDA, or on CPU with
``TRITON_INTERPRET=1`` (slow, tests only).
"""

from __future__ import annotations

from typing import Any

import torch

from bkmodel.ops.bk_scan._validate import check_scan_args

__all__ = ["bk_scan_op"]

_F64 = torch.float64


class _Ctx:
    """Stand-in for an autograd context: what the kernels' ``forward``/``backward`` use."""

    def __init__(self, saved: tuple = (), **attrs: Any) -> None:
        self.saved_tensors = tuple(saved)
        self.__dict__.update(attrs)

    def save_for_backward(self, *tensors: Any) -> None:
        self.saved_tensors = tensors

    def mark_non_differentiable(self, *tensors: Any) -> None:
        pass


def _out_dtype(v: torch.Tensor) -> torch.dtype:
    return torch.promote_types(v.dtype, torch.float32)


def _chunk(chunk: int, n: int) -> int:
    """The chunk length: ``chunk``, or :func:`~bkmodel.ops.bk_scan.torch_scan.default_chunk`
    when 0 (resolved inside the op, so a traced graph does not specialise on it)."""
    from bkmodel.ops.bk_scan.torch_scan import default_chunk

    return chunk if chunk > 0 else default_chunk(n)


def _own(*ts: torch.Tensor | None, ref: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Contiguous copies that alias nothing (a custom op's outputs may not alias its inputs
    or each other: ``g.real.to(float64)`` is a view); None, in an optional output slot,
    becomes an empty (0,) tensor (custom-op outputs cannot be None)."""
    return tuple(ref.new_empty(0) if t is None else t.clone(memory_format=torch.contiguous_format)
                 for t in ts)


# --------------------------------------------------------------------------------------------
# torch backend
# --------------------------------------------------------------------------------------------
@torch.library.custom_op("bkmodel::scan_torch", mutates_args=())
def _scan_torch(v: torch.Tensor, lam: torch.Tensor, eta: torch.Tensor, b: torch.Tensor,
                g0_re: torch.Tensor | None, g0_im: torch.Tensor | None, chunk: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from bkmodel.ops.bk_scan.torch_scan import _BKScan

    g0 = None if g0_re is None else torch.complex(g0_re.to(_F64), g0_im.to(_F64))
    check_scan_args(v, lam, eta, b, initial_state=g0)  # values: a host read, allowed here
    ctx = _Ctx()
    g_re, g_im = _BKScan.forward(ctx, v, lam, eta, b, g0_re, g0_im, _chunk(chunk, v.shape[1]))
    g = torch.view_as_real(ctx.saved_tensors[0])  # (B, N, C, 2) float64
    return _own(g_re, g_im, g, ref=v)


@_scan_torch.register_fake
def _(v, lam, eta, b, g0_re, g0_im, chunk):
    out = _out_dtype(v)
    return (v.new_empty(v.shape, dtype=out), v.new_empty(v.shape, dtype=out),
            v.new_empty((*v.shape, 2), dtype=_F64))


@torch.library.custom_op("bkmodel::scan_torch_bwd", mutates_args=())
def _scan_torch_bwd(grad_re: torch.Tensor, grad_im: torch.Tensor, g: torch.Tensor,
                    b: torch.Tensor, g0_re: torch.Tensor | None, g0_im: torch.Tensor | None,
                    chunk: int, eta_tok: bool, v_dtype: torch.dtype, lam_dtype: torch.dtype,
                    eta_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                     torch.Tensor, torch.Tensor, torch.Tensor]:
    from bkmodel.ops.bk_scan.torch_scan import _BKScan

    has_g0 = g0_re is not None
    g0 = torch.complex(g0_re.to(_F64), g0_im.to(_F64)) if has_g0 else None
    ctx = _Ctx((torch.view_as_complex(g.contiguous()), b, g0), chunk=_chunk(chunk, g.shape[1]),
               eta_tok=eta_tok,
               dtypes=(v_dtype, lam_dtype, eta_dtype, b.dtype,
                       g0_re.dtype if has_g0 else None),
               needs_input_grad=(True, True, True, True, has_g0, has_g0, False))
    gv, gl, ge, gb, gs_re, gs_im, _ = _BKScan.backward(ctx, grad_re, grad_im)
    return _own(gv, gl, ge, gb, gs_re, gs_im, ref=gv)


@_scan_torch_bwd.register_fake
def _(grad_re, grad_im, g, b, g0_re, g0_im, chunk, eta_tok, v_dtype, lam_dtype, eta_dtype):
    B, N, C = grad_re.shape
    eta_shape = (B, N, C) if eta_tok else (C,)
    g0 = (g0_re.new_empty(g0_re.shape), g0_im.new_empty(g0_im.shape)) if g0_re is not None \
        else (grad_re.new_empty(0, dtype=v_dtype), grad_re.new_empty(0, dtype=v_dtype))
    return (grad_re.new_empty((B, N, C), dtype=v_dtype), grad_re.new_empty((C,), dtype=lam_dtype),
            grad_re.new_empty(eta_shape, dtype=eta_dtype), b.new_empty(b.shape), *g0)


def _torch_setup(ctx, inputs, output) -> None:
    v, lam, eta, b, g0_re, g0_im, chunk = inputs
    ctx.save_for_backward(output[2], b, g0_re, g0_im)
    ctx.chunk = chunk
    ctx.info = (eta.ndim == 3, v.dtype, lam.dtype, eta.dtype)


def _torch_backward(ctx, grad_re, grad_im, _grad_g):
    g, b, g0_re, g0_im = ctx.saved_tensors
    grad_re = torch.zeros_like(g[..., 0]) if grad_re is None else grad_re
    grad_im = torch.zeros_like(g[..., 0]) if grad_im is None else grad_im
    gv, gl, ge, gb, gs_re, gs_im = _scan_torch_bwd(grad_re, grad_im, g, b, g0_re, g0_im,
                                                   ctx.chunk, *ctx.info)
    if g0_re is None:
        gs_re = gs_im = None
    return gv, gl, ge, gb, gs_re, gs_im, None


_scan_torch.register_autograd(_torch_backward, setup_context=_torch_setup)


# --------------------------------------------------------------------------------------------
# Triton backend (CUDA; CPU only under TRITON_INTERPRET=1)
# --------------------------------------------------------------------------------------------
def _triton_dtype(v: torch.Tensor) -> torch.dtype:
    return _F64 if v.dtype == _F64 else torch.float32  # triton_scan._compute_dtype


@torch.library.custom_op("bkmodel::scan_triton", mutates_args=())
def _scan_triton(v: torch.Tensor, lam: torch.Tensor, eta: torch.Tensor, b: torch.Tensor,
                 g0_re: torch.Tensor | None, g0_im: torch.Tensor | None, stats: bool,
                 tol: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from bkmodel.ops.bk_scan.triton_scan import _BKScanTriton

    g0 = None if g0_re is None else torch.complex(g0_re.to(_F64), g0_im.to(_F64))
    check_scan_args(v, lam, eta, b, initial_state=g0, backend="triton")
    g_re, g_im, counts = _BKScanTriton.forward(_Ctx(), v.contiguous(), lam, eta, b, stats, tol,
                                               None, None, g0_re, g0_im)
    return g_re, g_im, counts  # fresh buffers of the kernels: no aliasing


@_scan_triton.register_fake
def _(v, lam, eta, b, g0_re, g0_im, stats, tol):
    cdt = _triton_dtype(v)
    return (v.new_empty(v.shape, dtype=cdt), v.new_empty(v.shape, dtype=cdt),
            v.new_empty((3,), dtype=torch.int64))


@torch.library.custom_op("bkmodel::scan_triton_bwd", mutates_args=())
def _scan_triton_bwd(v: torch.Tensor, lam: torch.Tensor, eta: torch.Tensor, b: torch.Tensor,
                     g_re: torch.Tensor, g_im: torch.Tensor, G_re: torch.Tensor,
                     G_im: torch.Tensor, g0_re: torch.Tensor | None,
                     g0_im: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor,
                                                          torch.Tensor, torch.Tensor,
                                                          torch.Tensor, torch.Tensor]:
    from bkmodel.ops.bk_scan.triton_scan import _BKScanTriton

    has_g0 = g0_re is not None
    ctx = _Ctx((v, lam, eta, b, g_re, g_im, g0_re, g0_im), lam_dtype=lam.dtype,
               eta_dtype=eta.dtype, chunk=None, cfg=None,
               needs_input_grad=(True,) * 4 + (False,) * 4 + ((True, True) if has_g0 else ()))
    grads = _BKScanTriton.backward(ctx, G_re.contiguous(), G_im.contiguous(), None)
    dv, dl, de, db = grads[:4]
    d_re, d_im = (grads[8], grads[9]) if has_g0 else (None, None)
    return _own(dv, dl, de, db, d_re, d_im, ref=dv)


@_scan_triton_bwd.register_fake
def _(v, lam, eta, b, g_re, g_im, G_re, G_im, g0_re, g0_im):
    g0 = (g0_re.new_empty(g0_re.shape), g0_im.new_empty(g0_im.shape)) if g0_re is not None \
        else (v.new_empty(0), v.new_empty(0))
    return (v.new_empty(v.shape), lam.new_empty(lam.shape), eta.new_empty(eta.shape),
            b.new_empty(b.shape), *g0)


def _triton_setup(ctx, inputs, output) -> None:
    v, lam, eta, b, g0_re, g0_im, _stats, _tol = inputs
    ctx.save_for_backward(v, lam, eta, b, output[0], output[1], g0_re, g0_im)
    ctx.mark_non_differentiable(output[2])


def _triton_backward(ctx, G_re, G_im, _counts):
    v, lam, eta, b, g_re, g_im, g0_re, g0_im = ctx.saved_tensors
    G_re = torch.zeros_like(g_re) if G_re is None else G_re
    G_im = torch.zeros_like(g_im) if G_im is None else G_im
    dv, dl, de, db, d_re, d_im = _scan_triton_bwd(v, lam, eta, b, g_re, g_im, G_re, G_im,
                                                  g0_re, g0_im)
    if g0_re is None:
        d_re = d_im = None
    return dv, dl, de, db, d_re, d_im, None, None


_scan_triton.register_autograd(_triton_backward, setup_context=_triton_setup)


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def bk_scan_op(v: torch.Tensor, lam: torch.Tensor, eta: torch.Tensor, b: torch.Tensor, *,
               backend: str, return_stats: bool, tol: float,
               initial_state: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(g_re, g_im, counts or None)`` of the scan through the custom ops.

    ``backend`` is ``"torch"`` or ``"triton"`` (resolved by the caller); the arguments are
    shape-checked by the caller. Same outputs and gradients as the eager backends; an empty
    sequence (N = 0) returns empty outputs without calling an op.
    """
    g0_re = g0_im = None
    if initial_state is not None:
        g0_re, g0_im = initial_state.real, initial_state.imag  # autograd maps grads back
    if backend == "triton":
        if (eta.ndim == 3) != (b.ndim == 3):  # as _bk_scan_triton: both per token
            eta = eta.expand(v.shape).contiguous() if eta.ndim == 1 else eta
            b = b.expand(v.shape).contiguous() if b.ndim == 1 else b
        g_re, g_im, counts = _scan_triton(v, lam, eta, b, g0_re, g0_im, bool(return_stats),
                                          float(tol))
        return g_re, g_im, counts if return_stats else None
    if v.shape[1] == 0:
        empty = v.new_empty(v.shape, dtype=_out_dtype(v))
        return empty, empty.clone(), None
    g_re, g_im, _ = _scan_torch(v, lam, eta, b, g0_re, g0_im, 0)
    return g_re, g_im, None
