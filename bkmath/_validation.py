"""Argument validation shared by every public routine.

Errors name the argument (``"Im z must be > 0"``), never return a silent NaN.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "as_real_array",
    "as_numeric_array",
    "as_spectral_parameter",
    "check_positive",
]


def _check_dtype(arr: np.ndarray, name: str, *, allow_complex: bool) -> None:
    kind = arr.dtype.kind
    ok = "biuf" + ("c" if allow_complex else "")
    if kind not in ok:
        what = "real or complex" if allow_complex else "real"
        raise TypeError(f"{name} must be a {what} numeric array, got dtype {arr.dtype}")


def as_numeric_array(
    x: object,
    name: str,
    *,
    allow_complex: bool = True,
    ndim: int | None = None,
    min_ndim: int | None = None,
    finite: bool = True,
) -> np.ndarray:
    """Convert ``x`` to an ndarray, checking dtype, dimensionality and finiteness.

    Integer and boolean input is promoted to float64. Raises ``TypeError`` for non-numeric
    input and ``ValueError`` for a wrong number of dimensions or non-finite entries.
    """
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be numeric, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise TypeError(f"{name} could not be converted to an array: {exc}") from None
    _check_dtype(arr, name, allow_complex=allow_complex)
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimension(s), got shape {arr.shape}"
        )
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf")
    return arr


def as_real_array(x: object, name: str, **kwargs: object) -> np.ndarray:
    """Like :func:`as_numeric_array` but rejects complex input with ``TypeError``."""
    return as_numeric_array(x, name, allow_complex=False, **kwargs)  # type: ignore[arg-type]


def as_spectral_parameter(
    z: object, name: str = "z", *, boundary: bool = False
) -> np.ndarray:
    """Validate a spectral parameter ``z = λ + iη`` (scalar or array) and return complex128.

    Parameters
    ----------
    z : complex or array_like
        The spectral parameter(s).
    name : str
        Argument name used in error messages.
    boundary : bool
        If False (default) require ``Im z > 0`` strictly: a resolvent is formed. If True,
        ``Im z >= 0`` is accepted (routines that compute boundary values ``λ + i0``).
    """
    if isinstance(z, (str, bytes)):
        raise TypeError(f"{name} must be a complex number, got {type(z).__name__}")
    if isinstance(z, numbers.Number) and not isinstance(z, numbers.Complex):
        raise TypeError(f"{name} must be a complex number, got {type(z).__name__}")
    arr = as_numeric_array(z, name, allow_complex=True).astype(np.complex128)
    im = arr.imag
    if boundary:
        if np.any(im < 0):
            raise ValueError(f"Im {name} must be >= 0 (boundary values λ + i0), got {im.min()}")
    elif np.any(im <= 0):
        raise ValueError(f"Im {name} must be > 0, got {im.min()}")
    return arr


def check_positive(value: float, name: str, *, strict: bool = True) -> float:
    """Return ``float(value)`` after checking it is finite and > 0 (or >= 0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if (strict and v <= 0) or (not strict and v < 0):
        raise ValueError(f"{name} must be {'>' if strict else '>='} 0, got {v}")
    return v
