"""Triton kernels of Green's-function attention in its real form (``real.py``).

The object: per batch row and head, ``S_i = a_i S_{i-1} + g_i k_i v_i^T``, ``y_i = q_i^T S_i``
(complex ``g, a``; real ``q, k, v``), computed as in ``real.py``: inside a chunk of ``L``
tokens ``G(i, j) = exp(rho_i - rho_j) e^{i phi_i} c_j`` with chunk-local ``rho``, ``phi`` and
``c_j = g_j e^{-i phi_j}``, so every product is real (the state is the pair
``(Re S, Im S)``).

Design (four tiers, as flash-linear-attention):

* ``_green_fwd_kernel`` — one program per (value block of BV = 16 or 32 columns,
  batch * head); it walks the chunks in order with the state block
  ``(Re S, Im S)[:, value block]`` (dk x BV, float32) in registers: per chunk the
  ``L x L`` decayed, phased ``q k^T`` (two real matrices), the output, then
  ``S <- A_c S + U_c``. With ``STORE_STATES`` it writes the state entering
  every chunk (used by the backward) instead of the output.
* ``_green_bwd_kernel`` — the same programs walking the chunks backwards with ``dS`` in
  registers; it reads the chunk states that the backward recomputes with the forward
  kernel (nothing but the inputs is kept between forward and backward), and writes exact
  gradients of q, k, v, g, of the chunk-local ``rho, phi`` and of ``S_0``. q, k, rho, phi
  and g gradients are partial sums over value blocks, added on the host.
* the host wrappers ``_forward`` / ``_backward`` that allocate and launch, registered as
  the ``torch.library`` custom ops ``bkmodel::green_triton`` and
  ``bkmodel::green_triton_bwd`` (``custom_op.py``: fake implementations and autograd);
  the chunk-local cumulative sums ``rho, phi`` (and their backward) are ordinary torch
  ops of O(B T H) (``real.chunk_phases``).
* :func:`green_attention_triton`, the public function.

The kernels' per-chunk pieces are ``@triton.jit`` device functions (Triton inlines them),
shared with the chunk-parallel kernels of ``triton_chunk_par.py``; so are the host-side
argument checks and preparation (``_prepare``) and the gradient reduction
(``_reduce_grads``).

Precision: every accumulation (dots, state, gradients) is float32; dot operands are the
input dtype (bf16 or fp16 inputs use tensor cores; float32 inputs use ``ieee`` dots, not
TF32). float64 inputs are computed in float32. Under ``TRITON_INTERPRET=1`` the dots are
float32 for every input dtype (the interpreter's bf16 dots are wrong), so CI checks the
bf16 path's loads, casts and stores but not its tensor-core dots.

Limits: dk and dv powers of two with ``16 <= dk <= 256`` and ``dv >= 16``; ``chunk_size`` a
power of two in [16, 128] (``ValueError`` otherwise, raised in Python before the op).
Under ``torch.compile`` the public function is traced: the checks and phases are ordinary
ops, the kernels one custom-op node each way (no graph break; ``fullgraph=True`` works).
T is arbitrary (only the phases are padded to a multiple of L; loads and stores are
masked).

Complexity per head: O(T L (dk + dv) + T dk dv) work, sequential in T / L chunks per
program; memory O(B H T) besides inputs and outputs, plus the (B, H, T/L, dk, dv) chunk
states during the backward.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from bkmodel.ops.green_attn.custom_op import green_triton_op
from bkmodel.ops.green_attn.real import _check_real_args, chunk_phases

__all__ = ["green_attention_triton"]


# ----------------------------------------------------------------------------- device functions
# Shared by these kernels and those of ``triton_chunk_par.py`` (Triton inlines them: the
# operations, hence the rounding, are those of the code they replace).


@triton.jit
def _chunk_rows(b, h, c, T, H, BT: tl.constexpr):
    """Chunk c of batch row b, head h: its start ``t0``, tokens ``t`` (BT,), their mask
    ``tm`` (t < T) and ``row``, their rows of (B, T, H, ...)."""
    t0 = c * BT
    t = t0 + tl.arange(0, BT)
    tm = t < T
    row = (b * T + t) * H + h
    return t0, t, tm, row


@triton.jit
def _load_rows(x, row, tm, cols, D: tl.constexpr):
    """The (BT, len(cols)) tile ``x[row, cols]`` of a (..., D) tensor, 0 past T."""
    return tl.load(x + row[:, None] * D + cols[None, :], mask=tm[:, None], other=0.0)


@triton.jit
def _load_qkv(q, k, v, row, tm, odk, ov, DK: tl.constexpr, DV: tl.constexpr,
              DOT_F32: tl.constexpr):
    """The chunk's q, k (BT, DK) and v (BT, BV) tiles; float32 with ``DOT_F32`` (the
    interpreter's bf16 / fp16 dots are wrong: they are computed in float32)."""
    bq = _load_rows(q, row, tm, odk, DK)
    bk = _load_rows(k, row, tm, odk, DK)
    bv = _load_rows(v, row, tm, ov, DV)
    if DOT_F32:
        bq, bk, bv = bq.to(tl.float32), bk.to(tl.float32), bv.to(tl.float32)
    return bq, bk, bv


