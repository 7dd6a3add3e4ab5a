"""ResNet-BK vs the Transformer baseline, trained by the same loop for the same tokens.

Both models share the preset's tokenizer, d_model, depth, sequence length, batch, schedule and
number of steps; the Transformer's feed-forward width is chosen so that its parameter count
matches the ResNet-BK model's (bkmodel.baseline.matched_config). Reported per model:
parameters, validation and test perplexity on the held-out works (bk eval: whole plays never
seen in training), training throughput (tokens/s over optimizer steps, evaluation and
checkpoint time excluded) and forward-only evaluation throughput; then the ratios
ResNet-BK / Transformer measured in this same run.

The GPU comparisons at seq 2,048 and 16,384 (the selective layer, its ablation, the classic
layer and the Transformer, one suite per call) are in ``benchmarks/lm_suites.py``.

Usage::

    python benchmarks/lm_compare.py --preset tiny            # about 2-4 minutes on 2 CPU cores

Writes ``benchmarks/results/lm_compare_<preset>_<date>.json`` (``..._cuda_<date>.json`` on a
GPU, where training runs under bf16 autocast). Throughput on a shared machine
depends on its load: the JSON records the load average before and after.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from bkmodel.evaluate import evaluate_checkpoint  # noqa: E402
from bkmodel.presets import PRESETS, TrainConfig  # noqa: E402
from bkmodel.train import train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def compare(preset: str, out_dir: Path, overrides: dict, progress: bool) -> dict:
    rows = {}
    for model in ("bk", "transformer"):
        cfg = TrainConfig.from_preset(preset, model=model, **overrides)
        run_dir = out_dir / f"{preset}-{model}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        t0 = time.perf_counter()
        summary = train(cfg, run_dir, progress=progress)
        wall = time.perf_counter() - t0
        ev = evaluate_checkpoint(run_dir, ("validation", "test"), batch_size=cfg.batch_size)
        rows[model] = {
            "params": summary["params"], "steps": summary["steps"],
            "train_tokens": summary["tokens"],
            "val_ppl": ev["validation"]["ppl"], "val_loss": ev["validation"]["loss"],
            "test_ppl": ev["test"]["ppl"], "test_loss": ev["test"]["loss"],
            "val_tokens": ev["validation"]["tokens"], "test_tokens": ev["test"]["tokens"],
            "train_tokens_per_s": summary["train_tokens_per_s"],
            "eval_tokens_per_s": ev["validation"]["tokens_per_s"],
            "wall_s": wall, "counters": summary["counters"], "run_dir": str(run_dir),
            "config": cfg.to_dict(),
            # the training curves (metrics.jsonl rows), for bk figures
            "metrics": [json.loads(line) for line in
                        (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()],
        }
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--max-steps", type=int, default=None, help="override the preset's steps")
    p.add_argument("--out-dir", type=Path, default=Path("runs/lm_compare"))
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    overrides = {} if args.max_steps is None else {"max_steps": args.max_steps}
    load0 = os.getloadavg()
    started = dt.datetime.now(dt.timezone.utc)
    rows = compare(args.preset, args.out_dir, overrides, not args.no_progress)
    load1 = os.getloadavg()
    bk, tf = rows["bk"], rows["transformer"]
    ratios = {
        "params": bk["params"] / tf["params"],
        "val_ppl": bk["val_ppl"] / tf["val_ppl"],
        "test_ppl": bk["test_ppl"] / tf["test_ppl"],
        "train_tokens_per_s": bk["train_tokens_per_s"] / tf["train_tokens_per_s"],
        "eval_tokens_per_s": bk["eval_tokens_per_s"] / tf["eval_tokens_per_s"],
    }
    command = "python benchmarks/lm_compare.py " + " ".join(argv if argv is not None
                                                            else sys.argv[1:])
    result = {
        "benchmark": "lm_compare", "preset": args.preset, "date": started.isoformat(),
        "command": command.strip(),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    "device": "cuda" if torch.cuda.is_available() else "cpu",
                    "loadavg_before": load0, "loadavg_after": load1},
        "models": rows, "ratios_bk_over_transformer": ratios,
    }
    header = (f"{'model':<13}{'params':>11}{'steps':>7}{'val ppl':>10}{'test ppl':>10}"
              f"{'train tok/s':>13}{'eval tok/s':>12}")
    print(f"\nlm_compare, preset {args.preset}, {started:%Y-%m-%d %H:%M} UTC, "
          f"{platform.machine()} x{os.cpu_count()}, torch {torch.__version__}")
    print(header)
    print("-" * len(header))
    for name, r in (("ResNet-BK", bk), ("Transformer", tf)):
        print(f"{name:<13}{r['params']:>11,}{r['steps']:>7}{r['val_ppl']:>10.2f}"
              f"{r['test_ppl']:>10.2f}{r['train_tokens_per_s']:>13,.0f}"
              f"{r['eval_tokens_per_s']:>12,.0f}")
    print(f"{'BK / TF':<13}{ratios['params']:>11.3f}{'':>7}{ratios['val_ppl']:>10.3f}"
          f"{ratios['test_ppl']:>10.3f}{ratios['train_tokens_per_s']:>13.2f}"
          f"{ratios['eval_tokens_per_s']:>12.2f}")
    print(f"load average before/after: {load0[0]:.2f} / {load1[0]:.2f} "
          f"(on {os.cpu_count()} cores; throughput is only comparable within one run)")
    args.results.mkdir(parents=True, exist_ok=True)
    device = "_cuda" if torch.cuda.is_available() else ""
    path = args.results / f"lm_compare_{args.preset}{device}_{started:%Y-%m-%d}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
