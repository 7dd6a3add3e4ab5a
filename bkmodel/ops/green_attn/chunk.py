"""Chunked Green's-function attention: the recurrence of ``naive.py`` in O(T) matmuls.

Within a chunk of ``L`` tokens the resolvent entries are formed explicitly from the
cumulative logarithm ``Lambda_i = sum_{k in chunk, k <= i} log a_k``::

    G(i, j) = g_j exp(Lambda_i - Lambda_j)             (j <= i in one chunk)
    y_i     = sum_j G(i, j) (q_i . k_j) v_j            intra-chunk: three L x L matmuls
            + exp(Lambda_i) q_i^T S_in(c)              inter-chunk: the state entering chunk c

and the chunk states ``S_c = sum_j G(end_c, j) k_j v_j^T`` are propagated between chunks by
the (nc + 1) x (nc + 1) lower-triangular matrix of chunk-to-chunk products of ``a``
(``S_0`` is chunk ``-1``). Every exponent is the logarithm of a product
``prod_{k=j+1..i} a_k = G(i, j) / g_j`` of the dissipative chain, bounded by
``1 / (eta_min |g_j|)`` (docs/theory.md), so nothing overflows; ``|a|`` is floored at
``1e-15`` (float32) so its logarithm stays finite, and document resets are applied by exact
segment masks, not by ``a = 0``.

Cost per head: O(T L (dk + dv)) for the chunks, O(T dk dv) for the states and
O((T/L)^2 dk dv) for the chunk propagation (negligible for T/L <= a few hundred).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["green_attention_chunked"]


def _pad_time(t: torch.Tensor, pad: int, value: float | complex = 0.0) -> torch.Tensor:
    """Pad dim 1 (time) of t on the right by ``pad`` entries equal to ``value``."""
    if pad == 0:
        return t
    shape = list(t.shape)
    shape[1] = pad
    return torch.cat([t, t.new_full(shape, value)], dim=1)


def _wrap_phase(z: torch.Tensor) -> torch.Tensor:
    """``z`` with its imaginary part reduced to [0, 2 pi) (float64 in, same dtype out), so
    that casting to complex64 keeps the phase to float32 ulps of 2 pi and not of ``|Im z|``
    (which grows like T). Only ever used inside ``exp``, which is 2 pi i-periodic."""
    return torch.complex(z.real, torch.remainder(z.imag, 2 * math.pi))


def green_attention_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    a: torch.Tensor,
    *,
    reset: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked ``y_i = q_i^T S_i``, ``S_i = a_i S_{i-1} + g_i k_i v_i^T`` (see ``naive.py``).

    Parameters
    ----------
    q, k : Tensor (B, T, H, dk), real
    v : Tensor (B, T, H, dv), real
    g, a : Tensor (B, T, H), complex
        Diagonal Green's functions and transfer factors ``a_i = -b_i g_i``.
    reset : Tensor (B, T) bool, optional
        True where a document starts: ``S`` restarts there (as ``a_i = 0`` does in the
        reference; the value of ``a`` at those positions is ignored).
    initial_state : Tensor (B, H, dk, dv), complex, optional
    chunk_size : int
        L; T is padded to a multiple of L internally.

    Returns
    -------
    y : Tensor (B, T, H, dv), complex (``g``'s precision, at least complex64)
    state : Tensor (B, H, dk, dv), complex — ``S_T``.
    """
    B, T, H, dk = q.shape
    dv = v.shape[-1]
    L = max(1, min(int(chunk_size), T))  # a short sequence is one chunk of its own length
    cdt = torch.promote_types(g.dtype, torch.complex64)
    rdt = torch.float64 if cdt == torch.complex128 else torch.float32
    tiny = 1e-300 if rdt == torch.float64 else 1e-30  # floor of |a|^2
    pad = (-T) % L
    nc = (T + pad) // L
    dev = q.device

    if reset is None:
        reset = torch.zeros(B, T, dtype=torch.bool, device=dev)
    a = torch.where(reset[..., None], torch.ones((), dtype=cdt, device=dev), a.to(cdt))
    a = _pad_time(a, pad, 1.0)
    g = _pad_time(g.to(cdt), pad, 0.0)
    q = _pad_time(q.to(rdt), pad)
    k = _pad_time(k.to(rdt), pad)
    v = _pad_time(v.to(rdt), pad)
    seg = _pad_time(reset.long(), pad).cumsum(1)  # (B, Tp): document index, 0 = S_0's

    # (B, H, nc, L[, d]) layouts
    def chunks(t: torch.Tensor) -> torch.Tensor:
        t = t.transpose(1, 2)  # (B, H, Tp, ...)
        return t.reshape(B, H, nc, L, *t.shape[3:])

    # log a and its chunk-local running sums in float64 (O(B T H), cheap): in float32 the
    # sum of log|a| drifts (2e-4 relative on y at |a| = 0.9995, T = 4000), cast back after
    a64 = a.to(torch.complex128)
    log_a = torch.complex(0.5 * torch.log(a64.real.square() + a64.imag.square() + tiny),
                          torch.atan2(a64.imag, a64.real))
    lam64 = chunks(log_a).cumsum(3)  # (B, H, nc, L)   Lambda_i
    lam = _wrap_phase(lam64).to(cdt)  # exp(Lambda) only sees the phase mod 2 pi
    gc, qc, kc, vc = chunks(g), chunks(q), chunks(k), chunks(v)
    segc = seg.view(B, 1, nc, L)  # broadcast over heads

    # --- intra-chunk: G(i, j) for j <= i in one chunk, same document ---------------------
    causal = torch.ones(L, L, dtype=torch.bool, device=dev).tril()
    same = (segc[..., :, None] == segc[..., None, :]) & causal  # (B, 1, nc, L, L)
    diff = lam[..., :, None] - lam[..., None, :]
    neg_inf = torch.full((), float("-inf"), dtype=rdt, device=dev)
    diff = torch.complex(torch.where(same, diff.real, neg_inf), diff.imag)
    W = torch.exp(diff) * gc[..., None, :]  # (B, H, nc, L, L)   G(i, j)
    # matmuls may run in bf16 under autocast; their results come back to rdt
    P = (qc @ kc.transpose(-1, -2)).to(rdt)  # (B, H, nc, L, L)   q_i . k_j
    y_re = ((P * W.real) @ vc).to(rdt)
    y_im = ((P * W.imag) @ vc).to(rdt)

    # --- chunk states S_c = sum_j G(end_c, j) k_j v_j^T ------------------------------------
    end_ok = segc == segc[..., -1:]  # j in the chunk's last document
    c = torch.exp(lam[..., -1:] - lam) * gc  # (B, H, nc, L)
    c = torch.where(end_ok, c, torch.zeros((), dtype=cdt, device=dev))
    kk = torch.cat([c.real[..., None] * kc, c.imag[..., None] * kc], dim=-1)  # (.., L, 2dk)
    S2 = (kk.transpose(-1, -2) @ vc).to(rdt)  # (B, H, nc, 2dk, dv)
    S_chunk = torch.complex(S2[..., :dk, :], S2[..., dk:, :])  # (B, H, nc, dk, dv)
    S0 = (torch.zeros(B, H, dk, dv, dtype=cdt, device=dev) if initial_state is None
          else initial_state.to(cdt))
    S_src = torch.cat([S0[:, :, None], S_chunk], dim=2)  # (B, H, nc + 1, dk, dv): -1..nc-1

    # --- chunk-to-chunk propagation: D[t, s] = prod of a over chunks s+1..t ----------------
    # Gamma_c sums log a over whole chunks: float64 too (its phase grows like T), and the
    # differences Gamma_t - Gamma_s are taken before casting back
    gam = F.pad(lam64[..., -1].cumsum(-1), (1, 0))  # (B, H, nc + 1): Gamma_{-1} = 0, Gamma_c
    seg_end = F.pad(segc[..., -1], (1, 0))  # (B, 1, nc + 1): segment at chunk ends, S_0: 0
    ok = (seg_end[..., :, None] == seg_end[..., None, :]) & torch.ones(
        nc + 1, nc + 1, dtype=torch.bool, device=dev).tril()
    dg = _wrap_phase(gam[..., :, None] - gam[..., None, :]).to(cdt)
    dg = torch.complex(torch.where(ok, dg.real, neg_inf), dg.imag)
    D = torch.exp(dg)  # (B, H, nc + 1, nc + 1)
    S_flat = S_src.reshape(B, H, nc + 1, dk * dv)
    S_at = (D @ S_flat).view(B, H, nc + 1, dk, dv)  # state after chunk t (t = -1..nc-1)
    S_in = S_at[:, :, :-1]  # (B, H, nc, dk, dv): entering chunk c = after chunk c-1
    state = S_at[:, :, -1]

    # --- inter-chunk: exp(Lambda_i) q_i^T S_in(c), valid while no reset since chunk start --
    start_ok = segc == seg_end[..., :-1, None]  # (B, 1, nc, L)
    e = torch.where(start_ok, torch.exp(lam), torch.zeros((), dtype=cdt, device=dev))
    qr = (qc @ S_in.real).to(rdt)  # (B, H, nc, L, dv)
    qi = (qc @ S_in.imag).to(rdt)
    er, ei = e.real[..., None], e.imag[..., None]
    y_re = y_re + er * qr - ei * qi
    y_im = y_im + er * qi + ei * qr

    y = torch.complex(y_re, y_im).reshape(B, H, nc * L, dv)[:, :, :T].transpose(1, 2)
    return y, state
