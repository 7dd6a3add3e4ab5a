"""Benchmark: the single-pass (decoupled look-back) BK scan forward against the 3-kernel one.

Issue 14's target: forward only, bf16 v, 65,536 tokens × 1,024 channels, <= 0.2 ms on an
H200. For every N in ``--ns`` (default 2,048, 8,192, 32,768, 131,072) with B = tokens // N
(at least 1: N = 131,072 is one sequence of 131,072 tokens) and C = ``--channels``:

1. correctness first — ``bk_scan_triton_onepass`` on bf16 v against the float64 reference
   (``bk_scan_torch``, the chunked torch scan, on the same rounded potentials) on a slice
   of 64 channels at the full N (so every chunk of the chain is there), and against
   ``bk_scan_triton``'s forward at the full size; no NaN, no look-back timeout. If any
   check fails the script prints why, writes the JSON with ``correctness_ok: false`` and
   exits 1 without timing;
2. the forward of ``bk_scan_triton_onepass`` and of ``bk_scan_triton`` (under
   ``torch.no_grad``): median of ``triton.testing.do_bench``, eager (host overhead
   included) and replayed from a CUDA graph (GPU time only);
3. a 2 GiB device-to-device copy for the bandwidth roof: the ideal bytes of the forward
   (read v, eta, b, write Re g, Im g in float32) over the copy's read + write rate; printed
   as ms, the fraction of that roof reached, and the ratio one-pass / three-kernel.

``--selective`` adds per-token eta and b (bf16, (B, N, C): 4 more bytes read per element).
``--sweep`` also times the one-pass kernel over a grid of launch shapes (channels per
program × target number of programs; each checked against the default first).

Results: ``benchmarks/results/bench_scan_onepass_<device>_<date>.json``.

On a machine without CUDA, ``--smoke`` runs a tiny size in Triton's interpreter (the same
code path: checks, timings of no meaning, JSON written to a temporary file) — a check that
the script runs, not a measurement.

Usage::

    python benchmarks/bench_scan_onepass.py              # CUDA: the table above
    python benchmarks/bench_scan_onepass.py --sweep --selective
    python benchmarks/bench_scan_onepass.py --smoke      # CPU interpreter smoke check
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

if not torch.cuda.is_available():  # before anything imports triton: the interpreter
    os.environ.setdefault("TRITON_INTERPRET", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import run_header, write_result  # noqa: E402

from bkmodel.ops.bk_scan.torch_scan import bk_scan_torch  # noqa: E402
from bkmodel.ops.bk_scan.triton_onepass import (  # noqa: E402
    _CPU,
    _GPU,
    OnepassConfig,
    _onepass_forward,
    _plan_onepass,
    _workspace_header,
    bk_scan_triton_onepass,
)
from bkmodel.ops.bk_scan.triton_scan import bk_scan_triton  # noqa: E402

# (block_c, num_warps, chunk, look-back window); chunk None: one chunk per chain (no
# look-back); window None: one flag per thread (32 · num_warps)
SWEEP = [(bc, 1, L, None) for bc in (32, 64, 128) for L in (32, 64, 128, 256, 512, None)]
SWEEP += [(128, 2, 64, None), (128, 2, 128, None), (256, 2, 64, None), (256, 4, 64, None)]
SWEEP += [(64, 1, 64, 1), (64, 1, 64, 8), (64, 1, 256, 1)]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative RMS error ||a - b|| / ||b|| in float64."""
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def inputs(B: int, N: int, C: int, device, *, selective: bool, seed: int = 0):
    """bf16 v ~ N(0, 1); lam in [-0.5, 3.5), eta in [0.05, 0.55), b in [0.75, 1.25): float32
    (C,), or bf16 (B, N, C) when selective."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    lam = (torch.rand(C, generator=gen) * 4.0 - 0.5).to(device)
    if selective:
        eta = (torch.rand(B, N, C, generator=gen) * 0.5 + 0.05).to(device, torch.bfloat16)
        b = (torch.rand(B, N, C, generator=gen) * 0.5 + 0.75).to(device, torch.bfloat16)
    else:
        eta = (torch.rand(C, generator=gen) * 0.5 + 0.05).to(device)
        b = (torch.rand(C, generator=gen) * 0.5 + 0.75).to(device)
    v = torch.randn(B, N, C, generator=gen).to(device, torch.bfloat16)
    return v, lam, eta, b


def timer(device):
    """ms of fn(): ``triton.testing.do_bench`` (median) on CUDA, wall time (min of 3)
    elsewhere."""
    if device.type == "cuda":
        import triton.testing

        return lambda fn: float(triton.testing.do_bench(fn, warmup=25, rep=100,
                                                        return_mode="median"))

    def wall(fn):
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return 1e3 * min(ts)

    return wall


def graph_ms(fn, device, ms) -> float | None:
    """GPU time of fn() replayed from a CUDA graph (no host overhead); None if not CUDA or
    the capture fails. Warm-up and capture on one side stream, so that the one-pass
    workspace (cached per stream) exists before the capture."""
    if device.type != "cuda":
        return None
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    try:
        with torch.cuda.stream(s):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=s):
            fn()
    except RuntimeError as e:  # report, do not fail the benchmark
        print(f"    CUDA graph capture failed: {e}", file=sys.stderr)
        return None
    return ms(graph.replay)


def copy_bandwidth(device, ms, n: int) -> float:
    """Bytes read + written per second by a device-to-device copy of n float32."""
    x = torch.randn(n, device=device)
    y = torch.empty_like(x)
    t = ms(lambda: y.copy_(x))
    return 2 * n * 4 / (t * 1e-3)


def ideal_bytes(v, eta, b) -> int:
    """Read v, eta, b once, write g (two float32 planes)."""
    return (v.numel() * v.element_size() + eta.numel() * eta.element_size()
            + b.numel() * b.element_size() + 2 * v.numel() * 4)  # fmt: skip


def check(B, N, C, device, *, selective: bool, ref_channels: int, chunk, log) -> dict:
    """Correctness of the one-pass forward at (B, N, C) (module docstring, step 1)."""
    v, lam, eta, b = inputs(B, N, C, device, selective=selective, seed=1)
    rc = min(C, ref_channels)
    sl = (slice(None), slice(None), slice(0, rc))
    ve, le = v[sl].contiguous(), lam[:rc].contiguous()
    ee = eta[sl].contiguous() if selective else eta[:rc].contiguous()
    be = b[sl].contiguous() if selective else b[:rc].contiguous()
    before = (_workspace_header(device) or [0, 0, 0, 0])[3]
    with torch.no_grad():
        gr, gi = bk_scan_triton_onepass(ve, le, ee, be, chunk=chunk)
        rr, ri = bk_scan_torch(ve.double(), le.double(), ee.double(), be.double())
        e64 = max(rel(gr, rr), rel(gi, ri))
        fr, fi = bk_scan_triton_onepass(v, lam, eta, b, chunk=chunk)
        tr, ti = bk_scan_triton(v, lam, eta, b)
        e3k = max(rel(fr, tr), rel(fi, ti))
        finite = bool(torch.isfinite(fr).all() and torch.isfinite(fi).all())
    timeouts = (_workspace_header(device) or [0, 0, 0, 0])[3] - before
    ok = e64 < 1e-4 and e3k < 1e-5 and finite and timeouts == 0
    log(f"  check N={N:>6} B={B:>3}{' selective' if selective else ''}: vs float64 "
        f"{e64:.1e} (< 1e-4), vs 3-kernel {e3k:.1e} (< 1e-5), finite {finite}, look-back "
        f"timeouts {timeouts}: {'ok' if ok else 'FAIL'}")  # fmt: skip
    return dict(N=N, B=B, C=C, selective=selective, ref_channels=rc, rel_err_f64=e64,
                rel_err_3kernel=e3k, finite=finite, timeouts=timeouts, ok=ok)


def time_row(B, N, C, device, ms, bw, *, selective: bool, chunk, log) -> dict:
    v, lam, eta, b = inputs(B, N, C, device, selective=selective)
    tok = selective
    hop = b if tok else b.square()

    def one():
        return _onepass_forward(v, lam, eta, hop, chunk=chunk)

    def three():
        with torch.no_grad():
            return bk_scan_triton(v, lam, eta, b)

    def onepass_public():
        return bk_scan_triton_onepass(v, lam, eta, b, chunk=chunk)

    t1 = ms(onepass_public)
    t3 = ms(three)
    g1 = graph_ms(one, device, ms)
    g3 = graph_ms(three, device, ms)
    nbytes = ideal_bytes(v, eta, b)
    roof = 1e3 * nbytes / bw
    _, L, K = _plan_onepass(B, N, C, _GPU if device.type == "cuda" else _CPU, chunk)
    best1 = g1 if g1 is not None else t1
    best3 = g3 if g3 is not None else t3
    row = dict(
        N=N, B=B, C=C, selective=selective, chunk=L, chunks=K, ideal_bytes=nbytes,
        roof_ms=roof, onepass_ms=t1, three_kernel_ms=t3, onepass_graph_ms=g1,
        three_kernel_graph_ms=g3, roof_frac_onepass=roof / best1,
        roof_frac_three_kernel=roof / best3, ratio_onepass_vs_three=best1 / best3,
        onepass_ms_per_65536_tokens=best1 * 65536 / (B * N),
    )
    log(f"  N={N:>6} B={B:>3}{' sel' if selective else '    '} L={L:>6} K={K:>5}: onepass "
        f"{t1:7.3f} ms (graph {g1 or float('nan'):7.3f}), 3-kernel {t3:7.3f} ms (graph "
        f"{g3 or float('nan'):7.3f}); roof {roof:.3f} ms: onepass {roof / best1:.2f}, "
        f"3-kernel {roof / best3:.2f}; onepass/3-kernel {best1 / best3:.2f}")  # fmt: skip
    return row


def sweep_rows(B, N, C, device, ms, bw, *, selective: bool, log) -> list[dict]:
    v, lam, eta, b = inputs(B, N, C, device, selective=selective)
    hop = b if selective else b.square()
    ref = _onepass_forward(v, lam, eta, hop)
    nbytes = ideal_bytes(v, eta, b)
    rows = []
    for bc, nw, chunk, win in SWEEP:
        cfg = OnepassConfig(block_c=bc, num_warps=nw, group=8, chunk=chunk or 64,
                            wide=0 if chunk is None else 1 << 62, lookback=win)
        tag = dict(N=N, B=B, selective=selective, block_c=bc, num_warps=nw, chunk=chunk,
                   lookback=win)
        before = (_workspace_header(device) or [0, 0, 0, 0])[3]
        out = _onepass_forward(v, lam, eta, hop, cfg=cfg)
        err = max(rel(out[0], ref[0]), rel(out[1], ref[1]))
        timeouts = (_workspace_header(device) or [0, 0, 0, 0])[3] - before
        if not (err < 1e-5 and timeouts == 0):
            log(f"    sweep {tag}: rel err {err:.1e} vs default, timeouts {timeouts}: FAIL, "
                "not timed")
            rows.append(dict(tag, rel_err=err, timeouts=timeouts, ok=False))
            continue

        def fn(cfg=cfg):
            return _onepass_forward(v, lam, eta, hop, cfg=cfg)

        t = graph_ms(fn, device, ms)
        t = t if t is not None else ms(fn)
        _, L, K = _plan_onepass(B, N, C, cfg, None)
        rows.append(dict(tag, L=L, K=K, ms=t, roof_frac=1e3 * nbytes / bw / t, rel_err=err,
                         ok=True))
        log(f"    sweep bc={bc:>3} warps={nw} L={L:>6} K={K:>5} win={win or 32 * nw:>3}: "
            f"{t:.3f} ms ({1e3 * nbytes / bw / t:.2f} of roof)")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ns", type=int, nargs="+", default=[2048, 8192, 32768, 131072])
    p.add_argument("--tokens", type=int, default=65536)
    p.add_argument("--channels", type=int, default=1024)
    p.add_argument("--selective", action="store_true", help="also per-token bf16 eta, b")
    p.add_argument("--sweep", action="store_true", help="also a grid of launch shapes")
    p.add_argument("--chunk", type=int, default=None,
                   help="force the one-pass chunk length (default: planned)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny size in the Triton interpreter (no CUDA needed)")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: results/...)")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    if args.smoke:
        args.ns, args.tokens, args.channels = [8, 40], 80, 6
        args.chunk = args.chunk or 16  # several chunks: the look-back runs
    elif not cuda:
        print("bench_scan_onepass: needs a CUDA device (or --smoke for the interpreter)",
              file=sys.stderr)
        return 2
    device = torch.device("cuda" if cuda else "cpu")
    args.device = str(device)
    name = torch.cuda.get_device_name().replace(" ", "-") if cuda else "cpu-interpreter"
    date = _dt.datetime.now(_dt.timezone.utc)
    ms = timer(device)
    lines: list[str] = []

    def log(s: str) -> None:
        print(s, flush=True)
        lines.append(s)

    log(f"device {name}; torch {torch.__version__}; {date.isoformat(timespec='seconds')}"
        + (" (SMOKE: interpreter, timings meaningless)" if args.smoke else ""))
    C = args.channels
    shapes = [(max(1, args.tokens // N), N) for N in args.ns]
    kinds = [False, True] if args.selective else [False]
    doc = dict(header=run_header(args), device=name, date=date.isoformat(timespec="seconds"),
               smoke=args.smoke, tokens=args.tokens, channels=C, onepass_config=repr(_GPU),
               checks=[], runs=[], sweep=[])  # fmt: skip
    log("correctness (bf16 v; onepass vs float64 torch reference, vs bk_scan_triton):")
    for B, N in shapes:
        for sel in kinds:
            doc["checks"].append(check(B, N, C, device, selective=sel,
                                       ref_channels=4 if args.smoke else 64,
                                       chunk=args.chunk, log=log))
    ok = all(c["ok"] for c in doc["checks"])
    doc["correctness_ok"] = ok
    stamp = date.strftime("%Y-%m-%d")
    fname = f"bench_scan_onepass_{name}_{stamp}.json"
    out = args.out
    if out is None and args.smoke:
        out = Path(tempfile.gettempdir()) / fname
    if not ok:
        log("correctness FAILED: not timing")
        doc["log"] = lines
        print(f"wrote {write_result(doc, out, fname, indent=1)}")
        return 1
    bw = copy_bandwidth(device, ms, 2**29 if cuda else 2**16)
    doc["copy_bandwidth_Bps"] = bw
    log(f"device-to-device copy: {bw / 1e9:.1f} GB/s (read + write)")
    log("forward (median ms; graph = CUDA-graph replay; roof = ideal bytes / copy rate):")
    for B, N in shapes:
        for sel in kinds:
            doc["runs"].append(time_row(B, N, C, device, ms, bw, selective=sel,
                                        chunk=args.chunk, log=log))
            if args.sweep:
                doc["sweep"] += sweep_rows(B, N, C, device, ms, bw, selective=sel, log=log)
    doc["log"] = lines
    print(f"wrote {write_result(doc, out, fname, indent=1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
