"""numba's on-disk cache of the kernels is hit by a new process (issue 21, item 3).

Every compiled kernel of :mod:`bkmath._kernels` has ``cache=True``; a driver whose cache key
changes from process to process (a closure made by a factory, before the kernels package)
is recompiled by every new process, 1-2 s before its first call. Here two fresh processes
share an empty ``NUMBA_CACHE_DIR`` and make the first calls of ``resolvent_diagonal`` and
``log_det``: the first compiles and saves, the second must only load
(no file of the cache is written or rewritten, and numba's debug log shows no save).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import bkmath

_ROOT = Path(bkmath.__file__).resolve().parents[1]

_SCRIPT = """
from bkmath import JacobiOperator
from bkmath.determinant import log_det
from bkmath.resolvent import resolvent_diagonal

H = JacobiOperator.free(50)
resolvent_diagonal(H, 0.3 + 0.1j)
log_det(H, 0.3 + 0.1j)
print("ok")
"""


def _files(cache: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(cache)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in cache.rglob("*") if p.is_file()}


def _fresh_process(cache: Path) -> str:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "NUMBA_DEBUG_CACHE": "1",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(_ROOT)}
    env.pop("NUMBA_DISABLE_JIT", None)
    p = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                       env=env, cwd=_ROOT, timeout=600)
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr[-2000:]
    return p.stdout + p.stderr


def test_second_process_writes_no_cache_file(tmp_path: Path) -> None:
    cache = tmp_path / "numba-cache"
    first = _fresh_process(cache)
    assert "data saved" in first  # the cache is in use at all
    files = _files(cache)
    assert any(name.endswith(".nbc") for name in files)
    second = _fresh_process(cache)
    saved = [line for line in second.splitlines() if "data saved" in line]
    assert not saved, "recompiled in the second process:\n" + "\n".join(saved)
    assert "data loaded" in second
    assert _files(cache) == files
