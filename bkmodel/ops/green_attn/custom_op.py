"""The Triton Green's attention as ``torch.library`` custom ops, for ``torch.compile``.

Dynamo cannot trace the Triton launches' host logic; it can treat a registered custom op as
one opaque node with a *fake* implementation (shapes and dtypes only) and a registered
backward. As the BK scan (``bkmodel/ops/bk_scan/custom_op.py``), the kernels of
``triton_chunk.py`` are wrapped that way, without touching their code:

================================  =====================================================
``bkmodel::green_triton``         forward kernel: ``(q, k, v, g_re, g_im, rho, phi, seg,
                                  s0_re?, s0_im?, BT) -> (y_re, y_im, S_re, S_im)``
``bkmodel::green_triton_bwd``     the exact backward (the forward kernel recomputes the
                                  chunk states, then the backward kernel):
                                  ``(dq, dk, dv, dg_re, dg_im, drho, dphi, dS0_re,
                                  dS0_im)``, ``dS0`` empty (0,) without an initial state
``bkmodel::green_triton_par``     the same by the chunk-parallel kernels of
                                  ``triton_chunk_par.py`` (same signatures and fakes);
                                  its backward is ``bkmodel::green_triton_par_bwd``
================================  =====================================================

The backward op is a custom op too, so AOTAutograd sees one node per call in the backward
graph as well. Both pairs are defined by :func:`_define_ops` from one signature: the ops
call the host wrappers ``_forward`` and ``_backward`` of ``triton_chunk`` (or
``triton_chunk_par``), what the eager ``torch.autograd.Function`` called before: the
arithmetic is the kernels', bit for bit.

Inputs are real: the chunk-local phases ``rho, phi`` (B, H, Tp) float32 and the document
indices ``seg`` (B, Tp) int32 are formed by ordinary (traced, differentiable) torch ops in
:func:`~bkmodel.ops.green_attn.triton_chunk.green_attention_triton`, which also runs the
argument checks (``ValueError`` naming the argument) in Python before calling
:func:`green_triton_op`; nothing inside the ops raises for bad input.

The ops run on CUDA, or on CPU with ``TRITON_INTERPRET=1`` (slow, tests only). This module
does not import Triton (the op bodies import ``triton_chunk`` when they run).
"""

from __future__ import annotations

import importlib

import torch

__all__ = ["green_triton_op", "green_triton_par_op"]

_F32 = torch.float32


def _fresh(t: torch.Tensor) -> torch.Tensor:
    """``t`` contiguous (the fake implementations return contiguous tensors)."""
    return t.contiguous()


def _fake_forward(q, k, v, g_re, g_im, rho, phi, seg, s0_re, s0_im, BT):
    B, T, H, DK = q.shape
    DV = v.shape[-1]
    return (q.new_empty((B, T, H, DV), dtype=_F32), q.new_empty((B, T, H, DV), dtype=_F32),
            q.new_empty((B, H, DK, DV), dtype=_F32), q.new_empty((B, H, DK, DV), dtype=_F32))


def _fake_backward(q, k, v, g_re, g_im, rho, phi, seg, s0_re, s0_im, dy_re, dy_im, dsT_re,
                   dsT_im, BT):
    B, T, H, DK = q.shape
    DV = v.shape[-1]
    Tp = rho.shape[-1]
    ds0 = (B, H, DK, DV) if s0_re is not None else (0,)
    return (q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape),
            q.new_empty((B, T, H), dtype=_F32), q.new_empty((B, T, H), dtype=_F32),
            q.new_empty((B, H, Tp), dtype=_F32), q.new_empty((B, H, Tp), dtype=_F32),
            q.new_empty(ds0, dtype=_F32), q.new_empty(ds0, dtype=_F32))


def _setup(ctx, inputs, output) -> None:
    *tensors, BT = inputs
    ctx.save_for_backward(*tensors)  # q, k, v, g_re, g_im, rho, phi, seg, s0_re, s0_im
    ctx.BT = BT


