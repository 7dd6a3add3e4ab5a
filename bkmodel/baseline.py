"""The Transformer baseline: a causal pre-norm decoder with RoPE and scaled-dot-product attention.

It has the interface of :class:`bkmodel.model.LanguageModel` (``forward``, ``generate``,
``save_pretrained``/``from_pretrained``, ``num_params``, ``last_aux``, ``guard_report``), so
the same training loop, evaluation and generation code drive both, and comparisons differ only
in the sequence-mixing layer (the input checks, the sampling and the checkpoint format are
:mod:`bkmodel.lm_base`'s, shared by both). :func:`matched_config` picks the feed-forward width
so that the parameter count matches a given budget at the same ``d_model`` and depth.

Per token and layer the attention costs O(T·d) (O(T²·d) per sequence), against O(d) per token
for a BK scan layer.

Document masking (``forward(..., reset=...)``, the ``reset`` mask ResNet-BK takes, True at a
document's first token; ``bk train --reset-at-documents true``): attention is then
block-diagonal causal, so no document attends to the one before it (:func:`document_mask`).
On CPU, and wherever flex attention is not available, it is SDPA with a boolean
(B, 1, T, T) mask: O(B·T²) bytes per forward, shared by the layers. On CUDA, where
``torch.nn.attention.flex_attention`` exists, it is a compiled flex attention with a block
mask (:func:`document_block_mask`), which skips fully masked tiles and never builds the T × T
mask (:data:`USE_FLEX_ATTENTION` turns it off). Without ``reset`` the attention is the
``is_causal=True`` SDPA call, unchanged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from bkmodel import lm_base
from bkmodel.tt_embedding import make_token_embedding

try:  # torch >= 2.5
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
except ImportError:  # pragma: no cover - older torch: the SDPA mask everywhere
    BlockMask = create_block_mask = flex_attention = None  # type: ignore[assignment,misc]

__all__ = ["TransformerBaseline", "TransformerConfig", "document_block_mask", "document_mask",
           "matched_config"]

#: Document masks on CUDA use flex attention (a block mask) when torch has it; set False to
#: use the SDPA boolean mask there too (the CPU path).
USE_FLEX_ATTENTION: bool = True
_compiled_flex: Callable[..., torch.Tensor] | None = None  # torch.compile(flex_attention)
_compiled_block_mask: Callable[..., Any] | None = None  # torch.compile(create_block_mask)


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


def _check_reset(reset: Any, input_ids: torch.Tensor) -> None:
    """``ValueError`` unless ``reset`` is a bool tensor shaped like ``input_ids``, on its device
    (the checks and messages of ResNet-BK's ``LanguageModel`` forward)."""
    if not isinstance(reset, torch.Tensor) or reset.dtype != torch.bool:
        raise ValueError(f"reset must be a bool tensor (True at a document's first "
                         f"token), got {getattr(reset, 'dtype', type(reset).__name__)}")
    if reset.shape != input_ids.shape:
        raise ValueError(f"reset must have the shape of input_ids "
                         f"{tuple(input_ids.shape)}, got {tuple(reset.shape)}")
    if reset.device != input_ids.device:
        raise ValueError(f"reset must be on the device of input_ids ({input_ids.device}), "
                         f"got {reset.device}")


def document_mask(reset: torch.Tensor) -> torch.Tensor:
    """The block-diagonal causal attention mask of a batch of document starts.

    Parameters
    ----------
    reset : torch.Tensor
        (B, T) bool, True at a document's first token.

    Returns
    -------
    torch.Tensor
        (B, 1, T, T) bool, True where query ``i`` may attend to key ``j``: ``j <= i`` and
        no document starts in ``(j, i]`` (the same entry of ``reset.cumsum(1)``). The tokens
        before a row's first reset are one document (the one the window cut). Every row has
        its diagonal, so no softmax is empty. Memory O(B·T²) bytes.

    Examples
    --------
    >>> document_mask(torch.tensor([[False, False, True, False]]))[0, 0].int()
    tensor([[1, 0, 0, 0],
            [1, 1, 0, 0],
            [0, 0, 1, 0],
            [0, 0, 1, 1]], dtype=torch.int32)
    """
    doc = reset.long().cumsum(1)  # (B, T): document index inside the window
    T = reset.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=reset.device).tril()
    return ((doc[:, :, None] == doc[:, None, :]) & causal)[:, None]


