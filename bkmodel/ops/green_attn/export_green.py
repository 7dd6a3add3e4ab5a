"""Green's-function attention in real arithmetic, for the ONNX export of ``layer="green"``.

ONNX and onnxruntime have no complex tensors, and the chunked form (``chunk.py``) is a
Python loop over chunks in complex arithmetic that ``torch.export`` would unroll at the
example's length. :mod:`bkmodel.export` calls these two functions instead: the same maths
(``naive.py``: ``S_i = a_i S_{i-1} + g_i k_i v_i^T``, ``y_i = q_i^T S_i``) on (Re, Im) pairs
of real tensors, written with plain torch ops that the dynamo exporter translates
one-to-one (no loop: the graph's sequence length stays symbolic).

* :func:`green_prefill_real` — a whole prompt in the exact quadratic masked form: with the
  logarithms ``l_k = log a_k = rho_k + i phi_k`` (``rho_k = log|a_k|``, ``|a_k|`` floored at
  ``1e-15`` in float32 / ``1e-150`` in float64 as ``chunk.py`` does; ``phi_k = atan2(Im a_k,
  Re a_k)``) and ``Lambda_i = sum_{k<=i} l_k``, ::

      G(i, j) = g_j exp(D(i, j)),   D(i, j) = sum_{k=j+1..i} l_k   (j <= i; G = 0 for j > i)
      y_i     = sum_j G(i, j) (q_i . k_j) v_j  (+ exp(Lambda_i) q_i^T S_0)
      S_T     = sum_j G(T, j) k_j v_j^T        (+ exp(Lambda_T) S_0)

  The real part of ``D`` is set to ``-inf`` above the diagonal *before* the exponential,
  so masked entries are exact zeros and never ``inf * 0``. Cost O(T^2 (dk + dv)) time and
  O(T^2) memory per (batch row, head): acceptable for an exported inference graph (a
  prompt of a few thousand tokens); training keeps the O(T) chunked form.
* :func:`green_step_real` — one decoding step, ``S <- a S + g k v^T``, ``y = q^T S``.

Precision of the phase
----------------------
``D(i, j) = Lambda_i - Lambda_j``, but the difference of
two cumulative sums is computed with an absolute error of ``~eps |Lambda_i|``, which grows
with the *position* ``i`` (the phase ``phi`` accumulates ~1 radian per token), not with the
distance ``i - j``. In float32 that is ~1e-4 radian at T = 512, even for the neighbouring
entries that carry most of the weight. Here ``D`` is instead summed from ``j + 1`` only,
by one cumulative sum down each column of the (T, T) matrix ``[k > j] l_k``
(``differences="pairwise"``, the default): rounding ``D(i, j)`` then costs
``~eps |D(i, j)| <~ eps pi (i - j)``, growing with the distance like the error of the
sequential recurrence itself (when the sum is accumulated in a wider type: torch's CPU
cumsum of float32 accumulates in double, onnxruntime's in float32, which adds
``~eps`` times every partial sum; see below). ``differences="cumulative"`` forms
``Lambda_i - Lambda_j`` as written above (kept to measure the difference): at T = 512 on a
BK chain with ``eta ~ 1e-3`` (cumulative phase ~740 rad), float32, it is 1.7e-5 / 2.9e-5
from the float64 loop (y / S, relative to their largest entries) against 4.0e-7 / 1.5e-7
pairwise (``tests/bkmodel/test_onnx.py::TestGreenReal::test_float32_phase_at_T512``;
docs/tutorials/ecosystem.md has the table).

The functions follow the inputs' precision (at least float32). The exported graph runs both
in float64 (:mod:`bkmodel.export`): onnxruntime's float32 ``CumSum`` accumulates in float32
(torch's CPU cumsum of float32 accumulates in double), which cost up to 7e-5 of ``S`` on a
model layer at T = 512 (float64: 7e-14). onnxruntime's CPU ``Atan`` has no float64 kernel,
so in float64 ``arg a`` is a float32 ``atan2`` refined by one float64 Newton step
(``_arg``).
"""

from __future__ import annotations

import torch

__all__ = ["green_prefill_real", "green_step_real"]


def _real_dtype(g: torch.Tensor) -> torch.dtype:
    return torch.promote_types(g.dtype, torch.float32)


