"""Hugging Face ``transformers`` adapter: ``AutoModelForCausalLM`` and ``generate`` for ResNet-BK.

Optional: ``pip install resnet-bk[hf]``; nothing else in :mod:`bkmodel` imports this module.
Importing it registers the pair with the Auto classes (no ``trust_remote_code``, no hub)::

    import bkmodel.hf  # noqa: F401  (registers "resnet-bk")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained("export_dir")
    tok = AutoTokenizer.from_pretrained("export_dir")
    out = model.generate(**tok("To be", return_tensors="pt"), max_new_tokens=20)

Design
------
* **One checkpoint format.** The directory is the project's own ``save_pretrained`` format
  (:mod:`bkmodel.lm_base`: ``model.safetensors`` + ``config.json`` with ``model_type:
  "resnet-bk"``, the SHA-256 of the weights and the nested :class:`~bkmodel.config.ModelConfig`).
  Its ``model_type`` is what :class:`~transformers.AutoConfig` dispatches on, so
  :class:`ResNetBKConfig` reads that file as it is (the nested config becomes ``bk_config``)
  and :meth:`ResNetBKForCausalLM.from_pretrained` loads the weights through the project's
  checksummed loader; :meth:`~ResNetBKForCausalLM.save_pretrained` writes the same format. A
  training run's ``model/`` folder is therefore already loadable; ``bk export-hf RUN OUT``
  (:func:`export_hf`) writes it from the run's ``checkpoint.pt`` together with the tokenizer
  as a :class:`~transformers.PreTrainedTokenizerFast` (``tokenizer.json``,
  ``tokenizer_config.json``) and a ``generation_config.json``.
* **Recurrent cache.** :class:`BKRecurrentCache` holds the O(1) decoding state of every layer,
  exactly the objects of :meth:`LanguageModel._prefill` / ``_decode_step``: ``g`` (B, C)
  complex128 for the classic layer, ``{"g", "conv"}`` for the selective one, ``{"g", "S",
  "conv"}`` for the green one (``S`` (B, H, dk, dv): Green's-function attention). The first
  forward of ``generate`` runs the prompt through the parallel scan (``_prefill``); every
  next token is one recurrence step per layer. Beam search reorders the state rows
  (:meth:`BKRecurrentCache.reorder_cache`).
* Greedy ``generate`` reproduces :meth:`LanguageModel.generate` (``temperature=0``) token
  for token: same prefill, same decode steps, same argmax in float32.

Padding is not supported: the BK state has no mask, so an ``attention_mask`` with zeros
raises (batch prompts of equal length, or generate one prompt at a time).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

try:
    import transformers
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        GenerationConfig,
        GenerationMixin,
        PretrainedConfig,
        PreTrainedModel,
    )
    from transformers.utils import ModelOutput
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("bkmodel.hf needs transformers: pip install 'resnet-bk[hf]'") from exc

from bkmodel import lm_base
from bkmodel.config import ModelConfig
from bkmodel.model import LanguageModel

__all__ = ["BKRecurrentCache", "ResNetBKConfig", "ResNetBKForCausalLM", "export_hf",
           "timed_generate", "tokenizer_to_hf"]

MODEL_TYPE = "resnet-bk"
# the generate() keyword of the cache: "cache" from transformers 5, "past_key_values" before
_CACHE_NAMES = ("cache", "past_key_values", "cache_params")
_PROJECT_KEYS = ("class", "format_version", "weights_sha256")


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------
class ResNetBKConfig(PretrainedConfig):
    """A :class:`~bkmodel.config.ModelConfig` seen by ``transformers``.

    ``config`` is the nested ModelConfig dict of the project's ``config.json`` (validated by
    ``ModelConfig.from_dict``); the other project keys (``class``, ``format_version``,
    ``weights_sha256``) are dropped. ``vocab_size``, ``hidden_size`` and
    ``num_hidden_layers`` mirror it for tools that read them.
    """

    model_type = MODEL_TYPE

    def __init__(self, config: dict | None = None, **kwargs: Any) -> None:
        for k in _PROJECT_KEYS:
            kwargs.pop(k, None)
        bk = kwargs.pop("bk_config", None) or config or {}
        mc = ModelConfig.from_dict(bk) if not isinstance(bk, ModelConfig) else bk
        self.bk_config = mc.to_dict()
        self.vocab_size = mc.vocab_size
        self.hidden_size = mc.d_model
        self.num_hidden_layers = mc.n_layers
        kwargs.setdefault("tie_word_embeddings", False)  # tying is LanguageModel's business
        super().__init__(**kwargs)

    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.bk_config)


# --------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------
class BKRecurrentCache:
    """The O(1) decoding state of a ResNet-BK model: one entry per layer.

    ``states[str(i)]`` is layer i's state as :meth:`LanguageModel._decode_step` takes it:
    ``g`` (B, C) complex128 (classic layer) or ``{"g": (B, S) complex128, "conv": (B, n_in,
    k-1) or None}`` (selective layer; the green layer adds ``"S"`` (B, H, dk, dv)).
    ``seen_tokens`` counts the tokens folded in. The
    ``signature`` (architecture fields of the model) lets a model refuse a state that another
    model produced.
    """

    is_compileable = False
    is_croppable = False

    def __init__(self, states: dict[str, Any], seen_tokens: int, signature: tuple) -> None:
        self.states = states
        self.seen_tokens = int(seen_tokens)
        self.signature = signature

    @property
    def is_linear(self) -> list[bool]:  # transformers 5 asks: no attention layers
        return [True] * len(self.states)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def __len__(self) -> int:
        return len(self.states)

    def _map(self, fn) -> None:
        for k, s in self.states.items():
            if isinstance(s, dict):
                self.states[k] = {n: (None if t is None else fn(t)) for n, t in s.items()}
            else:
                self.states[k] = fn(s)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> BKRecurrentCache:
        """Keep the batch rows ``beam_idx`` (beam search), in place; returns self."""
        self._map(lambda t: t.index_select(0, beam_idx.to(t.device)))
        return self

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._map(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._map(lambda t: t[indices])


@dataclass
class ResNetBKCausalLMOutput(ModelOutput):
    """``loss``, ``logits`` (B, T, V) and the recurrent ``cache`` (handed to the next step by
    :meth:`ResNetBKForCausalLM._update_model_kwargs_for_generation`, whatever the keyword
    name of the installed ``transformers``)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cache: BKRecurrentCache | None = None


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------
class ResNetBKForCausalLM(PreTrainedModel, GenerationMixin):
    """:class:`~bkmodel.model.LanguageModel` behind the ``transformers`` causal-LM interface.

    ``self.model`` is the project's model (its state-dict names unchanged). ``forward``
    follows the HF convention: ``labels`` are shifted inside (``labels = input_ids``), the
    loss is the project's (mean CE over the next tokens + ``aux_loss_weight`` × MoE loss).
    """

    config_class = ResNetBKConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _is_stateful = True
    _supports_cache_class = False

    def __init__(self, config: ResNetBKConfig) -> None:
        super().__init__(config)
        self.model = LanguageModel(config.model_config())
        self.post_init()

    def _init_weights(self, module) -> None:  # LanguageModel initialises itself
        pass

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:  # the cache is ours, made in forward
        return False

    def get_input_embeddings(self):
        return self.model.wte

    def get_output_embeddings(self):
        return self.model.lm_head

    # -- cache helpers ---------------------------------------------------------------------
    def _signature(self) -> tuple:
        c = self.model.config
        return (c.layer, c.n_layers, c.n_channels, c.n_energies, c.conv_size, c.d_model)

    def _check_cache(self, cache: Any, batch: int) -> None:
        if not isinstance(cache, BKRecurrentCache):
            raise TypeError(f"cache must be a BKRecurrentCache, got {type(cache).__name__}")
        if cache.signature != self._signature():
            raise ValueError(f"cache is the state of another model (architecture "
                             f"{cache.signature}, this model {self._signature()})")
        g = next(iter(cache.states.values()), None)
        g = g["g"] if isinstance(g, dict) else g
        if g is not None and g.shape[0] != batch:
            raise ValueError(f"cache holds batch {g.shape[0]}, input_ids has batch {batch}")

    # -- forward ---------------------------------------------------------------------------
    def forward(self, input_ids: torch.LongTensor | None = None,
                attention_mask: torch.Tensor | None = None,
                labels: torch.LongTensor | None = None, use_cache: bool | None = None,
                return_dict: bool | None = None, logits_to_keep: int = 0,
                **kwargs: Any) -> ResNetBKCausalLMOutput:
        """Logits (B, T, V) (the last ``logits_to_keep`` positions when > 0) and, with
        ``use_cache``, the :class:`BKRecurrentCache` after the last token. With a non-empty
        ``cache`` (keyword ``cache`` or ``past_key_values``) ``input_ids`` are the *new*
        tokens, run one recurrence step each."""
        if input_ids is None:
            raise ValueError("input_ids is required (inputs_embeds is not supported)")
        if attention_mask is not None and not bool((attention_mask != 0).all()):
            raise ValueError("attention_mask with padding is not supported: the BK state has "
                             "no mask (use prompts of equal length)")
        cache = next((kwargs[k] for k in _CACHE_NAMES if kwargs.get(k) is not None), None)
        m = self.model
        use_cache = (not self.training) if use_cache is None else use_cache
        loss = None
        if cache is not None and cache.seen_tokens > 0:
            self._check_cache(cache, input_ids.shape[0])
            lm_base.check_ids(input_ids, m.config.vocab_size)
            logits = torch.stack([m._decode_step(input_ids[:, t].long(), cache.states)
                                  for t in range(input_ids.shape[1])], dim=1)  # (B, T, V)
            cache.seen_tokens += input_ids.shape[1]
        elif use_cache and labels is None and logits_to_keep == 1:
            states = m._prefill(input_ids)  # the project's own prefill (LanguageModel.generate)
            logits = states.pop("logits")[:, None]  # (B, 1, V)
            cache = BKRecurrentCache(states, input_ids.shape[1], self._signature())
        elif use_cache:
            m._check_ids(input_ids)
            m.guard.begin_forward()
            x = m.wte(input_ids.long())
            states: dict[str, Any] = {}
            for i, block in enumerate(m.blocks):
                x, states[str(i)] = block(x, [], return_state=True)
            logits = m.lm_head(m.ln_f(x))  # (B, T, V)
            cache = BKRecurrentCache(states, input_ids.shape[1], self._signature())
        else:
            cache = None
            targets = None
            if labels is not None:  # HF convention: labels are shifted here
                targets = F.pad(labels[:, 1:], (0, 1), value=-100)
            logits, loss = m(input_ids, targets)
        if loss is None and labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                   labels[:, 1:].reshape(-1).long(), ignore_index=-100)
        if logits_to_keep > 0:
            logits = logits[:, -logits_to_keep:]
        return ResNetBKCausalLMOutput(loss=loss, logits=logits, cache=cache)

    # -- generation hooks ------------------------------------------------------------------
    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, attention_mask=None,
                                      use_cache: bool | None = True, **kwargs: Any
                                      ) -> dict[str, Any]:
        cache = next((kwargs[k] for k in _CACHE_NAMES if kwargs.get(k) is not None), None)
        if cache is not None and cache.seen_tokens > 0:
            input_ids = input_ids[:, cache.seen_tokens:]  # only the tokens not yet folded in
        return {"input_ids": input_ids.contiguous(), "cache": cache, "use_cache": use_cache,
                "attention_mask": attention_mask, "logits_to_keep": 1}

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, *args, **kwargs):
        model_kwargs = super()._update_model_kwargs_for_generation(outputs, model_kwargs,
                                                                   *args, **kwargs)
        for k in ("cache", "past_key_values"):
            model_kwargs.pop(k, None)
        model_kwargs[self._cache_key()] = outputs.cache
        return model_kwargs

    @staticmethod
    def _cache_key() -> str:
        from transformers.generation import utils as gu

        return "cache" if "cache" in getattr(gu, "ALL_CACHE_NAMES", ()) else "past_key_values"

    def _reorder_cache(self, cache: BKRecurrentCache, beam_idx: torch.LongTensor
                       ) -> BKRecurrentCache:
        return cache.reorder_cache(beam_idx)

    # -- checkpoints -----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any,
                        **kwargs: Any) -> ResNetBKForCausalLM:
        """Load a directory in the project's format (``LanguageModel.save_pretrained``, a run's
        ``model/``, or ``bk export-hf``); weights verified against their SHA-256.

        Accepts ``dtype``/``torch_dtype`` and ``device_map`` (a single device); other loading
        options of ``transformers`` do not apply (no hub: the path must be local).
        """
        path = Path(pretrained_model_name_or_path)
        if not path.is_dir():
            raise FileNotFoundError(f"not a local checkpoint directory: {path} (the "
                                    "resnet-bk adapter does not download from the hub)")
        meta = _read_meta(path)
        config = kwargs.pop("config", None)
        if not isinstance(config, ResNetBKConfig):
            config = ResNetBKConfig(**meta)
        inner = LanguageModel.from_pretrained(path)
        model = cls(config)
        model.model = inner
        gen = path / "generation_config.json"
        if gen.is_file():
            model.generation_config = GenerationConfig.from_pretrained(path)
        dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
        if isinstance(dtype, torch.dtype):
            model.to(dtype)
        device = kwargs.get("device_map")
        if isinstance(device, (str, torch.device)) and device != "auto":
            model.to(device)
        return model.eval()

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Write the project's format (``model.safetensors``, ``config.json``) and
        ``generation_config.json``; ``transformers``' own options are ignored."""
        out = Path(save_directory)
        self.model.save_pretrained(out)
        self.generation_config.save_pretrained(out)