def document_block_mask(reset: torch.Tensor) -> BlockMask:
    """The flex-attention :class:`~torch.nn.attention.flex_attention.BlockMask` of
    :func:`document_mask` (same pattern, one head broadcast to all).

    Parameters
    ----------
    reset : torch.Tensor
        (B, T) bool, True at a document's first token.

    Returns
    -------
    BlockMask
        Built with ``create_block_mask`` on ``reset``'s device; on CUDA through
        ``torch.compile(create_block_mask)`` (compiled once), so the T × T mask is never
        materialised (the 128 × 128 tiles are classified from the ``mask_mod``); eagerly
        elsewhere. Requires ``torch.nn.attention.flex_attention`` (torch >= 2.5).
    """
    global _compiled_block_mask
    if create_block_mask is None:
        raise RuntimeError("document_block_mask needs torch.nn.attention.flex_attention "
                           "(torch >= 2.5)")
    doc = reset.long().cumsum(1)
    B, T = reset.shape

    def mask_mod(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor,
                 kv_idx: torch.Tensor) -> torch.Tensor:
        return (kv_idx <= q_idx) & (doc[b, q_idx] == doc[b, kv_idx])

    make = create_block_mask
    if reset.is_cuda:
        if _compiled_block_mask is None:
            _compiled_block_mask = torch.compile(create_block_mask)
        make = _compiled_block_mask
    return make(mask_mod, B, None, T, T, device=reset.device)


def _use_flex(device: torch.device, dropout: bool) -> bool:
    """Whether a document mask on ``device`` takes the flex-attention path: CUDA, flex
    attention importable, :data:`USE_FLEX_ATTENTION`, and no attention dropout (flex
    attention has none)."""
    return (USE_FLEX_ATTENTION and flex_attention is not None and device.type == "cuda"
            and not dropout)


def _flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask: BlockMask
          ) -> torch.Tensor:
    """Flex attention of (B, H, T, h) ``q, k, v`` under ``block_mask``; compiled on CUDA (the
    eager version materialises the scores), eager elsewhere (tests). Computed in ``v``'s
    dtype (the autocast dtype under autocast, as SDPA's), outside autocast."""
    global _compiled_flex
    fn = flex_attention
    if q.is_cuda:
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex_attention, dynamic=False)
        fn = _compiled_flex
    with torch.autocast(q.device.type, enabled=False):
        return fn(q.to(v.dtype), k.to(v.dtype), v, block_mask=block_mask)


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

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | BlockMask | None = None) -> torch.Tensor:
        """Attention of ``x`` (B, T, D): causal (``mask`` None), or under a document mask
        (a (B, 1, T, T) bool tensor for SDPA, or a flex-attention block mask)."""
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)
        q, k, v = (t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)  # (B, H, T, h)
        if mask is None:
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
            )
        elif isinstance(mask, torch.Tensor):
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
            )
        else:
            y = _flex(q, k, v, mask)
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

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | BlockMask | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), cos, sin, mask))
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
        self, input_ids: torch.Tensor, targets: torch.Tensor | None = None, *,
        reset: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits of the next token at every position, and the loss.

        Parameters
        ----------
        input_ids : torch.Tensor
            (B, T) token ids. Any length T: RoPE has no position table (``max_seq_len``
            only crops :meth:`generate`'s context).
        targets : torch.Tensor, optional
            (B, T) next-token ids; entries ``-100`` are ignored.
        reset : torch.Tensor, optional
            (B, T) bool, True at the first token of a document (the keyword and checks of
            ResNet-BK's forward; :func:`bkmodel.data.batch_resets`). Token ``i`` then attends
            to ``j`` only if ``j <= i`` and ``j`` is in its document (:func:`document_mask`),
            so every document's logits equal those of the document run alone, up to
            rounding. Positions do not restart at a document: RoPE scores depend only on
            ``i - j``, so the absolute offset of a document changes nothing but rounding.
            SDPA with a (B, 1, T, T) bool mask (O(B·T²) memory), or flex attention on CUDA
            (module docstring). None: plain causal attention, exactly as without the
            argument.

        Returns
        -------
        tuple of torch.Tensor
            ``(logits (B, T, V), loss)``: the mean cross-entropy over the non-ignored
            targets, None without ``targets``.

        Raises
        ------
        ValueError
            For bad ids or targets, or a ``reset`` that is not a bool tensor of the shape
            and device of ``input_ids`` (the message names ``reset``).
        """
        lm_base.check_ids(input_ids, self.config.vocab_size, None, "input_ids")
        if reset is not None:
            _check_reset(reset, input_ids)
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
        mask: torch.Tensor | BlockMask | None = None
        if reset is not None:  # one mask for all layers
            dropout = self.training and self.config.dropout > 0
            mask = (document_block_mask(reset) if _use_flex(reset.device, dropout)
                    else document_mask(reset))
        for block in self.blocks:
            x = block(x, cos, sin, mask)
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
