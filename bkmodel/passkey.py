"""Passkey retrieval: a synthetic long-context task, its evaluator and a short fine-tune.

The task (Mohtashami & Jaggi, 2023, "Landmark attention"): a random 5-digit key is hidden at
depth ``d`` (the fraction of the filler before it) in filler text of the corpus, and asked for
at the end::

    <filler[:d]> The pass key is 48213. Remember it. 48213 is the pass key. <filler[d:]>
    What is the pass key? The pass key is            -> " 48213"

The filler is a contiguous slice of a token stream of the corpus (:func:`filler_stream`: the
held-out plays for evaluation, the training plays for fine-tuning), so the prompt is natural
text and the needle is the only out-of-distribution sentence. Every piece is tokenised with
the run's tokenizer separately and the ids concatenated (no merge across a boundary; the
same for both architectures). A sample's ``length`` is its prompt in tokens.

Scores (:func:`score_sample`, :func:`evaluate_passkey`), for any
:class:`~bkmodel.model.LanguageModel` or :class:`~bkmodel.baseline.TransformerBaseline`:

* **exact match**: greedy decoding of as many tokens as the answer has; the decoded text must
  start (after spaces) with the key's five digits;
* **likelihood rank**: the answer's log-likelihood ``sum_j log p(a_j | prompt, a_<j)`` for the
  true key and ``n_candidates - 1`` distinct random keys; rank 1 = the true key is the most
  likely (chance level ``1 / n_candidates``; the mean rank of chance is ``(n_candidates + 1)
  / 2``).

Context: ResNet-BK reads the prompt in chunks of ``n_seq`` with its state carried (any
length, exact). The Transformer (RoPE, no position table) reads the whole prompt directly,
beyond its training length when the prompt is longer (``max_context=None``), or only its last
``max_context`` tokens (a window of its training length: a key deeper than the window is
invisible to it).

Fine-tuning (:func:`finetune_passkey`): a short loop with the project's optimiser
(:func:`bkmodel.optim.build_optimizer`, the warm-up + cosine schedule of
:func:`bkmodel.optim.lr_at`, gradient clipping at ``grad_clip``) on batches that mix passkey
samples (loss on the answer tokens only) and language-model windows of the training stream
(loss on every token), at one sequence length; ResNet-BK backpropagates through the whole
sequence (chunks of ``n_seq``, the state carried with its gradient). It is a separate loop
because ``bk train``'s loop is built around one token stream and one window length.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bkmodel.data import load_split
from bkmodel.model import LanguageModel
from bkmodel.optim import build_optimizer, lr_at
from bkmodel.presets import TrainConfig
from bkmodel.tokenizer import Tokenizer, encode_documents

__all__ = ["ANSWER", "NEEDLE", "QUESTION", "PasskeySample", "continuation_logprobs",
           "evaluate_passkey", "filler_stream", "finetune_passkey", "greedy_continuation",
           "make_sample", "make_samples", "score_sample"]

NEEDLE = " The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = " What is the pass key? The pass key is"
ANSWER = " {key}"
_KEY = re.compile(r"\s*(\d{5})")


@dataclass(frozen=True)
class PasskeySample:
    """One passkey prompt.

    Attributes
    ----------
    prompt : numpy.ndarray
        int64 token ids of filler, needle, filler and question (``length`` tokens).
    answer : numpy.ndarray
        int64 ids of ``" <key>"``.
    key : str
        The five digits.
    depth : float
        Fraction of the filler placed before the needle (0 = the needle comes first).
    """

    prompt: np.ndarray
    answer: np.ndarray
    key: str
    depth: float

    @property
    def length(self) -> int:
        return len(self.prompt)


def filler_stream(tok: Tokenizer, split: str = "validation", corpus: str = "shakespeare"
                  ) -> np.ndarray:  # fmt: skip
    """The split's documents tokenised and concatenated without their end-of-text tokens
    (int64): the filler that passkey prompts are cut from."""
    ids = encode_documents(tok, load_split(split, corpus))
    return np.asarray(ids[ids != tok.eot_id], dtype=np.int64)


def _ids(tok: Tokenizer, text: str) -> np.ndarray:
    return np.asarray(tok.encode(text), dtype=np.int64)


def make_sample(tok: Tokenizer, filler: np.ndarray, length: int, depth: float,
                rng: np.random.Generator, key: str | None = None) -> PasskeySample:  # fmt: skip
    """A passkey prompt of exactly ``length`` tokens with the needle at ``depth``.

    Raises
    ------
    ValueError
        If ``depth`` is not in [0, 1], ``length`` cannot hold needle and question, or the
        filler stream is shorter than the filler needed (the message names the argument).
    """
    if not isinstance(depth, (int, float)) or isinstance(depth, bool) or not 0 <= depth <= 1:
        raise ValueError(f"depth must be a number in [0, 1], got {depth!r}")
    key = f"{int(rng.integers(10_000, 100_000))}" if key is None else key
    if not re.fullmatch(r"\d{5}", key):
        raise ValueError(f"key must be five digits, got {key!r}")
    needle, question = _ids(tok, NEEDLE.format(key=key)), _ids(tok, QUESTION)
    n_fill = length - len(needle) - len(question) if isinstance(length, int) else -1
    if isinstance(length, bool) or n_fill < 0:
        raise ValueError(f"length must be an int >= {len(needle) + len(question)} (needle and "
                         f"question), got {length!r}")
    if len(filler) < n_fill:
        raise ValueError(f"the filler stream ({len(filler)} tokens) is shorter than the "
                         f"{n_fill} filler tokens of length={length}")
    start = int(rng.integers(0, len(filler) - n_fill + 1))
    fill = filler[start: start + n_fill]
    cut = int(round(depth * n_fill))
    prompt = np.concatenate([fill[:cut], needle, fill[cut:], question]).astype(np.int64)
    return PasskeySample(prompt, _ids(tok, ANSWER.format(key=key)), key, float(depth))


def make_samples(tok: Tokenizer, filler: np.ndarray, length: int, depth: float, n: int,
                 seed: int = 0) -> list[PasskeySample]:  # fmt: skip
    """``n`` samples of one (length, depth) cell; the same for every model given ``seed``."""
    rng = np.random.default_rng([seed, length, int(round(depth * 1000))])
    return [make_sample(tok, filler, length, depth, rng) for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------


def _wide(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 at least (bf16 logits widened; float64 kept)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def _prefill(model: LanguageModel, ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """ResNet-BK: last-position logits (B, V) and the state after ``ids`` (chunks of n_seq)."""
    n, state, logits = model.config.n_seq, None, None
    for s in range(0, ids.shape[1], n):
        logits, _, state = model(ids[:, s: s + n], state=state, return_state=True)
    assert logits is not None
    return logits[:, -1], state


def _context(prompt: np.ndarray, extra: np.ndarray, max_context: int | None) -> np.ndarray:
    ids = np.concatenate([prompt, extra]).astype(np.int64)
    return ids if max_context is None else ids[-max_context:]


@torch.no_grad()
def continuation_logprobs(model: nn.Module, prompt: np.ndarray,
                          continuations: Sequence[np.ndarray], *,
                          max_context: int | None = None, device: torch.device | str = "cpu",
                          autocast_dtype: torch.dtype | None = None) -> list[float]:  # fmt: skip
    """``sum_j log p(c_j | prompt, c_<j)`` (nats) of every continuation ``c``.

    ResNet-BK prefills the prompt once (chunks of ``n_seq``, state carried) and scores every
    continuation from that state; any other model runs ``prompt + c[:-1]`` (its last
    ``max_context`` tokens when given) once per continuation.
    """
    device = torch.device(device)
    out: list[float] = []
    with _autocast(device, autocast_dtype):
        if isinstance(model, LanguageModel):
            last, state = _prefill(model, torch.as_tensor(prompt, device=device)[None])
            lp0 = F.log_softmax(_wide(last), -1)[0]
            for c in continuations:
                total = float(lp0[int(c[0])])
                if len(c) > 1:
                    x = torch.as_tensor(c[:-1], device=device)[None]
                    logits, _, _ = model(x, state=state, return_state=True)
                    lp = F.log_softmax(_wide(logits)[0], -1)
                    total += float(lp[torch.arange(len(c) - 1), torch.as_tensor(c[1:])].sum())
                out.append(total)
            return out
        for c in continuations:
            ids = _context(prompt, c[:-1], max_context)
            logits, _ = model(torch.as_tensor(ids, device=device)[None])
            lp = F.log_softmax(_wide(logits)[0, -len(c):], -1)
            out.append(float(lp[torch.arange(len(c)), torch.as_tensor(c)].sum()))
    return out


@torch.no_grad()
def greedy_continuation(model: nn.Module, prompt: np.ndarray, n_tokens: int, *,
                        max_context: int | None = None, device: torch.device | str = "cpu",
                        autocast_dtype: torch.dtype | None = None) -> np.ndarray:  # fmt: skip
    """``n_tokens`` greedy tokens after ``prompt`` (ResNet-BK: state carried; others: the
    whole context, or its last ``max_context`` tokens, re-run per token)."""
    device = torch.device(device)
    out: list[int] = []
    with _autocast(device, autocast_dtype):
        if isinstance(model, LanguageModel):
            last, state = _prefill(model, torch.as_tensor(prompt, device=device)[None])
            for _ in range(n_tokens):
                nxt = int(last.float().argmax(-1))
                out.append(nxt)
                logits, _, state = model(torch.tensor([[nxt]], device=device), state=state,
                                         return_state=True)
                last = logits[:, -1]
            return np.asarray(out, dtype=np.int64)
        for _ in range(n_tokens):
            ids = _context(prompt, np.asarray(out, dtype=np.int64), max_context)
            logits, _ = model(torch.as_tensor(ids, device=device)[None])
            out.append(int(logits[0, -1].float().argmax()))
    return np.asarray(out, dtype=np.int64)


def score_sample(model: nn.Module, tok: Tokenizer, sample: PasskeySample, *,
                 n_candidates: int = 10, seed: int = 0, max_context: int | None = None,
                 device: torch.device | str = "cpu",
                 autocast_dtype: torch.dtype | None = None) -> dict[str, Any]:  # fmt: skip
    """Exact match of the greedy answer and the likelihood rank of the true key.

    Returns ``{"key", "generated", "exact", "rank", "logprob"}``; the ``n_candidates - 1``
    distractor keys are drawn from ``seed`` and the key (the same for every model).
    """
    if not isinstance(n_candidates, int) or isinstance(n_candidates, bool) or n_candidates < 2:
        raise ValueError(f"n_candidates must be an int >= 2, got {n_candidates!r}")
    kw = dict(max_context=max_context, device=device, autocast_dtype=autocast_dtype)
    gen = greedy_continuation(model, sample.prompt, len(sample.answer), **kw)
    text = tok.decode(gen.tolist())
    m = _KEY.match(text)
    rng = np.random.default_rng([seed, int(sample.key)])
    keys = [sample.key]
    while len(keys) < n_candidates:
        k = f"{int(rng.integers(10_000, 100_000))}"
        if k not in keys:
            keys.append(k)
    conts = [_ids(tok, ANSWER.format(key=k)) for k in keys]
    lps = continuation_logprobs(model, sample.prompt, conts, **kw)
    rank = 1 + sum(lp > lps[0] for lp in lps[1:])
    return {"key": sample.key, "generated": text, "exact": bool(m and m.group(1) == sample.key),
            "rank": int(rank), "logprob": lps[0]}


def evaluate_passkey(model: nn.Module, tok: Tokenizer, filler: np.ndarray,
                     lengths: Sequence[int], depths: Sequence[float], *, n_samples: int = 20,
                     n_candidates: int = 10, seed: int = 0, max_context: int | None = None,
                     device: torch.device | str = "cpu",
                     autocast_dtype: torch.dtype | None = None,
                     progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The accuracy grid: one row per (length, depth) with ``n`` samples, ``exact_match``
    (fraction), ``rank1`` (fraction of rank 1), ``mean_rank`` and ``chance_rank1``.
    The samples depend on ``seed``, the length and the depth only (the same for every
    model)."""
    model.eval()
    rows = []
    for length in lengths:
        for depth in depths:
            res = [score_sample(model, tok, s, n_candidates=n_candidates, seed=seed,
                                max_context=max_context, device=device,
                                autocast_dtype=autocast_dtype)
                   for s in make_samples(tok, filler, length, depth, n_samples, seed)]
            row = {"length": int(length), "depth": float(depth), "n": len(res),
                   "exact_match": sum(r["exact"] for r in res) / len(res),
                   "rank1": sum(r["rank"] == 1 for r in res) / len(res),
                   "mean_rank": sum(r["rank"] for r in res) / len(res),
                   "chance_rank1": 1 / n_candidates,
                   "examples": [r["generated"] for r in res[:3]]}
            rows.append(row)
            if progress is not None:
                progress(f"length {length:>6} depth {depth:.2f}: exact {row['exact_match']:.2f}"
                         f" rank1 {row['rank1']:.2f} mean rank {row['mean_rank']:.2f}")
    return rows


