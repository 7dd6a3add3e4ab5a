"""Benchmark: Green's-function attention backends, forward + backward, in one run.

Backends of :func:`bkmodel.ops.green_attn.green_attention` (complex API):

* ``naive``  — the sequential loop (autograd), only up to ``--naive-max`` tokens;
* ``chunk``  — the chunked form with complex tensors (``chunk.py``), the baseline of the ratios;
* ``real``   — the same chunks in real arithmetic (``real.py``);
* ``triton`` — the Triton kernels of the real form (``triton_chunk.py``); on CPU only with
  ``--backends ...,triton``, in the Triton interpreter (a correctness run: its time means
  nothing);
* ``real+compile`` — ``torch.compile(green_attention_real)`` on the real and imaginary parts
  (compile time reported separately, not timed).

Every backend is first checked against a float64 reference on the same inputs (the naive
loop when ``T <= --naive-max``, else ``chunk`` in float64, which the tests check against the
loop): the relative RMS error of y, of S_T and of all six gradients of a fixed random linear
loss. A backend over ``--tol`` (outputs) or ``10 --tol`` (gradients) is reported as failed,
with no time. Times are medians (``triton.testing.do_bench`` on CUDA for calls under 0.5 s,
else ``--reps`` timed calls after one warm-up); ratios are ``chunk``'s time over the
backend's, both measured in this run.

Sizes: on CUDA B=8, T=2048 and B=1, T=16384 (H=4, dk=dv=64); on CPU B=2, T=256 and B=1,
T=1024 (H=2, dk=dv=32); or ``--sizes B,T,H,dk,dv;...``. Inputs: q, k, v standard normal
(q scaled by 1/sqrt(dk)), g with Im g in [0.1, 1.1], |a| uniform in [0.9, 0.999] with
uniform phase, a document reset every ~1000 tokens and a random initial state.

Usage::

    python benchmarks/bench_green_attn.py                   # cuda if available, else cpu
    python benchmarks/bench_green_attn.py --device cpu --threads 1 --no-compile

Writes ``benchmarks/results/bench_green_attn_<device>_<date>.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from _results import run_header, write_device_result  # noqa: E402

GPU_SIZES = [(8, 2048, 4, 64, 64), (1, 16384, 4, 64, 64)]
CPU_SIZES = [(2, 256, 2, 32, 32), (1, 1024, 2, 32, 32)]
NAMES = ("q", "k", "v", "g", "a", "S0")


def make_inputs(B: int, T: int, H: int, dk: int, dv: int, device: str, seed: int = 0
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """float64 [q, k, v, g, a, S0] (complex g, a, S0) and the (B, T) resets."""
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    u = lambda *s: torch.rand(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    q, k, v = r(B, T, H, dk) / math.sqrt(dk), r(B, T, H, dk), r(B, T, H, dv)
    g = torch.complex(r(B, T, H), u(B, T, H) + 0.1)
    a = (0.9 + 0.099 * u(B, T, H)) * torch.exp(2j * math.pi * u(B, T, H))
    reset = u(B, T) < 1e-3
    S0 = torch.complex(r(B, H, dk, dv), r(B, H, dk, dv)) * 0.1
    return [x.to(device) for x in (q, k, v, g, a, S0)], reset.to(device)


def cast(xs: list[torch.Tensor], dtype: torch.dtype) -> list[torch.Tensor]:
    """q, k, v to ``dtype``; g, a, S0 to complex64 (or complex128 for float64)."""
    cdt = torch.complex128 if dtype == torch.float64 else torch.complex64
    return [x.to(cdt) if x.is_complex() else x.to(dtype) for x in xs]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative RMS error in float64 / complex128."""
    a, b = a.detach().to(torch.complex128), b.detach().to(torch.complex128)
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def parse_launch(spec: str) -> dict[str, int]:
    """``"bv_bwd=32:warps_grad=4"`` -> ``{"bv_bwd": 32, "warps_grad": 4}``; ``"default"`` ->
    ``{}`` (keys of ``triton_chunk_par.launch_config``)."""
    if spec in ("", "default"):
        return {}
    out = {}
    for item in spec.split(":"):
        key, _, val = item.partition("=")
        if not val.isdigit():
            raise ValueError(f"--launch: expected key=int items joined by ':', got {spec!r}")
        out[key] = int(val)
    return out


def complex_step(backend: str, chunk: int, reset: torch.Tensor, W: tuple[torch.Tensor, ...]
                 ) -> Callable[[list[torch.Tensor]], list[torch.Tensor]]:
    """Forward + backward of ``sum Re(conj(Wy) y) + Re(conj(Ws) S)`` through the complex API;
    returns [y, S, dq, dk, dv, dg, da, dS0]. ``triton_par[spec]`` runs ``triton_par`` with
    the launch shape ``spec`` (:func:`parse_launch`), set for each call and restored."""
    from bkmodel.ops.green_attn import green_attention

    launch: dict[str, int] | None = None
    if backend.startswith("triton_par["):
        launch, backend = parse_launch(backend[len("triton_par["):-1]), "triton_par"

    def step(xs: list[torch.Tensor]) -> list[torch.Tensor]:
        if launch is not None:
            from bkmodel.ops.green_attn import triton_chunk_par

            old = triton_chunk_par.set_launch_config(**launch)
            try:
                return _step(xs)
            finally:
                triton_chunk_par.set_launch_config(**old)
        return _step(xs)

    def _step(xs: list[torch.Tensor]) -> list[torch.Tensor]:
        y, s = green_attention(*xs[:5], reset=reset, initial_state=xs[5], backend=backend,
                               chunk_size=chunk)
        loss = (y * W[0].to(y.dtype).conj()).real.sum() + \
            (s * W[1].to(s.dtype).conj()).real.sum()
        return [y.detach(), s.detach(), *torch.autograd.grad(loss, xs)]

    return step


