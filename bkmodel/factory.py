"""The model of a training run: :func:`build_model` for ResNet-BK and the Transformer baseline.

Both architectures take their shape from the same :class:`bkmodel.presets.TrainConfig` fields
(``d_model``, ``n_layers``, ``seq_len``, ``dropout``). ResNet-BK's other fields come from
``TrainConfig.model_options`` (:meth:`bkmodel.presets.TrainConfig.bk_model_config`). The
Transformer's feed-forward width is ``d_ff`` when given, else the width whose parameter count
matches the ResNet-BK model of the same configuration (:func:`bkmodel.baseline.matched_config`),
so that the two are compared at equal size.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn

from bkmodel.baseline import TransformerBaseline, TransformerConfig, matched_config
from bkmodel.model import LanguageModel
from bkmodel.peers import PEERS, FlaPeerLM, matched_peer_config
from bkmodel.presets import TrainConfig

__all__ = ["bk_param_count", "build_model", "transformer_config"]


def build_model(cfg: TrainConfig, vocab_size: int) -> nn.Module:
    """The model of ``cfg.model`` for a vocabulary of ``vocab_size`` tokens (seeded init).

    The initial weights depend on ``cfg.seed`` only: the global torch RNG is seeded with it
    right before the model is made.
    """
    torch.manual_seed(cfg.seed)
    if cfg.model == "transformer":
        return TransformerBaseline(transformer_config(cfg, vocab_size))
    if cfg.model in PEERS:  # fla's GLA / HGRN2, parameter-matched like the Transformer,
        # with the run's dropout unless model_options["peer_dropout"] says otherwise
        options = dict(cfg.model_options)
        p_drop = options.pop("peer_dropout", cfg.dropout)
        bk_cfg = dataclasses.replace(cfg, model_options=options, bk_options=None)
        peer = matched_peer_config(cfg.model, bk_param_count(bk_cfg, vocab_size),
                                   vocab_size=vocab_size, d_model=cfg.d_model,
                                   n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                                   max_seq_len=cfg.seq_len)
        peer = dataclasses.replace(peer, dropout=float(p_drop))
        torch.manual_seed(cfg.seed)
        return FlaPeerLM(peer)
    model_cfg = cfg.bk_model_config(vocab_size)
    torch.manual_seed(cfg.seed)
    return LanguageModel(model_cfg)


def transformer_config(cfg: TrainConfig, vocab_size: int) -> TransformerConfig:
    """The Transformer baseline's config: ``d_ff`` from ``cfg``, else parameter-matched."""
    common = dict(vocab_size=vocab_size, d_model=cfg.d_model, n_layers=cfg.n_layers,
                  n_heads=cfg.n_heads, max_seq_len=cfg.seq_len, dropout=cfg.dropout)
    # the token-embedding fields of model_options apply to both architectures
    common.update({k: cfg.model_options[k] for k in ("embedding", "tt_rank")
                   if k in cfg.model_options})
    if cfg.d_ff is not None:
        return TransformerConfig(**common, d_ff=cfg.d_ff)
    return matched_config(bk_param_count(cfg, vocab_size), **common)


def bk_param_count(cfg: TrainConfig, vocab_size: int) -> int:
    """Parameters of the ResNet-BK model of ``cfg`` (built and dropped; the torch RNG is
    restored, so counting does not shift the seeded initialisation that follows)."""
    state = torch.get_rng_state()
    try:
        return int(LanguageModel(cfg.bk_model_config(vocab_size)).num_params())
    finally:
        torch.set_rng_state(state)