# ---------------------------------------------------------------------------------------------
# fine-tuning
# ---------------------------------------------------------------------------------------------


def _long_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the targets that are not -100, for a sequence of any length:
    ResNet-BK in chunks of ``n_seq`` with the state carried (and its gradient), any other
    model in one forward."""
    if not isinstance(model, LanguageModel):
        logits, _ = model(x)
    else:
        n, state, parts = model.config.n_seq, None, []
        for s in range(0, x.shape[1], n):
            lg, _, state = model(x[:, s: s + n], state=state, return_state=True)
            parts.append(lg)
        logits = torch.cat(parts, dim=1)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                           ignore_index=-100)


def _passkey_batch(samples: list[PasskeySample], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Inputs ``prompt + answer[:-1]`` and targets (-100 but on the answer), right-padded."""
    seqs = [np.concatenate([s.prompt, s.answer]) for s in samples]
    T = max(len(q) for q in seqs) - 1
    x = np.full((len(seqs), T), pad_id, dtype=np.int64)
    y = np.full((len(seqs), T), -100, dtype=np.int64)
    for i, (q, s) in enumerate(zip(seqs, samples, strict=True)):
        x[i, : len(q) - 1] = q[:-1]
        a = len(s.answer)
        y[i, len(q) - 1 - a: len(q) - 1] = s.answer
    return torch.from_numpy(x), torch.from_numpy(y)


