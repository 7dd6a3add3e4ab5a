"""Benchmark: the channels-last Triton causal depthwise convolution against the model's
transposed ``nn.Conv1d`` path, forward and forward + backward, in one run.

Paths, both under ``torch.autocast(dtype=bfloat16)`` with a bfloat16 u (B, T, C) and the
float32 parameters of ``nn.Conv1d(C, C, K, groups=C, padding=K-1)``, as in
``GreenBKLayer.forward``:

* ``conv1d`` — ``conv(u.transpose(1, 2))[..., :T].transpose(1, 2).contiguous()``: the model's
  code today plus the copy a consumer of a contiguous (B, T, C) tensor needs;
* ``triton`` — :func:`bkmodel.ops.causal_conv.causal_conv1d` (the custom op; y contiguous
  straight from u). On CPU it runs in the Triton interpreter: its time means nothing there
  (a smoke test of the script, with ``--quick``).

Each path is first checked against the float64 reference (``causal_conv1d_naive`` on the
same bfloat16 input values and float32 parameters, promoted): relative RMS error of y, du,
dw and dbias for a random incoming gradient; a path over ``--tol`` is reported as failed and
not timed. Times: median over ``--reps`` calls, each timed by CUDA events (perf_counter on
CPU) after ``--warmup`` calls, the L2 cache flushed (a 256 MiB write) before every timed
call; two kinds on CUDA: ``gpu`` — the device time of one call (the host queues the call
while a spin kernel keeps the GPU busy, then CUDA events time the kernels alone: what a
compiled, CUDA-graphed or GPU-bound training step pays), and ``eager`` — one synchronous
eager call (Python, dispatch and launch overhead included). Ratios are conv1d ms / triton
ms, both measured in this run. The ideal time is the minimal traffic (forward: read u, write
y; backward: read dy and u, write du; bfloat16) at the device-to-device copy bandwidth
measured in this run (``dst.copy_(src)`` of ``--copy-mib`` MiB, read + write counted).

Shapes: B=8, T=2048 and B=1, T=16384 with C=792, K=4 (the model's green layer); with
``--quick`` tiny ones; or ``--shapes B,T,C,K;...``.

Usage::

    python benchmarks/bench_causal_conv.py                   # cuda if available, else cpu
    python benchmarks/bench_causal_conv.py --device cpu --quick

Writes ``benchmarks/results/bench_causal_conv_<device>_<date>.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
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

GPU_SHAPES = [(8, 2048, 792, 4), (1, 16384, 792, 4)]
QUICK_SHAPES = [(2, 67, 24, 4), (1, 130, 40, 4)]
NAMES = ("y", "du", "dw", "dbias")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative RMS error ||a - b|| / ||b|| in float64."""
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_ms(fn: Callable[[], Any], device: str, reps: int, warmup: int) -> float:
    """Median milliseconds of ``fn()``: ``warmup`` untimed calls, then ``reps`` calls timed
    one by one (CUDA events on CUDA), the L2 cache flushed before each."""
    cuda = device.startswith("cuda")
    flush = torch.empty(256 * 2**20, dtype=torch.uint8, device=device) if cuda else None
    for _ in range(warmup):
        fn()
    sync(device)
    ts = []
    for _ in range(reps):
        if cuda:
            flush.zero_()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            ts.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            ts.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(ts)


def gpu_ms(fn: Callable[[], Any], device: str, reps: int, warmup: int) -> float:
    """Median device milliseconds of ``fn()``: before each timed call the GPU is kept busy
    (cache flush, then a spin kernel ``torch.cuda._sleep`` longer than ``fn``'s host time),
    so the host has queued the whole call before its start event runs: the events time the
    kernels alone, not Python, dispatch and launch overhead."""
    host_ms = time_ms(fn, device, 3, warmup)  # an upper bound of the host time of one call
    cycles = int(max(host_ms, 0.05) * 4e6)  # >= 2x host time at <= 2 GHz
    flush = torch.empty(256 * 2**20, dtype=torch.uint8, device=device)
    events = []
    for _ in range(reps):
        flush.zero_()
        torch.cuda._sleep(cycles)
        start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
        start.record()
        fn()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in events)


