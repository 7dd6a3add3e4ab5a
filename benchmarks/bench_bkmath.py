"""Benchmark of the bkmath O(N) core against dense numpy (a script, not a timed test).

For N = 10^3 ... 10^7 (one chain, one thread) it times ``resolvent_diagonal(side=...)``,
``log_det`` and ``eigenvalue_count`` and compares, at the largest N where dense linear algebra
is affordable here (``--dense-n``), with ``numpy.linalg.inv`` / ``slogdet`` / ``eigvalsh``
measured in the same run. It then times a batch (many chains) with 1 thread and with all cores.
Before timing, the fast results are checked against the dense ones at ``--dense-n``; the script
refuses to report speed-ups if that check fails.

Timings: best of ``--repeat`` wall-clock runs (``time.perf_counter``) and, for the one-thread
rows, the CPU time of the calling thread (``time.thread_time``), which is less sensitive to
other processes on a shared machine. The load average before and after is recorded.

Usage::

    python benchmarks/bench_bkmath.py                 # full table, JSON in benchmarks/results/
    python benchmarks/bench_bkmath.py --max-exp 5     # quick
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

import numpy as np

try:
    import bkmath
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import bkmath
from bkmath import JacobiOperator, _kernels, eigenvalue_count, log_det, resolvent_diagonal

TARGETS_1E7 = {"resolvent_diagonal(both)": 0.3, "log_det": 0.1, "eigenvalue_count": 0.1}


def _best(fn, repeat: int) -> tuple[float, float]:
    """(best wall seconds, best thread-CPU seconds) over ``repeat`` runs after one warm-up."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        c0, w0 = time.thread_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.thread_time() - c0)
    return min(walls), min(cpus)


def _machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba

    return {
        "cpu": cpu,
        "cores": _kernels._n_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numba": numba.__version__,
        "bkmath": bkmath.__version__,
    }


