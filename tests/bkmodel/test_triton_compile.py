"""The Triton kernels compile for an H100 target on a machine without a GPU.

The CPU tests run the kernels in Triton's interpreter, which never invokes the compiler;
this test runs ``_compile_triton_kernels.py`` in a subprocess with the interpreter off and
compiles every kernel (float32/bf16 and float64, groups of 4 and 8, integer arguments
equal to 1, which Triton specialises into constexprs; the per-channel kernels and the
selective ones with per-token eta/b and an initial state) down to a cubin for sm_90.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")


def test_kernels_compile_for_sm90(tmp_path):
    script = Path(__file__).with_name("_compile_triton_kernels.py")
    env = dict(os.environ, TRITON_INTERPRET="0", TRITON_CACHE_DIR=str(tmp_path))
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    r = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600
    )
    lines = r.stdout.splitlines()
    assert r.returncode == 0, "\n".join(lines + [r.stderr[-3000:]])
    sys.path.insert(0, str(script.parent))
    try:
        from _compile_triton_kernels import variants
    finally:
        sys.path.pop(0)
    n = sum(1 for _ in variants())
    assert n == 6 * 2 * 2 * 3 + 5 * 2 * 2 * 2  # 6 kernels; 5 with selective flags
    assert len(lines) == n and all(line.endswith(": ok") for line in lines)
