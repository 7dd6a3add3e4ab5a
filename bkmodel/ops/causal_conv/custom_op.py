"""The Triton causal convolution as ``torch.library`` custom ops, for ``torch.compile`` and
CUDA-graph capture.

==============================  ======================================================
``bkmodel::causal_conv1d``      ``(u (B, T, C), weight (C, K), bias (C,)?) -> y``, the
                                forward kernel of ``triton_conv.py``
``bkmodel::causal_conv1d_bwd``  ``(dy, u, weight, bias?) -> (du, dw, dbias)``, the
                                backward kernel; ``dbias`` is an empty (0,) tensor
                                without a bias (custom-op outputs cannot be None)
==============================  ======================================================

Dynamo treats each op as one opaque node with a *fake* implementation (shapes and dtypes
only); the backward is a custom op too, so AOTAutograd sees one node in the backward graph
as well. Neither op synchronises with the host or reads a tensor's value, so both can be
captured in a CUDA graph. As the BK-scan and Green's-attention ops
(``bkmodel/ops/bk_scan/custom_op.py``, ``bkmodel/ops/green_attn/custom_op.py``), this module
does not import Triton: the op bodies import ``triton_conv`` when they run (on CUDA, or on
CPU under ``TRITON_INTERPRET=1``, slow, tests only).

The arguments are *not* checked here: :func:`bkmodel.ops.causal_conv.causal_conv1d` checks
them (``ValueError``/``TypeError`` naming the argument) and passes a (C, K) weight.
Output dtypes: y and du as ``u``, dw as ``weight``, dbias as ``bias`` (float32 arithmetic).
"""

from __future__ import annotations

import torch

__all__ = ["causal_conv1d_op"]


@torch.library.custom_op("bkmodel::causal_conv1d", mutates_args=())
def _causal_conv1d(u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
                   ) -> torch.Tensor:
    from bkmodel.ops.causal_conv.triton_conv import causal_conv1d_fwd

    b = None if bias is None else bias.contiguous()
    return causal_conv1d_fwd(u.contiguous(), weight.contiguous(), b)  # a fresh buffer


@_causal_conv1d.register_fake
def _(u, weight, bias):
    return u.new_empty(u.shape)


@torch.library.custom_op("bkmodel::causal_conv1d_bwd", mutates_args=())
def _causal_conv1d_bwd(dy: torch.Tensor, u: torch.Tensor, weight: torch.Tensor,
                       bias: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from bkmodel.ops.causal_conv.triton_conv import causal_conv1d_bwd

    du, dw, db = causal_conv1d_bwd(dy.contiguous(), u.contiguous(), weight.contiguous(), bias)
    if db is None:
        db = u.new_empty(0, dtype=weight.dtype)
    return du, dw, db  # fresh buffers: no aliasing of inputs or of each other


@_causal_conv1d_bwd.register_fake
def _(dy, u, weight, bias):
    db = bias.new_empty(bias.shape) if bias is not None else u.new_empty(0, dtype=weight.dtype)
    return u.new_empty(u.shape), weight.new_empty(weight.shape), db


def _setup(ctx, inputs, output) -> None:
    u, weight, bias = inputs
    ctx.save_for_backward(u, weight, bias)


def _backward(ctx, dy):
    u, weight, bias = ctx.saved_tensors
    du, dw, db = _causal_conv1d_bwd(dy, u, weight, bias)
    return du, dw, (db if bias is not None else None)


_causal_conv1d.register_autograd(_backward, setup_context=_setup)


def causal_conv1d_op(u: torch.Tensor, weight: torch.Tensor,
                     bias: torch.Tensor | None = None) -> torch.Tensor:
    """y (B, T, C) of the Triton causal depthwise convolution through the custom op.

    Parameters
    ----------
    u : Tensor (B, T, C), float32, bfloat16, float16 or float64 (computed in float32)
    weight : Tensor (C, K), 1 <= K <= 8
    bias : Tensor (C,) or None

    Returns
    -------
    Tensor (B, T, C), contiguous, dtype of ``u``; differentiable in u, weight and bias
    (``register_autograd``, the exact backward kernel). Arguments unchecked.
    """
    return _causal_conv1d(u, weight, bias)