@triton.jit
def _token_phases(g_re, g_im, rho, phi, sgb, row, tm, r_base, t, t0, c):
    """Per token of the chunk: ``g`` (0 past T), ``rho, phi``, the document index and that
    of the token before the chunk."""
    gr = tl.load(g_re + row, mask=tm, other=0.0)
    gi = tl.load(g_im + row, mask=tm, other=0.0)
    r = tl.load(rho + r_base + t)
    p = tl.load(phi + r_base + t)
    sg = tl.load(sgb + t)
    sg_in = _seg_in(sgb, t0, c)
    return gr, gi, r, p, sg, sg_in


@triton.jit
def _seg_in(sgb, t0, c):
    """Document index of the token before chunk c (0 for the first chunk)."""
    sg_in = tl.load(sgb + tl.maximum(t0 - 1, 0))
    return tl.where(c > 0, sg_in, 0)


@triton.jit
def _chunk_end(rho, phi, sgb, r_base, t0, BT: tl.constexpr):
    """``rho, phi`` and the document index at the chunk's last (padded) position."""
    r_L = tl.load(rho + r_base + t0 + BT - 1)
    p_L = tl.load(phi + r_base + t0 + BT - 1)
    sg_L = tl.load(sgb + t0 + BT - 1)
    return r_L, p_L, sg_L


@triton.jit
def _phased_g(gr, gi, cp, sp):
    """``c_j = g_j e^{-i phi_j}``."""
    c_re = gr * cp + gi * sp
    c_im = gi * cp - gr * sp
    return c_re, c_im


@triton.jit
def _inter_factor(r, cp, sp, sg, sg_in):
    """``E_i = m_i exp(Lambda_i)``: 0 once a reset lies between the chunk start and i."""
    m = sg == sg_in
    er = tl.where(m, tl.exp(r) * cp, 0.0)
    ei = tl.where(m, tl.exp(r) * sp, 0.0)
    return er, ei


@triton.jit
def _conj_times(er, ei, dyr, dyi):
    """``conj(E) dy`` (E per row)."""
    wr = er[:, None] * dyr + ei[:, None] * dyi
    wi = er[:, None] * dyi - ei[:, None] * dyr
    return wr, wi


@triton.jit
def _chunk_transfer(r_L, cpL, spL, sg_L, sg_in):
    """``A = exp(Lambda_L)``, 0 when a reset lies inside the chunk."""
    A_mag = tl.where(sg_L == sg_in, tl.exp(r_L), 0.0)
    return A_mag * cpL, A_mag * spL


