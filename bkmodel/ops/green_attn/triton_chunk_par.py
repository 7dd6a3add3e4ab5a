"""Chunk-parallel Triton kernels of Green's-function attention (the 3-phase design).

Same object, interface and numerics as :func:`~bkmodel.ops.green_attn.triton_chunk.
green_attention_triton` (per batch row and head ``S_i = a_i S_{i-1} + g_i k_i v_i^T``,
``y_i = q_i^T S_i``, in real arithmetic with the chunk-local phases ``rho, phi`` of
``real.chunk_phases``), but the work is spread over the chunks instead of walking them in
one program per (value block, batch * head), the standard chunked linear-attention layout:

Forward (``bkmodel::green_triton_par``)

1. ``_local_state_kernel``, grid ``(dv / BV, NC, B H)``: the chunk's own end-state
   contribution ``dS_c = sum_j G(end_c, j) k_j v_j^T`` (the pair ``(Re, Im)``, dk x BV);
2. ``_state_scan_kernel``, grid ``(dk / BK, dv / BV, B H)``, sequential over the NC chunks
   of elementwise work only: ``S_in(c) = A_{c-1} S_in(c-1) + dS_{c-1}``, ``S_in(0) = S_0``,
   with the chunk transfer ``A_c = exp(Lambda_end)`` (complex scalar, formed from ``rho,
   phi``; 0 when a reset lies inside chunk c: the carry is cut, as in ``real.py``). It
   overwrites ``dS_c`` by ``S_in(c)`` in place and writes ``S_T``;
3. ``_output_kernel``, grid ``(dv / BV, NC, B H)``: ``y_i`` = intra-chunk term +
   ``exp(Lambda_i) q_i^T S_in(c)`` (the latter only while no reset since the chunk start).

Backward (``bkmodel::green_triton_par_bwd``; exact, nothing kept but the inputs)

1. the forward's phases 1-2 recompute the chunk states ``S_in(c)``;
2. ``_local_adjoint_kernel``, grid ``(dv / BV, NC, B H)``: each chunk's own contribution to
   the adjoint of its entering state, ``sum_i q_i conj(E_i) dy_i`` (``E_i`` the inter-chunk
   factor of phase 3);
3. ``_state_scan_kernel`` in reverse with ``conj(A_c)``: ``D_c`` = adjoint of the state
   leaving chunk c (``D_{NC-1} = dS_T``, ``D_{c-1} = conj(A_c) D_c + local_c``), and
   ``dS_0 = D_{-1}``;
4. ``_grad_kernel``, grid ``(dv / BV, NC, B H)``: the per-chunk body of
   ``triton_chunk._green_bwd_kernel`` (the shared device function ``_chunk_grads``) with
   ``S_in(c)`` and ``D_c`` loaded: exact gradients of q, k, v, g, of the chunk-local
   ``rho, phi`` (hence of ``a``, through torch).
   q, k, g, rho, phi gradients are partial sums over value blocks, added on the host.

The kernels are built from the ``@triton.jit`` device functions of ``triton_chunk.py``
(inlined by Triton), and the host side shares its argument checks and preparation
(``_prepare``) and gradient reduction (``_reduce_grads``).

Precision as ``triton_chunk.py``: float32 accumulation and float32 chunk states (stored in
HBM between the phases), dot operands in the input dtype (``ieee`` dots for float32; under
``TRITON_INTERPRET=1`` every dot is float32). The state recursion performs the same
float32 operations in the same order as the sequential kernel, so the two backends agree
to float32 rounding.

Limits: as ``triton_chunk.py`` (dk, dv powers of two, ``16 <= dk <= 256``, ``dv >= 16``;
``chunk_size`` a power of two in [16, 128]; any T >= 1); the grids' second and third
dimensions (NC and B H) must stay <= 65535 on CUDA. Launch shape (:func:`launch_config`,
changed by :func:`set_launch_config`): BV = 64 forward, 32 backward with 4 warps in
``_grad_kernel`` (chosen by the H200 sweep of 2026-12-04, see ``_BV_BWD``), BK = 32 in the
scan; ``resolve_green_backend("auto")`` picks this backend on CUDA (H200 timings in its
docstring). On the H200 (2026-12-03) the backward with BV = 32 and 8 warps miscompiled the
k gradient for bf16 inputs (see ``_BV_BWD``); that shape is not used.
bf16 / fp16 tensor-core dots are not exercised under the interpreter (as for
``triton_chunk.py``).

Complexity per head: the same O(T L (dk + dv) + T dk dv) work as the sequential kernel, but
with ``NC dv / BV`` independent programs per head in phases 1 and 3 (the only sequential
part is the O(NC dk dv) elementwise scan); memory O(B H NC dk dv) float32 for the chunk
states (forward and backward) and as much for the adjoints (backward).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from bkmodel.ops.green_attn.custom_op import green_triton_par_op
from bkmodel.ops.green_attn.triton_chunk import (
    _add_inter_output,
    _chunk_end,
    _chunk_grads,
    _chunk_rows,
    _chunk_transfer,
    _conj_times,
    _dot_f32,
    _inter_factor,
    _intra_output,
    _load_qkv,
    _load_rows,
    _local_state,
    _phased_g,
    _prepare,
    _reduce_grads,
    _seg_in,
    _store_chunk_grads,
    _token_phases,
)

__all__ = ["green_attention_triton_par", "launch_config", "set_launch_config"]


# ----------------------------------------------------------------------------- kernels


@triton.jit
def _chunk_program(H, NC, BV: tl.constexpr, BT: tl.constexpr):
    """This program of a (value block, chunk, batch * head) grid: ``pid_v``, the chunk
    ``c``, ``b, h`` (int64), the padded length ``Tp`` and the value columns ``ov``."""
    pid_v = tl.program_id(0)
    c = tl.program_id(1)
    pid_bh = tl.program_id(2)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    Tp = NC * BT
    ov = pid_v * BV + tl.arange(0, BV)
    return pid_v, c, b, h, Tp, ov


@triton.jit
def _local_state_kernel(
    k, v, g_re, g_im, rho, phi, seg,  # inputs
    u_re, u_im,  # outputs (B, H, NC, DK, DV)
    T, H, NC,
    DK: tl.constexpr, DV: tl.constexpr, BV: tl.constexpr, BT: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """Phase 1: ``dS_c = sum_j n_j exp(Lambda_L - Lambda_j) g_j k_j v_j^T`` of one chunk."""
    pid_v, c, b, h, Tp, ov = _chunk_program(H, NC, BV, BT)
    odk = tl.arange(0, DK)
    t0, t, tm, row = _chunk_rows(b, h, c, T, H, BT)
    bk = _load_rows(k, row, tm, odk, DK)
    bv = _load_rows(v, row, tm, ov, DV)
    if DOT_F32:
        bk, bv = bk.to(tl.float32), bv.to(tl.float32)
    gr = tl.load(g_re + row, mask=tm, other=0.0)
    gi = tl.load(g_im + row, mask=tm, other=0.0)
    r_base = (b * H + h) * Tp
    r = tl.load(rho + r_base + t)
    p = tl.load(phi + r_base + t)
    sgb = seg + b * Tp
    sg = tl.load(sgb + t)
    r_L, p_L, sg_L = _chunk_end(rho, phi, sgb, r_base, t0, BT)
    cp = tl.cos(p)
    sp = tl.sin(p)
    c_re, c_im = _phased_g(gr, gi, cp, sp)
    ur, ui = _local_state(bk, bv, r, sg, c_re, c_im, r_L, tl.cos(p_L), tl.sin(p_L), sg_L)
    st_off = (((b * H + h) * NC + c) * DK + odk[:, None]) * DV + ov[None, :]
    tl.store(u_re + st_off, ur)
    tl.store(u_im + st_off, ui)


@triton.jit
def _state_scan_kernel(
    buf_re, buf_im,  # in: per-chunk local terms; out (in place): the carried states
    x0_re, x0_im,  # boundary state (S_0 forward, dS_T backward)
    out_re, out_im,  # the final carry (S_T forward, dS_0 backward)
    rho, phi, seg,
    H, NC,
    DK: tl.constexpr, DV: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    BT: tl.constexpr, HAS_X0: tl.constexpr, REVERSE: tl.constexpr,
):
    """Phase 2, sequential over chunks on a (BK, BV) tile of one (batch, head).

    Forward (``REVERSE=False``): ``X = S_0``; per chunk c ascending ``u = buf[c]``,
    ``buf[c] = X`` (= S_in(c)), ``X = A_c X + u``; finally ``out = X`` (= S_T).
    Backward (``REVERSE=True``): ``X = dS_T``; per chunk c descending ``u = buf[c]``,
    ``buf[c] = X`` (= D_c, the adjoint of the state leaving c), ``X = conj(A_c) X + u``;
    finally ``out = X`` (= dS_0). ``A_c = [no reset inside c] exp(rho_L + i phi_L)``.
    """
    pid_k = tl.program_id(0)
    pid_v = tl.program_id(1)
    pid_bh = tl.program_id(2)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    Tp = NC * BT
    ok = pid_k * BK + tl.arange(0, BK)
    ov = pid_v * BV + tl.arange(0, BV)
    s_off = ((b * H + h) * DK + ok[:, None]) * DV + ov[None, :]
    if HAS_X0:
        X_re = tl.load(x0_re + s_off).to(tl.float32)
        X_im = tl.load(x0_im + s_off).to(tl.float32)
    else:
        X_re = tl.zeros([BK, BV], dtype=tl.float32)
        X_im = tl.zeros([BK, BV], dtype=tl.float32)
    r_base = (b * H + h) * Tp
    sgb = seg + b * Tp
    for ci in range(NC):
        if REVERSE:
            c = NC - 1 - ci
        else:
            c = ci
        t0 = c * BT
        r_L, p_L, sg_L = _chunk_end(rho, phi, sgb, r_base, t0, BT)
        sg_in = _seg_in(sgb, t0, c)
        A_re, A_im = _chunk_transfer(r_L, tl.cos(p_L), tl.sin(p_L), sg_L, sg_in)
        if REVERSE:
            A_im = -A_im
        st_off = (((b * H + h) * NC + c) * DK + ok[:, None]) * DV + ov[None, :]
        u_re = tl.load(buf_re + st_off)
        u_im = tl.load(buf_im + st_off)
        tl.store(buf_re + st_off, X_re)
        tl.store(buf_im + st_off, X_im)
        X_re, X_im = A_re * X_re - A_im * X_im + u_re, A_re * X_im + A_im * X_re + u_im
    tl.store(out_re + s_off, X_re)
    tl.store(out_im + s_off, X_im)


@triton.jit
def _output_kernel(
    q, k, v, g_re, g_im, rho, phi, seg, st_re, st_im,  # inputs
    y_re, y_im,  # outputs (B, T, H, DV)
    T, H, NC,
    DK: tl.constexpr, DV: tl.constexpr, BV: tl.constexpr, BT: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """Phase 3: the outputs of one chunk and value block (intra + inter-chunk terms)."""
    pid_v, c, b, h, Tp, ov = _chunk_program(H, NC, BV, BT)
    ot = tl.arange(0, BT)
    odk = tl.arange(0, DK)
    causal = ot[:, None] >= ot[None, :]
    t0, t, tm, row = _chunk_rows(b, h, c, T, H, BT)
    bq, bk, bv = _load_qkv(q, k, v, row, tm, odk, ov, DK, DV, DOT_F32)
    r_base = (b * H + h) * Tp
    sgb = seg + b * Tp
    gr, gi, r, p, sg, sg_in = _token_phases(g_re, g_im, rho, phi, sgb, row, tm, r_base, t, t0, c)
    cp = tl.cos(p)
    sp = tl.sin(p)
    c_re, c_im = _phased_g(gr, gi, cp, sp)
    acc_re, acc_im = _intra_output(bq, bk, bv, r, cp, sp, sg, c_re, c_im, causal)
    st_off = (((b * H + h) * NC + c) * DK + odk[:, None]) * DV + ov[None, :]
    S_re = tl.load(st_re + st_off)
    S_im = tl.load(st_im + st_off)
    er, ei = _inter_factor(r, cp, sp, sg, sg_in)
    acc_re, acc_im = _add_inter_output(acc_re, acc_im, bq, S_re, S_im, er, ei)
    y_off = row[:, None] * DV + ov[None, :]
    tl.store(y_re + y_off, acc_re, mask=tm[:, None])
    tl.store(y_im + y_off, acc_im, mask=tm[:, None])


@triton.jit
def _local_adjoint_kernel(
    q, rho, phi, seg, dy_re, dy_im,  # inputs
    w_re, w_im,  # outputs (B, H, NC, DK, DV)
    T, H, NC,
    DK: tl.constexpr, DV: tl.constexpr, BV: tl.constexpr, BT: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """Backward phase 2: ``sum_i q_i conj(E_i) dy_i``, the chunk's own part of dS_in(c)."""
    pid_v, c, b, h, Tp, ov = _chunk_program(H, NC, BV, BT)
    odk = tl.arange(0, DK)
    t0, t, tm, row = _chunk_rows(b, h, c, T, H, BT)
    bq = _load_rows(q, row, tm, odk, DK)
    if DOT_F32:
        bq = bq.to(tl.float32)
    DT = bq.dtype
    dyr = _load_rows(dy_re, row, tm, ov, DV).to(tl.float32)
    dyi = _load_rows(dy_im, row, tm, ov, DV).to(tl.float32)
    r_base = (b * H + h) * Tp
    r = tl.load(rho + r_base + t)
    p = tl.load(phi + r_base + t)
    sgb = seg + b * Tp
    sg = tl.load(sgb + t)
    sg_in = _seg_in(sgb, t0, c)
    er, ei = _inter_factor(r, tl.cos(p), tl.sin(p), sg, sg_in)
    wr, wi = _conj_times(er, ei, dyr, dyi)
    st_off = (((b * H + h) * NC + c) * DK + odk[:, None]) * DV + ov[None, :]
    tl.store(w_re + st_off, tl.dot(tl.trans(bq), wr.to(DT), input_precision="ieee"))
    tl.store(w_im + st_off, tl.dot(tl.trans(bq), wi.to(DT), input_precision="ieee"))


