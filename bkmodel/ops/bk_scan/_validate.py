"""The one argument validator of the BK scan, shared by every entry point.

:func:`bkmodel.ops.bk_scan.bk_scan`, :func:`~bkmodel.ops.bk_scan.torch_scan.bk_scan_torch` and
:func:`~bkmodel.ops.bk_scan.triton_scan.bk_scan_triton` call :func:`check_scan_args` and then
their unchecked implementations, so a call through the dispatcher is checked once. Errors are
``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (shape, device, value), and
every message starts with the name of the argument (``"eta must be > 0 (Im z > 0) ..."``).

Shapes. ``v`` is (B, N, C); ``lam`` is (C,); ``eta`` and ``b`` are each either (C,) (one value
per channel: the classic scan) or (B, N, C) (one value per token: the selective scan, where
``b[:, i]`` is the hopping between sites i-1 and i and ``b[:, 0]`` only matters with an
``initial_state``); ``initial_state`` is a complex (B, C) tensor g_0 or None.

Values (``eta > 0``, finite parameters, ``Im g_0 >= 0``) need a host read of device data: by
default (``values=None``) they are checked for CPU tensors only (on CUDA a check would
synchronise the stream on every call; there the fused counters flag non-finite output), with
``values=True`` always and with ``False`` never. Parameters of shape (C,) must be finite;
per-token tensors are activations, so a NaN there (an upstream fault) is let through to the
guards' non-finite counter, but ``eta <= 0`` and ``Im g_0 < 0`` are rejected: they are not
faults of rounding, and they break the Herglotz property the guards certify.
"""

from __future__ import annotations

import math
import operator
import os

import torch

__all__ = ["check_scan_args"]

TRITON_V_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def check_scan_args(
    v: object,
    lam: object,
    eta: object,
    b: object,
    *,
    initial_state: object = None,
    tol: object = 0.0,
    chunk: object = None,
    values: bool | None = None,
    backend: str = "torch",
) -> tuple[bool, bool]:
    """Check the arguments of a BK scan; return ``(eta_per_token, b_per_token)``.

    Parameters
    ----------
    v, lam, eta, b, initial_state
        The scan's arguments (module docstring: shapes and value rules).
    tol : float
        Tolerance of the certificate counters: finite, >= 0.
    chunk : int or None
        Forced chunk length: a positive int, or None.
    values : bool or None
        Check values (a host read): None for CPU tensors only, True always, False never.
    backend : {"torch", "naive", "triton"}
        Triton also needs ``v`` float16/bfloat16/float32/float64 and on a CUDA device (or
        ``TRITON_INTERPRET=1``); the others take any real floating dtype on any device.

    Returns
    -------
    (eta_per_token, b_per_token) : (bool, bool)
        Whether ``eta`` and ``b`` are (B, N, C) (else (C,)).

    Notes
    -----
    Shape, dtype and device checks cost a few microseconds on the host; the value checks are
    one stacked reduction and one host read, O(B·N·C) for per-token tensors.
    """
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"v must be a torch.Tensor, got {type(v).__name__}")
    if v.ndim != 3:
        raise ValueError(f"v must have shape (B, N, C), got {_shape(v)}")
    if backend == "triton":
        if v.dtype not in TRITON_V_DTYPES:
            raise TypeError(f"v must be float16/bfloat16/float32/float64, got {v.dtype}")
        if v.device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") != "1":
            raise ValueError(
                f"v must be a CUDA tensor for the triton backend (got device {v.device}); "
                "on CPU set TRITON_INTERPRET=1 before importing triton, or use backend='torch'"
            )
    if not v.is_floating_point():
        raise TypeError(f"v must be a real floating tensor, got {v.dtype}")
    B, N, C = v.shape
    per_token = {}
    for name, t in (("lam", lam), ("eta", eta), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating (real) tensor, got {t.dtype}")
        if name == "lam":
            if t.shape != (C,):
                raise ValueError(
                    f"lam must have shape (C,) = ({C},) to match v, got {_shape(t)}"
                )
        elif t.shape == (C,):
            per_token[name] = False
        elif t.shape == (B, N, C):
            per_token[name] = True
        else:
            raise ValueError(
                f"{name} must have shape (C,) or (B, N, C) = ({C},) or {(B, N, C)} to match "
                f"v, got {_shape(t)}"
            )
        if t.device != v.device:
            raise ValueError(f"{name} must be on the device of v ({v.device}), got {t.device}")
    if initial_state is not None:
        if not isinstance(initial_state, torch.Tensor):
            raise TypeError(
                f"initial_state must be a torch.Tensor or None, got {type(initial_state).__name__}"
            )
        if not initial_state.is_complex():
            raise TypeError(
                f"initial_state must be a complex tensor g_0, got {initial_state.dtype}"
            )
        if initial_state.shape != (B, C):
            raise ValueError(
                f"initial_state must have shape (B, C) = {(B, C)} to match v, got "
                f"{_shape(initial_state)}"
            )
        if initial_state.device != v.device:
            raise ValueError(
                f"initial_state must be on the device of v ({v.device}), got "
                f"{initial_state.device}"
            )
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not math.isfinite(tol) \
            or tol < 0:  # fmt: skip
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    if chunk is not None:
        try:
            ok = not isinstance(chunk, bool) and operator.index(chunk) >= 1
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"chunk must be a positive int or None, got {chunk!r}")
    if values or (values is None and not v.is_cuda):
        _check_values(lam, eta, b, initial_state, per_token["eta"], per_token["b"])
    return per_token["eta"], per_token["b"]


def _check_values(lam, eta, b, g0, eta_tok: bool, b_tok: bool) -> None:
    """eta > 0 (NaN let through when per token), (C,) parameters finite, Im g0 >= 0; one
    host read for all of them."""
    with torch.no_grad():
        d = torch.float64
        eta_d = eta.detach().to(d)
        bad_eta = (eta_d <= 0).any() if eta_tok else ~(eta_d > 0).all()  # NaN: see module doc
        eta_min = (torch.nan_to_num(eta_d, nan=math.inf).amin() if eta_d.numel()
                   else eta_d.new_ones(()))
        checks = [bad_eta, eta_min, ~torch.isfinite(lam.detach()).all()]
        checks.append(~torch.isfinite(eta_d).all() if not eta_tok else bad_eta.new_zeros(()))
        checks.append(~torch.isfinite(b.detach()).all() if not b_tok else bad_eta.new_zeros(()))
        if g0 is not None:
            checks.append((g0.detach().imag < 0).any())
        vals = torch.stack([c.to(d) for c in checks]).tolist()  # the one host read
    if vals[0]:
        where = "everywhere" if eta_tok else "in every channel"
        raise ValueError(f"eta must be > 0 (Im z > 0) {where}, got min {vals[1]:.3g}")
    for name, bad in zip(("lam", "eta", "b"), vals[2:5], strict=True):
        if bad:
            raise ValueError(f"{name} must be finite")
    if g0 is not None and vals[5]:
        raise ValueError("initial_state must have Im g_0 >= 0 (Herglotz; the guards' bounds "
                         "hold only then)")