@triton.jit
def _intra_output(bq, bk, bv, r, cp, sp, sg, c_re, c_im, causal):
    """Intra-chunk output: ``sum_j P_ij exp(rho_i - rho_j) Re/Im(e^{i phi_i} c_j) v_j``
    over the same document."""
    same = causal & (sg[:, None] == sg[None, :])
    dec = tl.exp(tl.where(same, r[:, None] - r[None, :], float("-inf")))
    P = tl.dot(bq, tl.trans(bk), input_precision="ieee") * dec
    Wr = P * (cp[:, None] * c_re[None, :] - sp[:, None] * c_im[None, :])
    Wi = P * (sp[:, None] * c_re[None, :] + cp[:, None] * c_im[None, :])
    acc_re = tl.dot(Wr.to(bv.dtype), bv, input_precision="ieee")
    acc_im = tl.dot(Wi.to(bv.dtype), bv, input_precision="ieee")
    return acc_re, acc_im


@triton.jit
def _add_inter_output(acc_re, acc_im, bq, S_re, S_im, er, ei):
    """``acc += E_i q_i^T S_in``."""
    qs_re = tl.dot(bq, S_re.to(bq.dtype), input_precision="ieee")
    qs_im = tl.dot(bq, S_im.to(bq.dtype), input_precision="ieee")
    acc_re += er[:, None] * qs_re - ei[:, None] * qs_im
    acc_im += er[:, None] * qs_im + ei[:, None] * qs_re
    return acc_re, acc_im


@triton.jit
def _local_state(bk, bv, r, sg, c_re, c_im, r_L, cpL, spL, sg_L):
    """The chunk's own end-state term ``sum_j G(end, j) k_j v_j^T`` (DK, BV)."""
    w = tl.where(sg == sg_L, tl.exp(r_L - r), 0.0)
    d_re = w * (cpL * c_re - spL * c_im)
    d_im = w * (spL * c_re + cpL * c_im)
    u_re = tl.dot(tl.trans((bk * d_re[:, None]).to(bv.dtype)), bv, input_precision="ieee")
    u_im = tl.dot(tl.trans((bk * d_im[:, None]).to(bv.dtype)), bv, input_precision="ieee")
    return u_re, u_im


@triton.jit
def _chunk_grads(bq, bk, bv, dyr, dyi, gr, gi, r, p, sg, sg_in, r_L, p_L, sg_L,
                 S_re, S_im, dS_re, dS_im, causal, last):
    """The per-chunk body of the backward: gradients of one chunk and value block.

    ``S`` is the state entering the chunk, ``dS`` the adjoint of the state leaving it.
    Returns ``acc_dq, acc_dk, acc_dv, dgr, dgi, dlr, dli`` and the chunk's ``conj(E) dy``
    ``(wr, wi)`` and transfer ``(A_re, A_im)`` (for the adjoint of the entering state).
    """
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
    R = tl.dot(dyr.to(DT), tl.trans(bv), input_precision="ieee")  # dy_re_i . v_j
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
    er, ei = _inter_factor(r, cp, sp, sg, sg_in)
    ur = tl.dot(bq, S_re.to(DT), input_precision="ieee")
    ui = tl.dot(bq, S_im.to(DT), input_precision="ieee")
    wr, wi = _conj_times(er, ei, dyr, dyi)
    acc_dq += tl.dot(wr.to(DT), tl.trans(S_re).to(DT), input_precision="ieee")
    acc_dq += tl.dot(wi.to(DT), tl.trans(S_im).to(DT), input_precision="ieee")
    dlr += tl.sum(ur * wr + ui * wi, 1)
    dli += tl.sum(ur * wi - ui * wr, 1)

    # ---- state: S_out = A S_in + sum_j G_j k_j v_j^T, G_j = n_j g_j exp(Lam_L - Lam_j)
    cpL = tl.cos(p_L)
    spL = tl.sin(p_L)
    A_re, A_im = _chunk_transfer(r_L, cpL, spL, sg_L, sg_in)
    dA_re = tl.sum(tl.sum(S_re * dS_re + S_im * dS_im, 1), 0)
    dA_im = tl.sum(tl.sum(S_re * dS_im - S_im * dS_re, 1), 0)
    hA_re = A_re * dA_re + A_im * dA_im  # conj(A) dA
    hA_im = A_re * dA_im - A_im * dA_re
    w = tl.where(sg == sg_L, tl.exp(r_L - r), 0.0)
    Ghr = w * (cpL * cp + spL * sp)  # n_j exp(Lam_L - Lam_j)
    Ghi = w * (spL * cp - cpL * sp)
    Gr = Ghr * gr - Ghi * gi
    Gi = Ghr * gi + Ghi * gr
    Tr = tl.dot(bk, dS_re.to(DT), input_precision="ieee")  # (BT, BV): k_j^T dS
    Ti = tl.dot(bk, dS_im.to(DT), input_precision="ieee")
    bvf = bv.to(tl.float32)
    dGr = tl.sum(Tr * bvf, 1)
    dGi = tl.sum(Ti * bvf, 1)
    acc_dk += Gr[:, None] * tl.dot(bv, tl.trans(dS_re).to(DT), input_precision="ieee")
    acc_dk += Gi[:, None] * tl.dot(bv, tl.trans(dS_im).to(DT), input_precision="ieee")
    acc_dv += Gr[:, None] * Tr + Gi[:, None] * Ti
    Xgr = Ghr * dGr + Ghi * dGi  # conj(Gh) dG
    Xgi = Ghr * dGi - Ghi * dGr
    dgr += Xgr
    dgi += Xgi
    Hr = gr * Xgr + gi * Xgi  # conj(G) dG
    Hi = gr * Xgi - gi * Xgr
    dlr += tl.where(last, tl.sum(Hr, 0) + hA_re, 0.0) - Hr
    dli += tl.where(last, tl.sum(Hi, 0) + hA_im, 0.0) - Hi
    return acc_dq, acc_dk, acc_dv, dgr, dgi, dlr, dli, wr, wi, A_re, A_im


