"""Crash-safe file writing shared by :mod:`bkmath` and :mod:`bkmodel`.

:func:`atomic_write` is the one implementation of "write a file so that a reader sees the old
contents or the new ones, never a torn mix": certificate reports, tokenizer caches, model
checkpoints (``save_pretrained``) and training checkpoints all go through it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(
    path: str | os.PathLike,
    data: bytes | str,
    *,
    keep_previous: str | None = None,
    verify: Callable[[Path], object] | None = None,
) -> Path:
    """Replace the file ``path`` with ``data`` atomically and durably.

    The data go to a temporary file ``.<name>.<random>.tmp`` in the same directory (created
    with its parents if missing), which is flushed and fsynced; then, in this order,
    ``verify(temporary path)`` is called (if given), the current file is renamed to
    ``keep_previous`` (if given and the file exists), the temporary file is renamed onto
    ``path`` with :func:`os.replace`, and the directory is fsynced (POSIX) so the rename
    itself survives a power cut. A crash at any point leaves ``path`` with its old contents
    or its new ones. If writing, fsyncing or ``verify`` raises, the temporary file is removed,
    ``path`` and ``keep_previous`` are untouched, and the exception propagates.

    Parameters
    ----------
    path
        The file to write.
    data
        ``bytes`` are written as they are; ``str`` is encoded as UTF-8.
    keep_previous
        A file name (no directory part) in the same directory: the file being replaced is
        moved there first (an older one of that name is overwritten). Between the two renames
        only the ``keep_previous`` copy exists, so a reader should fall back to it.
    verify
        Called with the path of the fsynced temporary file before anything is renamed, e.g.
        to re-read and checksum what reached the disk; it rejects the write by raising.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.

    Complexity: O(len(data)) bytes written plus two or three fsyncs.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write(d / "a.txt", "one").read_text()
    'one'
    >>> _ = atomic_write(d / "a.txt", b"two", keep_previous="a.txt.prev")
    >>> (d / "a.txt").read_text(), (d / "a.txt.prev").read_text()
    ('two', 'one')
    """
    if not isinstance(data, (bytes, bytearray, memoryview, str)):
        raise TypeError(f"data must be bytes or str, got {type(data).__name__}")
    if keep_previous is not None and (
        not isinstance(keep_previous, str) or not keep_previous
        or Path(keep_previous).name != keep_previous
    ):
        raise ValueError(f"keep_previous must be a bare file name, got {keep_previous!r}")
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if verify is not None:
            verify(tmp)
        if keep_previous is not None and path.exists():
            os.replace(path, path.with_name(keep_previous))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories cannot be
    opened, e.g. Windows)."""
    if os.name != "posix":
        return
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