def _read_meta(path: Path) -> dict[str, Any]:
    cfg = path / lm_base.CONFIG_NAME
    if not cfg.is_file():
        raise FileNotFoundError(f"checkpoint file missing: {cfg}")
    meta = json.loads(cfg.read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or meta.get("model_type") != MODEL_TYPE:
        found = meta.get("model_type") if isinstance(meta, dict) else None
        raise ValueError(f"{cfg}: unknown architecture {found!r} for the Hugging Face adapter "
                         f"(expected {MODEL_TYPE!r}; the Transformer baseline and training "
                         "configs are not supported: run `bk export-hf RUN OUT`)")
    return meta


AutoConfig.register(MODEL_TYPE, ResNetBKConfig, exist_ok=True)
AutoModelForCausalLM.register(ResNetBKConfig, ResNetBKForCausalLM, exist_ok=True)


# --------------------------------------------------------------------------------------------
# generation speed
# --------------------------------------------------------------------------------------------
def timed_generate(model: ResNetBKForCausalLM, input_ids: torch.Tensor, **kwargs: Any):
    """``model.generate(input_ids, **kwargs)`` through ``transformers``, and its speed.

    The call is unchanged (the recurrent cache, logits processors, streamers, ...); a forward
    hook on ``model`` stamps ``time.perf_counter`` after every step (CUDA synchronised), as
    :func:`bkmodel.generation.timed_generate` does for the project's ``generate``: the first
    step (the prompt through ``_prefill``) is the prefill, the rest (one recurrence step per
    token, sampling and ``transformers``' per-token bookkeeping included) is decode.

    Parameters
    ----------
    model : ResNetBKForCausalLM
        The adapted model.
    input_ids : torch.Tensor
        (B, T) prompt ids on the model's device.
    **kwargs
        Passed to ``model.generate`` (``max_new_tokens``, ``do_sample``, ``attention_mask``,
        ``streamer``, ...).

    Returns
    -------
    output, bkmodel.generation.GenerationStats
        What ``generate`` returned (ids, or a ``GenerateOutput`` with
        ``return_dict_in_generate``) and the measurement; ``new_tokens`` counts the tokens
        actually generated per row (fewer when every row stopped at ``eos_token_id``).
    """
    from bkmodel.generation import measure_generate

    if not isinstance(model, ResNetBKForCausalLM):
        raise TypeError(f"model must be a ResNetBKForCausalLM, got {type(model).__name__}")
    with torch.no_grad():
        return measure_generate(
            lambda: model.generate(input_ids, **kwargs), model, input_ids,
            architecture="resnet-bk (transformers)",
            sequences=lambda out: out if isinstance(out, torch.Tensor) else out.sequences)


# --------------------------------------------------------------------------------------------
# tokenizer and export
# --------------------------------------------------------------------------------------------
def tokenizer_to_hf(tok):
    """The project's BPE tokenizer as a :class:`~transformers.PreTrainedTokenizerFast`
    (``<|endoftext|>`` as its eos and bos token). The byte fallback has no ``tokenizers``
    form and is refused."""
    from transformers import PreTrainedTokenizerFast

    from bkmodel.tokenizer import EOT

    if getattr(tok, "kind", None) != "bpe":
        raise ValueError(f"only the BPE tokenizer can be exported as PreTrainedTokenizerFast, "
                         f"got kind {getattr(tok, 'kind', type(tok).__name__)!r}")
    from tokenizers import Tokenizer as HFTokenizer

    return PreTrainedTokenizerFast(tokenizer_object=HFTokenizer.from_str(tok.payload()),
                                   eos_token=EOT, bos_token=EOT)


def export_hf(run: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write ``out`` (model, ``generation_config.json`` and tokenizer files) from a run
    directory or checkpoint file, loadable by ``AutoModelForCausalLM`` / ``AutoTokenizer``.

    Raises ``ValueError`` for a run that is not a ResNet-BK model (the Transformer baseline
    has no adapter) and the checkpoint loader's errors for a missing or corrupt run.
    """
    from bkmodel.checkpoint import load_run

    model, tok, _ = load_run(run)
    if not isinstance(model, LanguageModel):
        raise ValueError(f"{run}: unknown architecture {type(model).__name__} for the Hugging "
                         "Face adapter (only ResNet-BK LanguageModel runs are exported)")
    out = Path(out)
    hf = ResNetBKForCausalLM(ResNetBKConfig(config=model.config.to_dict(),
                                            eos_token_id=getattr(tok, "eot_id", None)))
    hf.model = model
    hf.save_pretrained(out)
    if getattr(tok, "kind", None) == "bpe":
        tokenizer_to_hf(tok).save_pretrained(out)
    return out


def configure_parser(p) -> None:
    p.add_argument("run", help="run directory (or checkpoint.pt) of a ResNet-BK model")
    p.add_argument("out", help="output directory for AutoModelForCausalLM.from_pretrained")


def run(args) -> int:
    out = export_hf(args.run, args.out)
    print(f"wrote {out} (transformers {transformers.__version__})")
    return 0
