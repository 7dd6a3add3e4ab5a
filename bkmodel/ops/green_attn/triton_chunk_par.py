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
   ``triton_chunk._green_bwd_kernel`` with ``S_in(c)`` and ``D_c`` loaded: exact gradients
   of q, k, v, g, of the chunk-local ``rho, phi`` (hence of ``a``, through torch).
   q, k, g, rho, phi gradients are partial sums over value blocks, added on the host.

Precision as ``triton_chunk.py``: float32 accumulation and float32 chunk states (stored in
HBM between the phases), dot operands in the input dtype (``ieee`` dots for float32; under
``TRITON_INTERPRET=1`` every dot is float32). The state recursion performs the same
float32 operations in the same order as the sequential kernel, so the two backends agree
to float32 rounding.

Limits: as ``triton_chunk.py`` (dk, dv powers of two, ``16 <= dk <= 256``, ``dv >= 16``;
``chunk_size`` a power of two in [16, 128]; any T >= 1); the grids' second and third
dimensions (NC and B H) must stay <= 65535 on CUDA. The block sizes (BV = 64 forward, 32
backward; BK = 32 in the scan) and warp counts are untuned defaults, and no timing exists
yet: ``resolve_green_backend`` keeps ``"triton"`` until a GPU measurement says otherwise.
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
from bkmodel.ops.green_attn.real import _check_real_args, chunk_phases
from bkmodel.ops.green_attn.triton_chunk import _dot_f32, _is_pow2

__all__ = ["green_attention_triton_par"]


# ----------------------------------------------------------------------------- kernels


