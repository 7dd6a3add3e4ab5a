"""Tests of bkmodel.tokenizer: byte fallback, local BPE training, the checksummed cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bkmodel import tokenizer as tk
from bkmodel.data import load_split
from bkmodel.tokenizer import (
    BPETokenizer,
    ByteTokenizer,
    TokenizerError,
    encode_documents,
    get_tokenizer,
    load_tokenizer,
    save_tokenizer,
    train_bpe,
)


@pytest.fixture(scope="module")
def tiny_train():
    return load_split("train", "tiny")


@pytest.fixture(scope="module")
def bpe(tiny_train):
    return train_bpe(tiny_train, 400)


class TestByte:
    @given(st.text(max_size=200))
    def test_round_trip(self, text):
        t = ByteTokenizer()
        ids = t.encode(text)
        assert all(0 <= i < 256 for i in ids)
        assert t.decode(ids) == text

    def test_type_error(self):
        with pytest.raises(TypeError, match="text"):
            ByteTokenizer().encode(b"bytes")


class TestBPE:
    def test_vocab_and_compression(self, bpe, tiny_train):
        assert bpe.vocab_size == 400 and bpe.eot_id == 0
        held_out = load_split("test", "tiny")[0]
        n_bpe = len(bpe.encode(held_out))
        assert n_bpe < 0.6 * len(held_out.encode())  # merges learned on train help on test

    @given(st.text(max_size=200))
    def test_round_trip_any_text(self, bpe, text):
        assert bpe.decode(bpe.encode(text)) == text

    def test_training_is_deterministic(self, bpe, tiny_train):
        assert train_bpe(tiny_train, 400).payload() == bpe.payload()

    def test_bad_arguments(self, tiny_train):
        with pytest.raises(ValueError, match="vocab_size"):
            train_bpe(tiny_train, 100)
        with pytest.raises(TypeError, match="vocab_size"):
            train_bpe(tiny_train, 300.0)
        with pytest.raises(ValueError, match="kind"):
            get_tokenizer("wordpiece", tiny_train)
        with pytest.raises(ValueError, match="texts"):
            get_tokenizer("bpe", None)
        with pytest.raises(ValueError, match="on_corrupt"):
            get_tokenizer("bpe", tiny_train, on_corrupt="ignore")

    def test_encode_documents_separates_with_eot(self, bpe):
        docs = ["To be, or not to be", "that is the question"]
        stream = encode_documents(bpe, docs)
        assert stream.dtype == np.int32
        eots = np.flatnonzero(stream == bpe.eot_id)
        assert len(eots) == 2 and eots[-1] == len(stream) - 1
        assert bpe.decode(stream[: eots[0]].tolist()) == docs[0]


class TestCache:
    def test_cache_hit_does_not_retrain(self, tiny_train, tmp_path, monkeypatch):
        a = get_tokenizer("bpe", tiny_train, 300, cache_dir=tmp_path)
        files = list(tmp_path.glob("bpe-300-*.json"))
        assert len(files) == 1

        def boom(*_a, **_k):
            raise AssertionError("retrained although cached")

        monkeypatch.setattr(tk, "train_bpe", boom)
        b = get_tokenizer("bpe", tiny_train, 300, cache_dir=tmp_path)
        assert b.payload() == a.payload()

    def test_other_texts_or_size_get_their_own_file(self, tiny_train, tmp_path):
        get_tokenizer("bpe", tiny_train, 300, cache_dir=tmp_path)
        get_tokenizer("bpe", tiny_train, 310, cache_dir=tmp_path)
        get_tokenizer("bpe", [tiny_train[0][:20000]], 300, cache_dir=tmp_path)
        assert len(list(tmp_path.glob("bpe-*.json"))) == 3

    def test_corrupt_cache_is_rebuilt_or_reported(self, tiny_train, tmp_path):
        good = get_tokenizer("bpe", tiny_train, 300, cache_dir=tmp_path)
        (path,) = tmp_path.glob("bpe-300-*.json")
        path.write_text(path.read_text()[:500])  # truncated by a crash
        with pytest.raises(TokenizerError, match=f"corrupt: .*{path.name}"):
            get_tokenizer("bpe", tiny_train, 300, cache_dir=tmp_path, on_corrupt="error")
        with pytest.warns(RuntimeWarning, match="retraining"):
            again = get_tokenizer("bpe", tiny_train, 300, cache_dir=tmp_path)
        assert again.payload() == good.payload()
        assert load_tokenizer(path).payload() == good.payload()  # the cache was repaired

    def test_tampered_payload_fails_checksum(self, bpe, tmp_path):
        path = save_tokenizer(bpe, tmp_path / "tok.json")
        doc = json.loads(path.read_text())
        doc["payload"] = doc["payload"][:-1] + " }"  # still valid JSON, one byte more
        path.write_text(json.dumps(doc))
        with pytest.raises(TokenizerError, match="SHA-256"):
            load_tokenizer(path)

    def test_missing_and_garbage_files(self, tmp_path):
        with pytest.raises(TokenizerError, match="missing"):
            load_tokenizer(tmp_path / "nope.json")
        (tmp_path / "g.json").write_bytes(b"\x00\x01 not json")
        with pytest.raises(TokenizerError, match="corrupt"):
            load_tokenizer(tmp_path / "g.json")

    def test_byte_tokenizer_round_trips_through_a_file(self, tmp_path):
        t = load_tokenizer(save_tokenizer(ByteTokenizer(), tmp_path / "b.json"))
        assert isinstance(t, ByteTokenizer) and t.vocab_size == 257

    def test_bpe_round_trips_through_a_file(self, bpe, tmp_path):
        t = load_tokenizer(save_tokenizer(bpe, tmp_path / "b.json"))
        assert isinstance(t, BPETokenizer) and t.encode("Macbeth") == bpe.encode("Macbeth")
