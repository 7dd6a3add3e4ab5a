"""The Transformer baseline: a causal pre-norm decoder with RoPE and scaled-dot-product attention.

It has the interface of :class:`bkmodel.model.LanguageModel` (``forward``, ``generate``,
``save_pretrained``/``from_pretrained``, ``num_params``, ``last_aux``, ``guard_report``), so
the same training loop, evaluation and generation code drive both, and comparisons differ only
in the sequence-mixing layer (the input checks, the sampling and the checkpoint format are
:mod:`bkmodel.lm_base`'s, shared by both). :func:`matched_config` picks the feed-forward width
so that the parameter count matches a given budget at the same ``d_model`` and depth.

Per token and layer the attention costs O(T·d) (O(T²·d) per sequence), against O(d) per token
for a BK scan layer.

Decoding (:meth:`TransformerBaseline.generate`) goes through a static KV cache
(:meth:`~TransformerBaseline.new_cache`, :meth:`~TransformerBaseline.prefill`,
:meth:`~TransformerBaseline.step`): per layer K and V buffers (B, H, S, h) preallocated for the
S = prompt + new positions, the current length a device tensor, RoPE from precomputed cos/sin
tables. A step attends over the whole buffer under the mask ``slot < length + 1`` and writes its
K/V in place, so its shapes never change and it can be captured in a CUDA graph
(``benchmarks/decode_speed.py`` does). Cost O(L·S·d) per decoded token (O(T) in the context
length), memory O(L·S·d) for the cache; without it (``use_cache=False``, and past
``max_seq_len``) every token is a forward over the context. Decoding has no document mask:
the cached context is one document (``reset`` is refused with a cache).

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

    ``max_seq_len`` bounds the context used by :meth:`TransformerBaseline.generate` (and the
    positions of its KV cache); RoPE itself has no position table. Parameter count (no
    biases except LayerNorm, tied embeddings): ``V·d + 2d + L·(4d² + 2·d·d_ff + 4d)``.
    ``embedding``: ``"dense"`` (tied to the output head), or a tensor-train embedding of rank
    ``tt_rank`` (``"tt"``, ``"tt_phase"``: :mod:`bkmodel.tt_embedding`), which is untied —
    the head is then its own dense V × d matrix, and :meth:`param_count` (the dense formula)
    does not apply.
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


_check_reset = lm_base.check_reset  # the messages of ResNet-BK's forward (bkmodel.lm_base)


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

    def _qkv(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys, values (B, H, T, h) of ``x`` (B, T, D); queries and keys rotated."""
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)
        q, k, v = (t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))
        return _rope(q, cos, sin), _rope(k, cos, sin), v

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | BlockMask | None = None) -> torch.Tensor:
        """Attention of ``x`` (B, T, D): causal (``mask`` None), or under a document mask
        (a (B, 1, T, T) bool tensor for SDPA, or a flex-attention block mask)."""
        B, T, D = x.shape
        q, k, v = self._qkv(x, cos, sin)  # (B, H, T, h)
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

    def cached(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k_buf: torch.Tensor,
               v_buf: torch.Tensor, pos: torch.Tensor, key_mask: torch.Tensor | None
               ) -> torch.Tensor:
        """Attention of ``x`` (B, T, D) at positions ``pos`` (T,) through a KV cache.

        The new keys and values are written into ``k_buf``/``v_buf`` (B, H, S, h) at ``pos``
        (in place). ``key_mask`` (T, S) bool, True where a query may see a slot: the queries
        attend to the whole buffer under it (fixed shapes). None: the cache held nothing
        before, so the T tokens attend causally among themselves (the forward's SDPA call).
        """
        B, T, D = x.shape
        q, k, v = self._qkv(x, cos, sin)
        k_buf.index_copy_(2, pos, k.to(k_buf.dtype))
        v_buf.index_copy_(2, pos, v.to(v_buf.dtype))
        if key_mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q.to(k_buf.dtype), k_buf, v_buf,
                                               attn_mask=key_mask)
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

    def cached(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k_buf: torch.Tensor,
               v_buf: torch.Tensor, pos: torch.Tensor, key_mask: torch.Tensor | None
               ) -> torch.Tensor:
        """:meth:`forward` through a KV cache (:meth:`CausalSelfAttention.cached`)."""
        x = x + self.drop(self.attn.cached(self.ln1(x), cos, sin, k_buf, v_buf, pos, key_mask))
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
        reset: torch.Tensor | None = None, cache: dict[str, Any] | None = None,
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
        cache : dict, optional
            A KV cache (:meth:`new_cache`, :meth:`prefill`): decode through it. The T tokens
            continue the sequence held in the cache (their keys and values are written at
            positions ``length .. length + T - 1``, in place, and ``cache["length"]``
            advances by T); only the last position's logits are computed, so the logits are
            (B, 1, V) and the loss None. Runs without autograd; meant for eval mode (the
            attention has no dropout there). ``targets`` and ``reset`` are refused with it:
            decoding has no document mask (the cached context is one document). See
            :meth:`step` for the costs and for what is checked.

        Returns
        -------
        tuple of torch.Tensor
            ``(logits (B, T, V), loss)``: the mean cross-entropy over the non-ignored
            targets, None without ``targets``. With ``cache``: ``(logits (B, 1, V), None)``.

        Raises
        ------
        ValueError
            For bad ids or targets, or a ``reset`` that is not a bool tensor of the shape
            and device of ``input_ids`` (the message names ``reset``); with ``cache``, for
            ``targets``/``reset`` given, or tokens that do not fit in it.
        """
        if cache is not None:
            if targets is not None or reset is not None:
                raise ValueError("cache (KV-cache decoding) takes neither targets nor reset: "
                                 "decoding has no document mask")
            return self._forward_cached(input_ids, cache), None
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

    # ----------------------------------------------------------------------------------------
    # KV-cache decoding
    # ----------------------------------------------------------------------------------------
    def new_cache(self, batch_size: int, max_len: int | None = None, *,
                  device: torch.device | str | None = None, dtype: torch.dtype | None = None
                  ) -> dict[str, Any]:
        """An empty, preallocated (static) KV cache for ``batch_size`` sequences.

        Parameters
        ----------
        batch_size : int
            B, the number of sequences decoded together.
        max_len : int, optional
            S, the positions the cache holds (prompt plus generated tokens); at most
            ``config.max_seq_len``, which is the default.
        device, dtype : optional
            Of the buffers; default those of the model's parameters.

        Returns
        -------
        dict
            ``{"0": {"k": K, "v": V}, ..., str(L - 1): {...}, "length": n, "cos": c,
            "sin": s}`` (the layer-keyed layout of ``LanguageModel``'s decoding states):
            per layer K, V (B, H, S, h) zeros in ``dtype``; ``length`` the number of cached
            positions, a 0-d long tensor on ``device`` (so a step never reads it on the
            host); ``cos``/``sin`` (S, h / 2) the RoPE tables of positions 0 .. S - 1
            (:meth:`_rope_tables`, the forward's values). Every tensor keeps its storage
            for the cache's lifetime (decoding writes into it), which is what CUDA-graph
            capture of :meth:`step` needs. Memory: ``2·L·B·S·d`` elements, O(L·T·d).
        """
        M = self.config.max_seq_len
        max_len = M if max_len is None else max_len
        for name, value in (("batch_size", batch_size), ("max_len", max_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if max_len > M:
            raise ValueError(f"max_len={max_len} > max_seq_len={M} (config.max_seq_len): the "
                             "KV cache holds at most max_seq_len positions")
        ref = self.ln_f.weight
        device = ref.device if device is None else torch.device(device)
        dtype = ref.dtype if dtype is None else dtype
        H = self.config.n_heads
        shape = (batch_size, H, max_len, self.config.d_model // H)
        cache: dict[str, Any] = {
            str(i): {"k": torch.zeros(shape, device=device, dtype=dtype),
                     "v": torch.zeros(shape, device=device, dtype=dtype)}
            for i in range(self.config.n_layers)}  # zeros: masked slots must be finite
        cos, sin = self._rope_tables(max_len, device, dtype)
        cache.update(length=torch.zeros((), dtype=torch.long, device=device), cos=cos, sin=sin)
        return cache

    @torch.no_grad()
    def prefill(self, input_ids: torch.Tensor, max_len: int | None = None
                ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Run the prompt once into a new KV cache of ``max_len`` positions.

        Parameters
        ----------
        input_ids : torch.Tensor
            (B, T) prompt ids.
        max_len : int, optional
            Positions of the cache (:meth:`new_cache`): T plus the tokens to decode, at
            most ``config.max_seq_len`` (the default).

        Returns
        -------
        logits : torch.Tensor
            (B, V), the next-token logits after the prompt (the forward's last position).
        cache : dict
            The cache (:meth:`new_cache`) holding the prompt's keys and values,
            ``length = T``.

        Notes
        -----
        The prompt's attention is the forward's ``is_causal`` SDPA call over its own keys
        (O(T²·d) per layer); its keys and values are then written into the buffers. Call in
        eval mode. No document mask (``reset``): see :meth:`forward`.

        Raises
        ------
        ValueError
            For bad ids, or ``T > max_len`` / ``max_len > max_seq_len`` (the messages name
            them).
        """
        lm_base.check_ids(input_ids, self.config.vocab_size, None)
        max_len = self.config.max_seq_len if max_len is None else max_len
        T = input_ids.shape[1]
        if isinstance(max_len, int) and not isinstance(max_len, bool) and T > max_len:
            raise ValueError(f"input_ids has length T={T} > max_len={max_len} (the KV "
                             "cache's positions)")
        cache = self.new_cache(input_ids.shape[0], max_len, device=input_ids.device)
        logits, _ = self(input_ids, cache=cache)
        return logits[:, -1], cache

    @torch.no_grad()
    def step(self, token: torch.Tensor, cache: dict[str, Any]
             ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Decode one token per sequence through the KV cache.

        Parameters
        ----------
        token : torch.Tensor
            (B,) integer ids, the tokens at position ``cache["length"]``.
        cache : dict
            From :meth:`prefill` (or :meth:`new_cache`); updated in place.

        Returns
        -------
        logits : torch.Tensor
            (B, V) next-token logits.
        cache : dict
            The same object: the token's keys and values written at ``length``, ``length``
            advanced by one.

        Notes
        -----
        Fixed shapes: the query attends over the whole (B, H, S, h) buffer under the mask
        ``slot < length + 1`` (unwritten slots are zeros, masked out), RoPE takes row
        ``length`` of the cache's cos/sin tables by a device-side index, and the buffers
        are written in place (``index_copy_``): no host read, no allocation that depends on
        the position, so the step can be captured in a CUDA graph and replayed. Cost
        O(L·S·d) per token (S = the cache's positions; O(T) per decoded token in the
        context length, against O(T²) for re-running the forward); memory O(L·S·d), the
        cache. No document mask (``reset``).

        On CPU the token ids are range-checked and a full cache is a ``ValueError``; on
        CUDA only their shape and dtype are (a host read per token would serialise
        decoding), so an id out of range or a step past ``max_len`` is a device-side
        assertion there (:meth:`generate` checks both before it decodes).
        """
        if not isinstance(token, torch.Tensor) or token.ndim != 1:
            got = (tuple(token.shape) if isinstance(token, torch.Tensor)
                   else type(token).__name__)
            raise ValueError(f"token must be a (B,) tensor of ids, got {got}")
        logits, _ = self(token[:, None], cache=cache)
        return logits[:, 0], cache

    def _forward_cached(self, input_ids: torch.Tensor, cache: dict[str, Any]) -> torch.Tensor:
        """Logits (B, 1, V) of the last of ``input_ids`` (B, T), continuing ``cache``."""
        if not isinstance(cache, dict) or not {"length", "cos", "sin", "0"} <= set(cache):
            raise ValueError("cache must be a KV cache from new_cache or prefill")
        length = cache["length"]
        device_step = (length.is_cuda and isinstance(input_ids, torch.Tensor)
                       and input_ids.ndim == 2 and input_ids.shape[0] > 0
                       and input_ids.shape[1] == 1 and input_ids.dtype in lm_base._INT_DTYPES)
        if not device_step:  # a well-formed one-token step on CUDA reads nothing on the host
            lm_base.check_ids(input_ids, self.config.vocab_size, None)
        B, T = input_ids.shape
        k0 = cache["0"]["k"]
        S = k0.shape[2]
        if B != k0.shape[0]:
            raise ValueError(f"input_ids has batch {B}, the KV cache {k0.shape[0]}")
        if input_ids.device != length.device:
            raise ValueError(f"input_ids must be on the KV cache's device ({length.device}), "
                             f"got {input_ids.device}")
        fresh = False
        if not device_step:
            n = int(length)
            if n + T > S:
                raise ValueError(f"the KV cache is full: {n} cached + T={T} new tokens > "
                                 f"max_len={S}")
            fresh = n == 0 and T > 1  # a prompt: its own causal attention (the forward's)
        with torch.no_grad():
            pos = length + torch.arange(T, device=length.device)  # (T,)
            cos, sin = cache["cos"].index_select(0, pos), cache["sin"].index_select(0, pos)
            key_mask = (None if fresh else  # (T, S): slot j is visible to position p if j <= p
                        torch.arange(S, device=length.device)[None, :] <= pos[:, None])
            x = self.drop(self.embed(input_ids.long()))
            for i, block in enumerate(self.blocks):
                layer = cache[str(i)]
                x = block.cached(x, cos, sin, layer["k"], layer["v"], pos, key_mask)
            length.add_(T)
            return self.logits(x[:, -1:])

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
        use_cache: bool | None = None,
    ) -> torch.Tensor:
        """Append ``max_new_tokens`` sampled tokens to ``input_ids`` (B, T); returns (B, T + n).

        ``temperature = 0`` is greedy decoding; ``top_k`` keeps the k most likely tokens
        (:func:`bkmodel.lm_base.sample`). Runs in eval mode (restored afterwards).

        Parameters
        ----------
        input_ids : torch.Tensor
            (B, T) prompt ids.
        max_new_tokens : int
            n, the tokens to draw (0: ``input_ids`` is returned, no model step runs).
        temperature, top_k, generator
            Of the sampler (:func:`bkmodel.lm_base.sample`).
        use_cache : bool or None
            ``True``: decode through a static KV cache of ``T + n`` positions
            (:meth:`prefill`, then one :meth:`step` per token): O(L·(T + n)·d) per token,
            memory O(L·(T + n)·d). ``False``: the cacheless loop, every token a forward
            over the context cropped to its last ``max_seq_len`` tokens (O((T + n)²·d) per
            token). ``None`` (default): the cache when ``T + n <= max_seq_len``, else the
            cropping loop (a cache cannot crop: the context of every token past
            ``max_seq_len`` is a new window). Both give the same tokens where both apply,
            up to float rounding of the logits (greedy: identical tokens but for
            near-exact ties).

        Raises
        ------
        ValueError
            For bad arguments (:func:`bkmodel.lm_base.check_generate_args`, ids), and with
            ``use_cache=True`` for ``T + max_new_tokens > max_seq_len`` (naming them).
        """
        lm_base.check_generate_args(max_new_tokens, temperature, top_k)
        lm_base.check_ids(input_ids, self.config.vocab_size, None)  # also when no token is drawn
        if use_cache not in (None, True, False):
            raise ValueError(f"use_cache must be None, True or False, got {use_cache!r}")
        B, T = input_ids.shape
        M = self.config.max_seq_len
        fits = T + max_new_tokens <= M
        if use_cache and not fits:
            raise ValueError(f"input_ids has length T={T}, + max_new_tokens={max_new_tokens} "
                             f"= {T + max_new_tokens} > max_seq_len={M} (config.max_seq_len):"
                             " the KV cache holds max_seq_len positions (use_cache=False "
                             "crops the context instead)")
        if max_new_tokens == 0:
            return input_ids
        was_training = self.training
        self.eval()
        try:
            if not (fits if use_cache is None else use_cache):
                ids = input_ids
                for _ in range(max_new_tokens):
                    logits, _ = self(ids[:, -M:])
                    nxt = lm_base.sample(logits[:, -1, :], temperature, top_k, generator)
                    ids = torch.cat([ids, nxt], dim=1)
                return ids
            out = input_ids.new_empty(B, T + max_new_tokens, dtype=torch.long)
            out[:, :T] = input_ids
            logits, cache = self.prefill(input_ids, T + max_new_tokens)
            for i in range(max_new_tokens):
                nxt = lm_base.sample(logits, temperature, top_k, generator)  # (B, 1)
                out[:, T + i] = nxt[:, 0]
                if i + 1 < max_new_tokens:  # the last token's logits are not needed
                    logits, cache = self.step(nxt[:, 0], cache)
            return out
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
