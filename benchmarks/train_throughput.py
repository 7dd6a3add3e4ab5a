"""Training throughput and peak GPU memory: ResNet-BK vs the Transformer baseline.

Runs ``bkmodel.train.train`` (the loop behind ``bk train``) on the ``small`` preset for both
architectures at long sequence lengths, the same tokens per optimizer step (batch ×
n_seq = ``--tokens``), a short run each (``--steps``; the loop's throughput already excludes
the first five steps, evaluation and checkpoints). Records tokens/s and
``torch.cuda.max_memory_allocated`` per run, and the ratio ResNet-BK / Transformer in the
same process. On CUDA the BK layer's scan runs the Triton kernels (``scan_backend="auto"``).

Usage (on a GPU)::

    PYTHONPATH=. python benchmarks/train_throughput.py --seq-lens 2048 16384 --results DIR

Writes ``<results>/train_small_<device>_<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from bkmodel.presets import TrainConfig  # noqa: E402
from bkmodel.train import train  # noqa: E402


def run_one(model: str, seq_len: int, tokens: int, steps: int, out: Path,
            bk_options: dict | None = None, label: str | None = None,
            cuda_graph: bool = False) -> dict:  # fmt: skip
    batch = max(1, tokens // seq_len)
    cfg = TrainConfig.from_preset(
        "small", model=model, seq_len=seq_len, batch_size=batch, max_steps=steps,
        warmup_steps=min(5, steps), eval_every=10**6, ckpt_every=10**6,
        eval_tokens=2 * seq_len, log_every=5,
    )  # fmt: skip
    if bk_options:
        cfg.bk_options.update(bk_options)
    cfg.cuda_graph = cuda_graph
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    summary = train(cfg, out / f"{label or model}-{seq_len}", progress=False)
    return dict(
        model=label or model, seq_len=seq_len, bk_options=bk_options or {},
        cuda_graph=cuda_graph,
        batch_size=batch, steps=summary["steps"],
        params=summary["params"], train_tokens_per_s=summary["train_tokens_per_s"],
        peak_memory_bytes=torch.cuda.max_memory_allocated(),
        counters=summary.get("counters"),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seq-lens", type=int, nargs="+", default=[2048, 16384])
    p.add_argument("--tokens", type=int, default=16384, help="tokens per optimizer step")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument(
        "--cuda-graph", action="store_true",
        help="also run both models with forward + backward replayed from a CUDA graph",
    )  # fmt: skip
    p.add_argument(
        "--variants", action="store_true",
        help="also run ResNet-BK with guards off and with sparse MoE dispatch (diagnostics)",
    )  # fmt: skip
    p.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("train_throughput: needs a CUDA device", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name()
    date = dt.datetime.now(dt.timezone.utc)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.seq_lens:
            pair = {}
            for model in ("bk", "transformer"):
                r = run_one(model, n, args.tokens, args.steps, Path(tmp))
                rows.append(r)
                pair[model] = r
                print(
                    f"n_seq={n:>6} {model:<11} batch={r['batch_size']:>3} params={r['params']:>9} "
                    f"{r['train_tokens_per_s']:>10.0f} tok/s  "
                    f"peak {r['peak_memory_bytes'] / 2**30:6.2f} GiB",
                    flush=True,
                )  # fmt: skip
            if args.cuda_graph:
                for model in ("bk", "transformer"):
                    label = f"{model}+graph"
                    r = run_one(model, n, args.tokens, args.steps, Path(tmp), None, label, True)
                    rows.append(r)
                    pair[label] = r
                    print(f"n_seq={n:>6} {label:<14} {r['train_tokens_per_s']:>10.0f} tok/s  "
                          f"peak {r['peak_memory_bytes'] / 2**30:6.2f} GiB", flush=True)
            if args.variants:
                for label, opts in (("bk-noguard", {"guard": {"enabled": False}}),
                                    ("bk-sparse-moe", {"moe_dispatch": "sparse"})):  # fmt: skip
                    r = run_one("bk", n, args.tokens, args.steps, Path(tmp), opts, label)
                    rows.append(r)
                    print(f"n_seq={n:>6} {label:<14} {r['train_tokens_per_s']:>10.0f} tok/s  "
                          f"peak {r['peak_memory_bytes'] / 2**30:6.2f} GiB", flush=True)
            ratio = pair["bk"]["train_tokens_per_s"] / pair["transformer"]["train_tokens_per_s"]
            mem = pair["bk"]["peak_memory_bytes"] / pair["transformer"]["peak_memory_bytes"]
            print(
                f"n_seq={n:>6} ResNet-BK/Transformer: tokens/s x{ratio:.2f}, peak memory x{mem:.2f}"
            )
            if args.cuda_graph:
                rg = pair["bk+graph"]["train_tokens_per_s"] / pair["transformer+graph"][
                    "train_tokens_per_s"]  # fmt: skip
                print(f"n_seq={n:>6} with CUDA graphs: ResNet-BK/Transformer tokens/s x{rg:.2f}")
    result = dict(
        benchmark="train_throughput", preset="small", device=name,
        date=date.isoformat(timespec="seconds"), torch=torch.__version__,
        tokens_per_step=args.tokens, steps=args.steps, runs=rows,
        command="python benchmarks/train_throughput.py " + " ".join(argv or sys.argv[1:]),
    )  # fmt: skip
    tag = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    out = args.results / f"train_small_{tag}_{date.strftime('%Y-%m-%d')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
