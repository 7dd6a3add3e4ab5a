"""The Transformer baseline: a causal pre-norm decoder with RoPE and scaled-dot-product attention.

It has the interface of :class:`bkmodel.model.LanguageModel` (``forward``, ``generate``,
``save_pretrained``/``from_pretrained``, ``num_params``, ``last_aux``, ``guard_report``), so
the same training loop, evaluation and generation code drive both, and comparisons differ only
in the sequence-mixing layer (the input checks, the sampling and the checkpoint format are
:mod:`bkmodel.lm_base`'s, shared by both). :func:`matched_config` picks the feed-forward width
so that the parameter count matches a given budget at the same ``d_model`` and depth.

Per token and layer the attention costs O(T·d) (O(T²·d) per sequence), against O(d) per token
for a BK scan layer.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from bkmodel import lm_base
from bkmodel.tt_embedding import make_token_embedding

__all__ = ["TransformerBaseline", "TransformerConfig", "matched_config"]


@dataclass
class TransformerConfig:
    """Hyper-parameters of :class:`TransformerBaseline`.

    ``max_seq_len`` bounds the context used by :meth:`TransformerBaseline.generate`; RoPE
    itself has no position table. Parameter count (no biases except LayerNorm, tied
    embeddings): ``V·d + 2d + L·(4d² + 2·d·d_ff + 4d)``. ``embedding``: ``"dense"`` (tied
    to the output head), or a tensor-train embedding of rank ``tt_rank`` (``"tt"``,
    ``"tt_phase"``: :mod:`bkmodel.tt_embedding`), which is untied — the head is then its own
    dense V × d matrix, and :meth:`param_count` (the dense formula) does not apply.
    """

    vocab_size: int = 2048
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 512
    max_seq_len: int = 256
    dropout: float = 0.0
    rope_base: float = 10000.0
    embedding: str = "dense"
    tt_rank: int = 8

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if (self.d_model // self.n_heads) % 2:
            raise ValueError("d_model / n_heads must be even (RoPE rotates pairs)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.rope_base > 1.0:
            raise ValueError(f"rope_base must be > 1, got {self.rope_base}")
        if self.embedding not in ("dense", "tt", "tt_phase"):
            raise ValueError(f"embedding must be one of dense, tt, tt_phase; got "
                             f"{self.embedding!r}")
        if isinstance(self.tt_rank, bool) or not isinstance(self.tt_rank, int) or self.tt_rank < 1:
            raise ValueError(f"tt_rank must be a positive int, got {self.tt_rank!r}")

    def param_count(self) -> int:
        d, L = self.d_model, self.n_layers
        return self.vocab_size * d + 2 * d + L * (4 * d * d + 2 * d * self.d_ff + 4 * d)

    def to_dict(self) -> dict:
        """Plain-dict form (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TransformerConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        if not isinstance(d, dict):
            raise TypeError(f"config must be a dict, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown TransformerConfig fields: {sorted(unknown)}")
        return cls(**d)


def matched_config(target_params: int, **kwargs) -> TransformerConfig:
    """A :class:`TransformerConfig` whose parameter count is closest to ``target_params``.

    All fields but ``d_ff`` come from ``kwargs``; ``d_ff`` (a multiple of 8, at least 8) is
    solved from the closed-form count. Raises ``ValueError`` when even ``d_ff = 8`` exceeds
    the budget by more than 10 %.
    """
    base = TransformerConfig(**{**kwargs, "d_ff": 8})
    per_unit = 2 * base.d_model * base.n_layers  # parameters per unit of d_ff
    fixed = base.param_count() - 8 * per_unit
    d_ff = max(8, int(round((target_params - fixed) / per_unit / 8)) * 8)
    cfg = TransformerConfig(**{**kwargs, "d_ff": d_ff})
    if cfg.param_count() > 1.1 * target_params:
        raise ValueError(
            f"target_params={target_params} is too small for d_model={base.d_model}, "
            f"n_layers={base.n_layers}, vocab={base.vocab_size} (minimum {cfg.param_count()})"
        )
    return cfg


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + h/2) of ``x`` (B, H, T, h) by the angles t·θ_i."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)
        q, k, v = (t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)  # (B, H, T, h)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.out = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), cos, sin))
        return x + self.drop(self.out(F.gelu(self.fc(self.ln2(x)))))


