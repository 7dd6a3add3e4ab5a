"""Weight-only INT8 / INT4 quantization (torchao) of the two trained tiny runs, measured.

For ResNet-BK (``runs/lm_compare/tiny-bk``, selective layer) and the Transformer baseline
(``runs/lm_compare/tiny-transformer``), the same rows, each written as a quantized run
directory by :func:`bkmodel.quantize.save_quantized` and read back by
:func:`bkmodel.quantize.load_quantized` (what ``bk eval QRUN`` loads: the table measures the
loadable file):

* ``fp32``: the trained model (this CPU has no bf16 matmul speed-up and the runs were trained
  in fp32, so fp32 is the unquantized reference here; no bf16 row);
* ``int8``, ``int4-g128``, ``int4-g32``: post-training quantization (PTQ) of the linear
  weights; for ResNet-BK also ``...+in_proj``: the BK layer's input projection (v, eta, b)
  quantized too (the default keeps it in fp32, see :mod:`bkmodel.quantize`);
* ``qat-int4-g<g>``: torchao QAT — fake-quantized fine-tune of ``--qat-steps`` steps from the
  trained checkpoint (AdamW, peak lr ``--qat-lr``, same data, steps and optimizer for both
  models), then converted;
* ``fp32-ft``: the control for QAT — the same fine-tune without fake quantization, so that a
  QAT gain from the extra training steps is not read as a quantization gain; and
  ``fp32-ft+ptq-int4-g<g>``: that control quantized post-training (QAT vs PTQ at equal
  training).

Columns: validation and test perplexity (``--max-tokens`` per split, windows spread evenly
over the held-out works; 0 = the whole split), size on disk of the weights file, forward
tokens/s on CPU (best of ``--reps`` timed forwards of a (16, 128) batch per row, the rows
timed in turn, one torch thread: the minimum time, since other processes on a shared machine
only ever add time), and for
ResNet-BK the guard counters (Herglotz / |g| <= 1/eta violations) and the smallest eta_i seen.

``--timing-only [--device cuda]`` measures tokens/s alone, on freshly initialised models of the
tiny preset (the speed of a quantized matmul does not depend on the trained values, so no
trained run is needed on the machine that times): rows ``fp32``, ``bf16`` (CUDA only), the
three PTQ schemes (and ResNet-BK's ``+in_proj`` variants), each moved to ``--device`` and timed
on a ``--time-batch`` batch (default (16, 128), the CPU rows' shape) without autograd,
with ``torch.cuda.synchronize`` around every timed forward on CUDA.
A row that cannot be moved to or run on the device (a torchao layout without a kernel there)
is reported with its error, not dropped.

Usage::

    python benchmarks/quantize_compare.py          # about 5-8 minutes on 2 shared CPU cores
    PYTHONPATH=. python benchmarks/quantize_compare.py --timing-only --device cuda

Writes ``benchmarks/results/quantize_tiny_<date>.json`` (``--timing-only``:
``quantize_timing_<device>_<date>.json``).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from bkmodel.checkpoint import load_run, model_spec  # noqa: E402
from bkmodel.data import load_split  # noqa: E402
from bkmodel.evaluate import evaluate_stream  # noqa: E402
from bkmodel.model import SelectiveBKLayer  # noqa: E402
from bkmodel.quantize import (  # noqa: E402
    QUANT_WEIGHTS,
    QuantScheme,
    convert_qat,
    load_quantized,
    prepare_qat,
    qat_finetune,
    quantize_model,
    require_torchao,
    save_quantized,
)
from bkmodel.tokenizer import encode_documents  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
RUNS = {"bk": ROOT / "runs/lm_compare/tiny-bk",
        "transformer": ROOT / "runs/lm_compare/tiny-transformer"}


def _machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh
                        if ln.startswith("model name")), cpu)
    except OSError:
        pass
    require_torchao()
    import torchao

    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": sys.version.split()[0], "torch": torch.__version__,
            "torchao": torchao.__version__, "torch_threads_timing": 1, "gpu": None}


@torch.no_grad()
def _time_rows(models: dict[str, torch.nn.Module], vocab: int, reps: int,
               device: str = "cpu", batch: tuple[int, int] = (16, 128)) -> dict[str, float]:
    """Forward tokens/s of each model on one ``batch`` of ids on ``device``: the best of
    ``reps`` timed forwards, the models taken in turn (round-robin) so that a burst of load
    from other processes falls on all rows alike rather than on one. On CUDA every timed
    forward is bracketed by ``torch.cuda.synchronize``."""
    x = torch.randint(0, vocab, batch, generator=torch.Generator().manual_seed(0)).to(device)
    cuda = torch.device(device).type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    best = dict.fromkeys(models, float("inf"))
    for m in models.values():
        m(x)  # warm-up
    for _ in range(reps):
        for label, m in models.items():
            sync()
            t0 = time.perf_counter()
            m(x)
            sync()
            best[label] = min(best[label], time.perf_counter() - t0)
    return {label: x.numel() / t for label, t in best.items()}


def _schemes(arch: str) -> list[QuantScheme]:
    """The PTQ rows: INT8, INT4 g128 / g32, and for ResNet-BK the same with the BK layer's
    input projection quantized too."""
    schemes = [QuantScheme(8), QuantScheme(4, 128), QuantScheme(4, 32)]
    if arch == "bk":
        schemes += [QuantScheme(8, in_proj=True), QuantScheme(4, 128, in_proj=True),
                    QuantScheme(4, 32, in_proj=True)]
    return schemes


def timing_only(arch: str, args) -> dict:
    """Tokens/s of the unquantized and PTQ rows of a freshly initialised tiny-preset model
    on ``args.device`` (module docstring); rows that fail there carry ``error``."""
    from bkmodel.factory import build_model
    from bkmodel.presets import TrainConfig, get_preset

    cfg = TrainConfig(**{**get_preset("tiny"), "model": arch})
    base = build_model(cfg, cfg.vocab_size).eval()
    candidates: dict[str, Any] = {"fp32": lambda: copy.deepcopy(base)}
    if torch.device(args.device).type == "cuda":
        candidates["bf16"] = lambda: copy.deepcopy(base).to(torch.bfloat16)
    for sch in _schemes(arch):
        def make(sch=sch):
            m = copy.deepcopy(base)
            quantize_model(m, sch)
            return m
        candidates[sch.label] = make
    models, rows = {}, []
    for label, make in candidates.items():
        try:
            m = make().to(args.device).eval()
            with torch.no_grad():
                m(torch.zeros(1, 8, dtype=torch.long, device=args.device))
            models[label] = m
            rows.append({"label": label})
        except Exception as exc:  # a layout without a kernel on this device: say so
            rows.append({"label": label, "error": f"{type(exc).__name__}: {exc}"[:500]})
    tps = _time_rows(models, cfg.vocab_size, args.reps, args.device, tuple(args.time_batch))
    for r in rows:
        if r["label"] in tps:
            r["tokens_per_s"] = tps[r["label"]]
            r["x_vs_fp32"] = tps[r["label"]] / tps["fp32"] if "fp32" in tps else None
        print(f"  {r['label']:<22} " + (f"{r['tokens_per_s']:12,.0f} tok/s" if "error" not in r
                                         else f"error: {r['error'][:100]}"), flush=True)
    return {"params": base.num_params(), "config": "tiny preset, fresh init (seed "
            f"{cfg.seed})", "rows": rows}


def _eta_min_seen(model: torch.nn.Module, vocab: int) -> float | None:
    layers = [m for m in model.modules() if isinstance(m, SelectiveBKLayer)]
    if not layers or any(m.conv is not None for m in layers):
        return None
    seen: list[float] = []
    hooks = [m.in_proj.register_forward_hook(
        lambda mod, i, o, m=m: seen.append(float(m._operator(o)[1].min()))) for m in layers]
    x = torch.randint(0, vocab, (16, 128), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return min(seen)


def _row(label: str, model, report, ctx: dict, args) -> dict:
    """Save (quantized rows: as a quantized run, read back), evaluate, time one row."""
    if report is None:  # fp32: the weights' size as a plain state dict (tied weights once)
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        size, ev_model, report = len(buf.getvalue()), model, {"quantized": [], "kept": {}}
    else:
        qdir = ctx["work"] / label
        save_quantized(model, qdir, report=report, source=ctx["source"],
                       tokenizer_doc=ctx["tok_doc"])
        size = (qdir / QUANT_WEIGHTS).stat().st_size
        ev_model, _, _ = load_quantized(qdir)  # what `bk eval QRUN` evaluates
    seq_len = ctx["source"]["train_config"]["seq_len"]
    ev = {s: evaluate_stream(ev_model, ctx["tokens"][s], seq_len,
                             max_tokens=args.max_tokens or None)
          for s in ("validation", "test")}
    vocab = ctx["vocab"]
    row = {"label": label, "val_ppl": ev["validation"]["ppl"], "test_ppl": ev["test"]["ppl"],
           "val_loss": ev["validation"]["loss"], "test_loss": ev["test"]["loss"],
           "eval_tokens": ev["validation"]["tokens"], "bytes": size,
           "quantized_layers": len(report["quantized"]), "kept": report["kept"],
           "qat": report.get("qat")}
    guard = ev_model.guard_report() if hasattr(ev_model, "guard_report") else {}
    if guard:  # ResNet-BK (the Transformer's report is empty)
        row["guard_violations"] = {k: guard.get(k, 0) for k in
                                   ("herglotz", "bound", "nonfinite", "violating_scans")}
        row["guard_scans"] = guard.get("scans", 0)
        row["eta_min_seen"] = _eta_min_seen(ev_model, vocab)
    ctx["models"][label] = ev_model
    print(f"  {label:<22} val {row['val_ppl']:8.2f}  test {row['test_ppl']:8.2f}  "
          f"{size / 1e6:6.2f} MB", flush=True)
    return row


def compare_arch(arch: str, args, work: Path) -> dict:
    base, tok, state = load_run(RUNS[arch])
    vocab = tok.vocab_size
    source = {"model_spec": model_spec(base), "train_config": state["train_config"],
              "step": state["step"]}
    tok_doc = (RUNS[arch] / "tokenizer.json").read_text()
    corpus = state["train_config"]["corpus"]
    train_tokens = encode_documents(tok, load_split("train", corpus))
    ctx = {"work": work / arch, "source": source, "tok_doc": tok_doc, "vocab": vocab,
           "models": {},
           "tokens": {s: encode_documents(tok, load_split(s, corpus))
                      for s in ("validation", "test")}}
    rows = [_row("fp32", base, None, ctx, args)]
    for s in _schemes(arch):
        m = copy.deepcopy(base)
        rows.append(_row(s.label, m, quantize_model(m, s), ctx, args))
    ft = dict(steps=args.qat_steps, lr=args.qat_lr, seed=0)
    for g in args.qat_group_sizes:
        qs = QuantScheme(4, g)
        m = copy.deepcopy(base)
        t0 = time.perf_counter()
        rep = prepare_qat(m, qs)
        losses = qat_finetune(m, state["train_config"], train_tokens, **ft)
        convert_qat(m, rep)
        rep["qat"] = {**ft, "final_loss": losses[-1], "wall_s": time.perf_counter() - t0}
        rows.append(_row(f"qat-{qs.label}", m, rep, ctx, args))
    ft_model = copy.deepcopy(base)
    t0 = time.perf_counter()
    losses = qat_finetune(ft_model, state["train_config"], train_tokens, **ft)
    row = _row("fp32-ft", ft_model, None, ctx, args)
    row["qat"] = {**ft, "final_loss": losses[-1], "wall_s": time.perf_counter() - t0,
                  "fake_quant": False}
    rows.append(row)
    for g in args.qat_group_sizes:  # PTQ of the fine-tuned control: QAT vs PTQ, equal training
        qs, m = QuantScheme(4, g), copy.deepcopy(ft_model)
        rows.append(_row(f"fp32-ft+ptq-{qs.label}", m, quantize_model(m, qs), ctx, args))
    tps = _time_rows(ctx["models"], vocab, args.reps)
    for r in rows:
        r["tokens_per_s"] = tps[r["label"]]
        print(f"  {r['label']:<22} {r['tokens_per_s']:9,.0f} tok/s", flush=True)
    return {"run": str(RUNS[arch].relative_to(ROOT)), "step": state["step"],
            "params": base.num_params(), "rows": rows}


def _main_timing(args, date: str) -> int:
    """``--timing-only``: both architectures' rows on ``args.device``, written as JSON."""
    machine = _machine()
    dev = torch.device(args.device)
    if dev.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(dev)
    label = (machine["gpu"] or "cpu").replace(" ", "-")
    res = {"benchmark": "quantize_compare --timing-only", "date": date, "machine": machine,
           "torch": torch.__version__,
           "command": "python benchmarks/quantize_compare.py " + " ".join(sys.argv[1:]),
           "settings": {k: v for k, v in vars(args).items() if k != "out"}, "models": {}}
    for arch in ("bk", "transformer"):
        print(arch, flush=True)
        res["models"][arch] = timing_only(arch, args)
    out = args.out or RESULTS / f"quantize_timing_{label}_{date}.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-tokens", type=int, default=65536,
                    help="tokens per held-out split (0 = the whole split)")
    ap.add_argument("--reps", type=int, default=7, help="timed forwards per row (best kept)")
    ap.add_argument("--qat-steps", type=int, default=100)
    ap.add_argument("--qat-lr", type=float, default=3e-4)
    ap.add_argument("--qat-group-sizes", type=int, nargs="+", default=[128, 32],
                    choices=[32, 128])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--timing-only", action="store_true",
                    help="tokens/s of fresh tiny-preset models only (no trained runs needed)")
    ap.add_argument("--device", default="cpu", help="device of --timing-only (cpu, cuda)")
    ap.add_argument("--time-batch", type=int, nargs=2, default=[16, 128], metavar=("B", "T"),
                    help="batch of the timed forwards")
    args = ap.parse_args(argv)
    if args.device != "cpu" and not args.timing_only:
        ap.error("--device applies to --timing-only (the full table is measured on CPU)")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available here")
    if min(args.time_batch) < 1:
        ap.error("--time-batch: B and T must be >= 1")
    torch.set_num_threads(1)
    date = dt.date.today().isoformat()
    if args.timing_only:
        return _main_timing(args, date)
    t0, load0 = time.perf_counter(), os.getloadavg()
    res = {"benchmark": "quantize_compare", "date": date, "machine": _machine(),
           "command": "python benchmarks/quantize_compare.py " + " ".join(sys.argv[1:]),
           "settings": {k: v for k, v in vars(args).items() if k != "out"},
           "models": {}}
    with tempfile.TemporaryDirectory() as d:
        for arch in ("bk", "transformer"):
            print(arch, flush=True)
            res["models"][arch] = compare_arch(arch, args, Path(d))
    res["wall_s"] = time.perf_counter() - t0
    res["loadavg_before_after"] = [list(load0), list(os.getloadavg())]
    out = args.out or RESULTS / f"quantize_tiny_{date}.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out} ({res['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