def _arg(a_re: torch.Tensor, a_im: torch.Tensor) -> torch.Tensor:
    """``arg a = atan2(Im a, Re a)`` elementwise, to the inputs' precision.

    float32: ``torch.atan2``. float64: onnxruntime's CPU ``Atan`` has no float64 kernel, so
    the angle is ``theta0 = atan2`` in float32 (of ``a`` scaled to max(|Re a|, |Im a|) = 1:
    no overflow or underflow in the cast) plus one Newton correction in float64,
    ``theta = theta0 + Im(a e^{-i theta0}) / Re(a e^{-i theta0})``: the correction is
    ``tan(delta) = delta + O(delta^3)`` with ``|delta| ~ 1e-7``, exact to float64 rounding.
    ``a = +0`` gives 0, as ``atan2(0, 0)`` (``a = -0`` the float32 angle: the angle of a
    zero factor only multiplies ``exp(log 1e-150)``).
    """
    if a_re.dtype != torch.float64:
        return torch.atan2(a_im, a_re)
    scale = torch.maximum(a_re.abs(), a_im.abs())
    scale = torch.where(scale > 0, scale, torch.ones((), dtype=scale.dtype, device=scale.device))
    x, y = a_re / scale, a_im / scale  # (max |x|, |y|) = 1
    theta0 = torch.atan2(y.float(), x.float()).to(torch.float64)
    c, s = torch.cos(theta0), torch.sin(theta0)
    re, im = x * c + y * s, y * c - x * s  # a e^{-i theta0} / scale: re ~ |a| / scale >= 1
    return theta0 + im / torch.where(re != 0, re, torch.ones((), dtype=re.dtype,
                                                                 device=re.device))


def _log_a(a_re: torch.Tensor, a_im: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log|a|, arg a)`` elementwise; ``|a|`` floored (1e-15 float32, 1e-150 float64)."""
    tiny = 1e-300 if a_re.dtype == torch.float64 else 1e-30  # floor of |a|^2 (chunk.py's)
    rho = 0.5 * torch.log(a_re.square() + a_im.square() + tiny)
    return rho, _arg(a_re, a_im)


def green_prefill_real(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g_re: torch.Tensor,
    g_im: torch.Tensor,
    a_re: torch.Tensor,
    a_im: torch.Tensor,
    s0_re: torch.Tensor | None = None,
    s0_im: torch.Tensor | None = None,
    *,
    differences: str = "pairwise",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Green's-function attention over a prompt, exact quadratic form in real arithmetic.

    The real form of :func:`~bkmodel.ops.green_attn.green_attention` without resets (see the
    module docstring for the formulas and their precision).

    Parameters
    ----------
    q, k : Tensor (B, T, H, dk), real
    v : Tensor (B, T, H, dv), real
    g_re, g_im : Tensor (B, T, H), real
        Real and imaginary parts of the diagonal Green's functions ``g_i``.
    a_re, a_im : Tensor (B, T, H), real
        Real and imaginary parts of the transfer factors ``a_i = -b_i g_i`` (nonzero: there
        is no document reset in this form).
    s0_re, s0_im : Tensor (B, H, dk, dv), real, optional
        The initial state ``S_0`` (zeros when None; give both or neither).
    differences : {"pairwise", "cumulative"}
        How ``D(i, j) = sum_{k=j+1..i} log a_k`` is formed: a cumulative sum from ``j + 1``
        per column (error ~ the distance ``i - j``; default) or the difference of two
        cumulative sums from the start (error ~ the position ``i``).

    Returns
    -------
    y_re, y_im : Tensor (B, T, H, dv)
        ``y_i = q_i^T S_i``, in ``g``'s precision (at least float32).
    s_re, s_im : Tensor (B, H, dk, dv)
        The final state ``S_T``.

    Raises
    ------
    ValueError
        For an unknown ``differences`` or only one of ``s0_re``, ``s0_im``.
    """
    if differences not in ("pairwise", "cumulative"):
        raise ValueError(f"differences must be 'pairwise' or 'cumulative', got "
                         f"{differences!r}")
    if (s0_re is None) != (s0_im is None):
        raise ValueError("give both s0_re and s0_im (the initial state) or neither")
    rdt = _real_dtype(g_re)
    tr = lambda t: t.to(rdt).transpose(1, 2)  # noqa: E731  (B, T, H, ...) -> (B, H, T, ...)
    q, k, v = tr(q), tr(k), tr(v)
    g_re, g_im = tr(g_re), tr(g_im)  # (B, H, T)
    rho, phi = _log_a(tr(a_re), tr(a_im))  # (B, H, T)
    T = q.shape[2]
    pos = torch.arange(T, device=q.device)
    below = pos[:, None] > pos[None, :]  # (T, T): k > j, strictly
    causal = pos[:, None] >= pos[None, :]  # j <= i
    zero = torch.zeros((), dtype=rdt, device=q.device)
    if differences == "pairwise":
        # D[i, j] = sum_{j < k <= i} l_k: column j accumulates l_k from k = j + 1 only
        d_re = torch.where(below, rho[..., :, None], zero).cumsum(-2)  # (B, H, T, T)
        d_im = torch.where(below, phi[..., :, None], zero).cumsum(-2)
    else:
        lam_re, lam_im = rho.cumsum(-1), phi.cumsum(-1)
        d_re = lam_re[..., :, None] - lam_re[..., None, :]
        d_im = lam_im[..., :, None] - lam_im[..., None, :]
    e = torch.exp(torch.where(causal, d_re, torch.full((), float("-inf"), dtype=rdt,
                                                        device=q.device)))
    c, s = e * torch.cos(d_im), e * torch.sin(d_im)  # exp(D), 0 above the diagonal
    gr, gi = g_re[..., None, :], g_im[..., None, :]  # g_j along the columns
    w_re = c * gr - s * gi  # (B, H, T, T)   Re G(i, j)
    w_im = c * gi + s * gr  # Im G(i, j)
    P = q @ k.transpose(-1, -2)  # (B, H, T, T)   q_i . k_j
    y_re = (P * w_re) @ v  # (B, H, T, dv)
    y_im = (P * w_im) @ v
    kt = k.transpose(-1, -2)  # (B, H, dk, T)
    s_re = (kt * w_re[..., -1, None, :]) @ v  # (B, H, dk, dv)   sum_j G(T, j) k_j v_j^T
    s_im = (kt * w_im[..., -1, None, :]) @ v
    if s0_re is not None:
        s0_re, s0_im = s0_re.to(rdt), s0_im.to(rdt)
        lam_re, lam_im = rho.cumsum(-1), phi.cumsum(-1)  # D(i, 0): from the start, sane
        er = torch.exp(lam_re) * torch.cos(lam_im)  # (B, H, T)   exp(Lambda_i)
        ei = torch.exp(lam_re) * torch.sin(lam_im)
        qr, qi = q @ s0_re, q @ s0_im  # (B, H, T, dv)
        y_re = y_re + er[..., None] * qr - ei[..., None] * qi
        y_im = y_im + er[..., None] * qi + ei[..., None] * qr
        lr, li = er[..., -1, None, None], ei[..., -1, None, None]
        s_re, s_im = s_re + lr * s0_re - li * s0_im, s_im + lr * s0_im + li * s0_re
    return y_re.transpose(1, 2), y_im.transpose(1, 2), s_re, s_im


