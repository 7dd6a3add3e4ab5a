"""Green's-function attention in real arithmetic: ``chunk.py`` without complex tensors.

The object is the same as in ``naive.py``: per batch row and head,
``S_i = a_i S_{i-1} + g_i k_i v_i^T`` and ``y_i = q_i^T S_i`` with complex ``g_i, a_i`` and real
``q, k, v``. Inside a chunk of ``L`` tokens write ``a_k = |a_k| e^{i arg a_k}`` and let

    rho_i = sum_{k <= i} log|a_k|,   phi_i = sum_{k <= i} arg a_k     (chunk-local sums),
    c_j   = g_j e^{-i phi_j}.

Then for ``j <= i`` in one chunk (``Lambda = rho + i phi``)::

    G(i, j) = g_j exp(Lambda_i - Lambda_j) = exp(rho_i - rho_j) e^{i phi_i} c_j,

so, with ``K_j = [Re c_j k_j, Im c_j k_j]`` (2 dk), ``Qr_i = [cos phi_i q_i, -sin phi_i q_i]``
and ``Qi_i = [sin phi_i q_i, cos phi_i q_i]``::

    Re y_i = sum_j exp(rho_i - rho_j) (Qr_i . K_j) v_j + Re(e^{Lambda_i} q_i^T S_in),
    Im y_i = sum_j exp(rho_i - rho_j) (Qi_i . K_j) v_j + Im(e^{Lambda_i} q_i^T S_in):

two real linear attentions with the scalar decay ``exp(rho_i - rho_j)``, sharing ``K`` and
``V``. The code forms ``Qr_i . K_j = (q_i . k_j) Re(e^{i phi_i} c_j)`` (and ``Im`` for ``Qi``):
one ``L x L`` matmul of width dk instead of two of width 2 dk, the same numbers. The state is
the real pair ``(Re S, Im S)``; complex products are written out in reals.

Conventions. ``phi`` restarts at every chunk, so ``cos`` and ``sin`` see angles of at most
``L pi`` however long the stream; it is summed in float64 and reduced modulo 2 pi before
the cast to the working precision (a float32 sum of L angles would carry an absolute error
~L pi eps32 into every cosine); ``rho`` is summed in float64 too, and so are the
chunk-to-chunk log-magnitudes and phases (sums over chunks, growing like T), so float32
results do not degrade with the stream's length. ``|a|^2`` is floored at 1e-30
(float32; 1e-300 in float64) as in ``chunk.py``. Document resets are exact segment masks
(the value of ``a`` at a reset position is ignored), not ``a = 0``. Under bf16 autocast the
``L x L`` and ``q S`` matmuls may run in bf16; their results, the state propagation and the
outputs are float32 (float64 for float64 ``g``).

Complexity per head: O(T L (dk + dv)) for the chunks, O(T dk dv) for the chunk states and
O((T/L)^2 dk dv) for their propagation; memory O(T L + (T/L) dk dv).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["chunk_phases", "green_attention_real"]


def _pad_time(t: torch.Tensor, pad: int, value: float = 0.0) -> torch.Tensor:
    """Pad dim 1 (time) of ``t`` on the right by ``pad`` entries equal to ``value``."""
    if pad == 0:
        return t
    shape = list(t.shape)
    shape[1] = pad
    return torch.cat([t, t.new_full(shape, value)], dim=1)


def _real_dtype(*ts: torch.Tensor) -> torch.dtype:
    """float64 when any of ``ts`` is float64, else float32 (the working precision)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in ts) else torch.float32


