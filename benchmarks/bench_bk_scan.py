"""Benchmark: the chunked torch BK scan vs the naive loop vs causal attention, and guard cost.

Forward + backward wall time on CPU, all measured in the same run, for n_seq 256 ... 8192:

* ``torch``  — ``bk_scan_torch`` (chunked scan, analytic adjoint backward);
* ``naive``  — the sequential reference loop differentiated by autograd;
* ``sdpa``   — ``F.scaled_dot_product_attention(q, k, v, is_causal=True)`` at the same
  (batch, n_seq, width): width = C split in ``--heads`` heads (the sequence mixer a
  Transformer would use at that width).

Then the runtime certificate guards: one training step (forward + backward) of a
:class:`LanguageModel` with guards on vs off, and the same for the scan alone.

The correctness of the torch scan (values and all four gradients against the naive loop)
is checked first; the script refuses to print speed-ups when it fails.

Usage::

    python benchmarks/bench_bk_scan.py                # full run, writes benchmarks/results/
    python benchmarks/bench_bk_scan.py --quick        # n_seq 256..1024, fewer repeats
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from bkmodel.model import LanguageModel  # noqa: E402
from bkmodel.ops.bk_scan import bk_scan  # noqa: E402
from bkmodel.ops.bk_scan.naive import bk_scan_naive  # noqa: E402
from bkmodel.ops.bk_scan.torch_scan import bk_scan_torch  # noqa: E402


def timeit(fn, reps: int, warmup: int = 1) -> float:
    """Minimum wall time (s) of ``fn()`` over ``reps`` runs after ``warmup`` runs.

    The minimum, not the median: on a shared machine other processes only ever add time.
    """
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def scan_inputs(B: int, N: int, C: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(B, N, C, generator=g).requires_grad_()
    lam = (2 * torch.rand(C, generator=g) - 1).requires_grad_()
    eta = (0.05 + torch.rand(C, generator=g)).requires_grad_()
    b = torch.ones(C).requires_grad_()
    return v, lam, eta, b


def scan_step(fn, args):
    def run():
        for t in args:
            t.grad = None
        g_re, g_im = fn(*args)
        (g_re.sum() + 0.5 * g_im.sum()).backward()

    return run


def sdpa_step(B: int, N: int, C: int, heads: int):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, heads, N, C // heads, generator=g).requires_grad_()
               for _ in range(3))

    def run():
        for t in (q, k, v):
            t.grad = None
        F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()

    return run


def check_correctness() -> float:
    """Worst relative error of the torch scan vs naive (values + gradients), float64."""
    worst = 0.0
    for N, chunk in ((63, None), (200, 7), (130, 130)):
        g = torch.Generator().manual_seed(N)
        args = [torch.randn(2, N, 3, generator=g, dtype=torch.float64),
                torch.randn(3, generator=g, dtype=torch.float64),
                torch.rand(3, generator=g, dtype=torch.float64) + 1e-3,
                torch.randn(3, generator=g, dtype=torch.float64)]
        w = torch.randn(2, N, 3, generator=g, dtype=torch.float64)
        res = []
        for fn in (bk_scan_naive, lambda *a, c=chunk: bk_scan_torch(*a, chunk=c)):
            xs = [a.clone().requires_grad_() for a in args]
            g_re, g_im = fn(*xs)
            grads = torch.autograd.grad((w * g_re + g_im).sum(), xs)
            res.append([g_re.detach(), g_im.detach(), *grads])
        for x, y in zip(res[1], res[0], strict=True):
            worst = max(worst, float((x - y).norm() / y.norm()))
    return worst


def model_step(model: LanguageModel, ids: torch.Tensor):
    def run():
        model.zero_grad(set_to_none=True)
        _, loss = model(ids, ids)
        loss.backward()

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--channels", type=int, default=64, help="C (= attention width)")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--naive-max", type=int, default=4096, help="longest n_seq for naive")
    p.add_argument("--out", default="benchmarks/results/bench_bk_scan.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    err = check_correctness()
    ok = err < 1e-9
    print(f"correctness: torch scan vs naive, worst relative error {err:.2e} "
          f"({'ok' if ok else 'FAILED'})")
    if not ok:
        raise SystemExit("torch scan disagrees with the naive reference: no speed-ups reported")

    B, C = args.batch, args.channels
    lengths = [256, 512, 1024] if args.quick else [256, 512, 1024, 2048, 4096, 8192]
    reps = 3 if args.quick else 5
    rows = []
    print(f"\nforward+backward, B={B}, C=width={C}, heads={args.heads}, "
          f"threads={args.threads} (min of {reps})")
    print(f"{'n_seq':>6} {'torch ms':>10} {'naive ms':>10} {'sdpa ms':>10} "
          f"{'naive/torch':>12} {'sdpa/torch':>11}")
    for N in lengths:
        t_torch = timeit(scan_step(bk_scan_torch, scan_inputs(B, N, C)), reps)
        t_naive = None
        if N <= args.naive_max:
            t_naive = timeit(scan_step(bk_scan_naive, scan_inputs(B, N, C)),
                             max(1, reps // 2), warmup=0 if N > 1024 else 1)
        r = max(1, reps // 2) if N >= 4096 else reps
        t_sdpa = timeit(sdpa_step(B, N, C, args.heads), r)
        row = {"n_seq": N, "torch_s": t_torch, "naive_s": t_naive, "sdpa_s": t_sdpa,
               "naive_over_torch": None if t_naive is None else t_naive / t_torch,
               "sdpa_over_torch": t_sdpa / t_torch}
        rows.append(row)
        nv = f"{1e3 * t_naive:10.1f}" if t_naive else f"{'—':>10}"
        nr = f"{t_naive / t_torch:12.1f}" if t_naive else f"{'—':>12}"
        print(f"{N:6d} {1e3 * t_torch:10.1f} {nv} {1e3 * t_sdpa:10.1f} {nr} "
              f"{t_sdpa / t_torch:11.2f}")

    # Guard cost: a training step of a small LM, guards on vs off (same weights, same data).
    guard_rows = []
    print("\nguard cost: LanguageModel forward+backward, guards on vs off")
    print(f"{'config':>34} {'off ms':>9} {'on ms':>9} {'overhead':>9}")
    n_seq = 512 if args.quick else 1024
    for C_m, d in ((16, 128), (64, 128)):
        cfg = dict(vocab_size=512, d_model=d, n_layers=4, n_seq=n_seq, n_channels=C_m,
                   num_experts=4, top_k=1)
        torch.manual_seed(0)
        on = LanguageModel(**cfg, guard={"enabled": True, "sample_rate": 1.0})
        off = LanguageModel(**cfg, guard={"enabled": False})
        off.load_state_dict(on.state_dict())
        ids = torch.randint(0, 512, (8, n_seq), generator=torch.Generator().manual_seed(1))
        # interleave the two to spread machine noise evenly
        t_on, t_off = [], []
        for _ in range(reps):
            t_off.append(timeit(model_step(off, ids), 1, warmup=0))
            t_on.append(timeit(model_step(on, ids), 1, warmup=0))
        t_on_m, t_off_m = min(t_on), min(t_off)
        name = f"d={d} C={C_m} L=4 B=8 T={n_seq}"
        print(f"{name:>34} {1e3 * t_off_m:9.1f} {1e3 * t_on_m:9.1f} "
              f"{100 * (t_on_m / t_off_m - 1):8.1f}%")
        guard_rows.append({"config": cfg, "batch": 8, "off_s": t_off_m, "on_s": t_on_m,
                           "overhead": t_on_m / t_off_m - 1})
    # scan alone (the guard's share of the BK layer itself)
    from bkmodel.config import GuardConfig
    from bkmodel.guards import ScanGuard

    sargs = scan_inputs(8, n_seq, 64)
    guard = ScanGuard(GuardConfig(action="raise"), backend="torch")
    t_plain = timeit(scan_step(lambda *a: bk_scan(*a, backend="torch"), sargs), reps)
    t_guard = timeit(scan_step(lambda *a: guard.scan(*a), sargs), reps)
    print(f"{'scan alone B=8 C=64 T=' + str(n_seq):>34} {1e3 * t_plain:9.1f} "
          f"{1e3 * t_guard:9.1f} {100 * (t_guard / t_plain - 1):8.1f}%")

    result = {
        "benchmark": "bench_bk_scan",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": f"CPU {platform.processor() or platform.machine()}, "
                  f"{os.cpu_count()} cores visible, torch threads {args.threads}",
        "torch": torch.__version__,
        "correctness_rel_err": err,
        "batch": B, "channels": C, "heads": args.heads,
        "scan": rows, "guard_model": guard_rows,
        "guard_scan_only": {"plain_s": t_plain, "guarded_s": t_guard,
                            "overhead": t_guard / t_plain - 1},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
