"""Per-kernel GPU times of one BK-scan forward + backward (torch.profiler), on CUDA.

Shows where the time of ``benchmarks/bench_kernel.py``'s forward + backward goes (chunk
maps, carries, the main passes, the host-side sum of the partial gradients) at the
benchmark shape (65,536 tokens × 1,024 channels, bf16 v)::

    PYTHONPATH=. python benchmarks/profile_kernel.py [--ns 2048 8192 65536] [--steps 20]
        [--selective]

``--selective`` profiles the per-token kernels (eta and b of shape (B, N, C), bf16) instead.

Prints, per N, each kernel's mean time per step and its share; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import torch


def host_profile(lam, eta, b, dev, steps: int = 200) -> None:
    """Wall time per forward + backward at (1, 64, C) for one and for several chunks, where
    the GPU work is negligible, and the host functions that take it."""
    import cProfile
    import pstats
    import time

    from bkmodel.ops.bk_scan.triton_scan import bk_scan_triton

    C = lam.numel()
    v = torch.randn(1, 64, C, device=dev, dtype=torch.bfloat16, requires_grad=True)
    dg = [torch.randn(1, 64, C, device=dev) for _ in range(2)]
    for chunk in (None, 8):

        def step(chunk=chunk):
            v.grad = None
            gr, gi = bk_scan_triton(v, lam, eta, b, chunk=chunk)
            torch.autograd.backward((gr, gi), dg)

        for _ in range(10):
            step()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / steps
        print(f"host: (1, 64, {C}) chunk={chunk}: {dt * 1e3:.3f} ms per forward + backward")
        if chunk == 8:
            pr = cProfile.Profile()
            pr.enable()
            for _ in range(steps):
                step()
            torch.cuda.synchronize()
            pr.disable()
            pstats.Stats(pr).sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ns", type=int, nargs="+", default=[2048, 8192, 65536])
    p.add_argument("--tokens", type=int, default=65536)
    p.add_argument("--channels", type=int, default=1024)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--selective", action="store_true",
                   help="per-token eta and b (B, N, C), bf16: the selective kernels")
    p.add_argument(
        "--host", action="store_true",
        help="also time a tiny problem (host-bound) and print cProfile's top host functions",
    )  # fmt: skip
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("profile_kernel: needs a CUDA device", file=sys.stderr)
        return 2
    from torch.profiler import ProfilerActivity, profile

    from bkmodel.ops.bk_scan.triton_scan import bk_scan_triton

    dev = torch.device("cuda")
    C = args.channels
    g = torch.Generator(device="cpu").manual_seed(0)
    lam = (torch.rand(C, generator=g) * 4 - 0.5).to(dev)
    eta = (torch.rand(C, generator=g) * 0.5 + 0.05).to(dev)
    b = (torch.rand(C, generator=g) * 0.5 + 0.75).to(dev)
    if args.host:
        host_profile(lam, eta, b, dev)
    for N in args.ns:
        B = max(1, args.tokens // N)
        v = torch.randn(B, N, C, device=dev, dtype=torch.bfloat16, requires_grad=True)
        dg = [torch.randn(B, N, C, device=dev) for _ in range(2)]
        e_, b_ = eta, b
        if args.selective:
            e_ = (0.05 + 0.5 * torch.rand(B, N, C, device=dev)).to(torch.bfloat16)
            b_ = (0.75 + 0.5 * torch.rand(B, N, C, device=dev)).to(torch.bfloat16)

        def step(v=v, dg=dg, e_=e_, b_=b_):
            v.grad = None
            gr, gi = bk_scan_triton(v, lam, e_, b_)
            torch.autograd.backward((gr, gi), dg)

        for _ in range(5):
            step()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(args.steps):
                step()
            torch.cuda.synchronize()
        tot: dict[str, float] = defaultdict(float)
        for e in prof.events():
            if e.device_type == torch.autograd.DeviceType.CUDA:
                tot[e.name] += e.device_time / args.steps  # microseconds
        s = sum(tot.values())
        kind = "selective" if args.selective else "per-channel"
        print(f"N={N} B={B} {kind}: {s / 1e3:.3f} ms of kernels per forward + backward")
        for name, t in sorted(tot.items(), key=lambda kv: -kv[1]):
            print(f"  {t / 1e3:8.3f} ms  {t / s:6.1%}  {name[:90]}")
        del v, dg
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