def chunk_phases(a_re: torch.Tensor, a_im: torch.Tensor, reset: torch.Tensor | None,
                 L: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chunk-local ``rho_i = sum log|a_k|`` and ``phi_i = sum arg a_k``, and document indices.

    Parameters
    ----------
    a_re, a_im : Tensor (B, T, H), real
        Real and imaginary parts of the transfer factors.
    reset : Tensor (B, T) bool or None
        Document starts; ``a`` there is replaced by 1 (the cut is made by segment masks).
    L : int
        Chunk length; time is padded on the right to ``Tp = nc L`` with ``a = 1``.

    Returns
    -------
    rho, phi : Tensor (B, H, nc, L), float32 (float64 for float64 input)
        Cumulative sums restarting at every chunk (differentiable), formed in float64;
        ``phi`` is returned modulo 2 pi.
    seg : Tensor (B, nc, L), int64
        Document index of every (padded) position: ``cumsum(reset)``; 0 is the initial
        state's document.

    Cost O(B T H).
    """
    B, T, H = a_re.shape
    rdt = _real_dtype(a_re, a_im)
    tiny = 1e-300 if rdt == torch.float64 else 1e-30  # floor of |a|^2
    a_re, a_im = a_re.to(rdt), a_im.to(rdt)
    if reset is None:
        reset = torch.zeros(B, T, dtype=torch.bool, device=a_re.device)
    else:
        a_re = torch.where(reset[..., None], torch.ones((), dtype=rdt, device=a_re.device), a_re)
        a_im = torch.where(reset[..., None], torch.zeros((), dtype=rdt, device=a_re.device), a_im)
    pad = (-T) % L
    nc = (T + pad) // L
    # log|a|, arg a and their sums are formed in float64 (O(B T H), cheap): a float32
    # log|a| of |a| ~ 1 carries a relative error ~1e-4 from the rounded |a|^2, and the
    # decays exp(rho_i - rho_j) sum ~1/(1 - |a|) of them (measured: 3e-5 relative error at
    # |a| = 0.9995 in float32, 3e-7 with float64 phases). The angle sums reach L pi: reduced
    # mod 2 pi before the cast, so float32 cos / sin see an argument accurate to ~eps32.
    a_re, a_im = a_re.double(), a_im.double()
    log_abs = 0.5 * torch.log(a_re.square() + a_im.square() + tiny)  # (B, T, H)
    arg = torch.atan2(a_im, a_re)
    rho = _pad_time(log_abs, pad).transpose(1, 2).reshape(B, H, nc, L).cumsum(-1).to(rdt)
    phi = _pad_time(arg, pad).transpose(1, 2).reshape(B, H, nc, L).cumsum(-1)
    phi = torch.remainder(phi, 2 * math.pi).to(rdt)
    seg = _pad_time(reset.long(), pad).cumsum(1).view(B, nc, L)
    return rho, phi, seg


def green_attention_real(
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
    """Chunked Green's-function attention in real arithmetic (see the module docstring).

    Parameters
    ----------
    q, k : Tensor (B, T, H, dk), real
    v : Tensor (B, T, H, dv), real
    g_re, g_im, a_re, a_im : Tensor (B, T, H), real
        Real and imaginary parts of the diagonal Green's functions ``g`` and of the transfer
        factors ``a = -b g``.
    reset : Tensor (B, T) bool, optional
        True where a document starts: ``S`` restarts there (``a`` there is ignored).
    initial_state : pair of Tensor (B, H, dk, dv), real, optional
        ``(Re S_0, Im S_0)``; zeros when None.
    chunk_size : int >= 1
        L; T is padded to a multiple of L internally (a shorter sequence is one chunk).

    Returns
    -------
    y_re, y_im : Tensor (B, T, H, dv)
        float32, or float64 when ``g`` or ``a`` is float64.
    (S_re, S_im) : pair of Tensor (B, H, dk, dv) — ``S_T``.

    Raises
    ------
    ValueError
        Naming the argument whose shape, dtype or value is wrong.

    Complexity O(T L (dk + dv) + T dk dv + (T/L)^2 dk dv) per head.
    """
    _check_real_args(q, k, v, g_re, g_im, a_re, a_im, reset, initial_state)
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    B, T, H, dk = q.shape
    dv = v.shape[-1]
    dev = q.device
    L = max(1, min(chunk_size, T))
    rdt = _real_dtype(g_re, g_im, a_re, a_im)
    pad = (-T) % L
    nc = (T + pad) // L

    rho, phi, seg = chunk_phases(a_re, a_im, reset, L)  # (B, H, nc, L) x2, (B, nc, L)

    def chunks(t: torch.Tensor) -> torch.Tensor:  # (B, T, H, ...) -> (B, H, nc, L, ...)
        t = _pad_time(t, pad).transpose(1, 2)
        return t.reshape(B, H, nc, L, *t.shape[3:])

    # matmul operands keep the input dtype (bf16 under autocast); products come back to rdt
    mdt = q.dtype if q.dtype in (torch.bfloat16, torch.float16) else rdt
    qc, kc, vc = chunks(q.to(mdt)), chunks(k.to(mdt)), chunks(v.to(mdt))
    gr, gi = chunks(g_re.to(rdt)), chunks(g_im.to(rdt))  # (B, H, nc, L)
    segc = seg[:, None]  # (B, 1, nc, L)
    cp, sp = torch.cos(phi), torch.sin(phi)
    c_re = gr * cp + gi * sp  # c_j = g_j e^{-i phi_j}
    c_im = gi * cp - gr * sp
    neg_inf = torch.full((), float("-inf"), dtype=rdt, device=dev)
    zero = torch.zeros((), dtype=rdt, device=dev)

    # --- intra-chunk: exp(rho_i - rho_j) Re/Im(e^{i phi_i} c_j) (q_i . k_j), j <= i, same doc
    causal = torch.ones(L, L, dtype=torch.bool, device=dev).tril()
    same = (segc[..., :, None] == segc[..., None, :]) & causal  # (B, 1, nc, L, L)
    decay = torch.exp(torch.where(same, rho[..., :, None] - rho[..., None, :], neg_inf))
    P = (qc @ kc.transpose(-1, -2)).to(rdt) * decay  # (B, H, nc, L, L)
    Wr = P * (cp[..., :, None] * c_re[..., None, :] - sp[..., :, None] * c_im[..., None, :])
    Wi = P * (sp[..., :, None] * c_re[..., None, :] + cp[..., :, None] * c_im[..., None, :])
    W = torch.cat([Wr, Wi], dim=-2).to(mdt)
    yy = (W @ vc).to(rdt)  # (B, H, nc, 2L, dv)
    y_re, y_im = yy[..., :L, :], yy[..., L:, :]

    # --- chunk sources U_c = sum_j G(end_c, j) k_j v_j^T (real pair) ----------------------
    rho_L, cpL, spL = rho[..., -1:], cp[..., -1:], sp[..., -1:]
    seg_last = segc[..., -1:]
    w = torch.where(segc == seg_last, torch.exp(rho_L - rho), zero)  # (B, H, nc, L)
    d_re = w * (cpL * c_re - spL * c_im)  # G(end, j) = w_j e^{i phi_L} c_j
    d_im = w * (spL * c_re + cpL * c_im)
    kk = torch.cat([d_re[..., None] * kc.to(rdt), d_im[..., None] * kc.to(rdt)], dim=-1)
    vv = vc.to(rdt)

    with torch.autocast(device_type=dev.type, enabled=False):  # the state stays in rdt
        U = kk.transpose(-1, -2) @ vv  # (B, H, nc, 2dk, dv)
        U_re, U_im = U[..., :dk, :], U[..., dk:, :]
        if initial_state is None:
            S0_re = S0_im = torch.zeros(B, H, dk, dv, dtype=rdt, device=dev)
        else:
            S0_re, S0_im = (s.to(rdt) for s in initial_state)
        src_re = torch.cat([S0_re[:, :, None], U_re], dim=2)  # (B, H, nc + 1, dk, dv)
        src_im = torch.cat([S0_im[:, :, None], U_im], dim=2)

        # chunk-to-chunk transfer D[t, s] = prod_{c=s+1..t} A_c, A_c = exp(Lambda_end_c);
        # log-magnitudes and phases summed in float64 (both grow like T)
        gam = F.pad(rho[..., -1].double().cumsum(-1), (1, 0))  # (B, H, nc + 1)
        theta = F.pad(phi[..., -1].double().cumsum(-1), (1, 0))
        seg_end = F.pad(seg[:, None, :, -1], (1, 0))  # (B, 1, nc + 1): S_0 is document 0
        ok = (seg_end[..., :, None] == seg_end[..., None, :]) & torch.ones(
            nc + 1, nc + 1, dtype=torch.bool, device=dev).tril()
        mag = torch.exp(torch.where(ok, gam[..., :, None] - gam[..., None, :],
                                    float("-inf"))).to(rdt)
        ang = theta[..., :, None] - theta[..., None, :]
        D_re, D_im = mag * torch.cos(ang).to(rdt), mag * torch.sin(ang).to(rdt)
        fr, fi = src_re.flatten(-2), src_im.flatten(-2)  # (B, H, nc + 1, dk dv)
        S_at_re = (D_re @ fr - D_im @ fi).view(B, H, nc + 1, dk, dv)
        S_at_im = (D_re @ fi + D_im @ fr).view(B, H, nc + 1, dk, dv)
    S_in_re, S_in_im = S_at_re[:, :, :-1], S_at_im[:, :, :-1]  # entering chunk c

    # --- inter-chunk: e^{Lambda_i} q_i^T S_in, while no reset since the chunk start --------
    start_ok = segc == seg_end[..., :-1, None]  # (B, 1, nc, L)
    e = torch.where(start_ok, torch.exp(rho), zero)
    e_re, e_im = (e * cp)[..., None], (e * sp)[..., None]
    qs_re = (qc @ S_in_re.to(mdt)).to(rdt)  # (B, H, nc, L, dv)
    qs_im = (qc @ S_in_im.to(mdt)).to(rdt)
    y_re = y_re + e_re * qs_re - e_im * qs_im
    y_im = y_im + e_re * qs_im + e_im * qs_re

    def unchunk(t: torch.Tensor) -> torch.Tensor:  # (B, H, nc, L, dv) -> (B, T, H, dv)
        return t.reshape(B, H, nc * L, dv)[:, :, :T].transpose(1, 2)

    return unchunk(y_re), unchunk(y_im), (S_at_re[:, :, -1], S_at_im[:, :, -1])


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, int, int, int]:
    """(B, T, H, dk) of q, k (B, T, H, dk) and v (B, T, H, dv); ``ValueError`` naming the
    argument otherwise (shared by every Green's-attention entry point)."""
    if q.ndim != 4 or k.shape != q.shape:
        raise ValueError(f"q and k must have the same shape (B, T, H, dk), got "
                         f"{tuple(q.shape)} and {tuple(k.shape)}")
    B, T, H, dk = q.shape
    if v.ndim != 4 or v.shape[:3] != (B, T, H):
        raise ValueError(f"v must have shape (B, T, H, dv) = ({B}, {T}, {H}, dv), got "
                         f"{tuple(v.shape)}")
    return B, T, H, dk


def _check_real_args(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g_re: torch.Tensor,
                     g_im: torch.Tensor, a_re: torch.Tensor, a_im: torch.Tensor,
                     reset: torch.Tensor | None,
                     initial_state: tuple[torch.Tensor, torch.Tensor] | None) -> None:
    """``ValueError`` naming the first argument of the real form with a wrong shape or dtype."""
    B, T, H, dk = check_qkv(q, k, v)
    for name, t in (("q", q), ("k", k), ("v", v), ("g_re", g_re), ("g_im", g_im),
                    ("a_re", a_re), ("a_im", a_im)):
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a real floating tensor, got {t.dtype}")
    for name, t in (("g_re", g_re), ("g_im", g_im), ("a_re", a_re), ("a_im", a_im)):
        if t.shape != (B, T, H):
            raise ValueError(f"{name} must have shape {(B, T, H)}, got {tuple(t.shape)}")
    if reset is not None and (reset.shape != (B, T) or reset.dtype != torch.bool):
        raise ValueError(f"reset must be a bool tensor of shape {(B, T)}, got "
                         f"{reset.dtype} {tuple(reset.shape)}")
    if initial_state is not None:
        want = (B, H, dk, v.shape[-1])
        if (not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2
                or any(not isinstance(s, torch.Tensor) or s.shape != want
                       or not s.is_floating_point() for s in initial_state)):
            raise ValueError(f"initial_state must be a pair (S_re, S_im) of real tensors of "
                             f"shape {want}")
