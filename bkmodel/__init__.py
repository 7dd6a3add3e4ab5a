"""bkmodel: the causal ResNet-BK language model, its kernels, training and guards.

Public names are loaded lazily so that ``import bkmodel`` does not import torch until a
model is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_API: dict[str, str] = {
    "BKEncoder": "bkmodel.model",
    "GuardConfig": "bkmodel.config",
    "LanguageModel": "bkmodel.model",
    "ModelConfig": "bkmodel.config",
    "causality_certificate": "bkmodel.causality",
    "TransformerBaseline": "bkmodel.baseline",
    "bk_scan": "bkmodel.ops.bk_scan",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    try:
        module = _API[name]
    except KeyError:
        raise AttributeError(f"module 'bkmodel' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
