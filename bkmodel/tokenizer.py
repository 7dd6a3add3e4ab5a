"""Tokenizers: byte-level BPE trained locally on the training split, and a plain byte fallback.

* :class:`BPETokenizer` — byte-level BPE (GPT-2 style byte alphabet, so every string round
  trips) trained with the ``tokenizers`` library on the *training split only*; nothing is
  downloaded. Training on the 4 MB Shakespeare training split takes about a second.
* :class:`ByteTokenizer` — the fallback: token = UTF-8 byte (ids 0..255), no training.

Both reserve one special token, ``<|endoftext|>`` (:data:`EOT`), placed after every document
of a token stream.

Cache
-----
:func:`get_tokenizer` stores a trained BPE in ``<cache_dir>/bpe-<vocab>-<hash>.json`` where
``hash`` is the SHA-256 of the training texts and the settings: a different corpus or vocabulary
size can never pick up a stale tokenizer. The file wraps the ``tokenizers`` JSON with its own
SHA-256; a truncated or edited cache file is detected, reported, and rebuilt (or, with
``on_corrupt="error"``, raised as :class:`TokenizerError` naming the file). Files are written
atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from bkmath.io import atomic_write

__all__ = [
    "EOT",
    "BPETokenizer",
    "ByteTokenizer",
    "Tokenizer",
    "TokenizerError",
    "default_cache_dir",
    "encode_documents",
    "get_tokenizer",
    "load_tokenizer",
    "save_tokenizer",
    "train_bpe",
]

EOT = "<|endoftext|>"
FORMAT = "resnet-bk-tokenizer/1"


class TokenizerError(RuntimeError):
    """A tokenizer file is missing, corrupt or inconsistent (the message names the file)."""


class Tokenizer(Protocol):
    kind: str
    vocab_size: int
    eot_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens: ids 0..255 are bytes, 256 is :data:`EOT` (vocabulary 257).

    >>> t = ByteTokenizer()
    >>> t.encode("Ay!"), t.decode(t.encode("Ay!"))
    ([65, 121, 33], 'Ay!')
    """

    kind = "byte"
    vocab_size = 257
    eot_id = 256

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")

    def payload(self) -> str:
        return ""


class BPETokenizer:
    """Byte-level BPE backed by a ``tokenizers.Tokenizer`` (see :func:`train_bpe`)."""

    kind = "bpe"

    def __init__(self, backend) -> None:  # backend: tokenizers.Tokenizer
        self._tok = backend
        eot = backend.token_to_id(EOT)
        if eot is None:
            raise TokenizerError(f"BPE tokenizer has no {EOT} token")
        self.eot_id = int(eot)
        self.vocab_size = int(backend.get_vocab_size())

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self._tok.encode(text).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts))]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)

    def payload(self) -> str:
        return self._tok.to_str()

    @classmethod
    def from_payload(cls, payload: str) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        return cls(HFTokenizer.from_str(payload))


def train_bpe(texts: Iterable[str], vocab_size: int) -> BPETokenizer:
    """Train a byte-level BPE of ``vocab_size`` tokens (``EOT`` included) on ``texts``.

    Deterministic for given texts and size. Cost O(total characters · merges) in Rust,
    about one second for the 4 MB training split.
    """
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if vocab_size < 258:
        raise ValueError(f"vocab_size must be >= 258 (256 bytes + EOT + 1 merge), got {vocab_size}")
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    return BPETokenizer(tok)