def finetune_passkey(model: nn.Module, tok: Tokenizer, lm_tokens: np.ndarray,
                     filler: np.ndarray, cfg: TrainConfig, *, length: int, steps: int,
                     batch_size: int = 4, passkey_fraction: float = 0.5, seed: int = 0,
                     device: torch.device | str = "cpu",
                     autocast_dtype: torch.dtype | None = None,
                     log: Callable[[str], None] | None = None) -> list[dict[str, float]]:
    """Fine-tune ``model`` in place on passkey samples mixed with language-model windows.

    Every step: ``round(batch_size * passkey_fraction)`` passkey prompts of ``length`` tokens
    (random key, depth uniform in [0, 1], filler from ``filler``; loss on the answer only)
    and the other rows windows of ``length + 1`` tokens of ``lm_tokens`` (loss on every
    token); the step's loss is the mean of the two groups' mean losses. AdamW with ``cfg``'s
    decay and betas (:func:`bkmodel.optim.build_optimizer`), ``cfg.lr`` warmed up over
    ``steps // 10`` steps and decayed by cosine to ``min_lr_ratio · lr``
    (:func:`bkmodel.optim.lr_at`), gradients clipped at ``cfg.grad_clip``. Returns one
    ``{"step", "loss", "passkey_loss", "lm_loss"}`` per step.
    """
    for name, v in (("steps", steps), ("batch_size", batch_size), ("length", length)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not 0 <= passkey_fraction <= 1:
        raise ValueError(f"passkey_fraction must be in [0, 1], got {passkey_fraction!r}")
    sched = TrainConfig.from_dict({**cfg.to_dict(), "max_steps": steps,
                                   "warmup_steps": max(1, steps // 10)})
    device = torch.device(device)
    opt = build_optimizer(model, sched)
    rng = np.random.default_rng([seed, 1])
    n_pk = int(round(batch_size * passkey_fraction))
    n_lm = batch_size - n_pk
    history = []
    model.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, sched)
        losses = {}
        with _autocast(device, autocast_dtype):
            if n_pk:
                samples = [make_sample(tok, filler, length, float(rng.uniform()), rng)
                           for _ in range(n_pk)]
                x, y = _passkey_batch(samples, tok.eot_id)
                losses["passkey_loss"] = _long_loss(model, x.to(device), y.to(device))
            if n_lm:
                starts = rng.integers(0, len(lm_tokens) - length - 1, n_lm)
                rows = np.stack([lm_tokens[s: s + length + 1] for s in starts]).astype(np.int64)
                rows_t = torch.from_numpy(rows).to(device)
                losses["lm_loss"] = _long_loss(model, rows_t[:, :-1], rows_t[:, 1:])
        loss = sum(losses.values()) / len(losses)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), sched.grad_clip)
        opt.step()
        rec = {"step": step + 1, "loss": float(loss.detach()),
               **{k: float(v.detach()) for k, v in losses.items()}}
        history.append(rec)
        if log is not None and (step + 1) % max(1, steps // 10) == 0:
            log(f"finetune step {step + 1}/{steps}: loss {rec['loss']:.4f} "
                f"(passkey {rec.get('passkey_loss', math.nan):.4f}, "
                f"lm {rec.get('lm_loss', math.nan):.4f})")
    model.eval()
    return history