def green_step_real(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g_re: torch.Tensor,
    g_im: torch.Tensor,
    a_re: torch.Tensor,
    a_im: torch.Tensor,
    s_re: torch.Tensor,
    s_im: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One decoding step ``S <- a S + g k v^T``, ``y = q^T S`` on (Re, Im) pairs.

    The real form of :func:`~bkmodel.ops.green_attn.green_step`.

    Parameters
    ----------
    q, k : Tensor (B, H, dk), real
    v : Tensor (B, H, dv), real
    g_re, g_im, a_re, a_im : Tensor (B, H), real
        ``g`` and ``a = -b g`` of this token.
    s_re, s_im : Tensor (B, H, dk, dv), real
        The previous state (zeros for a fresh chain).

    Returns
    -------
    y_re, y_im : Tensor (B, H, dv)
    s_re, s_im : Tensor (B, H, dk, dv)
        The new state, in ``g``'s precision (at least float32).
    """
    rdt = _real_dtype(g_re)
    kv = k.to(rdt)[..., :, None] * v.to(rdt)[..., None, :]  # (B, H, dk, dv)
    gr, gi, ar, ai = (t.to(rdt)[..., None, None] for t in (g_re, g_im, a_re, a_im))
    sr, si = s_re.to(rdt), s_im.to(rdt)
    n_re = gr * kv + (ar * sr - ai * si)
    n_im = gi * kv + (ar * si + ai * sr)
    qr = q.to(rdt)[..., None, :]  # (B, H, 1, dk)
    return (qr @ n_re).squeeze(-2), (qr @ n_im).squeeze(-2), n_re, n_im
