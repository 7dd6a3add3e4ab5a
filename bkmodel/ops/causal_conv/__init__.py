"""Causal depthwise 1-D convolution on channels-last (B, T, C) tensors.

.. math::

    y_{b,t,c} = \\mathrm{bias}_c + \\sum_{j=0}^{K-1} w_{c,j}\\, u_{b,\\,t-(K-1)+j,\\,c},
    \\qquad u_{b,s,c} = 0 \\text{ for } s < 0,

exactly ``F.conv1d(u.transpose(1, 2), w, bias, padding=K-1, groups=C)[..., :T]``
transposed back, with ``w`` the (C, 1, K) weight of ``nn.Conv1d(C, C, K, groups=C,
padding=K-1)``. Gradients (``dy`` beyond T is zero)::

    du[b, t, c] = sum_j w[c, j] dy[b, t + (K-1) - j, c]
    dw[c, j]    = sum_{b,t} dy[b, t, c] u[b, t - (K-1) + j, c]
    dbias[c]    = sum_{b,t} dy[b, t, c]

Each O(B T C K). Backends:

* ``naive``  — ``F.conv1d`` on the transposed view (``naive.py``), the reference; autograd;
* ``triton`` — channels-last Triton kernels (``triton_conv.py``): y straight from u with no
  transposes or copies, float32 accumulation, the exact backward in one kernel, wrapped as
  the custom ops ``bkmodel::causal_conv1d`` / ``bkmodel::causal_conv1d_bwd``
  (``custom_op.py``: ``torch.compile`` and CUDA graphs see one node each way).
"""

from __future__ import annotations

import importlib.util

import torch

from bkmodel.ops.causal_conv.naive import causal_conv1d_naive

__all__ = ["causal_conv1d", "causal_conv1d_naive"]

_BACKENDS = ("auto", "naive", "triton")
_MAX_K = 8  # triton_conv.MAX_K (not imported: this module does not import Triton)
# Looked up once, without importing triton (an import under torch.compile breaks the graph).
_HAS_TRITON = importlib.util.find_spec("triton") is not None


def _check(u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           backend: str) -> tuple[int, str]:
    """(K, resolved backend); raises ValueError / TypeError naming the argument."""
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if not isinstance(u, torch.Tensor):
        raise TypeError(f"u must be a torch.Tensor, got {type(u).__name__}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"bias must be a torch.Tensor or None, got {type(bias).__name__}")
    if u.ndim != 3:
        raise ValueError(f"u must be 3-D (B, T, C), got shape {tuple(u.shape)}")
    if not u.is_floating_point():
        raise TypeError(f"u must be a real floating tensor, got {u.dtype}")
    B, T, C = u.shape
    if T < 1:
        raise ValueError(f"u must have T >= 1 time steps, got shape {tuple(u.shape)}")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a real floating tensor, got {weight.dtype}")
    if not (weight.ndim == 2 or (weight.ndim == 3 and weight.shape[1] == 1)) \
            or weight.shape[0] != C:
        raise ValueError(f"weight must have shape (C, 1, K) or (C, K) with C = u.shape[-1] = "
                         f"{C}, got {tuple(weight.shape)}")
    K = weight.shape[-1]
    if K < 1:
        raise ValueError(f"weight must have a kernel size K >= 1, got shape "
                         f"{tuple(weight.shape)}")
    if bias is not None:
        if not bias.is_floating_point():
            raise TypeError(f"bias must be a real floating tensor, got {bias.dtype}")
        if tuple(bias.shape) != (C,):
            raise ValueError(f"bias must have shape (C,) = ({C},), got {tuple(bias.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.device != u.device:
            raise ValueError(f"{name} must be on u's device {u.device}, got {t.device}")
    if backend == "auto":
        backend = "triton" if u.is_cuda and _HAS_TRITON else "naive"
    if backend == "triton":
        if not _HAS_TRITON:
            raise ValueError("backend 'triton' needs the triton package, which is not "
                             "installed")
        if K > _MAX_K:
            raise ValueError(f"weight's kernel size K must be in [1, {_MAX_K}] for the "
                             f"triton backend, got K = {K}")
    return K, backend


def causal_conv1d(u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                  backend: str = "auto") -> torch.Tensor:
    """Causal depthwise convolution of channels-last ``u`` (B, T, C) along T.

    ``y[b, t, c] = bias[c] + sum_{j=0}^{K-1} weight[c, j] * u[b, t - (K - 1) + j, c]``,
    inputs at negative times being zero: the ``nn.Conv1d(C, C, K, groups=C, padding=K-1)``
    of the transposed input, first T outputs, transposed back. O(B T C K).

    Parameters
    ----------
    u : Tensor (B, T, C), real floating, T >= 1; any strides (the triton path makes it
        contiguous, a no-op when it is)
    weight : Tensor (C, 1, K) (``nn.Conv1d.weight``) or (C, K), real floating
        K >= 1; K <= 8 for the triton backend.
    bias : Tensor (C,), real floating, or None
    backend : {"auto", "naive", "triton"}
        ``"auto"``: ``"triton"`` when ``u`` is on CUDA and Triton is installed, else
        ``"naive"``. ``"triton"`` on CPU runs only under ``TRITON_INTERPRET=1`` (tests).

    Returns
    -------
    Tensor (B, T, C), contiguous, dtype of ``u``
        Differentiable in ``u``, ``weight`` and ``bias``.

    Raises
    ------
    ValueError
        Wrong shapes (u not 3-D, T = 0, weight not (C, 1, K) / (C, K) with u's C, bias not
        (C,)), different devices, unknown backend, K > 8 with triton.
    TypeError
        Non-tensor or non-floating (integer, bool, complex) arguments.

    Notes
    -----
    Dtypes. ``triton``: every product and sum in float32 whatever the dtypes (weight and
    bias are read in their own dtype, a float32 parameter stays float32; float64 inputs are
    computed in float32), y and du stored in ``u``'s dtype, dw in ``weight``'s, dbias in
    ``bias``'s. Autocast does not touch the custom op: a bfloat16 ``u`` with float32
    parameters gives a bfloat16 y computed from the unrounded float32 weights (slightly more
    accurate than autocast's ``nn.Conv1d``, which rounds the weight to bfloat16 first).
    ``naive``: weight and bias are cast to ``u``'s dtype and ``F.conv1d`` runs with autocast
    disabled, so y has ``u``'s dtype too; for a bfloat16 ``u`` under autocast that is the
    arithmetic of autocast's ``F.conv1d``.

    Examples
    --------
    >>> import torch
    >>> u = torch.arange(1.0, 5.0).reshape(1, 4, 1)          # (B, T, C) = (1, 4, 1)
    >>> w = torch.tensor([[[1.0, 10.0]]])                      # (C, 1, K): y_t = u_{t-1} + 10 u_t
    >>> causal_conv1d(u, w, backend="naive")[0, :, 0]
    tensor([10., 21., 32., 43.])
    """
    K, backend = _check(u, weight, bias, backend)
    if backend == "naive":
        return causal_conv1d_naive(u, weight, bias)
    from bkmodel.ops.causal_conv.custom_op import causal_conv1d_op

    C = u.shape[-1]
    return causal_conv1d_op(u.contiguous(), weight.reshape(C, K).contiguous(),
                            None if bias is None else bias.contiguous())