def default_cache_dir() -> Path:
    """``$BK_CACHE_DIR`` or ``~/.cache/resnet-bk``."""
    env = os.environ.get("BK_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "resnet-bk"


def save_tokenizer(tok: Tokenizer, path: Path | str, content_hash: str = "") -> Path:
    """Write ``tok`` to ``path`` atomically, wrapped with its SHA-256 (format ``FORMAT``)."""
    path = Path(path)
    payload = tok.payload()
    doc = {
        "format": FORMAT,
        "kind": tok.kind,
        "vocab_size": tok.vocab_size,
        "eot_id": tok.eot_id,
        "content_hash": content_hash,
        "payload_sha256": hashlib.sha256(payload.encode("utf-8")).hexdigest(),
        "payload": payload,
    }
    atomic_write(path, json.dumps(doc))
    return path


def load_tokenizer(path: Path | str) -> Tokenizer:
    """Read a tokenizer written by :func:`save_tokenizer`, verifying its checksum.

    Raises
    ------
    TokenizerError
        If the file is missing, not valid JSON, of another format, or its payload's SHA-256,
        vocabulary size or EOT id disagree with the header.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenizerError(f"tokenizer file missing: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"tokenizer file unreadable: {path}: {exc}") from exc
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT!r}")
        kind, payload = doc["kind"], doc["payload"]
        if hashlib.sha256(payload.encode("utf-8")).hexdigest() != doc["payload_sha256"]:
            raise ValueError("payload SHA-256 mismatch")
        if kind == "byte":
            tok: Tokenizer = ByteTokenizer()
        elif kind == "bpe":
            tok = BPETokenizer.from_payload(payload)
        else:
            raise ValueError(f"unknown tokenizer kind {kind!r}")
        if tok.vocab_size != doc["vocab_size"] or tok.eot_id != doc["eot_id"]:
            raise ValueError("vocab_size/eot_id disagree with the header")
    except (ValueError, KeyError, TypeError, Exception) as exc:  # tokenizers raises Exception
        if isinstance(exc, TokenizerError):
            raise
        raise TokenizerError(f"tokenizer file corrupt: {path}: {exc}") from exc
    return tok


def _content_hash(kind: str, vocab_size: int, texts: Sequence[str]) -> str:
    h = hashlib.sha256(f"{FORMAT}|{kind}|{vocab_size}|{len(texts)}|".encode())
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def get_tokenizer(
    kind: str = "bpe",
    texts: Sequence[str] | None = None,
    vocab_size: int = 2048,
    *,
    cache_dir: Path | str | None = None,
    on_corrupt: str = "rebuild",
) -> Tokenizer:
    """A tokenizer of ``kind`` trained on ``texts`` (the training split), cached on disk.

    Parameters
    ----------
    kind : {"bpe", "byte"}
    texts : sequence of str
        Training documents; required for ``"bpe"``. Pass the training split only.
    vocab_size : int
        BPE vocabulary size including ``EOT`` (ignored for ``"byte"``: 257).
    cache_dir : path, optional
        Default :func:`default_cache_dir`.
    on_corrupt : {"rebuild", "error"}
        What to do with a corrupt cache file: warn and retrain, or raise
        :class:`TokenizerError`.
    """
    if kind == "byte":
        return ByteTokenizer()
    if kind != "bpe":
        raise ValueError(f"kind must be 'bpe' or 'byte', got {kind!r}")
    if on_corrupt not in ("rebuild", "error"):
        raise ValueError(f"on_corrupt must be 'rebuild' or 'error', got {on_corrupt!r}")
    if texts is None or len(texts) == 0:
        raise ValueError("texts (the training documents) are required to train a BPE tokenizer")
    texts = list(texts)
    digest = _content_hash(kind, vocab_size, texts)
    path = Path(cache_dir or default_cache_dir()) / f"bpe-{vocab_size}-{digest[:16]}.json"
    if path.exists():
        try:
            tok = load_tokenizer(path)
            if tok.kind == "bpe" and tok.vocab_size == vocab_size:
                return tok
            raise TokenizerError(f"tokenizer file corrupt: {path}: settings differ")
        except TokenizerError as exc:
            if on_corrupt == "error":
                raise
            warnings.warn(f"{exc}; retraining the tokenizer", RuntimeWarning, stacklevel=2)
    tok = train_bpe(texts, vocab_size)
    save_tokenizer(tok, path, content_hash=digest)
    return tok


def encode_documents(tok: Tokenizer, docs: Sequence[str]) -> np.ndarray:
    """One token stream: every document's tokens followed by ``EOT`` (int32 array)."""
    if isinstance(tok, BPETokenizer):
        encoded = tok.encode_batch(docs)
    else:
        encoded = [tok.encode(d) for d in docs]
    total = sum(len(e) + 1 for e in encoded)
    out = np.empty(total, dtype=np.int32)
    pos = 0
    for e in encoded:
        out[pos : pos + len(e)] = e
        pos += len(e)
        out[pos] = tok.eot_id
        pos += 1
    return out