@triton.jit
def _store_chunk_grads(dq, dk, dv, dg_re, dg_im, drho, dphi, nv, b, h, t, tm, row, odk, ov,
                       acc_dq, acc_dk, acc_dv, dgr, dgi, dlr, dli, T, H, Tp, B,
                       DK: tl.constexpr, DV: tl.constexpr):
    """Store one chunk's gradients: dq, dk (NV, B, T, H, DK) and dg, drho, dphi
    (NV, B, H, Tp) partial over value blocks; dv (B, T, H, DV)."""
    p_off = ((nv * B + b) * T + t) * H + h  # (NV, B, T, H, ...) rows
    tl.store(dq + p_off[:, None] * DK + odk[None, :], acc_dq, mask=tm[:, None])
    tl.store(dk + p_off[:, None] * DK + odk[None, :], acc_dk, mask=tm[:, None])
    tl.store(dv + row[:, None] * DV + ov[None, :], acc_dv, mask=tm[:, None])
    l_off = ((nv * B + b) * H + h) * Tp + t  # (NV, B, H, Tp)
    tl.store(dg_re + l_off, dgr)
    tl.store(dg_im + l_off, dgi)
    tl.store(drho + l_off, dlr)
    tl.store(dphi + l_off, dli)


# ----------------------------------------------------------------------------- kernels