def _load() -> list[float]:
    try:
        return list(os.getloadavg())
    except OSError:
        return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-exp", type=int, default=7, help="largest N = 10**max_exp")
    ap.add_argument("--dense-n", type=int, default=2000, help="N for the dense comparison")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64, help="chains in the batched timing")
    ap.add_argument("--batch-n", type=int, default=100_000, help="sites per batched chain")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/...)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    z = 0.5 + 0.01j
    lam = 1.0
    load_before = _load()

    # ---- correctness gate at the dense size ------------------------------------------------
    nd = args.dense_n
    opd = JacobiOperator.free_plus(rng.normal(size=nd))
    md = opd.to_dense(z)
    g_dense = np.diag(np.linalg.inv(md))
    g_fast = resolvent_diagonal(opd, z)
    sign, lad = np.linalg.slogdet(md)
    ld_fast = log_det(opd, z)
    cnt_dense = int(np.sum(np.linalg.eigvalsh(opd.to_dense()) < lam))
    cond = np.linalg.cond(md)
    rel = np.max(np.abs(g_fast - g_dense)) / np.max(np.abs(g_dense))
    checks = {
        "resolvent_diagonal rel err": float(rel),
        "log_det |Re| err": float(abs(ld_fast.real - lad)),
        "log_det arg err (mod 2π)": float(abs(np.angle(np.exp(1j * ld_fast.imag) / sign))),
        "eigenvalue_count diff": int(eigenvalue_count(opd, lam) - cnt_dense),
        "cond(H - z)": float(cond),
    }
    ok = (
        checks["resolvent_diagonal rel err"] < 1e3 * nd * np.finfo(float).eps * cond
        and checks["log_det |Re| err"] < 1e-8
        and checks["log_det arg err (mod 2π)"] < 1e-8
        and checks["eigenvalue_count diff"] == 0
    )
    print(f"correctness vs dense at N={nd}: {'OK' if ok else 'FAILED'} {checks}")
    if not ok:
        print("refusing to report speed-ups: the fast routines disagree with dense numpy")
        return 1

    # ---- dense timings -------------------------------------------------------------------
    dense = {
        "resolvent_diagonal(both)": _best(lambda: np.linalg.inv(md), 1)[0],
        "log_det": _best(lambda: np.linalg.slogdet(md), 1)[0],
        "eigenvalue_count": _best(lambda: np.linalg.eigvalsh(opd.to_dense()), 1)[0],
    }

    # ---- O(N) timings, one chain, one thread ---------------------------------------------
    rows = []
    ns = [10**e for e in range(3, args.max_exp + 1)]
    if nd not in ns:
        ns = sorted(set(ns) | {nd})
    for n in ns:
        op = JacobiOperator.free_plus(rng.normal(size=n))
        rep = args.repeat if n <= 10**6 else max(3, args.repeat // 2)
        fns = {
            "resolvent_diagonal(both)": lambda op=op: resolvent_diagonal(op, z, side="both"),
            "resolvent_diagonal(left)": lambda op=op: resolvent_diagonal(op, z, side="left"),
            "log_det": lambda op=op: log_det(op, z),
            "eigenvalue_count": lambda op=op: eigenvalue_count(op, lam),
        }
        for name, fn in fns.items():
            wall, cpu = _best(fn, rep)
            row = {"N": n, "routine": name, "wall_s": wall, "cpu_s": cpu}
            if n == nd and name in dense:
                row["dense_s"] = dense[name]
                row["speedup_vs_dense"] = dense[name] / wall
            if n == 10**7 and name in TARGETS_1E7:
                row["target_s"] = TARGETS_1E7[name]
                row["meets_target"] = bool(min(wall, cpu) <= TARGETS_1E7[name])
            rows.append(row)

    # ---- batched: many chains, 1 thread vs all cores -------------------------------------
    opb = JacobiOperator.free_plus(rng.normal(size=(args.batch, args.batch_n)))
    batch = {}
    for threads in (1, _kernels._n_threads()):
        os.environ["BKMATH_NUM_THREADS"] = str(threads)
        batch[threads] = {
            "resolvent_diagonal(both)": _best(lambda: resolvent_diagonal(opb, z), 3)[0],
            "log_det": _best(lambda: log_det(opb, z), 3)[0],
            "eigenvalue_count": _best(lambda: eigenvalue_count(opb, lam), 3)[0],
        }
    os.environ.pop("BKMATH_NUM_THREADS", None)
    load_after = _load()

    # ---- print --------------------------------------------------------------------------
    print(f"\none chain, one thread; z = {z}, λ = {lam}; best of {args.repeat} (wall / thread CPU)")
    hdr = ("N", "routine", "wall s", "cpu s", "dense s", "speed-up", "target")
    print(f"{hdr[0]:>10} {hdr[1]:<26} " + " ".join(f"{h:>10}" for h in hdr[2:]))
    for r in rows:
        dn = f"{r['dense_s']:.3g}" if "dense_s" in r else ""
        sp = f"{r['speedup_vs_dense']:.0f}x" if "speedup_vs_dense" in r else ""
        tg = ""
        if "target_s" in r:
            tg = f"{r['target_s']:g} " + ("ok" if r["meets_target"] else "MISS")
        print(
            f"{r['N']:>10} {r['routine']:<26} {r['wall_s']:>10.3g} {r['cpu_s']:>10.3g} "
            f"{dn:>10} {sp:>10} {tg:>10}"
        )
    print(f"\nbatch of {args.batch} chains x N = {args.batch_n}: wall s")
    ths = sorted(batch)
    head = "".join(f"{f'{t} thread(s)':>14}" for t in ths)
    print(f"{'routine':<26}{head}{'speed-up':>10}")
    for name in batch[1]:
        vals = [batch[t][name] for t in ths]
        print(f"{name:<26}" + "".join(f"{v:>14.3g}" for v in vals) + f"{vals[0] / vals[-1]:>9.2f}x")
    print(f"\nload average before {load_before}, after {load_after}")

    out = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "z": [z.real, z.imag],
        "lambda": lam,
        "correctness_vs_dense": {"N": nd, **checks},
        "dense_n": nd,
        "single_chain": rows,
        "batch": {"chains": args.batch, "N": args.batch_n,
                  "wall_s_by_threads": {str(k): v for k, v in batch.items()}},
        "targets_at_1e7": TARGETS_1E7,
    }
    path = Path(args.out) if args.out else (
        Path(__file__).parent / "results" / f"bkmath_{_dt.date.today().isoformat()}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