@triton.jit
def _grad_kernel(
    q, k, v, g_re, g_im, rho, phi, seg, st_re, st_im, ds_re, ds_im, dy_re, dy_im,  # inputs
    dq, dk, dv, dg_re, dg_im, drho, dphi,  # outputs
    T, H, NC, B,
    DK: tl.constexpr, DV: tl.constexpr, BV: tl.constexpr, BT: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """Backward phase 3: exact gradients of one chunk and value block.

    ``st`` holds ``S_in(c)``, ``ds`` holds ``D_c`` (the adjoint of the state leaving the
    chunk), both (B, H, NC, DK, DV). Partial (over value blocks, leading dim NV) outputs:
    dq, dk (NV, B, T, H, DK); dg, drho, dphi (NV, B, H, Tp). Complete: dv (B, T, H, DV).
    The body is ``triton_chunk._chunk_grads``, shared with ``_green_bwd_kernel`` (which
    also carries the adjoint).
    """
    pid_v, c, b, h, Tp, ov = _chunk_program(H, NC, BV, BT)
    nv = (pid_v).to(tl.int64)
    ot = tl.arange(0, BT)
    odk = tl.arange(0, DK)
    causal = ot[:, None] >= ot[None, :]
    last = ot == BT - 1
    r_base = (b * H + h) * Tp
    t0, t, tm, row = _chunk_rows(b, h, c, T, H, BT)
    bq, bk, bv = _load_qkv(q, k, v, row, tm, odk, ov, DK, DV, DOT_F32)
    dyr = _load_rows(dy_re, row, tm, ov, DV).to(tl.float32)
    dyi = _load_rows(dy_im, row, tm, ov, DV).to(tl.float32)
    sgb = seg + b * Tp
    gr, gi, r, p, sg, sg_in = _token_phases(g_re, g_im, rho, phi, sgb, row, tm, r_base, t, t0, c)
    r_L, p_L, sg_L = _chunk_end(rho, phi, sgb, r_base, t0, BT)
    st_off = (((b * H + h) * NC + c) * DK + odk[:, None]) * DV + ov[None, :]
    S_re = tl.load(st_re + st_off)
    S_im = tl.load(st_im + st_off)
    dS_re = tl.load(ds_re + st_off)
    dS_im = tl.load(ds_im + st_off)
    acc_dq, acc_dk, acc_dv, dgr, dgi, dlr, dli, _, _, _, _ = _chunk_grads(
        bq, bk, bv, dyr, dyi, gr, gi, r, p, sg, sg_in, r_L, p_L, sg_L,
        S_re, S_im, dS_re, dS_im, causal, last)
    _store_chunk_grads(dq, dk, dv, dg_re, dg_im, drho, dphi, nv, b, h, t, tm, row, odk, ov,
                       acc_dq, acc_dk, acc_dv, dgr, dgi, dlr, dli, T, H, Tp, B, DK, DV)


# ----------------------------------------------------------------------------- host side

_BV_FWD = 64  # value-block widths of the chunk-parallel kernels (untuned)
# BV = 16 in the backward, as the sequential kernel uses at these sizes: on the H200 (triton
# 3.6, bf16 q/k/v) _grad_kernel with BV = 32 and 8 warps returned a wrong k gradient (relative
# error 0.16 at B 1, T 128, dk = dv = 64, NaN at B 8, T 2048) while q, v, g were right; BV = 16
# matched the sequential kernel to 7e-10 and BV = 32 with 4 warps or BV = 64 to bf16 rounding
# (2.6e-3). tests/bkmodel/test_green_par.py::test_bf16_gradients_match_sequential_on_cuda.
# Since 2026-12-04 the backward uses BV = 32 with 4 warps in _grad_kernel: the launch sweep
# (benchmarks/bench_green_attn.py --launch, H200, bf16, H 8, dk = dv = 32) timed 3.13 against
# 3.18 ms at B 8 x T 2,048 and 3.35 against 3.83 ms at B 1 x T 16,384, every output and
# gradient within bf16 rounding of the BV = 16 launch (3.0e-3) and of float64.
_BV_BWD = 32
_BK_SCAN = 32  # key-block height of the scan
_NW = {"local": 4, "scan": 4, "output": 8, "adjoint": 4, "grad": 4}  # warps per kernel


def launch_config() -> dict[str, int]:
    """The launch shape the kernels use now: ``bv_fwd``, ``bv_bwd``, ``bk_scan`` and
    ``warps_<kernel>`` for the kernels ``local, scan, output, adjoint, grad``."""
    return {"bv_fwd": _BV_FWD, "bv_bwd": _BV_BWD, "bk_scan": _BK_SCAN,
            **{f"warps_{k}": v for k, v in _NW.items()}}


def set_launch_config(**changes: int) -> dict[str, int]:
    """Change the launch shape (keys of :func:`launch_config`; block widths powers of two in
    [16, 128], warps in {1, 2, 4, 8, 16}) and return the previous one, so a benchmark can
    sweep shapes and restore them: ``old = set_launch_config(bv_bwd=32, warps_grad=4)``,
    then ``set_launch_config(**old)``. Every shape computes the same function; the sweep in
    ``benchmarks/bench_green_attn.py --launch`` checks that before timing (a Triton
    miscompile is possible, see ``_BV_BWD``). ``ValueError`` naming the key otherwise."""
    global _BV_FWD, _BV_BWD, _BK_SCAN
    old = launch_config()
    for key, val in changes.items():
        if key not in old:
            raise ValueError(f"set_launch_config: unknown key {key!r}; known: "
                             f"{', '.join(old)}")
        if not isinstance(val, int) or isinstance(val, bool):
            raise ValueError(f"set_launch_config: {key} must be an int, got {val!r}")
        if key.startswith("warps_"):
            if val not in (1, 2, 4, 8, 16):
                raise ValueError(f"set_launch_config: {key} must be 1, 2, 4, 8 or 16, "
                                 f"got {val}")
        elif not (16 <= val <= 128 and val & (val - 1) == 0):
            raise ValueError(f"set_launch_config: {key} must be a power of two in [16, 128], "
                             f"got {val}")
    for key, val in changes.items():
        if key.startswith("warps_"):
            _NW[key[len("warps_"):]] = val
        elif key == "bv_fwd":
            _BV_FWD = val
        elif key == "bv_bwd":
            _BV_BWD = val
        else:
            _BK_SCAN = val
    return old


def _scan(buf_re: torch.Tensor, buf_im: torch.Tensor, x0_re: torch.Tensor | None,
          x0_im: torch.Tensor | None, rho: torch.Tensor, phi: torch.Tensor, seg: torch.Tensor,
          BT: int, reverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch ``_state_scan_kernel`` on ``buf`` (B, H, NC, DK, DV) in place; the final carry."""
    B, H, NC, DK, DV = buf_re.shape
    BK, BV = min(DK, _BK_SCAN), min(DV, 32)
    f32 = dict(dtype=torch.float32, device=buf_re.device)
    out_re, out_im = torch.empty(B, H, DK, DV, **f32), torch.empty(B, H, DK, DV, **f32)
    has = x0_re is not None
    _state_scan_kernel[(DK // BK, DV // BV, B * H)](
        buf_re, buf_im, x0_re if has else out_re, x0_im if has else out_im, out_re, out_im,
        rho, phi, seg, H, NC, DK=DK, DV=DV, BK=BK, BV=BV, BT=BT, HAS_X0=has,
        REVERSE=reverse, num_warps=_NW["scan"],
    )
    return out_re, out_im


def _states(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g_re: torch.Tensor,
            g_im: torch.Tensor, rho: torch.Tensor, phi: torch.Tensor, seg: torch.Tensor,
            s0_re: torch.Tensor | None, s0_im: torch.Tensor | None, BT: int
            ) -> tuple[torch.Tensor, ...]:
    """Phases 1-2: ``(st_re, st_im, sT_re, sT_im)``, st the (B, H, NC, dk, dv) entering
    states."""
    B, T, H, DK = q.shape
    DV = v.shape[-1]
    NC = rho.shape[-1] // BT
    BV = min(DV, _BV_FWD)
    f32 = dict(dtype=torch.float32, device=q.device)
    st_re, st_im = torch.empty(B, H, NC, DK, DV, **f32), torch.empty(B, H, NC, DK, DV, **f32)
    _local_state_kernel[(DV // BV, NC, B * H)](
        k, v, g_re, g_im, rho, phi, seg, st_re, st_im, T, H, NC,
        DK=DK, DV=DV, BV=BV, BT=BT, DOT_F32=_dot_f32(q), num_warps=_NW["local"],
    )
    sT_re, sT_im = _scan(st_re, st_im, s0_re, s0_im, rho, phi, seg, BT, reverse=False)
    return st_re, st_im, sT_re, sT_im


def _forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g_re: torch.Tensor,
             g_im: torch.Tensor, rho: torch.Tensor, phi: torch.Tensor, seg: torch.Tensor,
             s0_re: torch.Tensor | None, s0_im: torch.Tensor | None, BT: int
             ) -> tuple[torch.Tensor, ...]:
    """The three forward phases; ``(y_re, y_im, S_re, S_im)`` as ``triton_chunk._forward``."""
    B, T, H, DK = q.shape
    DV = v.shape[-1]
    NC = rho.shape[-1] // BT
    BV = min(DV, _BV_FWD)
    st_re, st_im, sT_re, sT_im = _states(q, k, v, g_re, g_im, rho, phi, seg, s0_re, s0_im, BT)
    f32 = dict(dtype=torch.float32, device=q.device)
    y_re, y_im = torch.empty(B, T, H, DV, **f32), torch.empty(B, T, H, DV, **f32)
    _output_kernel[(DV // BV, NC, B * H)](
        q, k, v, g_re, g_im, rho, phi, seg, st_re, st_im, y_re, y_im, T, H, NC,
        DK=DK, DV=DV, BV=BV, BT=BT, DOT_F32=_dot_f32(q), num_warps=_NW["output"],
    )
    return y_re, y_im, sT_re, sT_im


def _backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g_re: torch.Tensor,
              g_im: torch.Tensor, rho: torch.Tensor, phi: torch.Tensor, seg: torch.Tensor,
              s0_re: torch.Tensor | None, s0_im: torch.Tensor | None, dy_re: torch.Tensor,
              dy_im: torch.Tensor, dsT_re: torch.Tensor, dsT_im: torch.Tensor, BT: int
              ) -> tuple[torch.Tensor | None, ...]:
    """Exact gradients of ``_forward``; arguments and returns as ``triton_chunk._backward``.

    Returns
    -------
    tuple
        ``(dq, dk, dv, dg_re, dg_im, drho, dphi, ds0_re, ds0_im)``: dq, dk, dv in the input
        dtypes, the rest float32; dg (B, T, H), drho / dphi (B, H, Tp); ds0 None without an
        initial state. The chunk states are recomputed (phases 1-2).
    """
    B, T, H, DK = q.shape
    DV = v.shape[-1]
    Tp = rho.shape[-1]
    NC = Tp // BT
    BV = min(DV, _BV_BWD)
    NV = DV // BV
    f32 = dict(dtype=torch.float32, device=q.device)
    st_re, st_im, _, _ = _states(q, k, v, g_re, g_im, rho, phi, seg, s0_re, s0_im, BT)
    ds_re, ds_im = torch.empty(B, H, NC, DK, DV, **f32), torch.empty(B, H, NC, DK, DV, **f32)
    _local_adjoint_kernel[(NV, NC, B * H)](
        q, rho, phi, seg, dy_re, dy_im, ds_re, ds_im, T, H, NC,
        DK=DK, DV=DV, BV=BV, BT=BT, DOT_F32=_dot_f32(q), num_warps=_NW["adjoint"],
    )
    ds0_re, ds0_im = _scan(ds_re, ds_im, dsT_re, dsT_im, rho, phi, seg, BT, reverse=True)
    dq = torch.empty(NV, B, T, H, DK, **f32)
    dk = torch.empty(NV, B, T, H, DK, **f32)
    dv = torch.empty(B, T, H, DV, **f32)
    part = [torch.empty(NV, B, H, Tp, **f32) for _ in range(4)]
    _grad_kernel[(NV, NC, B * H)](
        q, k, v, g_re, g_im, rho, phi, seg, st_re, st_im, ds_re, ds_im, dy_re, dy_im,
        dq, dk, dv, *part, T, H, NC, B,
        DK=DK, DV=DV, BV=BV, BT=BT, DOT_F32=_dot_f32(q), num_warps=_NW["grad"],
    )
    return _reduce_grads(q, k, v, dq, dk, dv, part, s0_re is not None, ds0_re, ds0_im)


def green_attention_triton_par(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g_re: torch.Tensor,
    g_im: torch.Tensor,
    a_re: torch.Tensor,
    a_im: torch.Tensor,
    *,
    reset: torch.Tensor | None = None,
    initial_state: tuple[torch.Tensor, torch.Tensor] | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Green's-function attention by the chunk-parallel Triton kernels.

    Parameters, returns and ``ValueError`` exactly as
    :func:`~bkmodel.ops.green_attn.triton_chunk.green_attention_triton` (same checks, same
    phase preparation); only the kernels differ (see the module docstring). Gradients flow
    to q, k, v, g, a and the initial state (``bkmodel::green_triton_par_bwd``).

    Parameters
    ----------
    q, k : Tensor (B, T, H, dk), float32, bfloat16 or float16 (float64 is computed in float32)
    v : Tensor (B, T, H, dv), same dtype family
    g_re, g_im, a_re, a_im : Tensor (B, T, H), real
    reset : Tensor (B, T) bool, optional
    initial_state : pair of Tensor (B, H, dk, dv), real, optional
    chunk_size : int
        A power of two in [16, 128].

    Returns
    -------
    y_re, y_im : Tensor (B, T, H, dv), float32
    (S_re, S_im) : pair of Tensor (B, H, dk, dv), float32
    """
    y_re, y_im, s_re, s_im = green_triton_par_op(
        *_prepare(q, k, v, g_re, g_im, a_re, a_im, reset, initial_state, chunk_size))
    return y_re, y_im, (s_re, s_im)
