"""The optimizer of both architectures: AdamW with decoupled weight decay on matrices only,
and the learning-rate schedule of :mod:`bkmodel.train`.

One rule for the parameter groups, used by the training loop for ResNet-BK and the
Transformer baseline alike, and by :meth:`bkmodel.model.LanguageModel.configure_optimizers`:
parameters of two or more dimensions (linear and embedding weights) are decayed; vectors and
scalars (biases, norm gains, the BK chains' ``z_c`` and ``b_c``) are not.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from bkmodel.presets import TrainConfig

__all__ = ["build_optimizer", "lr_at", "param_groups"]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The two AdamW parameter groups of ``model``: ``[decayed, not decayed]``.

    Every trainable parameter of ``model.parameters()`` (shared tensors once, in that order)
    lands in exactly one group: ``ndim >= 2`` with ``weight_decay``, the rest with 0.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` with the run's decay and betas, at the step-0 rate."""
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=lr_at(0, cfg),
                             betas=(cfg.beta1, cfg.beta2))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up, then cosine to min_lr_ratio·lr.

    >>> c = TrainConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    >>> lr_at(0, c), lr_at(9, c), lr_at(10, c), round(lr_at(60, c), 6), round(lr_at(110, c), 6)
    (0.1, 1.0, 1.0, 0.55, 0.1)
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))