def copy_bandwidth(device: str, mib: int, reps: int) -> float:
    """Device-to-device copy bandwidth in bytes/s (read + write counted)."""
    n = mib * 2**20
    src = torch.empty(n, dtype=torch.uint8, device=device).random_(0, 255)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, reps, warmup=3)
    return 2 * n / (ms * 1e-3)


def make_paths(conv: torch.nn.Conv1d, device: str
               ) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """``{"conv1d": f, "triton": f}``: u (B, T, C) bf16 -> y (B, T, C) contiguous, under
    autocast as in the model."""
    from bkmodel.ops.causal_conv import causal_conv1d

    dev_type = torch.device(device).type

    def conv1d(u: torch.Tensor) -> torch.Tensor:
        T = u.shape[1]
        with torch.autocast(dev_type, dtype=torch.bfloat16, cache_enabled=False):
            return conv(u.transpose(1, 2))[..., :T].transpose(1, 2).contiguous()

    def triton(u: torch.Tensor) -> torch.Tensor:
        with torch.autocast(dev_type, dtype=torch.bfloat16, cache_enabled=False):
            return causal_conv1d(u, conv.weight, conv.bias, backend="triton")

    return {"conv1d": conv1d, "triton": triton}


def bench_shape(shape: tuple[int, int, int, int], args: argparse.Namespace,
                bw: float) -> dict[str, Any]:
    """Check and time both paths at one shape; the row of the results file."""
    from bkmodel.ops.causal_conv import causal_conv1d_naive

    B, T, C, K = shape
    dev = args.device
    gen = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv1d(C, C, K, groups=C, padding=K - 1).to(dev)  # float32 parameters
    u = torch.randn(B, T, C, generator=gen).to(dev, torch.bfloat16).requires_grad_()
    dy = torch.randn(B, T, C, generator=gen).to(dev, torch.bfloat16)
    params = [conv.weight, conv.bias]

    x64 = [t.detach().double().requires_grad_() for t in (u, *params)]
    y64 = causal_conv1d_naive(*x64)
    ref = [y64.detach(), *torch.autograd.grad(y64, x64, dy.double())]

    N = B * T * C
    fwd_bytes = 2 * N * 2 + 5 * C * 4  # read u, write y (bf16); weight + bias
    bwd_bytes = 3 * N * 2 + 10 * C * 4  # read dy, u; write du; weight, dw, dbias
    row: dict[str, Any] = {
        "B": B, "T": T, "C": C, "K": K, "dtype": "bfloat16 (float32 parameters, autocast)",
        "reference": "causal_conv1d_naive float64", "tol": args.tol,
        "ideal_ms": {"fwd": 1e3 * fwd_bytes / bw, "fwd_bwd": 1e3 * (fwd_bytes + bwd_bytes) / bw},
        "paths": {}}
    print(f"B={B} T={T} C={C} K={K} (bf16; ideal fwd {row['ideal_ms']['fwd']:.4f} ms, "
          f"fwd+bwd {row['ideal_ms']['fwd_bwd']:.4f} ms at the copy bandwidth)", flush=True)
    for name, f in make_paths(conv, dev).items():
        res: dict[str, Any] = {}
        row["paths"][name] = res
        y = f(u)
        out = [y.detach(), *torch.autograd.grad(y, [u, *params], dy)]
        res["rel_err"] = {n: rel(o, r) for n, o, r in zip(NAMES, out, ref, strict=True)}
        res["contiguous"] = y.is_contiguous()
        res["correct"] = all(e <= args.tol for e in res["rel_err"].values()) and \
            tuple(y.shape) == (B, T, C) and y.dtype == torch.bfloat16
        if not res["correct"]:
            print(f"  {name:<7} FAILED the float64 check, not timed: "
                  + " ".join(f"{n}={e:.1e}" for n, e in res["rel_err"].items()), flush=True)
            continue

        def fwd(f=f):
            return f(u)

        def fwd_bwd(f=f):
            return torch.autograd.grad(f(u), [u, *params], dy)

        kinds = {"eager": time_ms}
        if dev.startswith("cuda"):
            kinds = {"gpu": gpu_ms, **kinds}
        res["ms"] = {kind: {"fwd": t(fwd, dev, args.reps, args.warmup),
                            "fwd_bwd": t(fwd_bwd, dev, args.reps, args.warmup)}
                     for kind, t in kinds.items()}
        res["fraction_of_ideal"] = {kind: {k: row["ideal_ms"][k] / v for k, v in ms.items()}
                                    for kind, ms in res["ms"].items()}
    tri, ref_path = row["paths"]["triton"].get("ms"), row["paths"]["conv1d"].get("ms")
    if tri and ref_path:
        row["speedup_conv1d_over_triton"] = {
            kind: {k: ref_path[kind][k] / tri[kind][k] for k in tri[kind]} for kind in tri}
    note = "" if dev.startswith("cuda") else "  (Triton interpreter: times mean nothing)"
    for name, res in row["paths"].items():
        for kind, ms in res.get("ms", {}).items():
            print(f"  {name:<7} {kind:<5} fwd {ms['fwd']:8.4f} ms  fwd+bwd {ms['fwd_bwd']:8.4f} "
                  f"ms  max rel err {max(res['rel_err'].values()):.1e}"
                  + (note if name == "triton" else ""), flush=True)
    for kind, sp in row.get("speedup_conv1d_over_triton", {}).items():
        print(f"  ratio conv1d / triton ({kind}): fwd x{sp['fwd']:.2f}  fwd+bwd "
              f"x{sp['fwd_bwd']:.2f}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="tiny shapes (a smoke test)")
    p.add_argument("--shapes", default=None, help="'B,T,C,K;...' (default: the model's)")
    p.add_argument("--tol", type=float, default=1e-2,
                   help="relative RMS tolerance of y, du, dw, dbias vs float64")
    p.add_argument("--reps", type=int, default=None, help="timed calls (100 cuda, 3 cpu)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls (10 cuda, 1 cpu)")
    p.add_argument("--copy-mib", type=int, default=None,
                   help="MiB copied to measure the bandwidth (1024 cuda, 64 cpu)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    if not cuda:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before anything imports triton
    args.reps = args.reps or (100 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    args.copy_mib = args.copy_mib or (1024 if cuda else 64)
    if args.shapes:
        try:
            shapes = [tuple(int(x) for x in s.split(",")) for s in args.shapes.split(";")]
        except ValueError:
            p.error(f"--shapes must be 'B,T,C,K;...', got {args.shapes!r}")
        if any(len(s) != 4 for s in shapes):
            p.error(f"--shapes must be 'B,T,C,K;...', got {args.shapes!r}")
    elif args.quick or not cuda:
        shapes = QUICK_SHAPES
    else:
        shapes = GPU_SHAPES
    bw = copy_bandwidth(args.device, args.copy_mib, reps=max(5, args.reps // 5))
    print(f"device-to-device copy bandwidth: {bw / 1e9:.1f} GB/s", flush=True)
    doc: dict[str, Any] = {
        "benchmark": "bench_causal_conv", **run_header(args), "copy_bandwidth_GBps": bw / 1e9,
        "note": "median ms (gpu: device time, eager: one synchronous eager call); "
                "speedup = conv1d ms / triton ms in this run; ideal = minimal bf16 traffic at "
                "the measured copy bandwidth", "rows": []}
    for shape in shapes:
        doc["rows"].append(bench_shape(shape, args, bw))  # type: ignore[arg-type]
    write_device_result(doc, args.out, "bench_causal_conv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
