"""Compile every Triton kernel of the BK scan for an H100 (sm_90) without a GPU.

Run as a script with ``TRITON_INTERPRET=0`` (``test_triton_compile.py`` does): the
interpreter used by the CPU tests never runs Triton's compiler, so code that only the
compiler rejects (e.g. an int argument equal to 1, which Triton specialises into a
constexpr) would otherwise first fail on the GPU. Prints one line per variant and exits 1
if any variant fails to compile.
"""

from __future__ import annotations

import inspect
import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from bkmodel.ops.bk_scan import triton_scan as ts

KERNELS = [
    ts._fwd_chunk_map_kernel,
    ts._fwd_carry_kernel,
    ts._fwd_kernel,
    ts._bwd_chunk_map_kernel,
    ts._bwd_carry_kernel,
    ts._bwd_kernel,
]
INTS = ("N", "C", "L", "K", "k0")


def signature(fn, *, f64: bool, group: int, ones: tuple[str, ...]):
    sig: dict[str, str] = {}
    const: dict[str, object] = {}
    for name in inspect.signature(fn.fn).parameters:
        if name == "stats_ptr":
            sig[name] = "*i64"
        elif name == "v_ptr":
            sig[name] = "*fp64" if f64 else "*bf16"
        elif name.endswith("_ptr"):
            sig[name] = "*fp64" if f64 else "*fp32"
        elif name in ("tol", "one_tol"):
            sig[name] = "fp32"
        elif name in INTS and name not in ones:
            sig[name] = "i32"
        else:
            sig[name] = "constexpr"
            const[name] = {
                "GROUP": group, "BLOCK_C": 32, "F64": f64, "HAS_INIT": True, "STATS": True,
            }.get(name, 1)  # fmt: skip
    return sig, const


def main() -> int:
    target = GPUTarget("cuda", 90, 32)
    failed = 0
    for fn in KERNELS:
        for f64 in (False, True):
            for group in (4, 8):
                for ones in ((), ("C",), INTS):
                    sig, const = signature(fn, f64=f64, group=group, ones=ones)
                    try:
                        triton.compile(ASTSource(fn, sig, const), target=target)
                        res = "ok"
                    except Exception as e:  # noqa: BLE001  (report every failure)
                        failed += 1
                        res = f"FAILED {type(e).__name__}: {str(e).strip()[-300:]}"
                    print(f"{fn.fn.__name__} f64={f64} group={group} ones={ones}: {res}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
