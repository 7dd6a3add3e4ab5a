"""Deprecated: the paper's figures moved to :mod:`bkpaper`.

Use :mod:`bkpaper.framework` (registry, :func:`~bkpaper.framework.generate`,
:class:`~bkpaper.framework.FigureResult`, :func:`~bkpaper.framework.tex_number`, ...), the
figure modules (:mod:`bkpaper.resolvent_figs`, :mod:`bkpaper.scattering_figs`,
:mod:`bkpaper.primes_figs`, :mod:`bkpaper.model_figs`) and :mod:`bkpaper.cli` (``bk figures``).
This module only forwards the old names, loading :mod:`bkpaper` on first use (``bkmodel`` does
not depend on ``bkpaper``).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

warnings.warn(
    "bkmodel.figures is deprecated: import from bkpaper.framework, bkpaper.cli and the "
    "bkpaper figure modules instead",
    DeprecationWarning,
    stacklevel=2,
)

# old name -> "module:name" of its new home
_MOVED: dict[str, str] = {
    "FIGURES": "bkpaper.framework:FIGURES",
    "REPO_ROOT": "bkpaper.framework:REPO_ROOT",
    "FigureContext": "bkpaper.framework:FigureContext",
    "FigureResult": "bkpaper.framework:FigureResult",
    "FigureSanityError": "bkpaper.framework:FigureSanityError",
    "FigureSpec": "bkpaper.framework:FigureSpec",
    "MissingResultsError": "bkpaper.framework:MissingResultsError",
    "generate": "bkpaper.framework:generate",
    "sanity": "bkpaper.framework:sanity",
    "tex_escape": "bkpaper.framework:tex_escape",
    "tex_number": "bkpaper.framework:tex_number",
    "write_numbers_tex": "bkpaper.framework:write_numbers_tex",
    "_figure": "bkpaper.framework:register_figure",
    "_new_figure": "bkpaper.framework:new_figure",
    "configure_parser": "bkpaper.cli:configure_parser",
    "run": "bkpaper.cli:run",
    "figure_resolvent": "bkpaper.resolvent_figs:figure_resolvent",
    "figure_schatten": "bkpaper.resolvent_figs:figure_schatten",
    "figure_spectral_shift": "bkpaper.scattering_figs:figure_spectral_shift",
    "figure_mourre": "bkpaper.scattering_figs:figure_mourre",
    "figure_primes": "bkpaper.primes_figs:figure_primes",
    "GPU_BENCH_CMD": "bkpaper.model_figs:GPU_BENCH_CMD",
    "LM_COMPARE_CMD": "bkpaper.model_figs:LM_COMPARE_CMD",
    "figure_scaling": "bkpaper.model_figs:figure_scaling",
    "figure_training": "bkpaper.model_figs:figure_training",
}

# the old module's __all__ (every name of _MOVED stays reachable as an attribute)
__all__ = sorted(
    ("FIGURES", "FigureContext", "FigureResult", "FigureSanityError", "MissingResultsError",
     "configure_parser", "generate", "run", "tex_number")
)


def __getattr__(name: str) -> Any:
    try:
        module, attr = _MOVED[name].split(":")
    except KeyError:
        raise AttributeError(f"module 'bkmodel.figures' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), attr)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MOVED))
