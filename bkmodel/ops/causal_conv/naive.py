"""Reference causal depthwise 1-D convolution on channels-last tensors, via ``F.conv1d``.

.. math::

    y_{b,t,c} = \\mathrm{bias}_c + \\sum_{j=0}^{K-1} w_{c,j}\\, u_{b,\\,t-(K-1)+j,\\,c},
    \\qquad u_{b,s,c} = 0 \\text{ for } s < 0,

i.e. ``F.conv1d(u.transpose(1, 2), w[:, None, :], bias, padding=K-1, groups=C)[..., :T]``
transposed back: the output at time t sees the inputs at times t-K+1 .. t only (causal),
``w[c, K-1]`` weighing the current input. Cost O(B T C K). Autograd gives the gradients.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

__all__ = ["causal_conv1d_naive"]


def causal_conv1d_naive(u: torch.Tensor, weight: torch.Tensor,
                        bias: torch.Tensor | None = None) -> torch.Tensor:
    """Causal depthwise convolution of ``u`` (B, T, C) along T, by ``F.conv1d``.

    Parameters
    ----------
    u : Tensor (B, T, C), floating (any float dtype, float64 included)
    weight : Tensor (C, 1, K) as ``nn.Conv1d`` stores it, or (C, K)
        ``weight[c, ..., j]`` multiplies ``u[:, t - (K - 1) + j, c]``.
    bias : Tensor (C,) or None

    Returns
    -------
    Tensor (B, T, C), contiguous, dtype of ``u``
        ``y[b, t, c] = bias[c] + sum_j weight[c, j] * u[b, t - (K - 1) + j, c]``, inputs at
        negative times being zero.

    Notes
    -----
    Dtype rule: ``weight`` and ``bias`` are cast (differentiably) to ``u.dtype`` and the
    convolution runs with autocast disabled, so the result always has ``u``'s dtype. For a
    bfloat16 ``u`` under autocast this is what autocast's ``F.conv1d`` does itself (it casts
    every argument to bfloat16); for a float32 ``u`` under autocast the result stays float32
    (``nn.Conv1d`` would return bfloat16). The arguments are not checked here
    (:func:`bkmodel.ops.causal_conv.causal_conv1d` checks them). O(B T C K).
    """
    B, T, C = u.shape
    w = weight.reshape(C, 1, -1).to(u.dtype)  # (C, 1, K)
    K = w.shape[-1]
    b = None if bias is None else bias.to(u.dtype)
    dev = u.device.type
    off = (torch.autocast(dev, enabled=False) if torch.amp.is_autocast_available(dev)
           else contextlib.nullcontext())
    with off:
        y = F.conv1d(u.transpose(1, 2), w, b, padding=K - 1, groups=C)[..., :T]  # (B, C, T)
    return y.transpose(1, 2).contiguous()  # (B, T, C)
