"""Triton kernels of the causal depthwise 1-D convolution on channels-last (B, T, C) tensors.

Forward (``causal_conv1d_fwd_kernel``), one program per (T block, C block, batch)::

    y[b, t, c] = bias[c] + sum_{j=0}^{K-1} w[c, j] * u[b, t - (K-1) + j, c]

as K shifted, masked (BT, BC) loads of ``u`` (rows at negative times read as zero; the
K - 1 halo rows of a block come from the cache), accumulated in float32, bias added, stored
in ``u``'s dtype. Loads along C are contiguous: no transposes, no copies.

Backward (``causal_conv1d_bwd_kernel``), the same grid, one kernel for all three gradients::

    du[b, t, c] = sum_j w[c, j] * dy[b, t + (K-1) - j, c]        (dy beyond T is zero)
    dw[c, j]    = sum_{b,t} dy[b, t, c] * u[b, t - (K-1) + j, c]
    dbias[c]    = sum_{b,t} dy[b, t, c]

du by the reversed taps (K shifted loads of ``dy``); dw and dbias as float32 partial sums
over the program's BT rows, written to a (n_partials, K, C) / (n_partials, C) buffer, one
slot per (batch, T block), and summed on the host by ``torch.sum``: no atomics, the result
is deterministic (run to run and for every grid order). Cost O(B T C K) for each pass;
memory traffic of the ideal kind: the forward reads u and writes y once, the backward reads
dy and u and writes du once (plus the small partial buffers, ``n_partials K C`` floats).

Dtypes: u, dy float32, bfloat16, float16 or float64, weight and bias any of those; every
product and sum is float32 (float64 inputs are *computed in float32*: loaded, converted,
the results stored back as float64 with float32 accuracy). Outputs: y and du in ``u``'s
dtype, dw in ``weight``'s, dbias in ``bias``'s. K (1 <= K <= 8) is a compile-time constant:
one compiled kernel per K.

The block sizes below are defaults picked by one coarse sweep on an H200 (B 8, T 2048 and
B 1, T 16384, C 792, K 4, bfloat16; BT in 16..128, BC in 32..256, 2/4/8 warps), *not* an
autotuned choice: small T tiles win (more programs in flight; in the backward, fewer rows per
cross-thread reduction of dw). Measured there: forward 29 us (the copy-bandwidth ideal is
12 us), backward 90 us including the host sum of the partials. The host wrappers take the
arguments as given (contiguous, shapes checked by
:func:`bkmodel.ops.causal_conv.causal_conv1d`).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["BWD_BLOCK_C", "BWD_BLOCK_T", "BWD_NUM_WARPS", "FWD_BLOCK_C", "FWD_BLOCK_T",
           "FWD_NUM_WARPS", "MAX_K", "causal_conv1d_bwd", "causal_conv1d_fwd"]

# (BT rows = time steps, BC contiguous channels, warps) per program; one coarse H200 sweep
FWD_BLOCK_T, FWD_BLOCK_C, FWD_NUM_WARPS = 16, 64, 2
BWD_BLOCK_T, BWD_BLOCK_C, BWD_NUM_WARPS = 16, 128, 2
MAX_K = 8  # the largest kernel size compiled


# --------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------
@triton.jit
def causal_conv1d_fwd_kernel(u_ptr, w_ptr, b_ptr, y_ptr, T, C,
                             K: tl.constexpr, HAS_BIAS: tl.constexpr,
                             BT: tl.constexpr, BC: tl.constexpr):
    """y (B, T, C) = bias + sum_j w[:, j] u[t - (K-1) + j]; one (BT, BC) tile per program."""
    pid_t = tl.program_id(0)
    pid_c = tl.program_id(1)
    pid_b = tl.program_id(2)
    t = pid_t * BT + tl.arange(0, BT)  # (BT,)
    c = pid_c * BC + tl.arange(0, BC)  # (BC,)
    cm = c < C
    base = pid_b.to(tl.int64) * T * C
    acc = tl.zeros((BT, BC), dtype=tl.float32)
    for j in tl.static_range(K):
        ts = t - (K - 1 - j)  # input time of tap j
        m = ((ts >= 0) & (ts < T))[:, None] & cm[None, :]
        x = tl.load(u_ptr + base + ts[:, None] * C + c[None, :], mask=m, other=0.0)
        wj = tl.load(w_ptr + c * K + j, mask=cm, other=0.0).to(tl.float32)  # (BC,)
        acc += x.to(tl.float32) * wj[None, :]
    if HAS_BIAS:
        acc += tl.load(b_ptr + c, mask=cm, other=0.0).to(tl.float32)[None, :]
    m = (t < T)[:, None] & cm[None, :]
    tl.store(y_ptr + base + t[:, None] * C + c[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=m)


@triton.jit
def causal_conv1d_bwd_kernel(dy_ptr, u_ptr, w_ptr, du_ptr, dw_ptr, db_ptr, T, C, NT,
                             K: tl.constexpr, HAS_BIAS: tl.constexpr,
                             BT: tl.constexpr, BC: tl.constexpr):
    """du tile (reversed taps) and this program's float32 partial sums of dw, dbias.

    ``dw_ptr`` (n_partials, K, C) and ``db_ptr`` (n_partials, C) float32, slot
    ``pid_b * NT + pid_t``; every slot and channel is written (no initialisation needed).
    """
    pid_t = tl.program_id(0)
    pid_c = tl.program_id(1)
    pid_b = tl.program_id(2)
    t = pid_t * BT + tl.arange(0, BT)  # (BT,)
    c = pid_c * BC + tl.arange(0, BC)  # (BC,)
    cm = c < C
    base = pid_b.to(tl.int64) * T * C
    slot = (pid_b * NT + pid_t).to(tl.int64)
    m_t = (t < T)[:, None] & cm[None, :]
    dy = tl.load(dy_ptr + base + t[:, None] * C + c[None, :], mask=m_t, other=0.0)
    dy = dy.to(tl.float32)  # (BT, BC), zero beyond T
    acc = tl.zeros((BT, BC), dtype=tl.float32)
    for j in tl.static_range(K):
        s = K - 1 - j  # tap j links y[t] to u[t - s]
        wj = tl.load(w_ptr + c * K + j, mask=cm, other=0.0).to(tl.float32)  # (BC,)
        # du[t] += w[j] dy[t + s]
        td = t + s
        md = (td < T)[:, None] & cm[None, :]
        dys = tl.load(dy_ptr + base + td[:, None] * C + c[None, :], mask=md, other=0.0)
        acc += dys.to(tl.float32) * wj[None, :]
        # dw[j] += sum_t dy[t] u[t - s]
        tu = t - s
        mu = ((tu >= 0) & (tu < T))[:, None] & cm[None, :]
        us = tl.load(u_ptr + base + tu[:, None] * C + c[None, :], mask=mu, other=0.0)
        dwj = tl.sum(dy * us.to(tl.float32), axis=0)  # (BC,)
        tl.store(dw_ptr + (slot * K + j) * C + c, dwj, mask=cm)
    tl.store(du_ptr + base + t[:, None] * C + c[None, :], acc.to(du_ptr.dtype.element_ty),
             mask=m_t)
    if HAS_BIAS:
        tl.store(db_ptr + slot * C + c, tl.sum(dy, axis=0), mask=cm)


# --------------------------------------------------------------------------------------------
# host wrappers
# --------------------------------------------------------------------------------------------
def _grid(B: int, T: int, C: int, BT: int, BC: int) -> tuple[int, int, int]:
    return (triton.cdiv(T, BT), triton.cdiv(C, BC), B)


def causal_conv1d_fwd(u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *,
                      block_t: int = FWD_BLOCK_T, block_c: int = FWD_BLOCK_C,
                      num_warps: int = FWD_NUM_WARPS) -> torch.Tensor:
    """y (B, T, C) in ``u``'s dtype from contiguous u (B, T, C), weight (C, K), bias (C,).

    Parameters
    ----------
    u : Tensor (B, T, C), contiguous
    weight : Tensor (C, K), contiguous, 1 <= K <= ``MAX_K``
    bias : Tensor (C,), contiguous, or None
    block_t, block_c : int
        Tile (powers of two); ``num_warps`` warps per program.

    Returns
    -------
    Tensor (B, T, C), contiguous, dtype of ``u`` (float32 arithmetic). O(B T C K).
    """
    B, T, C = u.shape
    K = weight.shape[1]
    y = torch.empty_like(u, memory_format=torch.contiguous_format)
    if y.numel() == 0:
        return y
    causal_conv1d_fwd_kernel[_grid(B, T, C, block_t, block_c)](
        u, weight, bias if bias is not None else weight, y, T, C, K=K,
        HAS_BIAS=bias is not None, BT=block_t, BC=block_c, num_warps=num_warps)
    return y


def causal_conv1d_bwd(dy: torch.Tensor, u: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None, *, block_t: int = BWD_BLOCK_T,
                      block_c: int = BWD_BLOCK_C, num_warps: int = BWD_NUM_WARPS
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(du, dw, dbias)`` of :func:`causal_conv1d_fwd` for the incoming gradient dy.

    Parameters
    ----------
    dy, u : Tensor (B, T, C), contiguous
    weight : Tensor (C, K), contiguous
    bias : Tensor (C,) or None
        Only its presence and dtype are used (dbias is None without it).

    Returns
    -------
    du : Tensor (B, T, C), dtype of ``u``
    dw : Tensor (C, K), dtype of ``weight``
    dbias : Tensor (C,), dtype of ``bias``, or None

    Notes
    -----
    dw and dbias: float32 partial sums per (batch, T block) program, then one ``torch.sum``
    over the ``B * ceil(T / block_t)`` partials (deterministic). O(B T C K).
    """
    B, T, C = u.shape
    K = weight.shape[1]
    du = torch.empty_like(u, memory_format=torch.contiguous_format)
    if du.numel() == 0:
        dw = torch.zeros_like(weight)
        return du, dw, None if bias is None else torch.zeros_like(bias)
    NT = triton.cdiv(T, block_t)
    n_part = B * NT
    dw_part = torch.empty((n_part, K, C), dtype=torch.float32, device=u.device)
    db_part = torch.empty((n_part, C) if bias is not None else (1,), dtype=torch.float32,
                          device=u.device)
    causal_conv1d_bwd_kernel[_grid(B, T, C, block_t, block_c)](
        dy, u, weight, du, dw_part, db_part, T, C, NT, K=K, HAS_BIAS=bias is not None,
        BT=block_t, BC=block_c, num_warps=num_warps)
    dw = dw_part.sum(0).t().to(weight.dtype).contiguous()  # (C, K)
    db = None if bias is None else db_part.sum(0).to(bias.dtype)
    return du, dw, db