@triton.jit
def _green_fwd_kernel(
    q, k, v, g_re, g_im, rho, phi, seg, s0_re, s0_im,  # inputs
    y_re, y_im, sT_re, sT_im, st_re, st_im,  # outputs
    T, H, NC,
    DK: tl.constexpr, DV: tl.constexpr, BV: tl.constexpr, BT: tl.constexpr,
    HAS_S0: tl.constexpr, STORE_STATES: tl.constexpr, DOT_F32: tl.constexpr,
):
    """Forward over the chunks of one (value block, batch * head); see the module docstring.

    Layouts (contiguous): q, k (B, T, H, DK); v, y (B, T, H, DV); g (B, T, H); rho, phi
    (B, H, Tp); seg (B, Tp) int32; states (B, H, DK, DV); st (B, H, NC, DK, DV).
    """
    pid_v = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    Tp = NC * BT
    ot = tl.arange(0, BT)
    odk = tl.arange(0, DK)
    ov = pid_v * BV + tl.arange(0, BV)
    causal = ot[:, None] >= ot[None, :]
    s_off = ((b * H + h) * DK + odk[:, None]) * DV + ov[None, :]  # (DK, BV)
    if HAS_S0:
        S_re = tl.load(s0_re + s_off).to(tl.float32)
        S_im = tl.load(s0_im + s_off).to(tl.float32)
    else:
        S_re = tl.zeros([DK, BV], dtype=tl.float32)
        S_im = tl.zeros([DK, BV], dtype=tl.float32)
    r_base = (b * H + h) * Tp
    sgb = seg + b * Tp
    for c in range(NC):
        t0, t, tm, row = _chunk_rows(b, h, c, T, H, BT)
        bq, bk, bv = _load_qkv(q, k, v, row, tm, odk, ov, DK, DV, DOT_F32)
        gr, gi, r, p, sg, sg_in = _token_phases(g_re, g_im, rho, phi, sgb, row, tm, r_base, t,
                                                t0, c)
        r_L, p_L, sg_L = _chunk_end(rho, phi, sgb, r_base, t0, BT)

        cp = tl.cos(p)
        sp = tl.sin(p)
        c_re, c_im = _phased_g(gr, gi, cp, sp)
        if STORE_STATES:
            st_off = (((b * H + h) * NC + c) * DK + odk[:, None]) * DV + ov[None, :]
            tl.store(st_re + st_off, S_re)
            tl.store(st_im + st_off, S_im)
        else:
            # intra-chunk: P_ij exp(rho_i - rho_j) Re/Im(e^{i phi_i} c_j), same document
            acc_re, acc_im = _intra_output(bq, bk, bv, r, cp, sp, sg, c_re, c_im, causal)
            # inter-chunk: e^{Lambda_i} q_i^T S_in while no reset since the chunk start
            er, ei = _inter_factor(r, cp, sp, sg, sg_in)
            acc_re, acc_im = _add_inter_output(acc_re, acc_im, bq, S_re, S_im, er, ei)
            y_off = row[:, None] * DV + ov[None, :]
            tl.store(y_re + y_off, acc_re, mask=tm[:, None])
            tl.store(y_im + y_off, acc_im, mask=tm[:, None])
        # state: S <- A S + sum_j G(end, j) k_j v_j^T
        cpL = tl.cos(p_L)
        spL = tl.sin(p_L)
        u_re, u_im = _local_state(bk, bv, r, sg, c_re, c_im, r_L, cpL, spL, sg_L)
        A_re, A_im = _chunk_transfer(r_L, cpL, spL, sg_L, sg_in)
        S_re, S_im = A_re * S_re - A_im * S_im + u_re, A_re * S_im + A_im * S_re + u_im
    tl.store(sT_re + s_off, S_re)
    tl.store(sT_im + s_off, S_im)


