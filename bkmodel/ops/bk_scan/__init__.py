"""The causal BK scan: g_i = [(H_{1..i} - z)^{-1}]_{ii} for every position, batch and channel.

Backends (same maths, same signature; see ``README.md`` in this folder):

* ``naive``  — sequential loop + autograd (``naive.py``), the reference;
* ``torch``  — ``torch.autograd.Function`` with the exact adjoint backward (``torch_scan.py``);
* ``triton`` — fused GPU kernels, forward and backward (``triton_scan.py``);
* ``auto``   — ``triton`` for CUDA tensors when Triton imports, else ``torch``.
"""

from __future__ import annotations

import importlib
import math

import torch

from bkmodel.ops.bk_scan.naive import bk_scan_naive

__all__ = ["bk_scan", "bk_scan_naive", "scan_stats"]

_BACKENDS = {
    "naive": ("bkmodel.ops.bk_scan.naive", "bk_scan_naive"),
    "torch": ("bkmodel.ops.bk_scan.torch_scan", "bk_scan_torch"),
    "triton": ("bkmodel.ops.bk_scan.triton_scan", "bk_scan_triton"),
}


def _triton_available() -> bool:
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return True


def scan_stats(
    g_re: torch.Tensor, g_im: torch.Tensor, eta: torch.Tensor, tol: float
) -> torch.Tensor:
    """Runtime-certificate counters of a scan output (design.md §8), as int64 tensor (3,):

    ``[non-finite entries, Herglotz violations (Im g < -tol/eta), bound violations
    (|g| > (1 + tol)/eta)]``. Both bounds hold exactly for real v, b and eta > 0.
    """
    inv_eta = 1.0 / eta.to(g_re.dtype)  # (C,)
    finite = torch.isfinite(g_re) & torch.isfinite(g_im)
    nonfinite = (~finite).sum()
    herglotz = (g_im < -tol * inv_eta).sum()
    bound = (g_re.square() + g_im.square() > ((1.0 + tol) * inv_eta) ** 2).sum()
    return torch.stack([nonfinite, herglotz, bound]).to(torch.int64)


def bk_scan(
    v: torch.Tensor,
    lam: torch.Tensor,
    eta: torch.Tensor,
    b: torch.Tensor,
    *,
    backend: str = "auto",
    return_stats: bool = False,
    tol: float = 1e-3,
) -> tuple[torch.Tensor, ...]:
    """Causal BK scan over a batch of Jacobi chains.

    Computes ``g_1 = 1/(v_1 - z_c)``, ``g_i = 1/(v_i - z_c - b_c**2 g_{i-1})`` with
    ``z_c = lam_c + i eta_c``: the Green's function at the right edge of the leading
    ``i × i`` block of ``H = tridiag(b_c, v, b_c)``. Causal in the sequence index; O(B·N·C).

    Parameters
    ----------
    v : (B, N, C) float tensor (float32, bfloat16 or float64)
    lam, eta : (C,) float tensors, ``eta > 0``
    b : (C,) float tensor, hopping
    backend : {"auto", "torch", "triton", "naive"}
    return_stats : bool
        Also return the int64 counters of :func:`scan_stats` (fused in the Triton kernel).
    tol : float
        Relative tolerance of the Herglotz/bound counters.

    Returns
    -------
    ``(g_re, g_im)`` or ``(g_re, g_im, stats)``; g is float32 (float64 for float64 ``v``).
    """
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"v must be a torch.Tensor, got {type(v).__name__}")
    if v.ndim != 3:
        raise ValueError(f"v must have shape (B, N, C), got {tuple(v.shape)}")
    if not v.is_floating_point():
        raise TypeError(f"v must be a floating tensor, got {v.dtype}")
    C = v.shape[2]
    for name, t in (("lam", lam), ("eta", eta), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.shape != (C,):
            raise ValueError(f"{name} must have shape ({C},) to match v, got {tuple(t.shape)}")
    if not eta.is_cuda and not bool((eta > 0).all()):
        # (On CUDA this would cost a host sync per call; there the model keeps
        # eta = eta_min + softplus(.) > 0 and the fused counters flag non-finite output.)
        raise ValueError(f"eta must be > 0 (Im z > 0), got min {eta.min().item():.3g}")
    if not math.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol}")
    if backend == "auto":
        backend = "triton" if v.is_cuda and _triton_available() else "torch"
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of auto/{'/'.join(_BACKENDS)}, got {backend!r}")
    if backend == "triton":
        from bkmodel.ops.bk_scan.triton_scan import bk_scan_triton

        return bk_scan_triton(v, lam, eta, b, return_stats=return_stats, tol=tol)
    mod, fn = _BACKENDS[backend]
    g_re, g_im = getattr(importlib.import_module(mod), fn)(v, lam, eta, b)
    if return_stats:
        return g_re, g_im, scan_stats(g_re.detach(), g_im.detach(), eta.detach(), tol)
    return g_re, g_im
