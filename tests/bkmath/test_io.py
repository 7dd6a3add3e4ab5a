"""bkmath.io.atomic_write: contents, the ``.prev`` copy, verification, failure mid-write."""

from __future__ import annotations

import os

import pytest

from bkmath import io as bkio
from bkmath.io import atomic_write


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_str_and_bytes_and_parents(tmp_path):
    p = tmp_path / "a" / "b" / "f.txt"
    assert atomic_write(p, "héllo") == p
    assert p.read_bytes() == "héllo".encode()
    atomic_write(str(p), b"\x00\xff")
    assert p.read_bytes() == b"\x00\xff"
    assert _leftovers(p.parent) == []


def test_keep_previous(tmp_path):
    p = tmp_path / "ck.pt"
    atomic_write(p, b"one", keep_previous="ck.prev.pt")
    assert not (tmp_path / "ck.prev.pt").exists()  # nothing to keep the first time
    atomic_write(p, b"two", keep_previous="ck.prev.pt")
    atomic_write(p, b"three", keep_previous="ck.prev.pt")
    assert p.read_bytes() == b"three"
    assert (tmp_path / "ck.prev.pt").read_bytes() == b"two"


def test_verify_sees_the_synced_temp_file_and_can_reject(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"old")
    seen = []

    def verify(tmp):
        seen.append((tmp.parent, tmp.name.startswith(".f."), tmp.read_bytes()))
        raise ValueError("rejected")

    with pytest.raises(ValueError, match="rejected"):
        atomic_write(p, b"new", keep_previous="f.prev", verify=verify)
    assert seen == [(tmp_path, True, b"new")]
    assert p.read_bytes() == b"old"
    assert not (tmp_path / "f.prev").exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_failure_mid_write_leaves_the_old_file(tmp_path, monkeypatch, where):
    p = tmp_path / "f.json"
    p.write_text("old contents")

    class Boom(Exception):
        pass

    if where == "fsync":
        def fsync(fd):
            raise Boom("disk full")

        monkeypatch.setattr(bkio.os, "fsync", fsync)
        data = "new contents"
    else:
        class Data(str):  # a str whose encoding fails half-way through the call
            def encode(self, *a, **k):
                raise Boom("disk full")

        data = Data("new contents")
    with pytest.raises(Boom):
        atomic_write(p, data, keep_previous="f.json.prev")
    assert p.read_text() == "old contents"
    assert not (tmp_path / "f.json.prev").exists()
    assert _leftovers(tmp_path) == []


def test_failure_during_write_after_partial_data(tmp_path, monkeypatch):
    """The temp file already holds part of the data when the write fails."""
    p = tmp_path / "f.bin"
    p.write_bytes(b"old")
    real_fdopen = os.fdopen

    class Torn:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise OSError(28, "No space left on device")

        def fileno(self):
            return self.fh.fileno()

        def flush(self):
            self.fh.flush()

    monkeypatch.setattr(bkio.os, "fdopen", lambda fd, mode: Torn(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="No space"):
        atomic_write(p, b"new data that is torn")
    assert p.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="data must be bytes or str"):
        atomic_write(tmp_path / "f", 3)
    for bad in ("", "sub/f.prev", 5):
        with pytest.raises(ValueError, match="keep_previous"):
            atomic_write(tmp_path / "f", "x", keep_previous=bad)
    assert list(tmp_path.iterdir()) == []
