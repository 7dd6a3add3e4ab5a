"""Figures of the language model (:mod:`bkmodel`), drawn from its benchmark and training runs.

6. ``scaling`` — BK scan time against attention over N, with the roofline, from
   ``benchmarks/results/bench_kernel_*.json``;
7. ``training`` — validation perplexity vs tokens for ResNet-BK and the Transformer baseline,
   and the certificate-guard events over training.

Both read results files that repository commands write (named in the captions). Where there
is none, quick mode runs the tiny real measurement itself (a CPU timing run, two short
training runs) and full mode raises :class:`~bkpaper.framework.MissingResultsError`.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bkpaper.framework import (
    FigureContext,
    FigureResult,
    MissingResultsError,
    new_figure,
    register_figure,
    sanity,
    tex_escape,
)

__all__ = ["GPU_BENCH_CMD", "LM_COMPARE_CMD", "figure_scaling", "figure_training"]


# --------------------------------------------------------------------------------------
# Figure 6: scaling of the BK scan against attention, with the memory roof
# --------------------------------------------------------------------------------------

GPU_BENCH_CMD = "python benchmarks/bench_kernel.py"


def _latest_gpu_benchmark(results: Path) -> Path | None:
    """The newest ``bench_kernel_*.json`` in ``results`` that holds timing runs (the launch-
    configuration sweeps, ``bench_kernel_sweep*``, only when there is nothing else)."""
    files = sorted(results.glob("bench_kernel_*.json"))
    main = [f for f in files if not f.name.startswith("bench_kernel_sweep")]
    files = main or files
    good = []
    for f in files:
        try:
            d = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if d.get("runs"):
            good.append((str(d.get("date", "")), f))
    return max(good)[1] if good else None


def _gpu_ms(r: dict) -> float:
    """Forward + backward GPU time of a benchmark row: the CUDA-graph replay when measured
    (no host launch overhead), else the eager wall time."""
    t = r.get("fwd_bwd_cuda_graph_ms") or r.get("fwd_bwd_kernels_only_ms")
    return float(t if t is not None else r["fwd_bwd_ms"])


def _n_ticks(ax: Any, ns: list[int]) -> None:
    """Label a log x-axis at the measured sequence lengths (2^k as 2k, 4k, ...)."""
    ax.set_xticks(ns, [f"{n // 1024}k" if n >= 1024 else str(n) for n in ns])
    ax.minorticks_off()


def _cpu_timing_run(ctx: FigureContext) -> dict[str, Any]:
    """Time the torch BK scan and causal SDPA (forward + backward) on this CPU, now.

    Same protocol as ``benchmarks/bench_kernel.py`` at CPU sizes: a fixed number of tokens
    per step split into ``B = tokens / N`` sequences of length ``N``; the memory roof is a
    large tensor copy measured in the same run. Correctness of the scan is checked first
    (float32 torch scan against the float64 naive loop).
    """
    import statistics

    import torch
    import torch.nn.functional as F

    from bkmodel.ops.bk_scan import bk_scan

    torch.manual_seed(0)
    C, tokens = 64, 4096
    gen = torch.Generator().manual_seed(0)
    lam = torch.rand(C, generator=gen) * 4.0 - 0.5
    eta = torch.rand(C, generator=gen) * 0.5 + 0.05
    b = torch.rand(C, generator=gen) * 0.5 + 0.75
    # correctness first: no timing is reported for a wrong scan
    v = torch.randn(2, 300, C, dtype=torch.float64)
    ref = bk_scan(v, lam.double(), eta.double(), b.double(), backend="naive")
    got = bk_scan(v.float(), lam, eta, b, backend="torch")
    rel = max(float((g.double() - r).norm() / r.norm()) for g, r in zip(got, ref, strict=True))
    correct = rel < 1e-4  # float32 recurrence, |g| <= 1/eta: error ~ N eps32 / eta

    def timeit(fn: Callable[[], Any], reps: int = 2) -> float:
        fn()  # warm-up
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) * 1e3

    n_el = 2**24  # 64 MiB of float32
    src, dst = torch.randn(n_el), torch.empty(n_el)
    copy_ms = timeit(lambda: dst.copy_(src), reps=5)
    bw = 2 * n_el * 4 / (copy_ms * 1e-3)
    runs = []
    ns = ctx.pick(quick=[256, 1024, 4096], full=[256, 512, 1024, 2048, 4096, 8192])
    for N in ctx.progress(ns, "CPU timing"):
        B = max(1, tokens // N)
        v = torch.randn(B, N, C, requires_grad=True)
        dgr, dgi = torch.randn(B, N, C), torch.randn(B, N, C)

        def scan_step(v: Any = v, dgr: Any = dgr, dgi: Any = dgi) -> None:
            gr, gi = bk_scan(v, lam, eta, b, backend="torch")
            torch.autograd.backward((gr, gi), (dgr, dgi))

        heads = 4
        q, k, vv = (torch.randn(B, heads, N, C // heads, requires_grad=True) for _ in range(3))
        do = torch.randn(B, heads, N, C // heads)

        def attn_step(q: Any = q, k: Any = k, vv: Any = vv, do: Any = do) -> None:
            F.scaled_dot_product_attention(q, k, vv, is_causal=True).backward(do)

        t_bk = timeit(scan_step)
        t_at = timeit(attn_step)
        elems = B * N * C
        runs.append(dict(N=N, B=B, C=C, dtype="fp32", fwd_bwd_ms=t_bk, sdpa_fwd_bwd_ms=t_at,
                         ideal_bytes=elems * (4 + 8 + 8 + 4),
                         ms_per_65536_tokens=t_bk * 65536 / (B * N)))
    return dict(device=f"CPU ({platform.processor() or platform.machine()}, "
                       f"{torch.get_num_threads()} threads)", copy_bandwidth_Bps=bw,
                correctness_ok=correct, correctness=[{"rel_err_vs_float64": rel}],
                tokens=tokens, channels=C, runs=runs, measured_by="bk figures --quick")


@register_figure(6, "scaling", "Scaling of the BK scan against attention")
def figure_scaling(ctx: FigureContext) -> FigureResult:
    """Figure 6: BK scan against causal attention over N, with the memory roof.

    Raises
    ------
    MissingResultsError
        In full mode, when no ``bench_kernel_*.json`` exists.
    """
    import numpy as np

    assert ctx.results is not None
    path = _latest_gpu_benchmark(ctx.results)
    if path is not None:
        res = json.loads(path.read_text())
        source = f"{GPU_BENCH_CMD} ({path.name})"
        origin = "gpu"
    elif ctx.quick:
        res = _cpu_timing_run(ctx)
        source = f"bk figures --quick --only 6 (CPU timing now; GPU: {GPU_BENCH_CMD})"
        origin = "cpu"
    else:
        raise MissingResultsError(
            "no GPU benchmark results: benchmarks/results/bench_kernel_*.json does not exist; "
            f"run `{GPU_BENCH_CMD}` on a CUDA machine (or use `bk figures --quick`, which "
            "times this CPU instead)"
        )
    checks: dict[str, bool] = {}
    sanity(checks, "the benchmark passed its correctness check (else no speed-up is shown)",
           res.get("correctness_ok") is True)
    runs = res["runs"]
    dtypes = sorted({r["dtype"] for r in runs})
    bw = float(res["copy_bandwidth_Bps"])
    tokens = int(res.get("tokens", 65536))
    fig, axes = new_figure(2)
    ax = axes[0, 0]
    att = {}
    for k, dt in enumerate(dtypes):
        rr = sorted((r for r in runs if r["dtype"] == dt), key=lambda r: r["N"])
        ns = np.array([r["N"] for r in rr])
        # normalised to `tokens` per step (the largest N may run a batch of more tokens)
        per = {r["N"]: tokens / (r.get("B", 1) * r["N"]) for r in runs}
        t = np.array([_gpu_ms(r) * per[r["N"]] for r in rr])
        graphed = all(r.get("fwd_bwd_cuda_graph_ms") for r in rr)
        ax.loglog(ns, t, "o-", color=f"C{k}", ms=3,
                  label=f"BK scan fwd+bwd ({dt}{', CUDA graph' if graphed else ''})")
        if graphed:
            te = np.array([r["fwd_bwd_ms"] * per[r["N"]] for r in rr])
            ax.loglog(ns, te, "o--", color=f"C{k}", ms=2, lw=0.8, mfc="none",
                      label=f"BK scan fwd+bwd ({dt}, eager)")
        sanity(checks, f"BK times finite and positive ({dt})", np.all(np.isfinite(t) & (t > 0)))
        for r in rr:
            if r.get("sdpa_fwd_bwd_ms") is not None:
                att[r["N"]] = r["sdpa_fwd_bwd_ms"] * per[r["N"]]
        ref = [(r["N"], r["torch_ref_fwd_bwd_ms"] * per[r["N"]]) for r in rr
               if r.get("torch_ref_fwd_bwd_ms") is not None]
        if ref:
            ax.loglog(*zip(*ref, strict=True), "^:", color=f"C{k}", ms=3,
                      label=f"torch reference scan ({dt})")
    if att:
        na = np.array(sorted(att))
        ta = np.array([att[n] for n in na])
        ax.loglog(na, ta, "s-", color="C3", ms=3, label="causal attention (SDPA) fwd+bwd")
        sanity(checks, "attention times finite and positive", np.all(np.isfinite(ta) & (ta > 0)))
        # causal attention does O(N) work per token: over a >= 8-fold range of N its cost at
        # fixed tokens must at least double (launch overheads flatten the small-N end)
        sanity(checks, "attention cost per step grows with N at fixed tokens",
               na[-1] / na[0] < 8 or ta[-1] >= 2 * ta[0])
    _n_ticks(ax, sorted({r["N"] for r in runs}))
    ax.set_xlabel("sequence length $N$")
    ax.set_ylabel(f"ms per {tokens:,} tokens")
    ax.set_title("(a) time at fixed tokens per step")
    ax.legend(loc="upper left")
    ax = axes[0, 1]
    achieved_all: list[float] = []
    for k, dt in enumerate(dtypes):
        rr = sorted((r for r in runs if r["dtype"] == dt), key=lambda r: r["N"])
        ns = np.array([r["N"] for r in rr])
        t_s = np.array([_gpu_ms(r) for r in rr]) * 1e-3
        ideal = np.array([r["ideal_bytes"] for r in rr]) / t_s
        achieved_all += list(ideal)
        ax.loglog(ns, ideal / 1e9, "o-", color=f"C{k}", ms=3,
                  label=f"achieved, minimal bytes ({dt})")
        if all("actual_bytes" in r for r in rr):
            actual = np.array([r["actual_bytes"] for r in rr]) / t_s
            ax.loglog(ns, actual / 1e9, "o--", color=f"C{k}", ms=3, mfc="none",
                      label=f"achieved, bytes moved ({dt})")
            sanity(checks, f"achieved bandwidth below 1.5x the copy roof ({dt})",
                   np.all(actual <= 1.5 * bw))
    ax.axhline(bw / 1e9, color="k", lw=1.0, label="memory roof: copy bandwidth (measured)")
    if min(achieved_all) > 0.05 * bw:  # within reach of the roof: a linear scale reads best
        ax.set_yscale("linear")
        ax.set_ylim(0, 1.1 * bw / 1e9)
    else:
        ax.set_ylim(None, 2 * bw / 1e9)
    ax.set_xlabel("sequence length $N$")
    _n_ticks(ax, sorted({r["N"] for r in runs}))
    ax.set_ylabel("GB/s")
    ax.set_title("(b) achieved bandwidth against the memory roof")
    ax.legend(loc="best")
    ref_dt = "bf16" if "bf16" in dtypes else dtypes[0]
    rr = sorted((r for r in runs if r["dtype"] == ref_dt), key=lambda r: r["N"])
    top = rr[-1]
    with_att = [r for r in rr if r.get("sdpa_fwd_bwd_ms") is not None]
    last = with_att[-1] if with_att else top
    numbers = {
        "device": tex_escape(str(res["device"])),
        "origin": origin,
        "nmax": int(last["N"]),
        "bkms": _gpu_ms(last),
        "steptokens": int(last.get("B", 1) * last["N"]),
        "attnms": float(last["sdpa_fwd_bwd_ms"]) if with_att else "n/a",
        "ratio": float(last["sdpa_fwd_bwd_ms"] / _gpu_ms(last)) if with_att else "n/a",
        "dtype": ref_dt,
        "copybw": bw / 1e9,
        "tokens": tokens,
    }
    caption = (
        f"Forward plus backward time of the causal BK scan ({res.get('channels', '')} channels) "
        r"and of causal scaled-dot-product attention, per "
        + f"{tokens:,} tokens ".replace(",", "{,}")
        + r"(batches of $B = \mathrm{tokens}/N$ sequences), "
        f"measured on {tex_escape(str(res['device']))}; the scan's time is that of a CUDA-graph "
        r"replay (GPU time; the eager wall time, dashed, adds Python launch overhead). "
        r"(a) At fixed tokens per step the scan "
        r"does $O(1)$ work per token and attention $O(N)$. (b) Achieved bandwidth "
        r"(minimal bytes: read $v$, write $g$, read $\partial g$, write $\partial v$; and the "
        r"bytes the kernels actually move) against the device-to-device copy bandwidth "
        r"measured in the same run (the memory roof of the roofline model)."
    )
    data = {"benchmark": res if origin == "cpu" else str(path), "origin": origin}
    return FigureResult(fig, caption, source, checks, numbers, data)


# --------------------------------------------------------------------------------------
# Figure 7: training curves of ResNet-BK and the Transformer; certificate-guard events
# --------------------------------------------------------------------------------------

LM_COMPARE_CMD = "python benchmarks/lm_compare.py --preset tiny"


def _read_metrics(path: Path | list[dict[str, Any]]) -> dict[str, Any]:
    """Split a ``metrics.jsonl`` (``bk train``), or its rows, into training rows, evaluations
    and events."""
    if isinstance(path, list):
        rows = path
    else:
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a torn last line after a kill
                continue
    train = [r for r in rows if "loss" in r and "tokens" in r and "event" not in r]
    evals = [r for r in rows if "val_ppl" in r and "event" not in r]
    events = [r for r in rows if "event" in r]
    if not train or not evals:
        raise MissingResultsError(f"{path} has no training or validation rows")
    per_step = train[-1]["tokens"] / max(train[-1]["step"], 1)
    for e in evals:
        e["tokens"] = e["step"] * per_step
    return {"train": train, "evals": evals, "events": events, "per_step": per_step}


def _training_runs(ctx: FigureContext) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """Metrics of a ResNet-BK and a Transformer run on the same budget, and the source.

    The newest ``lm_compare_*.json`` of the results directory whose models carry their
    metrics rows (``models.<m>.metrics``) or whose run directories still hold their
    ``metrics.jsonl``; in quick mode, if there is none, two short real runs (preset ``ci``).
    """
    candidates = []
    assert ctx.results is not None
    for f in ctx.results.glob("lm_compare_*.json"):
        try:
            d = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        found: dict[str, Any] = {}
        for m in ("bk", "transformer"):
            entry = d.get("models", {}).get(m, {})
            if isinstance(entry.get("metrics"), list) and entry["metrics"]:
                found[m] = entry["metrics"]
                continue
            run_dir = Path(entry.get("run_dir", "/nonexistent"))
            if not run_dir.is_absolute():
                run_dir = ctx.root / run_dir
            if (run_dir / "metrics.jsonl").is_file():
                found[m] = run_dir / "metrics.jsonl"
        if len(found) == 2:
            candidates.append((str(d.get("date", "")), f, found, d))
    if candidates:
        _, f, found, d = max(candidates, key=lambda c: c[0])
        cmd = d.get("command") or LM_COMPARE_CMD
        return found, f"{cmd} ({f.name})", d
    if not ctx.quick:
        raise MissingResultsError(
            f"no training metrics: no lm_compare_*.json in {ctx.results} with its metrics "
            "(embedded, or in its run directories runs/lm_compare/*/metrics.jsonl) exists; "
            f"run `{LM_COMPARE_CMD}` "
            "(or use `bk figures --quick`, which trains two tiny models itself)"
        )
    from bkmodel.presets import TrainConfig

    paths = {}
    for m in ctx.progress(["bk", "transformer"], "tiny training runs"):
        cfg = TrainConfig.from_preset("ci", model=m, max_steps=40, eval_every=5)
        paths[m] = ctx.tiny_run(f"ci-{m}", cfg) / "metrics.jsonl"
    return paths, ("bk figures --quick --only 7 (two `bk train --preset ci` runs, 40 steps)"), {}


def _token_axis(ax: Any) -> None:
    """Token counts on the x axis as 200k, 1.5M, ..."""
    from matplotlib.ticker import FuncFormatter

    def fmt(x: float, _pos: int) -> str:
        if abs(x) >= 1e6:
            return f"{x / 1e6:g}M"
        return f"{x / 1e3:g}k" if abs(x) >= 1e3 else f"{x:g}"

    ax.xaxis.set_major_formatter(FuncFormatter(fmt))


@register_figure(7, "training", "Language modelling: ResNet-BK against a Transformer")
def figure_training(ctx: FigureContext) -> FigureResult:
    """Figure 7: validation perplexity of ResNet-BK and a Transformer; guard counters.

    Raises
    ------
    MissingResultsError
        In full mode, when no ``lm_compare_*.json`` with its metrics exists.
    """
    import numpy as np

    paths, source, compare = _training_runs(ctx)
    runs = {m: _read_metrics(p) for m, p in paths.items()}
    checks: dict[str, bool] = {}
    labels = {"bk": "ResNet-BK", "transformer": "Transformer (matched params)"}
    for m, r in runs.items():
        ppl = np.array([e["val_ppl"] for e in r["evals"]])
        sanity(checks, f"{m}: validation perplexities finite and > 1",
               np.all(np.isfinite(ppl) & (ppl > 1)))
        sanity(checks, f"{m}: validation perplexity decreased during training", ppl[-1] < ppl[0])
        tok = np.array([t["tokens"] for t in r["train"]])
        sanity(checks, f"{m}: token count increasing", np.all(np.diff(tok) > 0))
    sanity(checks, "both models trained on the same number of tokens",
           runs["bk"]["train"][-1]["tokens"] == runs["transformer"]["train"][-1]["tokens"])
    bk_train = runs["bk"]["train"]
    guard_keys = sorted({k for row in bk_train for k in row if k.startswith("guard.")})
    sanity(checks, "the BK run logged its certificate-guard counters", bool(guard_keys))
    series = {k: np.array([row.get(k, 0.0) for row in bk_train], dtype=float) for k in guard_keys}
    sanity(checks, "guard counters are cumulative (non-decreasing)",
           all(np.all(np.diff(s) >= 0) for s in series.values()))

    fig, axes = new_figure(2)
    ax = axes[0, 0]
    for k, (m, r) in enumerate(runs.items()):
        tr = r["train"]
        ax.plot([t["tokens"] for t in tr], [math.exp(min(t["loss"], 50)) for t in tr],
                color=f"C{k}", lw=0.5, alpha=0.4)
        ax.plot([e["tokens"] for e in r["evals"]], [e["val_ppl"] for e in r["evals"]], "o-",
                color=f"C{k}", ms=3, label=f"{labels[m]}, validation")
    ax.plot([], [], color="0.5", lw=0.5, label="training (exp loss)")
    ax.set_yscale("log")
    _token_axis(ax)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("perplexity")
    ax.set_title("(a) validation perplexity (held-out works)")
    ax.legend(loc="upper right")
    ax = axes[0, 1]
    tok = np.array([t["tokens"] for t in bk_train])
    shown = [k for k in guard_keys if series[k].max() > 0] or guard_keys[:1]
    for k in shown:
        ax.plot(tok, series[k], label=k.removeprefix("guard."))
    for e in runs["bk"]["events"]:
        if e.get("event") in ("skip", "spike", "rollback", "grad_norm_spike"):
            ax.axvline(e["step"] * runs["bk"]["per_step"], color="C3", lw=0.6, alpha=0.5)
    zero = [k.removeprefix("guard.") for k in guard_keys if series[k].max() == 0]
    ax.set_yscale("symlog", linthresh=1)
    _token_axis(ax)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("cumulative count")
    ax.set_title("(b) ResNet-BK certificate guards")
    if zero:
        lines = [", ".join(zero[i:i + 3]) for i in range(0, len(zero), 3)]
        ax.plot([], [], " ", label="zero throughout:\n" + ",\n".join(lines))
    ax.legend(loc="lower right", fontsize=5.5)
    final = {m: r["evals"][-1] for m, r in runs.items()}
    events_total = float(series.get("guard.events", np.zeros(1))[-1])
    numbers = {
        "tokens": int(bk_train[-1]["tokens"]),
        "bkppl": float(final["bk"]["val_ppl"]),
        "baselineppl": float(final["transformer"]["val_ppl"]),
        "guardevents": int(events_total),
        "guardscans": int(series.get("guard.scans", np.zeros(1))[-1]),
        "trainingevents": int(sum(1 for e in runs["bk"]["events"]
                                  if e.get("event") in ("skip", "spike", "rollback"))),
    }
    if compare:
        # the full held-out evaluation of lm_compare (the curves use the run's eval budget)
        numbers["bkcurveppl"] = numbers["bkppl"]
        numbers["baselinecurveppl"] = numbers["baselineppl"]
        numbers["bkppl"] = float(compare["models"]["bk"]["val_ppl"])
        numbers["baselineppl"] = float(compare["models"]["transformer"]["val_ppl"])
        numbers["preset"] = str(compare.get("preset", ""))
        numbers["bkparams"] = int(compare["models"]["bk"]["params"])
        numbers["baselineparams"] = int(compare["models"]["transformer"]["params"])
        numbers["bktestppl"] = float(compare["models"]["bk"]["test_ppl"])
        numbers["baselinetestppl"] = float(compare["models"]["transformer"]["test_ppl"])
    caption = (
        r"(a) Validation perplexity on held-out works (the evaluation budget of the training "
        r"run, \texttt{eval\_tokens}) against training tokens for ResNet-BK "
        r"and a Transformer with matched parameter count, trained by the same loop on the same "
        r"data and schedule (faint: training perplexity). (b) Cumulative runtime certificate-"
        r"guard counters of the ResNet-BK run (scans checked, violations of finiteness, of "
        r"$\operatorname{Im}g\ge-\mathrm{tol}$ and of $|g|\le(1+\mathrm{tol})/\eta$, float64 "
        r"recomputations); vertical lines mark skipped steps and rollbacks, if any."
    )
    data = {m: {"evals": r["evals"], "guard": {k: series[k].tolist() for k in guard_keys}
                if m == "bk" else {}} for m, r in runs.items()}
    return FigureResult(fig, caption, source, checks, numbers, data)