@triton.jit
def _green_bwd_kernel(
    q, k, v, g_re, g_im, rho, phi, seg, st_re, st_im, dy_re, dy_im, dsT_re, dsT_im,  # inputs
    dq, dk, dv, dg_re, dg_im, drho, dphi, ds0_re, ds0_im,  # outputs
    T, H, NC, B,
    DK: tl.constexpr, DV: tl.constexpr, BV: tl.constexpr, BT: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """Exact backward, chunks in reverse with ``dS`` (DK, BV) in registers.

    Partial (over value blocks, leading dim NV) outputs: dq, dk (NV, B, T, H, DK); dg, drho,
    dphi (NV, B, H, Tp). Complete: dv (B, T, H, DV), ds0 (B, H, DK, DV). Gradients of a
    complex quantity z are ``dL/dRe z + i dL/dIm z`` (torch's convention).
    """
    pid_v = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    nv = (pid_v).to(tl.int64)
    Tp = NC * BT
    ot = tl.arange(0, BT)
    odk = tl.arange(0, DK)
    ov = pid_v * BV + tl.arange(0, BV)
    causal = ot[:, None] >= ot[None, :]
    last = ot == BT - 1
    s_off = ((b * H + h) * DK + odk[:, None]) * DV + ov[None, :]
    dS_re = tl.load(dsT_re + s_off).to(tl.float32)
    dS_im = tl.load(dsT_im + s_off).to(tl.float32)
    r_base = (b * H + h) * Tp
    sgb = seg + b * Tp
    for ci in range(NC):
        c = NC - 1 - ci
        t0, t, tm, row = _chunk_rows(b, h, c, T, H, BT)
        bq, bk, bv = _load_qkv(q, k, v, row, tm, odk, ov, DK, DV, DOT_F32)
        dyr = _load_rows(dy_re, row, tm, ov, DV).to(tl.float32)
        dyi = _load_rows(dy_im, row, tm, ov, DV).to(tl.float32)
        gr, gi, r, p, sg, sg_in = _token_phases(g_re, g_im, rho, phi, sgb, row, tm, r_base, t,
                                                t0, c)
        r_L, p_L, sg_L = _chunk_end(rho, phi, sgb, r_base, t0, BT)
        st_off = (((b * H + h) * NC + c) * DK + odk[:, None]) * DV + ov[None, :]
        S_re = tl.load(st_re + st_off)
        S_im = tl.load(st_im + st_off)
        acc_dq, acc_dk, acc_dv, dgr, dgi, dlr, dli, wr, wi, A_re, A_im = _chunk_grads(
            bq, bk, bv, dyr, dyi, gr, gi, r, p, sg, sg_in, r_L, p_L, sg_L,
            S_re, S_im, dS_re, dS_im, causal, last)
        _store_chunk_grads(dq, dk, dv, dg_re, dg_im, drho, dphi, nv, b, h, t, tm, row, odk, ov,
                           acc_dq, acc_dk, acc_dv, dgr, dgi, dlr, dli, T, H, Tp, B, DK, DV)
        # adjoint of the entering state: the inter-chunk term's and conj(A) dS_out
        DT = bv.dtype
        dSin_re = tl.dot(tl.trans(bq), wr.to(DT), input_precision="ieee")
        dSin_im = tl.dot(tl.trans(bq), wi.to(DT), input_precision="ieee")
        dS_re, dS_im = (dSin_re + (A_re * dS_re + A_im * dS_im),
                        dSin_im + (A_re * dS_im - A_im * dS_re))
    tl.store(ds0_re + s_off, dS_re)
    tl.store(ds0_im + s_off, dS_im)


# ----------------------------------------------------------------------------- host side


def _dot_f32(q: torch.Tensor) -> bool:
    """Dots in float32 whatever the input dtype: under ``TRITON_INTERPRET=1`` (whose bf16 and
    fp16 ``tl.dot`` return garbage, triton 3.9) and for float32 input."""
    return q.dtype == torch.float32 or os.environ.get("TRITON_INTERPRET") == "1"


def _block_v(dv: int, n_bh: int, device: torch.device) -> int:
    """Value-block width BV (programs = B H dv / BV): 32, or 16 when B H dv / 32 programs
    would not fill the GPU's multiprocessors twice (untuned heuristic; each value block
    recomputes its chunk's ``q k^T``)."""
    n_sm = (torch.cuda.get_device_properties(device).multi_processor_count
            if device.type == "cuda" else 1)
    return min(dv, 32 if n_bh * dv // 32 >= 2 * n_sm else 16)


def _forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g_re: torch.Tensor,
             g_im: torch.Tensor, rho: torch.Tensor, phi: torch.Tensor, seg: torch.Tensor,
             s0_re: torch.Tensor | None, s0_im: torch.Tensor | None, BT: int,
             store_states: bool = False) -> tuple[torch.Tensor, ...]:
    """Launch the forward kernel; (y_re, y_im, S_re, S_im) or, with ``store_states``,
    (st_re, st_im) the (B, H, NC, dk, dv) states entering each chunk."""
    B, T, H, DK = q.shape
    DV = v.shape[-1]
    NC = rho.shape[-1] // BT
    BV = _block_v(DV, B * H, q.device)
    f32 = dict(dtype=torch.float32, device=q.device)
    sT_re, sT_im = torch.empty(B, H, DK, DV, **f32), torch.empty(B, H, DK, DV, **f32)
    if store_states:
        st_re, st_im = torch.empty(B, H, NC, DK, DV, **f32), torch.empty(B, H, NC, DK, DV, **f32)
        y_re = y_im = sT_re  # not written
    else:
        y_re, y_im = torch.empty(B, T, H, DV, **f32), torch.empty(B, T, H, DV, **f32)
        st_re = st_im = sT_re  # not written
    has_s0 = s0_re is not None
    grid = (DV // BV, B * H)
    _green_fwd_kernel[grid](
        q, k, v, g_re, g_im, rho, phi, seg,
        s0_re if has_s0 else sT_re, s0_im if has_s0 else sT_im,
        y_re, y_im, sT_re, sT_im, st_re, st_im,
        T, H, NC, DK=DK, DV=DV, BV=BV, BT=BT, HAS_S0=has_s0, STORE_STATES=store_states,
        DOT_F32=_dot_f32(q), num_warps=4,
    )
    if store_states:
        return st_re, st_im
    return y_re, y_im, sT_re, sT_im


def _backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g_re: torch.Tensor,
              g_im: torch.Tensor, rho: torch.Tensor, phi: torch.Tensor, seg: torch.Tensor,
              s0_re: torch.Tensor | None, s0_im: torch.Tensor | None, dy_re: torch.Tensor,
              dy_im: torch.Tensor, dsT_re: torch.Tensor, dsT_im: torch.Tensor, BT: int
              ) -> tuple[torch.Tensor | None, ...]:
    """Exact gradients of ``(y_re, y_im, S_re, S_im) = _forward(...)``.

    Parameters
    ----------
    q, k, v, g_re, g_im, rho, phi, seg, s0_re, s0_im, BT
        The forward's inputs (contiguous; ``rho, phi`` (B, H, Tp) are the chunk-local
        cumulative sums of ``log|a|`` and ``arg a``, ``real.chunk_phases``).
    dy_re, dy_im : Tensor (B, T, H, dv); dsT_re, dsT_im : Tensor (B, H, dk, dv)
        Incoming gradients (zeros for an unused output), float32, contiguous.

    Returns
    -------
    tuple
        ``(dq, dk, dv, dg_re, dg_im, drho, dphi, ds0_re, ds0_im)``: dq, dk, dv in the input
        dtypes, the rest float32; dg (B, T, H), drho / dphi (B, H, Tp); ds0 None without an
        initial state. The chunk states are recomputed with the forward kernel (nothing but
        the inputs is kept between forward and backward); the rest of the chain rule
        (``rho, phi`` from ``a``) is torch's.
    """
    B, T, H, DK = q.shape
    DV = v.shape[-1]
    Tp = rho.shape[-1]
    NC = Tp // BT
    BV = _block_v(DV, B * H, q.device)
    NV = DV // BV
    st_re, st_im = _forward(q, k, v, g_re, g_im, rho, phi, seg, s0_re, s0_im, BT,
                            store_states=True)
    f32 = dict(dtype=torch.float32, device=q.device)
    dq = torch.empty(NV, B, T, H, DK, **f32)
    dk = torch.empty(NV, B, T, H, DK, **f32)
    dv = torch.empty(B, T, H, DV, **f32)
    part = [torch.empty(NV, B, H, Tp, **f32) for _ in range(4)]
    ds0_re, ds0_im = torch.empty(B, H, DK, DV, **f32), torch.empty(B, H, DK, DV, **f32)
    _green_bwd_kernel[(NV, B * H)](
        q, k, v, g_re, g_im, rho, phi, seg, st_re, st_im, dy_re, dy_im, dsT_re, dsT_im,
        dq, dk, dv, *part, ds0_re, ds0_im,
        T, H, NC, B, DK=DK, DV=DV, BV=BV, BT=BT, DOT_F32=_dot_f32(q), num_warps=8,
    )
    return _reduce_grads(q, k, v, dq, dk, dv, part, s0_re is not None, ds0_re, ds0_im)


def _reduce_grads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dq: torch.Tensor,
                  dk: torch.Tensor, dv: torch.Tensor, part: list[torch.Tensor], has_s0: bool,
                  ds0_re: torch.Tensor, ds0_im: torch.Tensor
                  ) -> tuple[torch.Tensor | None, ...]:
    """The backward kernels' outputs as ``_backward`` returns them: the partial sums over
    value blocks (leading dim NV of dq, dk and of ``part = [dg_re, dg_im, drho, dphi]``,
    (NV, B, H, Tp)) added, dg as (B, T, H), dq, dk, dv in the input dtypes."""
    T = q.shape[1]
    dg_re, dg_im, drho, dphi = (x.sum(0) for x in part)  # (B, H, Tp)
    dg_re = dg_re[..., :T].transpose(1, 2)  # (B, T, H)
    dg_im = dg_im[..., :T].transpose(1, 2)
    return (dq.sum(0).to(q.dtype), dk.sum(0).to(k.dtype), dv.to(v.dtype), dg_re, dg_im,
            drho, dphi, ds0_re if has_s0 else None, ds0_im if has_s0 else None)


