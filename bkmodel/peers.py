"""Outside peers for the language-model comparisons: flash-linear-attention's GLA and HGRN2.

The peers are fla's own model classes (``fla.models.GLAForCausalLM``,
``HGRN2ForCausalLM``) at their default layer settings, wrapped so that the project's training
loop, checkpoints and evaluation treat them like the Transformer baseline: ``forward(ids,
targets) -> (logits, loss)`` with the same cross-entropy, the same AdamW parameter groups
(:func:`bkmodel.optim.param_groups`), the same data, schedule and tokens. Their feed-forward
width (fla's SwiGLU ``intermediate_size``) is solved so that the parameter count matches the
ResNet-BK model of the run (:func:`matched_peer_config`), as the Transformer's is.

fla is an optional dependency (``pip install flash-linear-attention==0.6.0 fla-core==0.6.0``);
its kernels are Triton GPU kernels, so the peers train on CUDA only. fla's models have no
dropout of their own, so :class:`FlaPeerLM` adds the run's: with ``dropout = p > 0`` it drops
(inverted dropout, training mode only) the token embeddings and the output of every
block's token mixer (``attn``) and feed-forward (``mlp``) before they join the residual
stream, where the project's models and the Transformer drop theirs (forward hooks; fla's
code is untouched). The factory gives the peers the run's ``TrainConfig.dropout``, as the
other models get it; ``model_options={"peer_dropout": 0.0}`` restores fla's default. On
the gpu2k suite (1.3M training tokens read 15 times) GLA without dropout overfits: H200,
2026-12-04, val ppl 53.5 at step 400 and 85.3 at step 1,200, train loss 2.03.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from bkmodel import lm_base

__all__ = ["PEERS", "FlaPeerLM", "PeerConfig", "matched_peer_config"]

PEERS = ("gla", "hgrn2")


@dataclass
class PeerConfig:
    """Shape of a peer model; ``kind`` is one of :data:`PEERS`."""

    kind: str = "gla"
    vocab_size: int = 4096
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    intermediate_size: int = 1024
    max_seq_len: int = 2048
    tie_embeddings: bool = True
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in PEERS:
            raise ValueError(f"kind must be one of {', '.join(PEERS)}; got {self.kind!r}")
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "intermediate_size",
                     "max_seq_len"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if (not isinstance(self.dropout, (int, float)) or isinstance(self.dropout, bool)
                or not 0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be a float in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PeerConfig:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


def _fla_model(cfg: PeerConfig) -> nn.Module:
    try:
        from fla import models as fm
    except ImportError as err:  # pragma: no cover - depends on the machine
        raise ImportError("the fla peers need flash-linear-attention: pip install "
                          "flash-linear-attention==0.6.0 fla-core==0.6.0 einops") from err
    common = dict(hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers,
                  num_heads=cfg.n_heads, vocab_size=cfg.vocab_size,
                  intermediate_size=cfg.intermediate_size,
                  max_position_embeddings=cfg.max_seq_len,
                  tie_word_embeddings=cfg.tie_embeddings, fuse_cross_entropy=False,
                  use_cache=False)
    if cfg.kind == "gla":
        return fm.GLAForCausalLM(fm.GLAConfig(**common))
    return fm.HGRN2ForCausalLM(fm.HGRN2Config(**common))


class FlaPeerLM(nn.Module):
    """A fla model behind the project's LM interface (see the module docstring)."""

    arch_kind = "peer"

    def __init__(self, config: PeerConfig) -> None:
        super().__init__()
        self.config = config
        self.inner = _fla_model(config)
        self.last_aux: dict[str, Any] = {}
        if config.dropout > 0:
            self._add_dropout(config.dropout)

    def _add_dropout(self, p: float) -> None:
        """Forward hooks dropping the embeddings and every block's ``attn`` / ``mlp`` output
        (the first element when a module returns a tuple) with probability ``p``."""

        def hook(module: nn.Module, _args: Any, out: Any) -> Any:
            if not module.training:
                return None
            if isinstance(out, tuple):
                return (F.dropout(out[0], p, True), *out[1:])
            return F.dropout(out, p, True)

        backbone = self.inner.model
        backbone.embeddings.register_forward_hook(hook)
        for block in backbone.layers:
            block.attn.register_forward_hook(hook)
            block.mlp.register_forward_hook(hook)

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits (B, T, V), mean cross-entropy or None)``; ``targets`` -100 is ignored."""
        logits = self.inner(input_ids=input_ids, use_cache=False).logits
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                   targets.reshape(-1).long(), ignore_index=-100)
        return logits, loss

    def num_params(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters()
                   if p.requires_grad or not trainable_only)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Atomic, checksummed safetensors + config.json (``lm_base.save_pretrained``)."""
        return lm_base.save_pretrained(self, directory, model_type=f"fla-{self.config.kind}")

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, *, map_location: str = "cpu"
                        ) -> FlaPeerLM:
        """Load what :meth:`save_pretrained` wrote (same errors as the project's models)."""
        kind = json.loads((Path(directory) / lm_base.CONFIG_NAME).read_text())["config"]["kind"]
        return lm_base.load_pretrained(cls, directory, PeerConfig, model_type=f"fla-{kind}",
                                       map_location=map_location)


def matched_peer_config(kind: str, target_params: int, **shape: Any) -> PeerConfig:
    """The :class:`PeerConfig` of ``kind`` whose parameter count is closest to
    ``target_params``, by solving for ``intermediate_size`` (the count is affine in it)."""
    counts = {}
    for inter in (256, 512):
        counts[inter] = FlaPeerLM(PeerConfig(kind=kind, intermediate_size=inter,
                                             **shape)).num_params()
    slope = (counts[512] - counts[256]) / 256
    inter = max(1, round(256 + (target_params - counts[256]) / slope))
    return PeerConfig(kind=kind, intermediate_size=int(inter), **shape)
