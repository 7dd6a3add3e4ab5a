"""Training presets: one flat :class:`TrainConfig` per named size.

=========  =====================================================================================
preset     intent
=========  =====================================================================================
``ci``     the tests: the one-play corpus, byte tokenizer, a 2-layer d=32 model
``tiny``   a CPU run: full corpus, BPE 1024, d=128, 2 layers, T=128
``small``  a short GPU run: BPE 4096, d=256, 4 layers, T=256
``medium`` a long GPU run: BPE 8192, d=512, 8 layers, T=512
=========  =====================================================================================

Measured run times and throughput of the presets: ``README.md`` and ``benchmarks/results/``.

The model shape fields (``d_model``, ``n_layers``) are shared by both architectures; the
Transformer's feed-forward width ``d_ff`` defaults to the value that matches the ResNet-BK
model's parameter count (:func:`bkmodel.baseline.matched_config`). ``model_options`` holds the
other :class:`bkmodel.config.ModelConfig` fields of the ResNet-BK model (overrides of their
defaults; :meth:`TrainConfig.bk_model_config` builds the nested config). Saved configurations
that call it ``bk_options`` (its former name) still load: :meth:`TrainConfig.from_dict`
renames the key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import InitVar, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bkmodel.config import ModelConfig

__all__ = ["PRESETS", "TrainConfig", "get_preset"]


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved with every checkpoint).

    Schedule: linear warm-up over ``warmup_steps`` to ``lr``, then cosine decay to
    ``min_lr_ratio · lr`` at ``max_steps``. ``batch_size`` is the *global* batch (rows per
    optimizer step, shared out across DDP ranks). Loss-spike rule: a step whose loss exceeds
    ``spike_factor`` × the median of the last ``spike_window`` accepted losses is not applied;
    training rolls back to the last good checkpoint and skips past the offending batch.
    ``cuda_graph``: replay each step's forward + backward from a CUDA graph (one CUDA GPU;
    see :mod:`bkmodel.cuda_graph`). ``parallel`` (under ``torchrun``): ``"ddp"`` replicates
    the model on every rank, ``"fsdp"`` shards parameters, gradients and AdamW moments with
    FSDP2 (:func:`bkmodel.distributed.shard_model`); checkpoints are full either way.

    Long-context switches (both off by default; docs/tutorials/long_context.md):
    ``reset_at_documents`` passes the model a ``reset`` mask built from the training stream's
    document boundaries (:func:`bkmodel.data.batch_resets`), so every BK chain restarts at a
    document's first token; ``tbptt`` (truncated backpropagation through time) makes each
    batch row read its own contiguous shard of the stream window after window
    (:func:`bkmodel.data.tbptt_starts`) and carries the model state, detached, from one step
    to the next. The Transformer baseline has no state: for it ``tbptt`` only changes the data
    order, and ``reset_at_documents`` masks its attention at document starts (a token sees
    only earlier tokens of its own document; ``TransformerBaseline.forward``'s ``reset``).
    Neither is supported by the CUDA-graph step (``cuda_graph=True`` with either is a
    ``ValueError``).

    ``model_options`` (ResNet-BK only): :class:`bkmodel.config.ModelConfig` fields, applied on
    top of the shared shape fields (``vocab_size``, ``d_model``, ``n_layers``, ``seq_len`` as
    ``n_seq``, ``dropout``), e.g. ``{"n_channels": 4, "guard": {"enabled": False}}``. The keys
    are checked against ModelConfig when the model is built (:meth:`bk_model_config`), so a
    field ModelConfig gains needs no change here. ``bk_options`` is its deprecated alias (a
    constructor keyword and an attribute, and a key that :meth:`from_dict` renames).
    """

    preset: str = "custom"
    model: str = "bk"  # "bk" | "transformer" | fla peers "gla" | "hgrn2" (bkmodel.peers)
    corpus: str = "shakespeare"  # "shakespeare" | "tiny"
    tokenizer: str = "bpe"  # "bpe" | "byte"
    vocab_size: int = 1024
    seq_len: int = 128
    batch_size: int = 16
    max_steps: int = 500
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int | None = None  # transformer only; None: match the BK parameter count
    dropout: float = 0.0
    model_options: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides (BK)
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    precision: str = "auto"  # "auto" | "fp32" | "bf16"
    device: str = "auto"
    cuda_graph: bool = False  # replay forward + backward from a CUDA graph (one GPU)
    parallel: str = "ddp"  # "ddp" | "fsdp" (FSDP2 fully_shard) under torchrun; no-op alone
    reset_at_documents: bool = False  # restart the BK chains at every document start
    tbptt: bool = False  # contiguous windows per row, state carried (detached) across steps
    seed: int = 1337
    log_every: int = 10
    eval_every: int = 100
    eval_tokens: int | None = 32768  # validation tokens per in-training evaluation
    ckpt_every: int = 100
    spike_factor: float = 2.0
    spike_window: int = 20
    max_rollbacks: int = 5
    max_consecutive_nonfinite: int = 3
    # deprecated alias of model_options: a constructor keyword, not a field (the attribute
    # cfg.bk_options is the property defined after the class)
    bk_options: InitVar[dict[str, Any] | None] = None

    def __post_init__(self, bk_options: dict[str, Any] | None = None) -> None:
        if bk_options is not None:
            if self.model_options and self.model_options != bk_options:
                raise ValueError("give model_options or its deprecated alias bk_options, "
                                 "not both")
            self.model_options = bk_options
        for name in ("preset", "device"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a str, got {type(getattr(self, name)).__name__}")
        choices = {
            "model": ("bk", "transformer", "gla", "hgrn2"),
            "corpus": ("shakespeare", "tiny"),
            "tokenizer": ("bpe", "byte"),
            "precision": ("auto", "fp32", "bf16"),
            "parallel": ("ddp", "fsdp"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        positive = ("vocab_size", "seq_len", "batch_size", "d_model", "n_layers", "n_heads",
                    "log_every", "eval_every", "ckpt_every", "spike_window",
                    "max_consecutive_nonfinite")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name in ("max_steps", "warmup_steps", "max_rollbacks", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        if self.d_ff is not None and (not isinstance(self.d_ff, int) or isinstance(self.d_ff, bool)
                                      or self.d_ff < 1):
            raise ValueError(f"d_ff must be a positive int or None, got {self.d_ff!r}")
        if self.eval_tokens is not None and (
                not isinstance(self.eval_tokens, int) or isinstance(self.eval_tokens, bool)
                or self.eval_tokens < self.seq_len):
            raise ValueError(f"eval_tokens must be an int >= seq_len or None, got "
                             f"{self.eval_tokens!r}")
        # the real-valued fields: real numbers (bools refused), finite (an inf lr or weight
        # decay would turn the weights into NaN), then each its own range
        for name in ("lr", "grad_clip", "spike_factor", "min_lr_ratio", "dropout",
                     "weight_decay", "beta1", "beta2"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
            if not math.isfinite(v):
                raise ValueError(f"{name} must be finite, got {v!r}")
        for name in ("lr", "grad_clip", "spike_factor"):
            v = getattr(self, name)
            if not v > 0:
                raise ValueError(f"{name} must be > 0, got {v!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.spike_factor <= 1.0:
            raise ValueError(f"spike_factor must be > 1, got {self.spike_factor}")
        for name in ("cuda_graph", "reset_at_documents", "tbptt"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got "
                                f"{type(getattr(self, name)).__name__}")
        for name in ("reset_at_documents", "tbptt"):
            if self.cuda_graph and getattr(self, name):
                raise ValueError(f"{name}=True is not supported with cuda_graph=True (the "
                                 "graphed step has no reset mask or carried state); set "
                                 f"cuda_graph=False or {name}=False")
        if not isinstance(self.model_options, dict):
            raise TypeError(f"model_options must be a dict, got "
                            f"{type(self.model_options).__name__}")

    def bk_model_config(self, vocab_size: int) -> ModelConfig:
        """The :class:`bkmodel.config.ModelConfig` of the ResNet-BK model of this run.

        The shared fields (``vocab_size``, ``d_model``, ``n_layers``, ``n_seq = seq_len``,
        ``dropout``), then ``model_options`` on top (they may override the shared ones).

        Raises
        ------
        ValueError
            If ``model_options`` names a field ModelConfig does not have (the message names
            it), or ModelConfig rejects a value.
        """
        from bkmodel.config import ModelConfig

        names = {f.name for f in dataclasses.fields(ModelConfig)}
        unknown = sorted(set(self.model_options) - names)
        if unknown:
            raise ValueError(f"model_options has fields ModelConfig does not know: {unknown}")
        return ModelConfig(**{"vocab_size": vocab_size, "d_model": self.d_model,
                              "n_layers": self.n_layers, "n_seq": self.seq_len,
                              "dropout": self.dropout, **self.model_options})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def migrate(d: dict[str, Any]) -> dict[str, Any]:
        """A copy of a saved configuration dict with deprecated keys renamed
        (``bk_options`` → ``model_options``); other keys are left as they are.

        >>> TrainConfig.migrate({"lr": 0.1, "bk_options": {"n_channels": 4}})
        {'lr': 0.1, 'model_options': {'n_channels': 4}}
        """
        d = dict(d)
        if "bk_options" in d:
            old = d.pop("bk_options")
            if d.get("model_options") and d["model_options"] != old:
                raise ValueError("give model_options or its deprecated alias bk_options, "
                                 "not both")
            d["model_options"] = old
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; deprecated keys are migrated (:meth:`migrate`),
        unknown keys are a ``ValueError`` naming them."""
        d = cls.migrate(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """The preset ``name`` with ``overrides`` applied (unknown field → ``ValueError``)."""
        return cls.from_dict({**get_preset(name), **cls.migrate(overrides)})


def _selective(n_channels: int) -> dict[str, Any]:
    """The ResNet-BK model of the CPU/GPU presets: the selective layer with ``n_channels``
    chains (d_model / 2), a wide MLP (ffn_mult 14) and no convolution — the best row of the
    H200 ablation (README, "Language model"; ``benchmarks/lm_suites.py``). The ``ci`` preset
    keeps the classic layer (:class:`bkmodel.config.ModelConfig`'s defaults)."""
    return dict(layer="selective", n_channels=n_channels, ffn="mlp", ffn_mult=14,
                conv_size=0)


PRESETS: dict[str, dict[str, Any]] = {
    "ci": dict(
        preset="ci", corpus="tiny", tokenizer="byte", seq_len=32, batch_size=8, max_steps=30,
        d_model=32, n_layers=2, n_heads=2, lr=3e-3, warmup_steps=5, log_every=1,
        eval_every=10, eval_tokens=1024, ckpt_every=10, spike_window=8,
    ),
    "tiny": dict(
        preset="tiny", corpus="shakespeare", tokenizer="bpe", vocab_size=1024, seq_len=128,
        batch_size=16, max_steps=400, d_model=128, n_layers=2, n_heads=4, lr=3e-3,
        warmup_steps=40, log_every=10, eval_every=100, eval_tokens=32768, ckpt_every=100,
        model_options=_selective(64),
    ),
    "small": dict(
        preset="small", corpus="shakespeare", tokenizer="bpe", vocab_size=4096, seq_len=256,
        batch_size=32, max_steps=3000, d_model=256, n_layers=4, n_heads=4, lr=2e-3,
        warmup_steps=200, dropout=0.1, log_every=20, eval_every=250, eval_tokens=131072,
        ckpt_every=250,
        model_options=_selective(128),
    ),
    "medium": dict(
        preset="medium", corpus="shakespeare", tokenizer="bpe", vocab_size=8192, seq_len=512,
        batch_size=64, max_steps=10000, d_model=512, n_layers=8, n_heads=8, lr=1e-3,
        warmup_steps=500, dropout=0.1, log_every=50, eval_every=500, eval_tokens=262144,
        ckpt_every=500,
        model_options=_selective(256),
    ),
}


def get_preset(name: str) -> dict[str, Any]:
    """A copy of the preset's fields (``ValueError`` for an unknown name)."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    d = dict(PRESETS[name])
    d["model_options"] = dict(d.get("model_options", {}))
    return d


def _get_bk_options(self: TrainConfig) -> dict[str, Any]:
    return self.model_options


def _set_bk_options(self: TrainConfig, value: dict[str, Any]) -> None:
    self.model_options = value


# The deprecated attribute ``cfg.bk_options`` is ``cfg.model_options`` (the same dict). Set
# after the dataclass is made: in the class body the property would become the default of
# the ``bk_options`` constructor keyword.
TrainConfig.bk_options = property(  # type: ignore[assignment]
    _get_bk_options, _set_bk_options, doc="Deprecated alias of :attr:`model_options`.")
