"""The causal BK scan: g_i = [(H_{1..i} - z)^{-1}]_{ii} for every position, batch and channel.

Backends (same maths, same signature; see ``README.md`` in this folder):

* ``naive``  — sequential loop + autograd (``naive.py``), the reference;
* ``torch``  — ``torch.autograd.Function`` with the exact adjoint backward (``torch_scan.py``);
* ``triton`` — fused GPU kernels, forward and backward (``triton_scan.py``);
* ``auto``   — ``triton`` for CUDA tensors when Triton imports, else ``torch``.

Under ``torch.compile`` (and ``torch.export``) the torch and Triton backends run as
``torch.library`` custom ops with fake implementations and registered backwards
(``custom_op.py``), so the scan is one graph node in the forward and the backward.

Every backend takes ``eta`` and ``b`` per channel (C,) or per token (B, N, C) (the selective
scan) and an optional complex initial state g_0 (B, C); the arguments are checked once, by
``_validate.check_scan_args``.
"""

from __future__ import annotations

import importlib

import torch

from bkmodel.ops.bk_scan._validate import check_scan_args
from bkmodel.ops.bk_scan.naive import bk_scan_naive

__all__ = ["bk_scan", "bk_scan_naive", "scan_stats"]

_BACKENDS = ("naive", "torch", "triton")


def _triton_available() -> bool:
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return True


def scan_stats(
    g_re: torch.Tensor, g_im: torch.Tensor, eta: torch.Tensor, tol: float
) -> torch.Tensor:
    """Runtime-certificate counters of a scan output (docs/conventions.md §8), int64 (3,):

    ``[non-finite entries, Herglotz violations (Im g_i < -tol/eta_i), bound violations
    (|g_i| > (1 + tol)/eta_i)]``. ``eta`` is (C,) (per channel) or broadcastable to g, e.g.
    (B, N, C) (per token). Both bounds hold exactly for real v, b, eta > 0 (and Im g_0 >= 0).
    """
    inv_eta = 1.0 / eta.to(g_re.dtype)  # (C,) or (B, N, C)
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
    initial_state: torch.Tensor | None = None,
    return_final_state: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Causal BK scan over a batch of (dissipative) Jacobi chains.

    Computes, for every batch row and channel c, from ``g_0`` (0, or ``initial_state``)

        g_i = 1 / (alpha_i - beta_i g_{i-1}),   alpha_i = v_i - lam_c - i eta_i,
        beta_i = b_i**2,

    i.e. ``g_i = [(H_{1..i} - lam - i Gamma_{1..i})^{-1}]_{ii}``, the Green's function at the
    right edge of the leading ``i × i`` block of ``H = tridiag(b, v, b)`` (``b_i`` the hopping
    between sites i-1 and i) with absorption ``Gamma = diag(eta_i) > 0``
    (docs/conventions.md §3). With (C,) ``eta`` and ``b`` this is the classic scan at
    ``z_c = lam_c + i eta_c``; with (B, N, C) ones, the selective scan. Causal in the
    sequence index; Herglotz (``Im g_i > 0``, ``|g_i| <= 1/eta_i``) for real inputs,
    ``eta > 0`` and ``Im g_0 >= 0``. O(B·N·C) work.

    Parameters
    ----------
    v : (B, N, C) float tensor (float32, bfloat16 or float64)
    lam : (C,) float tensor
    eta : (C,) or (B, N, C) float tensor, ``eta > 0``
    b : (C,) or (B, N, C) float tensor, hopping (``b[:, 0]`` acts only on ``initial_state``)
    backend : {"auto", "torch", "triton", "naive"}
    return_stats : bool
        Also return the int64 counters of :func:`scan_stats` (fused in the Triton kernel),
        with the per-token bounds ``|g_i| <= (1 + tol)/eta_i``, ``Im g_i >= -tol/eta_i``.
    tol : float
        Relative tolerance of the Herglotz/bound counters.
    initial_state : (B, C) complex tensor, optional
        g_0, ``Im g_0 >= 0``; gradients flow to it (e.g. the state of the previous segment
        of a long sequence).
    return_final_state : bool
        Also return g_N as a complex (B, C) tensor (complex64; complex128 for float64 v).
        It is just ``g[:, -1]`` (``initial_state``, or 0, when N = 0), offered so that a
        segment's final state can be passed as the next segment's ``initial_state``.

    Returns
    -------
    ``(g_re, g_im)``, then ``stats`` if ``return_stats``, then ``final_state`` if
    ``return_final_state``; g is float32 (float64 for float64 ``v``).

    Raises
    ------
    TypeError, ValueError
        From ``_validate.check_scan_args``; every message names the argument, e.g.
        ``"eta must be > 0 (Im z > 0) ..."``. Value checks run for CPU tensors only (on CUDA
        they would synchronise; there the fused counters flag non-finite output).
    """
    if backend == "auto":
        cuda = isinstance(v, torch.Tensor) and v.is_cuda
        backend = "triton" if cuda and _triton_available() else "torch"
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of auto/{'/'.join(_BACKENDS)}, got {backend!r}")
    if backend != "naive" and torch.compiler.is_compiling():
        # traced by Dynamo: one custom-op node (custom_op.py); shapes checked here, values
        # (a host read) inside the op at run time
        from bkmodel.ops.bk_scan.custom_op import bk_scan_op

        check_scan_args(v, lam, eta, b, initial_state=initial_state, tol=tol,
                        backend=backend, values=False)
        g_re, g_im, stats = bk_scan_op(v, lam, eta, b, backend=backend,
                                       return_stats=return_stats, tol=tol,
                                       initial_state=initial_state)
        if return_stats and stats is None:
            stats = scan_stats(g_re.detach(), g_im.detach(), eta.detach(), tol)
        return _outputs(g_re, g_im, stats, return_stats, return_final_state, initial_state)
    check_scan_args(
        v, lam, eta, b, initial_state=initial_state, tol=tol, backend=backend
    )
    if backend == "triton":
        from bkmodel.ops.bk_scan.triton_scan import _bk_scan_triton

        g_re, g_im, stats = _bk_scan_triton(
            v, lam, eta, b, return_stats=return_stats, tol=tol, initial_state=initial_state
        )
    else:
        if backend == "torch":
            from bkmodel.ops.bk_scan.torch_scan import _bk_scan_torch

            g_re, g_im = _bk_scan_torch(v, lam, eta, b, None, initial_state)
        else:
            g_re, g_im = bk_scan_naive(v, lam, eta, b, initial_state)
        stats = None
        if return_stats:
            stats = scan_stats(g_re.detach(), g_im.detach(), eta.detach(), tol)
    return _outputs(g_re, g_im, stats, return_stats, return_final_state, initial_state)


def _outputs(g_re, g_im, stats, return_stats, return_final_state, initial_state):
    out: tuple[torch.Tensor, ...] = (g_re, g_im)
    if return_stats:
        out += (stats,)
    if return_final_state:
        out += (_final_state(g_re, g_im, initial_state),)
    return out


def _final_state(g_re, g_im, initial_state):
    """g_N as a complex (B, C) tensor (differentiable); g_0 when N = 0."""
    cplx = torch.complex128 if g_re.dtype == torch.float64 else torch.complex64
    if g_re.shape[1] == 0:
        if initial_state is not None:
            return initial_state.to(cplx)
        return torch.zeros(g_re.shape[0], g_re.shape[2], dtype=cplx, device=g_re.device)
    return torch.complex(g_re[:, -1], g_im[:, -1])
