"""Compile every Triton kernel of the BK scan for an H100/H200 (sm_90) without a GPU.

Run as a script with ``TRITON_INTERPRET=0`` (``test_triton_compile.py`` does): the
interpreter used by the CPU tests never runs Triton's compiler, so code that only the
compiler rejects (e.g. an int argument equal to 1, which Triton specialises into a
constexpr) would otherwise first fail on the GPU. Every kernel is compiled in float32/bf16
and float64, with groups of 4 and 8 rows, with integer arguments equal to 1, and in both
specialisations of its flags: the per-channel kernels (``TOK``/``HAS_G0`` off) and the
selective ones (per-token eta and b, initial state: on; bf16 v, eta, b, dv, deta, db).
Prints one line per variant with its registers and spills per thread and exits 1 if any
variant fails to compile.
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
FLAGS = ("TOK", "HAS_G0")  # the selective scan's specialisations
# pointers in the input dtype (bf16 in the float32 build): v, and per token eta, b and
# their gradients
INPUT_PTRS = ("v_ptr", "dv_ptr")
TOKEN_PTRS = ("eta_ptr", "beta_ptr", "deta_ptr", "db_ptr")


def flags_of(fn) -> tuple[str, ...]:
    return tuple(f for f in FLAGS if f in inspect.signature(fn.fn).parameters)


def signature(fn, *, f64: bool, group: int, ones: tuple[str, ...], flags: bool):
    sig: dict[str, str] = {}
    const: dict[str, object] = {}
    for name in inspect.signature(fn.fn).parameters:
        if name == "stats_ptr":
            sig[name] = "*i64"
        elif name in INPUT_PTRS or (flags and name in TOKEN_PTRS):
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
                "TOK": flags, "HAS_G0": flags,
            }.get(name, 1)  # fmt: skip
    return sig, const


def variants():
    for fn in KERNELS:
        for flags in (False, True) if flags_of(fn) else (False,):
            for f64 in (False, True):
                for group in (4, 8):
                    # (C = 1 alone is the per-channel kernels' regression; the selective
                    # ones are compiled without and with every integer equal to 1)
                    for ones in ((), INTS) if flags else ((), ("C",), INTS):
                        yield fn, flags, f64, group, ones


def _ptxas_usage(ptx: str) -> str:
    """Registers and spill bytes per thread as reported by ``ptxas -v`` for sm_90a."""
    import re
    import subprocess
    import tempfile

    from triton.backends.nvidia.compiler import get_ptxas

    try:  # the signature differs between Triton versions
        ptxas = get_ptxas(90)
    except TypeError:
        ptxas = get_ptxas()
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as f:
        f.write(ptx)
        f.flush()
        r = subprocess.run([ptxas.path, "-v", "--gpu-name=sm_90a", f.name, "-o",
                            "/dev/null"], capture_output=True, text=True)  # fmt: skip
    regs = re.search(r"Used (\d+) registers", r.stderr)
    spill = re.search(r"(\d+) bytes spill stores", r.stderr)
    return f"regs={regs.group(1) if regs else '?'} spill_stores={spill.group(1) if spill else '?'}"


def main(regs: bool = False) -> int:
    """Compile every variant; with ``regs`` (``--regs``) also report ptxas' register use
    and spills of the variants without integer specialisation."""
    target = GPUTarget("cuda", 90, 32)
    failed = 0
    for fn, flags, f64, group, ones in variants():
        if regs and (ones or group == 4):
            continue
        sig, const = signature(fn, f64=f64, group=group, ones=ones, flags=flags)
        try:
            k = triton.compile(ASTSource(fn, sig, const), target=target)
            res = "ok"
            if regs and not ones:
                res = f"{_ptxas_usage(k.asm['ptx'])}: ok"
        except Exception as e:  # noqa: BLE001  (report every failure)
            failed += 1
            res = f"FAILED {type(e).__name__}: {str(e).strip()[-300:]}"
        fl = "+".join(flags_of(fn)) if flags else "-"
        print(f"{fn.fn.__name__} flags={fl} f64={f64} group={group} ones={ones}: {res}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(regs="--regs" in sys.argv[1:]))