class TransformerBaseline(nn.Module):
    """Causal decoder-only Transformer LM (pre-norm, RoPE, SDPA, GELU MLP, tied embeddings).

    Parameters
    ----------
    config : TransformerConfig

    Examples
    --------
    >>> m = TransformerBaseline(TransformerConfig(vocab_size=300, d_model=32, n_layers=1,
    ...                                           n_heads=2, d_ff=64))
    >>> logits, loss = m(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))
    >>> tuple(logits.shape), m.num_params() == m.config.param_count()
    ((2, 5, 300), True)
    """

    model_type = "transformer"

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}")
        self.config = config
        self.embed = make_token_embedding(config.embedding, config.vocab_size, config.d_model,
                                          config.tt_rank)
        self.lm_head = (None if config.embedding == "dense"  # dense: tied to the embedding
                        else nn.Linear(config.d_model, config.vocab_size, bias=False))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.last_aux: dict[str, float] = {}
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2 scaling of residual projections
            if name.endswith(("proj.weight", "out.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def _rope_tables(self, T: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.config.d_model // self.config.n_heads
        inv = self.config.rope_base ** (-torch.arange(0, h, 2, device=device).float() / h)
        ang = torch.arange(T, device=device).float()[:, None] * inv[None, :]  # (T, h/2)
        return ang.cos().to(dtype), ang.sin().to(dtype)

    def forward(
        self, input_ids: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V) of the next token at every position; mean cross-entropy if
        ``targets`` (B, T) is given (entries ``-100`` are ignored). Any length T: RoPE has
        no position table (``max_seq_len`` only crops :meth:`generate`'s context)."""
        lm_base.check_ids(input_ids, self.config.vocab_size, None, "input_ids")
        if targets is not None:  # checked before any work is queued, as ResNet-BK does
            lm_base.check_ids(targets, self.config.vocab_size, None, "targets",
                              allow_ignore=True)
            if targets.shape != input_ids.shape:
                raise ValueError(
                    f"targets must have shape {tuple(input_ids.shape)}, got {tuple(targets.shape)}"
                )
        B, T = input_ids.shape
        x = self.drop(self.embed(input_ids.long()))  # (B, T, D)
        cos, sin = self._rope_tables(T, x.device, x.dtype)
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.logits(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.float().view(B * T, -1), targets.reshape(-1).long(), ignore_index=-100
            )
        return logits, loss

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """LM head on the residual stream: (…, d) -> LN_f, then the tied embedding (or the
        untied head of a TT embedding) -> (…, V)."""
        h = self.ln_f(x)
        return F.linear(h, self.embed.weight) if self.lm_head is None else self.lm_head(h)

    def guard_report(self) -> dict[str, int]:
        """No runtime certificates for attention: an empty report (interface parity)."""
        return {}

    def num_params(self) -> int:
        """Number of distinct parameters (the tied embedding counted once)."""
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Append ``max_new_tokens`` sampled tokens to ``input_ids`` (B, T); returns (B, T + n).

        ``temperature = 0`` is greedy decoding; ``top_k`` keeps the k most likely tokens
        (:func:`bkmodel.lm_base.sample`). Every token is a forward pass over the context,
        cropped to the last ``max_seq_len`` tokens. Runs in eval mode (restored afterwards).
        """
        lm_base.check_generate_args(max_new_tokens, temperature, top_k)
        lm_base.check_ids(input_ids, self.config.vocab_size, None)  # also when no token is drawn
        was_training = self.training
        self.eval()
        try:
            ids = input_ids
            for _ in range(max_new_tokens):
                logits, _ = self(ids[:, -self.config.max_seq_len:])
                nxt = lm_base.sample(logits[:, -1, :], temperature, top_k, generator)  # (B, 1)
                ids = torch.cat([ids, nxt], dim=1)
            return ids
        finally:
            self.train(was_training)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into ``directory``, atomically, with
        the SHA-256 of the weights in ``config.json`` (:func:`bkmodel.lm_base.save_pretrained`,
        the format ResNet-BK checkpoints use)."""
        return lm_base.save_pretrained(self, directory, model_type=self.model_type)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, *, map_location: str = "cpu"
                        ) -> TransformerBaseline:
        """Load a model written by :meth:`save_pretrained`; clear errors for bad files.

        Checkpoints written before the shared format (a flat ``config.json``: ``model_type``
        and the config fields, no checksum) still load, unverified.
        """
        return lm_base.load_pretrained(cls, directory, TransformerConfig,
                                       model_type=cls.model_type, map_location=map_location,
                                       legacy_config=_legacy_config)


def _legacy_config(meta: dict) -> TransformerConfig:
    """The config of a legacy ``config.json``: ``{"model_type": "transformer", <fields>}``,
    written by ``save_pretrained`` before it moved to :mod:`bkmodel.lm_base` (the weights
    file then had no recorded SHA-256, so it cannot be verified)."""
    return TransformerConfig.from_dict({k: v for k, v in meta.items() if k != "model_type"})