def _is_pow2(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def green_attention_triton(
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
    """Green's-function attention by Triton kernels (same maths as ``real.py``).

    Parameters
    ----------
    q, k : Tensor (B, T, H, dk), float32, bfloat16 or float16 (float64 is computed in float32)
    v : Tensor (B, T, H, dv), same dtype family
    g_re, g_im, a_re, a_im : Tensor (B, T, H), real
        Parts of the complex diagonal Green's functions ``g`` and transfer factors ``a``.
    reset : Tensor (B, T) bool, optional
        Document starts: ``S`` restarts there (``a`` there is ignored).
    initial_state : pair of Tensor (B, H, dk, dv), real, optional
        ``(Re S_0, Im S_0)``.
    chunk_size : int
        L, a power of two in [16, 128] (a tile size: the result does not depend on it
        beyond rounding).

    Returns
    -------
    y_re, y_im : Tensor (B, T, H, dv), float32
    (S_re, S_im) : pair of Tensor (B, H, dk, dv), float32 — ``S_T``.

    Raises
    ------
    ValueError
        Naming the argument: shapes and dtypes as in ``real.py``; dk, dv not powers of two
        >= 16 (dk <= 256); chunk_size not a power of two in [16, 128].

    Complexity O(T L (dk + dv) + T dk dv) per head; see the module docstring.
    """
    y_re, y_im, s_re, s_im = green_triton_op(
        *_prepare(q, k, v, g_re, g_im, a_re, a_im, reset, initial_state, chunk_size))
    return y_re, y_im, (s_re, s_im)


def _prepare(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g_re: torch.Tensor,
             g_im: torch.Tensor, a_re: torch.Tensor, a_im: torch.Tensor,
             reset: torch.Tensor | None,
             initial_state: tuple[torch.Tensor, torch.Tensor] | None, chunk_size: int
             ) -> tuple:
    """Check the public arguments (``ValueError`` naming the argument, as documented in
    :func:`green_attention_triton`) and form the custom ops' arguments ``(q, k, v, g_re,
    g_im, rho, phi, seg, s0_re, s0_im, BT)``; shared by both Triton backends."""
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
    rho = rho.reshape(B, H, -1).contiguous()  # (B, H, Tp)
    phi = phi.reshape(B, H, -1).contiguous()
    seg = seg.reshape(B, -1).to(torch.int32).contiguous()  # (B, Tp)
    s0_re = s0_im = None
    if initial_state is not None:
        s0_re, s0_im = (s.float().contiguous() for s in initial_state)
    return (q, k, v, g_re.float().contiguous(), g_im.float().contiguous(), rho, phi, seg,
            s0_re, s0_im, chunk_size)
