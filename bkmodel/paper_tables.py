"""Deprecated: the paper's certificate tables moved to :mod:`bkpaper.tables`.

``python -m bkmodel.paper_tables`` still runs ``python -m bkpaper.tables``; the names forward
to :mod:`bkpaper.tables`, loaded on first use (``bkmodel`` does not depend on ``bkpaper``).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

warnings.warn(
    "bkmodel.paper_tables is deprecated: use bkpaper.tables (python -m bkpaper.tables)",
    DeprecationWarning,
    # run as a script, the warning belongs to __main__ (so Python shows it by default)
    stacklevel=1 if __name__ == "__main__" else 2,
)

_MOVED = ("load_certificates", "certificates_table", "statements_tex", "numbers_tex",
          "latex_text", "main")

# the old module's __all__ (``main`` stays reachable as an attribute)
__all__ = [name for name in _MOVED if name != "main"]


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module 'bkmodel.paper_tables' has no attribute {name!r}")
    return getattr(importlib.import_module("bkpaper.tables"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MOVED))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(importlib.import_module("bkpaper.tables").main())
