"""Benchmark of the Triton BK scan (forward + exact backward) on a CUDA GPU.

Shape (issue 7): 65,536 tokens per step, B × N = 65,536 for N = 2,048 … 65,536 (at
N = 131,072 the batch is 1, i.e. 131,072 tokens), C = 1,024 channels. Printed and saved:

* forward and forward + backward time (``triton.testing.do_bench``, median), eager and
  replayed from a CUDA graph (the GPU time without Python launch overhead);
* achieved bandwidth as a fraction of a device-to-device copy measured in the same run, for
  the issue's byte count (read v, write g; read dg, write dv) and for the bytes the kernels
  actually move (chunk passes re-read their inputs; the backward reads v to recompute g and
  the stored g once per group of rows), and the roof set by the measured one-way read and
  write bandwidths for those bytes;
* the ratio to causal ``scaled_dot_product_attention`` (bf16, 16 heads × 64, forward +
  backward) at the same tokens, and to the torch reference (``torch_scan.py``);
* next to every per-channel row, a **selective** row (issue 13): eta and b per token,
  (B, N, C) in the dtype of v (bf16 v, eta, b in the bf16 rows), forward + backward (eager
  and CUDA graph) and forward alone, with its ratio to the per-channel kernel and to its
  own roof (the per-token kernels read eta and b next to v and write deta and db next to
  dv: 35 bytes per element instead of 23 for bf16 with one chunk). ``--no-selective``
  skips them.

Correctness is checked first (forward values and all four gradients against the float64
references, stiff cases included); if it fails, no speed-up is reported and the script
exits with status 1. Results go to ``benchmarks/results/bench_kernel_<device>_<date>.json``.

Usage::

    PYTHONPATH=. python benchmarks/bench_kernel.py [--ns 2048 8192 ...] [--sweep] [--out DIR]
        [--no-selective] [--sweep-tok]

Measured (H100 80GB HBM3, torch 2.11, triton 3.6, 2026-11-24; copy 3.02 TB/s, read-only
3.06, write-only 3.29; ``bench_kernel_NVIDIA-H100-80GB-HBM3_2026-11-24.json``): forward +
backward in ms per 65,536 tokens, GPU time of a CUDA-graph replay (eager wall time in
brackets: it adds the Python launch overhead of 2-6 Triton launches and ~8 torch ops,
0.66-1.16 ms per call on that host, measured by ``profile_kernel.py --host``)::

    N        B  chunks f/b  bf16 v          fp32 v          roof bf16  bf16/SDPA  fp32/torch_scan
    2048     32    1/1      0.707 (0.919)   0.854 (0.862)   0.489      x4.0          x34
    4096     16    8/4      0.858 (1.323)   1.013 (1.023)   0.692      x5.7          x33
    8192      8   16/8      0.880 (0.893)   1.043 (1.060)   0.722      x10           x39
    16384     4   32/16     0.891 (0.975)   1.061 (1.079)   0.737      x20           x51
    32768     2   64/32     0.908 (0.923)   1.076 (1.091)   0.744      x38           x59
    65536     1  128/64     0.919 (0.933)   1.102 (1.114)   0.748      x74           x71
    131072    1  128/64     0.889 (0.894)   1.057 (1.063)   0.748      x160          x67

(131,072: one sequence of 131,072 tokens, halved.) "roof" is the time to move the bytes the
kernels move at the measured one-way read and write bandwidths; bf16 runs at 0.81-0.84 of
it for N >= 4,096 (0.69 at 2,048, one chunk: 512 programs of one warp do not keep enough
loads in flight), fp32 at 0.87-0.91. The target (<= 1.0 ms) holds for bf16 v at every N in
GPU time; fp32 v moves 10-12 more bytes per element and takes 1.01-1.10 ms for N >= 4,096.
Eager wall times are host-bound when the host is slow: the same N measured 0.89-1.17 ms
eager in two runs an hour apart. History: the first version re-read the stored g in the
backward (bf16: 1.13-1.21 ms for N >= 8,192; sweeps 0-2); recomputing g from v in groups of
8 rows (sweeps 3-4) and the instruction-bound forward chunk map (rescaled every 4 rows,
no masks) gave the numbers above. Earlier: rows loaded 4 ahead through rotating registers
ran at ~1.1 TB/s (a register move of a pending load stalls the warp); tiles of T rows
picked by select+sum were slower still (sweep0).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import re
import sys
from pathlib import Path

import torch


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _params(C: int, device, *, stiff: bool = False, seed: int = 0):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    lam = (torch.rand(C, generator=gen) * 4.0 - 0.5).to(device)  # in and around the band
    eta = (torch.rand(C, generator=gen) * 0.5 + 0.05).to(device)
    if stiff:
        eta = torch.full((C,), 1e-4, device=device)
    b = (torch.rand(C, generator=gen) * 0.5 + 0.75).to(device)
    return lam, eta, b


def _token_params(B: int, N: int, C: int, device, dtype, *, stiff: bool = False, seed: int = 0):
    """Per-token eta and b (B, N, C) in ``dtype``, drawn like ``_params`` (eta in
    [0.05, 0.55), or in [1e-4, 1e-3) when stiff; b in [0.75, 1.25))."""
    gen = torch.Generator(device=device).manual_seed(seed)
    u = torch.rand(B, N, C, generator=gen, device=device)
    eta = 1e-4 + 9e-4 * u if stiff else 0.05 + 0.5 * u
    b = 0.75 + 0.5 * torch.rand(B, N, C, generator=gen, device=device)
    return eta.to(dtype), b.to(dtype)


def traffic(elems: int, sv: int, K: int, Kb: int, group: int, per_token: bool):
    """(ideal, reads, writes) bytes of one forward + backward.

    ``sv`` bytes per element of v (and of per-token eta and b). Ideal (the issue's count):
    read the inputs, write g; read dg, write the input gradients. Actual: the forward reads
    the inputs once per pass (chunk maps when K > 1, then the main pass) and writes g; the
    backward reads the inputs and dG once per pass (chunk maps when Kb > 1, then the main
    pass, which also reads the stored g once per group of rows) and writes the gradients.
    Per token the inputs are v, eta, b (3 sv), per channel v alone."""
    n_in = 3 if per_token else 1
    x = n_in * sv
    ideal = elems * (x + 8 + 8 + x)
    reads = elems * (x * (K - 1) / K + x + (x + 8) * (Kb - 1) / Kb + x + 8 + 8 / group)
    writes = elems * (8 + x)
    return ideal, reads, writes


def correctness(device, log) -> tuple[bool, list[dict]]:
    """Triton (float32) vs the float64 naive reference and vs the float32 naive loop.

    Tolerance: the Triton error must stay within 10 × the error of the same recurrence run
    sequentially in float32 (``bk_scan_naive`` on float32 input) plus 1e-5: chunking and
    reassociation may not cost more than a small factor over the unavoidable float32
    rounding of the recurrence, whose conditioning (stiff cases) sets both errors.
    """
    from bkmodel.ops.bk_scan.naive import bk_scan_naive
    from bkmodel.ops.bk_scan.triton_scan import bk_scan_triton

    cases = [
        dict(name="B3-N1000-C256", B=3, N=1000, C=256, chunk=None, scale=1.0, stiff=False),
        dict(name="B3-N1000-C256-sel", B=3, N=1000, C=256, chunk=None, scale=1.0, stiff=False,
             tok=True),
        dict(name="B2-N777-C130-stiff-sel", B=2, N=777, C=130, chunk=50, scale=1.0, stiff=True,
             tok=True),
        dict(name="B1-N4096-C64-auto-sel", B=1, N=4096, C=64, chunk=None, scale=1.0, stiff=False,
             tok=True),
        dict(name="B3-N1000-C256-chunk37", B=3, N=1000, C=256, chunk=37, scale=1.0, stiff=False),
        dict(name="B2-N777-C130-stiff", B=2, N=777, C=130, chunk=50, scale=1.0, stiff=True),
        dict(name="B2-N777-C130-bigV", B=2, N=777, C=130, chunk=50, scale=30.0, stiff=False),
        dict(name="B1-N4096-C64-auto", B=1, N=4096, C=64, chunk=None, scale=1.0, stiff=True),
    ]
    ok_all = True
    rows = []
    for c in cases:
        torch.manual_seed(1)
        v = (torch.randn(c["B"], c["N"], c["C"], device=device) * c["scale"]).requires_grad_()
        lam, eta, b = _params(c["C"], device, stiff=c["stiff"])
        if c.get("tok"):
            eta, b = _token_params(c["B"], c["N"], c["C"], device, torch.float32,
                                   stiff=c["stiff"])
        lam, eta, b = (t.requires_grad_() for t in (lam, eta, b))
        W1 = torch.randn_like(v, dtype=torch.float64)
        W2 = torch.randn_like(v, dtype=torch.float64)

        def run(fn, xs, dt, W1=W1, W2=W2):
            xs = [x.detach().to(dt).requires_grad_() for x in xs]
            gr, gi = fn(*xs)[:2]
            (gr.double() * W1 + gi.double() * W2).sum().backward()
            return [gr.detach(), gi.detach()] + [x.grad for x in xs]

        ref = run(bk_scan_naive, (v, lam, eta, b), torch.float64)
        n32 = run(bk_scan_naive, (v, lam, eta, b), torch.float32)
        tri = run(
            lambda *a, ch=c["chunk"]: bk_scan_triton(*a, chunk=ch), (v, lam, eta, b), torch.float32
        )
        names = ["g_re", "g_im", "dv", "dlam", "deta", "db"]
        errs = {n: _rel(t, r) for n, t, r in zip(names, tri, ref, strict=True)}
        errs32 = {n: _rel(t, r) for n, t, r in zip(names, n32, ref, strict=True)}
        ok = all(math.isfinite(errs[n]) and errs[n] <= 10 * errs32[n] + 1e-5 for n in names)
        ok_all &= ok
        rows.append(dict(case=c["name"], ok=ok, triton_rel_err=errs, naive_fp32_rel_err=errs32))
        log(
            f"  {c['name']:<26} {'ok ' if ok else 'FAIL'} "
            + " ".join(f"{n}={errs[n]:.1e}({errs32[n]:.1e})" for n in names)
        )
    return ok_all, rows


def bench(fn, *, warmup=25, rep=100, grad_to_none=None) -> float:
    """Median time in ms; ``grad_to_none`` tensors get ``.grad = None`` before every call, so
    that no gradient accumulation (an extra pass over the data) is timed."""
    import triton.testing

    return float(
        triton.testing.do_bench(
            fn, warmup=warmup, rep=rep, grad_to_none=grad_to_none, return_mode="median"
        )
    )


def copy_bandwidth(device) -> float:
    """Bytes read + written per second by a 2 GiB device-to-device copy."""
    n = 2**29  # float32 elements: 2 GiB
    x = torch.randn(n, device=device)
    y = torch.empty_like(x)
    t = bench(lambda: y.copy_(x))
    return 2 * n * 4 / (t * 1e-3)


def read_write_bandwidth(device) -> tuple[float, float]:
    """Bytes per second of a read-only pass (``sum`` of 2 GiB) and of a write-only pass
    (``fill_`` of 2 GiB): the forward writes 4× more than it reads (bf16 v), so the copy's
    50/50 mix is not its roof."""
    n = 2**29
    x = torch.randn(n, device=device)
    t_r = bench(lambda: x.sum())
    t_w = bench(lambda: x.fill_(1.0))
    return n * 4 / (t_r * 1e-3), n * 4 / (t_w * 1e-3)


def sdpa_ms(B: int, N: int, device) -> float:
    import torch.nn.functional as F

    q, k, v = (
        torch.randn(B, 16, N, 64, device=device, dtype=torch.bfloat16, requires_grad=True)
        for _ in range(3)
    )
    do = torch.randn(B, 16, N, 64, device=device, dtype=torch.bfloat16)

    def step():
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        o.backward(do)

    return bench(step, warmup=50, rep=300 if N >= 65536 else 100, grad_to_none=[q, k, v])


def graph_ms(step, v, extra=()) -> float | None:
    """Median GPU time of ``step`` replayed from a CUDA graph (no host launch overhead):
    the kernels' own time. None if the step cannot be captured. ``v`` and the ``extra``
    leaves get ``.grad = None`` before the capture (no accumulation is timed)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    leaves = (v, *extra)
    try:
        with torch.cuda.stream(s):
            for _ in range(3):  # warm up on the side stream (autotuning, allocator)
                for x in leaves:
                    x.grad = None
                step()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        for x in leaves:
            x.grad = None
        with torch.cuda.graph(graph):
            step()
    except RuntimeError as e:  # noqa: BLE001  (report, do not fail the benchmark)
        print(f"    CUDA graph capture failed: {e}", file=sys.stderr)
        return None
    return bench(graph.replay)


def scan_step_fn(scan, v, lam, eta, b, dgr, dgi):
    def step():
        gr, gi = scan(v, lam, eta, b)[:2]
        torch.autograd.backward((gr, gi), (dgr, dgi))

    return step


GRID = [
    (depth, bc, nw, tp)
    for depth in (4, 8)
    for bc, nw in ((32, 1), (64, 1), (128, 1))
    for tp in (1, 256, 512, 1024, 2048, 4096)
]


def sweep(rows: list, v, lam, eta, b, dgr, dgi, log, directions=("fwd", "bwd"),
          tag: str = "per-channel") -> None:
    """Time the forward and the backward alone over a grid of launch configurations
    (per-token eta and b when they are (B, N, C): ``tag`` names the kernels in the rows)."""
    from bkmodel.ops.bk_scan.triton_scan import ScanConfig, _plan, _scan_backward, _scan_forward

    B, N, C = v.shape
    vd = v.detach()
    beta = b if b.ndim == 3 else b.square()  # per token the kernels square b
    best = {}
    ref_g = _scan_forward(vd, lam, eta, beta, stats=False, tol=1e-3)
    ref_dv = _scan_backward(vd, lam, eta, beta, ref_g[0], ref_g[1], dgr, dgi)[0]
    for direction in directions:
        for depth, bc, nw, tp in GRID:
            cfg = ScanConfig(block_c=bc, num_warps=nw, target_programs=tp, group=depth)
            _, L, K = _plan(B, N, C, cfg, None)
            if direction == "fwd":
                fn = lambda cfg=cfg: _scan_forward(  # noqa: E731
                    vd, lam, eta, beta, stats=False, tol=1e-3, cfg=cfg
                )
            else:
                gr, gi, _ = _scan_forward(vd, lam, eta, beta, stats=False, tol=1e-3)
                fn = lambda cfg=cfg, gr=gr, gi=gi: _scan_backward(  # noqa: E731
                    vd, lam, eta, beta, gr, gi, dgr, dgi, cfg=cfg
                )
            try:
                out = fn()
                err = (
                    max(_rel(out[0], ref_g[0]), _rel(out[1], ref_g[1]))
                    if direction == "fwd"
                    else _rel(out[0], ref_dv)
                )
                t = bench(fn, warmup=5, rep=25)
            except Exception as e:  # noqa: BLE001  (a config that does not compile)
                log(f"    {direction} {cfg} failed: {type(e).__name__}: {str(e)[:200]}")
                continue
            row = dict(direction=direction, kernels=tag, N=N, B=B, depth=depth, block_c=bc,
                       num_warps=nw,
                       target_programs=tp, chunks=K, chunk_len=L, ms=t,
                       rel_err_vs_default=err)  # fmt: skip
            rows.append(row)
            if err < 1e-4 and (direction not in best or t < best[direction]["ms"]):
                best[direction] = row
    for d in directions:
        log(f"    sweep best {tag} {d}: {best.get(d)}")


def selective_row(chan: dict, v, lam, dgr, dgi, dt, bw, bw_r, bw_w, ok) -> dict:
    """Time the selective scan (per-token eta and b in the dtype of v) at the shape of the
    per-channel row ``chan`` (same v, lam and incoming gradients) and return its row, with
    the ratios to the per-channel kernel and to its own roof."""
    from bkmodel.ops.bk_scan.triton_scan import (
        _BKScanTriton,
        _default_config,
        _plan,
        bk_scan_triton,
    )

    B, N, C = v.shape
    eta_t, b_t = (t.requires_grad_() for t in _token_params(B, N, C, v.device, dt))
    raw = scan_step_fn(bk_scan_triton, v, lam, eta_t, b_t, dgr, dgi)
    t_raw = bench(raw, grad_to_none=[v, eta_t, b_t])
    t_graph = graph_ms(raw, v, extra=(eta_t, b_t))
    with torch.no_grad():
        t_fwd = bench(lambda: _BKScanTriton.apply(v, lam, eta_t, b_t, False, 1e-3, None, None))
    cfg_f, cfg_b = _default_config(v.device, B, C, per_token=True)
    _, L, K = _plan(B, N, C, cfg_f, None)
    _, Lb, Kb = _plan(B, N, C, cfg_b, None)
    sv = torch.finfo(dt).bits // 8
    ideal, reads, writes = traffic(B * N * C, sv, K, Kb, cfg_b.group, per_token=True)
    roof_ms = 1e3 * (reads / bw_r + writes / bw_w)
    g_chan = chan["fwd_bwd_cuda_graph_ms"]
    row = dict(
        N=N, B=B, C=C, dtype=chan["dtype"], selective=True, chunks_fwd=K, chunks_bwd=Kb,
        config_fwd=str(cfg_f), config_bwd=str(cfg_b),
        fwd_bwd_ms=t_raw, fwd_ms=t_fwd, fwd_bwd_cuda_graph_ms=t_graph,
        ideal_bytes=ideal, actual_bytes=reads + writes,
        actual_read_bytes=reads, actual_write_bytes=writes, roof_ms=roof_ms,
        roof_frac=roof_ms / t_raw,
        roof_frac_graph=None if t_graph is None else roof_ms / t_graph,
        ideal_bw_frac_of_copy=ideal / (t_raw * 1e-3) / bw,
        actual_bw_frac_of_copy=(reads + writes) / (t_raw * 1e-3) / bw,
        ratio_vs_per_channel=t_raw / chan["fwd_bwd_ms"],
        ratio_vs_per_channel_graph=(None if t_graph is None or g_chan is None
                                    else t_graph / g_chan),
        fwd_ratio_vs_per_channel=t_fwd / chan["fwd_ms"],
        bytes_ratio_vs_per_channel=(reads + writes) / chan["actual_bytes"],
        ms_per_65536_tokens=t_raw * 65536 / (B * N), correctness_ok=ok,
    )  # fmt: skip
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--ns", type=int, nargs="+", default=[2048, 4096, 8192, 16384, 32768, 65536, 131072]
    )
    p.add_argument("--tokens", type=int, default=65536)
    p.add_argument("--channels", type=int, default=1024)
    p.add_argument("--dtypes", nargs="+", default=["bf16", "fp32"])
    p.add_argument("--sweep", action="store_true", help="also time a grid of launch configs")
    p.add_argument("--sweep-ns", type=int, nargs="+", default=[2048, 8192, 32768, 131072])
    p.add_argument("--sweep-dirs", nargs="+", default=["fwd", "bwd"], choices=["fwd", "bwd"])
    p.add_argument("--tag", default="", help="inserted in the result file's name")
    p.add_argument("--no-sdpa", action="store_true")
    p.add_argument("--no-torch-ref", action="store_true")
    p.add_argument("--no-selective", action="store_true",
                   help="skip the per-token (selective) rows")
    p.add_argument("--sweep-tok", action="store_true",
                   help="with --sweep: sweep the per-token kernels' launch grid too")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_kernel: needs a CUDA device", file=sys.stderr)
        return 2
    import triton

    from bkmodel.ops.bk_scan.torch_scan import bk_scan_torch
    from bkmodel.ops.bk_scan.triton_scan import (
        _BKScanTriton,
        _default_config,
        _plan,
        bk_scan_triton,
    )

    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    name = props.name
    date = _dt.datetime.now(_dt.timezone.utc)
    lines: list[str] = []

    def log(s: str) -> None:
        print(s, flush=True)
        lines.append(s)

    log(f"device {name}, {props.multi_processor_count} SMs; torch {torch.__version__}, "
        f"triton {triton.__version__}; {date.isoformat(timespec='seconds')}")  # fmt: skip
    bw = copy_bandwidth(dev)
    log(f"device-to-device copy: {bw / 1e12:.3f} TB/s (read + write)")
    bw_r, bw_w = read_write_bandwidth(dev)
    log(f"read-only {bw_r / 1e12:.3f} TB/s, write-only {bw_w / 1e12:.3f} TB/s")
    log("correctness (rel. error of triton fp32; in brackets the sequential fp32 loop's):")
    ok, corr = correctness(dev, log)
    result: dict = dict(
        device=name, sms=props.multi_processor_count, date=date.isoformat(timespec="seconds"),
        torch=torch.__version__, triton=triton.__version__, copy_bandwidth_Bps=bw,
        read_bandwidth_Bps=bw_r, write_bandwidth_Bps=bw_w,
        correctness_ok=ok, correctness=corr, tokens=args.tokens, channels=args.channels,
        runs=[], sweep=[],
    )  # fmt: skip
    C = args.channels
    lam, eta, b = _params(C, dev)
    for N in args.ns:
        B = max(1, args.tokens // N)
        sd = None if args.no_sdpa else sdpa_ms(B, N, dev)
        for dname in args.dtypes:
            dt = {"bf16": torch.bfloat16, "fp32": torch.float32}[dname]
            sv = torch.finfo(dt).bits // 8
            torch.manual_seed(0)
            v = torch.randn(B, N, C, device=dev, dtype=dt).requires_grad_()
            dgr, dgi = (torch.randn(B, N, C, device=dev) for _ in range(2))
            pub = scan_step_fn(
                lambda *a: bk_scan_triton(*a, validate=True), v, lam, eta, b, dgr, dgi
            )
            raw = scan_step_fn(bk_scan_triton, v, lam, eta, b, dgr, dgi)  # default: no sync
            t_pub = bench(pub, grad_to_none=[v])
            t_raw = bench(raw, grad_to_none=[v])
            t_graph = graph_ms(raw, v)
            with torch.no_grad():
                t_fwd = bench(
                    lambda v=v: _BKScanTriton.apply(v, lam, eta, b, False, 1e-3, None, None)
                )
            cfg_f, cfg_b = _default_config(dev, B, C)
            _, L, K = _plan(B, N, C, cfg_f, None)
            _, Lb, Kb = _plan(B, N, C, cfg_b, None)
            elems = B * N * C
            # forward: (map pass: v) + v + g; backward: (map pass: v, G) + v + G + dv, and
            # the stored g once per group of rows (g is recomputed from v inside a group)
            ideal, reads, writes = traffic(elems, sv, K, Kb, cfg_b.group, per_token=False)
            actual = reads + writes
            roof_ms = 1e3 * (reads / bw_r + writes / bw_w)  # at the measured one-way rates
            t_ref = None
            if not args.no_torch_ref and dname == "fp32":
                try:
                    ref = scan_step_fn(bk_scan_torch, v, lam, eta, b, dgr, dgi)
                    t_ref = bench(ref, warmup=1, rep=1, grad_to_none=[v])  # slow: few reps
                except torch.OutOfMemoryError:
                    t_ref = None
                torch.cuda.empty_cache()
            row = dict(
                N=N, B=B, C=C, dtype=dname, selective=False, chunks_fwd=K, chunks_bwd=Kb,
                config_fwd=str(cfg_f), config_bwd=str(cfg_b),
                fwd_bwd_ms=t_raw, fwd_bwd_validate_true_ms=t_pub, fwd_ms=t_fwd,
                fwd_bwd_cuda_graph_ms=t_graph,
                ideal_bytes=ideal, actual_bytes=actual,
                ideal_bw_frac_of_copy=ideal / (t_raw * 1e-3) / bw,
                actual_bw_frac_of_copy=actual / (t_raw * 1e-3) / bw,
                actual_read_bytes=reads, actual_write_bytes=writes, roof_ms=roof_ms,
                roof_frac=roof_ms / t_raw,
                sdpa_fwd_bwd_ms=sd, torch_ref_fwd_bwd_ms=t_ref,
                ms_per_65536_tokens=t_raw * 65536 / (B * N),
            )  # fmt: skip
            if ok:
                row["speedup_vs_sdpa"] = None if sd is None else sd / t_raw
                row["speedup_vs_torch_ref"] = None if t_ref is None else t_ref / t_raw
            result["runs"].append(row)
            log(
                f"N={N:>6} B={B:>2} {dname}: K={K:>3}/{Kb:>3} fwd+bwd {t_raw:7.3f} ms "
                + (f"(CUDA graph {t_graph:6.3f}) " if t_graph is not None else "")
                + f"(validate=True {t_pub:7.3f}, fwd {t_fwd:6.3f}); BW/copy ideal "
                f"{row['ideal_bw_frac_of_copy']:.2f} actual {row['actual_bw_frac_of_copy']:.2f}"
                f"; roof {roof_ms:.3f} ms ({roof_ms / t_raw:.2f})"
                + (f"; sdpa {sd:8.2f} ms" if sd is not None else "")
                + (f" x{sd / t_raw:7.1f}" if ok and sd is not None else "")
                + (f"; torch ref {t_ref:8.2f} ms" if t_ref is not None else "")
                + (f" x{t_ref / t_raw:6.1f}" if ok and t_ref is not None else "")
            )
            if args.sweep and dname == "bf16" and N in args.sweep_ns:
                sweep(result["sweep"], v, lam, eta, b, dgr, dgi, log, args.sweep_dirs)
            if not args.no_selective:
                sel = selective_row(row, v, lam, dgr, dgi, dt, bw, bw_r, bw_w, ok)
                result["runs"].append(sel)
                torch.cuda.empty_cache()
                log(
                    f"N={N:>6} B={B:>2} {dname} selective: K={sel['chunks_fwd']:>3}/"
                    f"{sel['chunks_bwd']:>3} fwd+bwd {sel['fwd_bwd_ms']:7.3f} ms "
                    + (f"(CUDA graph {sel['fwd_bwd_cuda_graph_ms']:6.3f}) "
                       if sel["fwd_bwd_cuda_graph_ms"] is not None else "")
                    + f"(fwd {sel['fwd_ms']:6.3f}); x{sel['ratio_vs_per_channel']:.2f} the "
                    f"per-channel kernel (graph x{sel['ratio_vs_per_channel_graph'] or 0:.2f}, "
                    f"fwd x{sel['fwd_ratio_vs_per_channel']:.2f}); roof {sel['roof_ms']:.3f} ms "
                    f"({sel['roof_frac']:.2f}; graph {sel['roof_frac_graph'] or 0:.2f}); BW/copy "
                    f"actual {sel['actual_bw_frac_of_copy']:.2f}"
                )
                if args.sweep and args.sweep_tok and dname == "bf16" and N in args.sweep_ns:
                    eta_t, b_t = _token_params(B, N, C, dev, dt)
                    sweep(result["sweep"], v, lam, eta_t, b_t, dgr, dgi, log, args.sweep_dirs,
                          tag="selective")
                    del eta_t, b_t
            del v, dgr, dgi
            torch.cuda.empty_cache()
    result["log"] = lines
    if not ok:
        log("CORRECTNESS FAILED: no speed-up reported")
    dev_tag = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    tag = f"{args.tag}_" if args.tag else ""
    out = args.out / f"bench_kernel_{tag}{dev_tag}_{date.strftime('%Y-%m-%d')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    log(f"wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