@triton.jit
def _local_state_kernel(
    k, v, g_re, g_im, rho, phi, seg,  # inputs
    u_re, u_im,  # outputs (B, H, NC, DK, DV)
    T, H, NC,
    DK: tl.constexpr, DV: tl.constexpr, BV: tl.constexpr, BT: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """Phase 1: ``dS_c = sum_j n_j exp(Lambda_L - Lambda_j) g_j k_j v_j^T`` of one chunk."""
    pid_v = tl.program_id(0)
    c = tl.program_id(1)
    pid_bh = tl.program_id(2)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    Tp = NC * BT
    ot = tl.arange(0, BT)
    odk = tl.arange(0, DK)
    ov = pid_v * BV + tl.arange(0, BV)
    t0 = c * BT
    t = t0 + ot
    tm = t < T
    row = (b * T + t) * H + h
    bk = tl.load(k + row[:, None] * DK + odk[None, :], mask=tm[:, None], other=0.0)
    bv = tl.load(v + row[:, None] * DV + ov[None, :], mask=tm[:, None], other=0.0)
    if DOT_F32:
        bk, bv = bk.to(tl.float32), bv.to(tl.float32)
    gr = tl.load(g_re + row, mask=tm, other=0.0)
    gi = tl.load(g_im + row, mask=tm, other=0.0)
    r_base = (b * H + h) * Tp
    r = tl.load(rho + r_base + t)
    p = tl.load(phi + r_base + t)
    sgb = seg + b * Tp
    sg = tl.load(sgb + t)
    r_L = tl.load(rho + r_base + t0 + BT - 1)
    p_L = tl.load(phi + r_base + t0 + BT - 1)
    sg_L = tl.load(sgb + t0 + BT - 1)
    cp = tl.cos(p)
    sp = tl.sin(p)
    c_re = gr * cp + gi * sp  # c_j = g_j e^{-i phi_j}
    c_im = gi * cp - gr * sp
    cpL = tl.cos(p_L)
    spL = tl.sin(p_L)
    w = tl.where(sg == sg_L, tl.exp(r_L - r), 0.0)
    d_re = w * (cpL * c_re - spL * c_im)
    d_im = w * (spL * c_re + cpL * c_im)
    ur = tl.dot(tl.trans((bk * d_re[:, None]).to(bv.dtype)), bv, input_precision="ieee")
    ui = tl.dot(tl.trans((bk * d_im[:, None]).to(bv.dtype)), bv, input_precision="ieee")
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
        r_L = tl.load(rho + r_base + t0 + BT - 1)
        p_L = tl.load(phi + r_base + t0 + BT - 1)
        sg_L = tl.load(sgb + t0 + BT - 1)
        sg_in = tl.load(sgb + tl.maximum(t0 - 1, 0))
        sg_in = tl.where(c > 0, sg_in, 0)
        A_mag = tl.where(sg_L == sg_in, tl.exp(r_L), 0.0)
        A_re = A_mag * tl.cos(p_L)
        A_im = A_mag * tl.sin(p_L)
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
    pid_v = tl.program_id(0)
    c = tl.program_id(1)
    pid_bh = tl.program_id(2)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    Tp = NC * BT
    ot = tl.arange(0, BT)
    odk = tl.arange(0, DK)
    ov = pid_v * BV + tl.arange(0, BV)
    causal = ot[:, None] >= ot[None, :]
    t0 = c * BT
    t = t0 + ot
    tm = t < T
    row = (b * T + t) * H + h
    bq = tl.load(q + row[:, None] * DK + odk[None, :], mask=tm[:, None], other=0.0)
    bk = tl.load(k + row[:, None] * DK + odk[None, :], mask=tm[:, None], other=0.0)
    bv = tl.load(v + row[:, None] * DV + ov[None, :], mask=tm[:, None], other=0.0)
    if DOT_F32:
        bq, bk, bv = bq.to(tl.float32), bk.to(tl.float32), bv.to(tl.float32)
    gr = tl.load(g_re + row, mask=tm, other=0.0)
    gi = tl.load(g_im + row, mask=tm, other=0.0)
    r_base = (b * H + h) * Tp
    r = tl.load(rho + r_base + t)
    p = tl.load(phi + r_base + t)
    sgb = seg + b * Tp
    sg = tl.load(sgb + t)
    sg_in = tl.load(sgb + tl.maximum(t0 - 1, 0))
    sg_in = tl.where(c > 0, sg_in, 0)
    cp = tl.cos(p)
    sp = tl.sin(p)
    c_re = gr * cp + gi * sp
    c_im = gi * cp - gr * sp
    same = causal & (sg[:, None] == sg[None, :])
    dec = tl.exp(tl.where(same, r[:, None] - r[None, :], float("-inf")))
    P = tl.dot(bq, tl.trans(bk), input_precision="ieee") * dec
    Wr = P * (cp[:, None] * c_re[None, :] - sp[:, None] * c_im[None, :])
    Wi = P * (sp[:, None] * c_re[None, :] + cp[:, None] * c_im[None, :])
    acc_re = tl.dot(Wr.to(bv.dtype), bv, input_precision="ieee")
    acc_im = tl.dot(Wi.to(bv.dtype), bv, input_precision="ieee")
    st_off = (((b * H + h) * NC + c) * DK + odk[:, None]) * DV + ov[None, :]
    S_re = tl.load(st_re + st_off)
    S_im = tl.load(st_im + st_off)
    m = sg == sg_in
    er = tl.where(m, tl.exp(r) * cp, 0.0)
    ei = tl.where(m, tl.exp(r) * sp, 0.0)
    qs_re = tl.dot(bq, S_re.to(bq.dtype), input_precision="ieee")
    qs_im = tl.dot(bq, S_im.to(bq.dtype), input_precision="ieee")
    acc_re += er[:, None] * qs_re - ei[:, None] * qs_im
    acc_im += er[:, None] * qs_im + ei[:, None] * qs_re
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
    pid_v = tl.program_id(0)
    c = tl.program_id(1)
    pid_bh = tl.program_id(2)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    Tp = NC * BT
    ot = tl.arange(0, BT)
    odk = tl.arange(0, DK)
    ov = pid_v * BV + tl.arange(0, BV)
    t0 = c * BT
    t = t0 + ot
    tm = t < T
    row = (b * T + t) * H + h
    bq = tl.load(q + row[:, None] * DK + odk[None, :], mask=tm[:, None], other=0.0)
    if DOT_F32:
        bq = bq.to(tl.float32)
    DT = bq.dtype
    dyr = tl.load(dy_re + row[:, None] * DV + ov[None, :], mask=tm[:, None], other=0.0)
    dyi = tl.load(dy_im + row[:, None] * DV + ov[None, :], mask=tm[:, None], other=0.0)
    dyr = dyr.to(tl.float32)
    dyi = dyi.to(tl.float32)
    r_base = (b * H + h) * Tp
    r = tl.load(rho + r_base + t)
    p = tl.load(phi + r_base + t)
    sgb = seg + b * Tp
    sg = tl.load(sgb + t)
    sg_in = tl.load(sgb + tl.maximum(t0 - 1, 0))
    sg_in = tl.where(c > 0, sg_in, 0)
    cp = tl.cos(p)
    sp = tl.sin(p)
    m = sg == sg_in
    er = tl.where(m, tl.exp(r) * cp, 0.0)
    ei = tl.where(m, tl.exp(r) * sp, 0.0)
    wr = er[:, None] * dyr + ei[:, None] * dyi  # conj(E) dy
    wi = er[:, None] * dyi - ei[:, None] * dyr
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
    The body is ``triton_chunk._green_bwd_kernel``'s, without the carried adjoint.
    """
    pid_v = tl.program_id(0)
    c = tl.program_id(1)
    pid_bh = tl.program_id(2)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    nv = (pid_v).to(tl.int64)
    Tp = NC * BT
    ot = tl.arange(0, BT)
    odk = tl.arange(0, DK)
    ov = pid_v * BV + tl.arange(0, BV)
    causal = ot[:, None] >= ot[None, :]
    last = ot == BT - 1
    r_base = (b * H + h) * Tp
    t0 = c * BT
    t = t0 + ot
    tm = t < T
    row = (b * T + t) * H + h
    bq = tl.load(q + row[:, None] * DK + odk[None, :], mask=tm[:, None], other=0.0)
    bk = tl.load(k + row[:, None] * DK + odk[None, :], mask=tm[:, None], other=0.0)
    bv = tl.load(v + row[:, None] * DV + ov[None, :], mask=tm[:, None], other=0.0)
    if DOT_F32:
        bq, bk, bv = bq.to(tl.float32), bk.to(tl.float32), bv.to(tl.float32)
    dyr = tl.load(dy_re + row[:, None] * DV + ov[None, :], mask=tm[:, None], other=0.0)
    dyi = tl.load(dy_im + row[:, None] * DV + ov[None, :], mask=tm[:, None], other=0.0)
    dyr = dyr.to(tl.float32)
    dyi = dyi.to(tl.float32)
    gr = tl.load(g_re + row, mask=tm, other=0.0)
    gi = tl.load(g_im + row, mask=tm, other=0.0)
    r = tl.load(rho + r_base + t)
    p = tl.load(phi + r_base + t)
    sg = tl.load(seg + b * Tp + t)
    sg_in = tl.load(seg + b * Tp + tl.maximum(t0 - 1, 0))
    sg_in = tl.where(c > 0, sg_in, 0)
    r_L = tl.load(rho + r_base + t0 + BT - 1)
    p_L = tl.load(phi + r_base + t0 + BT - 1)
    sg_L = tl.load(seg + b * Tp + t0 + BT - 1)
    st_off = (((b * H + h) * NC + c) * DK + odk[:, None]) * DV + ov[None, :]
    S_re = tl.load(st_re + st_off)
    S_im = tl.load(st_im + st_off)
    dS_re = tl.load(ds_re + st_off)
    dS_im = tl.load(ds_im + st_off)
    cp = tl.cos(p)
    sp = tl.sin(p)
    DT = bv.dtype

    # ---- intra-chunk: W_ij = Wh_ij g_j, Wh_ij = M_ij exp(rho_i - rho_j) e^{i(phi_i-phi_j)}
    same = causal & (sg[:, None] == sg[None, :])
    dec = tl.exp(tl.where(same, r[:, None] - r[None, :], float("-inf")))
    Whr = dec * (cp[:, None] * cp[None, :] + sp[:, None] * sp[None, :])
    Whi = dec * (sp[:, None] * cp[None, :] - cp[:, None] * sp[None, :])
    Wr = Whr * gr[None, :] - Whi * gi[None, :]
    Wi = Whr * gi[None, :] + Whi * gr[None, :]
    P = tl.dot(bq, tl.trans(bk), input_precision="ieee")
    R = tl.dot(dyr.to(DT), tl.trans(bv), input_precision="ieee")
    Im = tl.dot(dyi.to(DT), tl.trans(bv), input_precision="ieee")
    dP = Wr * R + Wi * Im
    dWr = P * R
    dWi = P * Im
    Xr = Whr * dWr + Whi * dWi  # conj(Wh) dW
    Xi = Whr * dWi - Whi * dWr
    dgr = tl.sum(Xr, 0)
    dgi = tl.sum(Xi, 0)
    Z = gr[None, :] * Xr + gi[None, :] * Xi  # conj(W) dW = conj(g_j) X
    Y = gr[None, :] * Xi - gi[None, :] * Xr
    dlr = tl.sum(Z, 1) - tl.sum(Z, 0)
    dli = tl.sum(Y, 1) - tl.sum(Y, 0)
    acc_dv = tl.dot(tl.trans((P * Wr).to(DT)), dyr.to(DT), input_precision="ieee")
    acc_dv += tl.dot(tl.trans((P * Wi).to(DT)), dyi.to(DT), input_precision="ieee")
    acc_dq = tl.dot(dP.to(DT), bk, input_precision="ieee")
    acc_dk = tl.dot(tl.trans(dP.to(DT)), bq, input_precision="ieee")

    # ---- inter-chunk: y_i += E_i q_i^T S_in, E_i = m_i exp(Lambda_i)
    m = sg == sg_in
    er = tl.where(m, tl.exp(r) * cp, 0.0)
    ei = tl.where(m, tl.exp(r) * sp, 0.0)
    ur = tl.dot(bq, S_re.to(DT), input_precision="ieee")
    ui = tl.dot(bq, S_im.to(DT), input_precision="ieee")
    wr = er[:, None] * dyr + ei[:, None] * dyi  # conj(E) dy
    wi = er[:, None] * dyi - ei[:, None] * dyr
    acc_dq += tl.dot(wr.to(DT), tl.trans(S_re).to(DT), input_precision="ieee")
    acc_dq += tl.dot(wi.to(DT), tl.trans(S_im).to(DT), input_precision="ieee")
    dlr += tl.sum(ur * wr + ui * wi, 1)
    dli += tl.sum(ur * wi - ui * wr, 1)

    # ---- state: S_out = A S_in + sum_j G_j k_j v_j^T, G_j = n_j g_j exp(Lam_L - Lam_j)
    cpL = tl.cos(p_L)
    spL = tl.sin(p_L)
    A_mag = tl.where(sg_L == sg_in, tl.exp(r_L), 0.0)
    A_re = A_mag * cpL
    A_im = A_mag * spL
    dA_re = tl.sum(tl.sum(S_re * dS_re + S_im * dS_im, 1), 0)
    dA_im = tl.sum(tl.sum(S_re * dS_im - S_im * dS_re, 1), 0)
    hA_re = A_re * dA_re + A_im * dA_im  # conj(A) dA
    hA_im = A_re * dA_im - A_im * dA_re
    w = tl.where(sg == sg_L, tl.exp(r_L - r), 0.0)
    Ghr = w * (cpL * cp + spL * sp)
    Ghi = w * (spL * cp - cpL * sp)
    Gr = Ghr * gr - Ghi * gi
    Gi = Ghr * gi + Ghi * gr
    Tr = tl.dot(bk, dS_re.to(DT), input_precision="ieee")
    Ti = tl.dot(bk, dS_im.to(DT), input_precision="ieee")
    bvf = bv.to(tl.float32)
    dGr = tl.sum(Tr * bvf, 1)
    dGi = tl.sum(Ti * bvf, 1)
    acc_dk += Gr[:, None] * tl.dot(bv, tl.trans(dS_re).to(DT), input_precision="ieee")
    acc_dk += Gi[:, None] * tl.dot(bv, tl.trans(dS_im).to(DT), input_precision="ieee")
    acc_dv += Gr[:, None] * Tr + Gi[:, None] * Ti
    Xgr = Ghr * dGr + Ghi * dGi
    Xgi = Ghr * dGi - Ghi * dGr
    dgr += Xgr
    dgi += Xgi
    Hr = gr * Xgr + gi * Xgi
    Hi = gr * Xgi - gi * Xgr
    dlr += tl.where(last, tl.sum(Hr, 0) + hA_re, 0.0) - Hr
    dli += tl.where(last, tl.sum(Hi, 0) + hA_im, 0.0) - Hi

    # ---- stores
    p_off = ((nv * B + b) * T + t) * H + h
    tl.store(dq + p_off[:, None] * DK + odk[None, :], acc_dq, mask=tm[:, None])
    tl.store(dk + p_off[:, None] * DK + odk[None, :], acc_dk, mask=tm[:, None])
    tl.store(dv + row[:, None] * DV + ov[None, :], acc_dv, mask=tm[:, None])
    l_off = ((nv * B + b) * H + h) * Tp + t
    tl.store(dg_re + l_off, dgr)
    tl.store(dg_im + l_off, dgi)
    tl.store(drho + l_off, dlr)
    tl.store(dphi + l_off, dli)


# ----------------------------------------------------------------------------- host side

_BV_FWD = 64  # value-block widths of the chunk-parallel kernels (untuned)
_BV_BWD = 32
_BK_SCAN = 32  # key-block height of the scan


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
        REVERSE=reverse, num_warps=4,
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
        DK=DK, DV=DV, BV=BV, BT=BT, DOT_F32=_dot_f32(q), num_warps=4,
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
        DK=DK, DV=DV, BV=BV, BT=BT, DOT_F32=_dot_f32(q), num_warps=8,
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
        DK=DK, DV=DV, BV=BV, BT=BT, DOT_F32=_dot_f32(q), num_warps=4,
    )
    ds0_re, ds0_im = _scan(ds_re, ds_im, dsT_re, dsT_im, rho, phi, seg, BT, reverse=True)
    dq = torch.empty(NV, B, T, H, DK, **f32)
    dk = torch.empty(NV, B, T, H, DK, **f32)
    dv = torch.empty(B, T, H, DV, **f32)
    part = [torch.empty(NV, B, H, Tp, **f32) for _ in range(4)]
    _grad_kernel[(NV, NC, B * H)](
        q, k, v, g_re, g_im, rho, phi, seg, st_re, st_im, ds_re, ds_im, dy_re, dy_im,
        dq, dk, dv, *part, T, H, NC, B,
        DK=DK, DV=DV, BV=BV, BT=BT, DOT_F32=_dot_f32(q), num_warps=8,
    )
    dg_re, dg_im, drho, dphi = (x.sum(0) for x in part)
    dg_re = dg_re[..., :T].transpose(1, 2)
    dg_im = dg_im[..., :T].transpose(1, 2)
    has_s0 = s0_re is not None
    return (dq.sum(0).to(q.dtype), dk.sum(0).to(k.dtype), dv.to(v.dtype), dg_re, dg_im,
            drho, dphi, ds0_re if has_s0 else None, ds0_im if has_s0 else None)


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
    _check_real_args(q, k, v, g_re, g_im, a_re, a_im, reset, initial_state)
    B, T, H, DK = q.shape
    DV = v.shape[-1]
    if not (_is_pow2(DK) and 16 <= DK <= 256):
        raise ValueError(f"q and k: the triton backend needs dk a power of two in [16, 256], "
                         f"got dk={DK}")
    if not (_is_pow2(DV) and DV >= 16):
        raise ValueError(f"v: the triton backend needs dv a power of two >= 16, got dv={DV}")
    if not (isinstance(chunk_size, int) and _is_pow2(chunk_size) and 16 <= chunk_size <= 128):
        raise ValueError(f"chunk_size must be a power of two in [16, 128] for the triton "
                         f"backend, got {chunk_size!r}")
    if T == 0:
        raise ValueError("q: the sequence length T must be >= 1")
    dt = q.dtype if q.dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32
    q, k, v = (x.to(dt).contiguous() for x in (q, k, v))
    rho, phi, seg = chunk_phases(a_re.float(), a_im.float(), reset, chunk_size)
    rho = rho.reshape(B, H, -1).contiguous()
    phi = phi.reshape(B, H, -1).contiguous()
    seg = seg.reshape(B, -1).to(torch.int32).contiguous()
    s0_re = s0_im = None
    if initial_state is not None:
        s0_re, s0_im = (s.float().contiguous() for s in initial_state)
    y_re, y_im, s_re, s_im = green_triton_par_op(
        q, k, v, g_re.float().contiguous(), g_im.float().contiguous(), rho, phi, seg,
        s0_re, s0_im, chunk_size)
    return y_re, y_im, (s_re, s_im)