def compiled_real_step(chunk: int, reset: torch.Tensor, W: tuple[torch.Tensor, ...]
                       ) -> Callable[[list[torch.Tensor]], list[torch.Tensor]]:
    """As :func:`complex_step` for ``torch.compile(green_attention_real)`` on real parts."""
    from bkmodel.ops.green_attn.real import green_attention_real

    fn = torch.compile(green_attention_real, dynamic=False)  # one static graph per size
    Wy_re, Wy_im = W[0].real.float(), W[0].imag.float()
    Ws_re, Ws_im = W[1].real.float(), W[1].imag.float()

    def step(xs: list[torch.Tensor]) -> list[torch.Tensor]:
        q, k, v, g, a, S0 = (x.detach() for x in xs)
        parts = [q, k, v, g.real, g.imag, a.real, a.imag, S0.real, S0.imag]
        parts = [p.contiguous().requires_grad_() for p in parts]
        yr, yi, (sr, si) = fn(*parts[:7], reset=reset, initial_state=(parts[7], parts[8]),
                              chunk_size=chunk)
        loss = ((yr * Wy_re).sum() + (yi * Wy_im).sum() + (sr * Ws_re).sum()
                + (si * Ws_im).sum())
        d = torch.autograd.grad(loss, parts)
        return [torch.complex(yr, yi).detach(), torch.complex(sr, si).detach(), d[0], d[1],
                d[2], torch.complex(d[3], d[4]), torch.complex(d[5], d[6]),
                torch.complex(d[7], d[8])]

    return step


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_ms(fn: Callable[[], Any], device: str, reps: int) -> float:
    """Median milliseconds of ``fn()`` (one warm-up call first)."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    first = time.perf_counter() - t0
    if device.startswith("cuda") and first < 0.5:
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median"))
    ts = []
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


def bench_size(size: tuple[int, int, int, int, int], args: argparse.Namespace,
               backends: list[str]) -> dict[str, Any]:
    """Check and time every backend at one size; the row of the results file."""
    B, T, H, dk, dv = size
    dev = args.device
    xs64, reset = make_inputs(B, T, H, dk, dv, dev)
    gen = torch.Generator().manual_seed(1)
    W = tuple(torch.complex(torch.randn(*s, generator=gen, dtype=torch.float64),
                            torch.randn(*s, generator=gen, dtype=torch.float64)).to(dev)
              for s in ((B, T, H, dv), (B, H, dk, dv)))
    ref_name = "naive" if T <= args.naive_max else "chunk"
    ref = complex_step(ref_name, args.chunk, reset, W)(
        [x.clone().requires_grad_() for x in xs64])
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    tol = args.tol if dtype == torch.float32 else max(args.tol, 3e-2)
    row: dict[str, Any] = {"B": B, "T": T, "H": H, "dk": dk, "dv": dv, "chunk": args.chunk,
                           "dtype": args.dtype, "reference": f"{ref_name} float64",
                           "tol_out": tol, "tol_grad": 10 * tol, "backends": {}}
    print(f"B={B} T={T} H={H} dk={dk} dv={dv} ({args.dtype}; reference {ref_name} float64)",
          flush=True)
    par_out = None
    for name in backends:
        res: dict[str, Any] = {}
        row["backends"][name] = res
        if name == "naive" and T > args.naive_max:
            res["skipped"] = f"T > --naive-max {args.naive_max}"
            print(f"  {name:<13} skipped ({res['skipped']})", flush=True)
            continue
        try:
            if name == "real+compile":
                step = compiled_real_step(args.chunk, reset, W)
            else:
                step = complex_step(name, args.chunk, reset, W)
            xs = [x.requires_grad_() for x in cast(xs64, dtype)]
            t0 = time.perf_counter()
            out = step(xs)
            sync(dev)
            res["first_call_s"] = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - a backend that cannot run is reported, not fatal
            res["error"] = f"{type(e).__name__}: {e}"
            print(f"  {name:<13} ERROR {res['error'][:200]}", flush=True)
            continue
        errs = {n: rel(o, r) for n, o, r in zip(("y", "S", *NAMES), out, ref, strict=True)}
        ok = all(errs[n] <= tol for n in ("y", "S")) and all(
            errs[n] <= 10 * tol for n in NAMES)
        res["rel_err"] = errs
        res["correct"] = ok
        if name == "triton_par":
            par_out = out
        elif name.startswith("triton_par[") and par_out is not None:
            # a launch shape computes the same function as the default one: the float32
            # results differ by the accumulation order only (~1e-6: tolerance 1e-3); the q,
            # k, v gradients are stored in the input dtype, and another value-block width
            # changes how their float32 partial sums are split before that rounding (H200,
            # bf16: 3.0e-3 at bv_bwd 32 vs 16): tolerance 4 eps of the input dtype (1.6e-2
            # in bf16). A miscompile (the k gradient of _BV_BWD's note: 0.16) is 10x above.
            same = {n: rel(o, r) for n, o, r in zip(("y", "S", *NAMES), out, par_out,
                                                    strict=True)}
            res["rel_err_vs_default_launch"] = same
            tol_in = max(1e-3, 4 * torch.finfo(dtype).eps)
            ok = ok and all(e <= (tol_in if n in ("q", "k", "v") else 1e-3)
                            for n, e in same.items())
            res["correct"] = ok
        if not ok:
            print(f"  {name:<13} FAILED the float64 (or default-launch) check, not timed: "
                  + " ".join(f"{n}={e:.1e}" for n, e in errs.items()), flush=True)
            continue
        res["ms"] = time_ms(lambda step=step, xs=xs: step(xs), dev, args.reps)
        res["tokens_per_s"] = B * T / (res["ms"] * 1e-3)
        if dev.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            step(xs)
            res["peak_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20
    base = row["backends"].get("chunk", {}).get("ms")
    for name, res in row["backends"].items():
        if "ms" in res:
            res["speedup_vs_chunk"] = base / res["ms"] if base else None
            ratio = f"x{base / res['ms']:.2f} vs chunk" if base else ""
            note = " (Triton interpreter)" if name == "triton" and not dev.startswith("cuda") \
                else ""
            print(f"  {name:<13} {res['ms']:10.3f} ms  {ratio}{note}  max rel err "
                  f"{max(res['rel_err'].values()):.1e}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sizes", default=None,
                   help="'B,T,H,dk,dv;...' (default: the device's preset sizes)")
    p.add_argument("--backends", default=None,
                   help="comma list of naive,chunk,real,triton,triton_par,real+compile "
                        "(default: all on cuda; naive,chunk,real,real+compile on cpu)")
    p.add_argument("--no-compile", action="store_true", help="drop real+compile")
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="dtype of q, k, v (g, a, S0 stay complex64)")
    p.add_argument("--tol", type=float, default=2e-3,
                   help="relative RMS tolerance of y and S_T (gradients: 10x)")
    p.add_argument("--naive-max", type=int, default=None,
                   help="longest T at which naive is timed and is the reference "
                        "(default 4096 on cuda, 256 on cpu)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0: torch's default; 1 avoids ~10 ms stalls per op "
                        "when the cores are shared)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--launch", nargs="+", default=[],
                   help="launch shapes of triton_par to sweep, each 'key=int:key=int' "
                        "(keys of bkmodel.ops.green_attn.triton_chunk_par.launch_config, e.g. "
                        "bv_bwd=32:warps_grad=4); each runs as backend 'triton_par[shape]' "
                        "after the default triton_par, checked against it (1e-3) and float64")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    for spec in args.launch:
        try:
            parse_launch(spec)
        except ValueError as e:
            p.error(str(e))
    cuda = args.device.startswith("cuda")
    if args.naive_max is None:
        args.naive_max = 4096 if cuda else 256
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if cuda and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    if args.backends:
        backends = args.backends.split(",")
    else:
        backends = ["naive", "chunk", "real", "real+compile"] + (["triton", "triton_par"]
                                                                 if cuda else [])
    unknown = [b for b in backends if b not in ("naive", "chunk", "real", "triton",
                                                "triton_par", "real+compile")]
    if unknown:
        p.error(f"unknown backends {unknown}")
    if args.launch:
        if "triton_par" not in backends:
            backends.append("triton_par")
        backends += [f"triton_par[{spec}]" for spec in args.launch]
    if args.no_compile:
        backends = [b for b in backends if b != "real+compile"]
    if "chunk" not in backends:
        backends.insert(0, "chunk")  # the ratios' baseline
    if ("triton" in backends or "triton_par" in backends) and not cuda:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before anything imports triton
    if args.sizes:
        try:
            sizes = [tuple(int(x) for x in s.split(",")) for s in args.sizes.split(";")]
        except ValueError:
            p.error(f"--sizes must be 'B,T,H,dk,dv;...', got {args.sizes!r}")
        if any(len(s) != 5 for s in sizes):
            p.error(f"--sizes must be 'B,T,H,dk,dv;...', got {args.sizes!r}")
    else:
        sizes = GPU_SIZES if cuda else CPU_SIZES
    doc: dict[str, Any] = {"benchmark": "bench_green_attn", **run_header(args),
                           "note": "forward + backward ms (median); speedup = chunk ms / "
                                   "backend ms in this run", "rows": []}
    for size in sizes:
        doc["rows"].append(bench_size(size, args, backends))  # type: ignore[arg-type]
    write_device_result(doc, args.out, "bench_green_attn")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