def _autograd_backward(bwd_op):
    """The ``register_autograd`` backward of a forward op whose backward op is ``bwd_op``:
    unused outputs' gradients as zeros, then one call of ``bwd_op``."""

    def backward_fn(ctx, dy_re, dy_im, dsT_re, dsT_im):
        q, k, v, g_re, g_im, rho, phi, seg, s0_re, s0_im = ctx.saved_tensors
        B, T, H, DK = q.shape
        DV = v.shape[-1]

        def grad_or_zeros(x: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
            if x is None:
                return torch.zeros(shape, dtype=_F32, device=q.device)
            return x.float().contiguous()

        dy_re = grad_or_zeros(dy_re, (B, T, H, DV))
        dy_im = grad_or_zeros(dy_im, (B, T, H, DV))
        dsT_re = grad_or_zeros(dsT_re, (B, H, DK, DV))
        dsT_im = grad_or_zeros(dsT_im, (B, H, DK, DV))
        dq, dk, dv, dg_re, dg_im, drho, dphi, ds0_re, ds0_im = bwd_op(
            q, k, v, g_re, g_im, rho, phi, seg, s0_re, s0_im, dy_re, dy_im, dsT_re, dsT_im,
            ctx.BT)
        if s0_re is None:
            ds0_re = ds0_im = None
        return dq, dk, dv, dg_re, dg_im, drho, dphi, None, ds0_re, ds0_im, None

    return backward_fn


# --------------------------------------------------------------------------------------------
# the op pairs
# --------------------------------------------------------------------------------------------
def _define_ops(name: str, module: str):
    """Register ``bkmodel::<name>`` (forward) and ``bkmodel::<name>_bwd`` (its exact
    backward), calling ``_forward`` / ``_backward`` of the kernel module ``module``
    (imported when the ops run: this module does not import Triton); fakes and autograd
    registered. Returns the two ops."""

    def forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g_re: torch.Tensor,
                g_im: torch.Tensor, rho: torch.Tensor, phi: torch.Tensor, seg: torch.Tensor,
                s0_re: torch.Tensor | None, s0_im: torch.Tensor | None, BT: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        kernels = importlib.import_module(module)
        c = [x.contiguous() for x in (q, k, v, g_re, g_im, rho, phi, seg)]
        s0 = [None if s is None else s.contiguous() for s in (s0_re, s0_im)]
        y_re, y_im, s_re, s_im = kernels._forward(*c, *s0, BT)
        return y_re, y_im, s_re, s_im  # fresh buffers of the kernels: no aliasing

    def backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g_re: torch.Tensor,
                 g_im: torch.Tensor, rho: torch.Tensor, phi: torch.Tensor, seg: torch.Tensor,
                 s0_re: torch.Tensor | None, s0_im: torch.Tensor | None,
                 dy_re: torch.Tensor, dy_im: torch.Tensor, dsT_re: torch.Tensor,
                 dsT_im: torch.Tensor, BT: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                            torch.Tensor]:
        kernels = importlib.import_module(module)
        c = [x.contiguous() for x in (q, k, v, g_re, g_im, rho, phi, seg)]
        s0 = [None if s is None else s.contiguous() for s in (s0_re, s0_im)]
        grads = kernels._backward(*c, *s0, dy_re.contiguous(), dy_im.contiguous(),
                                  dsT_re.contiguous(), dsT_im.contiguous(), BT)
        out = [_fresh(x) for x in grads[:7]]
        ds0 = [q.new_empty(0, dtype=_F32) if x is None else x for x in grads[7:]]
        return (*out, *ds0)

    fwd_op = torch.library.custom_op(f"bkmodel::{name}", forward, mutates_args=())
    bwd_op = torch.library.custom_op(f"bkmodel::{name}_bwd", backward, mutates_args=())
    fwd_op.register_fake(_fake_forward)
    bwd_op.register_fake(_fake_backward)
    fwd_op.register_autograd(_autograd_backward(bwd_op), setup_context=_setup)
    return fwd_op, bwd_op


_green_triton, _green_triton_bwd = _define_ops(
    "green_triton", "bkmodel.ops.green_attn.triton_chunk")
_green_triton_par, _green_triton_par_bwd = _define_ops(
    "green_triton_par", "bkmodel.ops.green_attn.triton_chunk_par")


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------
def green_triton_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g_re: torch.Tensor,
                    g_im: torch.Tensor, rho: torch.Tensor, phi: torch.Tensor,
                    seg: torch.Tensor, s0_re: torch.Tensor | None,
                    s0_im: torch.Tensor | None, BT: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y_re, y_im, S_re, S_im)`` of the Triton Green's attention through the custom op.

    Parameters
    ----------
    q, k : Tensor (B, T, H, dk), contiguous, float32, bfloat16 or float16
    v : Tensor (B, T, H, dv), the same dtype as q
    g_re, g_im : Tensor (B, T, H), float32, contiguous
    rho, phi : Tensor (B, H, Tp), float32, contiguous
        Chunk-local cumulative ``log|a|`` and ``arg a`` (``real.chunk_phases``), Tp a
        multiple of ``BT``; differentiable (their gradients come from the kernel).
    seg : Tensor (B, Tp), int32
        Document index of every padded position.
    s0_re, s0_im : Tensor (B, H, dk, dv), float32, or None
        Initial state.
    BT : int
        Chunk length (the kernel's tile), a power of two in [16, 128].

    Returns
    -------
    y_re, y_im : Tensor (B, T, H, dv), float32
    S_re, S_im : Tensor (B, H, dk, dv), float32

    Notes
    -----
    The arguments are *not* checked here: the caller
    (:func:`~bkmodel.ops.green_attn.triton_chunk.green_attention_triton`) checks and
    prepares them. Gradients flow to q, k, v, g, rho, phi and S0 (``register_autograd``).
    """
    return _green_triton(q, k, v, g_re, g_im, rho, phi, seg, s0_re, s0_im, BT)


def green_triton_par_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        g_re: torch.Tensor, g_im: torch.Tensor, rho: torch.Tensor,
                        phi: torch.Tensor, seg: torch.Tensor, s0_re: torch.Tensor | None,
                        s0_im: torch.Tensor | None, BT: int
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`green_triton_op` through the chunk-parallel kernels (``triton_chunk_par.py``):
    the same arguments, returns and (unchecked) contract; ops ``bkmodel::green_triton_par``
    and ``bkmodel::green_triton_par_bwd``."""
    return _green_triton_par(q, k, v, g_re, g_im, rho, phi, seg, s0_re, s0_im, BT)
