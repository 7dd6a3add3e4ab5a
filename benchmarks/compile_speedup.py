"""Training-step speed of ``torch.compile(model)`` against eager, for ResNet-BK and the
Transformer baseline, measured in the same process.

Each row builds the ``small`` preset's model (``--model``, ``--layer``), runs a training step
(forward + backward + AdamW, bf16 autocast on CUDA) in eager mode and compiled
(``torch.compile(model)``, default mode), and times ``--steps`` steps after ``--warmup``
steps (the compiled warm-up includes the compilation, reported separately). The first
step's loss of both versions is recorded; the benchmark refuses to report a speedup when
they disagree by more than 2e-2 relative (bf16 autocast, one step).

Usage (on a GPU)::

    PYTHONPATH=. python benchmarks/compile_speedup.py --device cuda --seq-len 2048 --batch 8

Writes ``benchmarks/results/compile_speedup_<device>_<date>.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from _results import run_header, write_result  # noqa: E402

from bkmodel.factory import build_model  # noqa: E402
from bkmodel.presets import TrainConfig  # noqa: E402

ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "bk-selective": ("bk", dict(layer="selective", n_channels=256, ffn="mlp", ffn_mult=12,
                                conv_size=0)),
    "bk-green": ("bk", dict(layer="green", n_channels=4, ffn="mlp", ffn_mult=12,
                            conv_size=4, lam_init_center=2.5, lam_init_range=0.5)),
    "transformer": ("transformer", dict(layer="green", n_channels=4, ffn="mlp", ffn_mult=12,
                                        conv_size=4)),  # matched to bk-green (lm_suites)
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(model: torch.nn.Module, ids: torch.Tensor, device: str, warmup: int,
               steps: int) -> tuple[float, float, float]:
    """(first loss, warm-up seconds, mean seconds per timed step) of AdamW training steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cuda = device.startswith("cuda")

    def step() -> torch.Tensor:
        with torch.autocast("cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=cuda):
            _, loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    t0 = time.perf_counter()
    first = float(step())
    for _ in range(warmup - 1):
        step()
    _sync(device)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return first, warm, (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated: {', '.join(ROWS)}")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        p.error("--warmup and --steps must be >= 1")
    labels = args.rows.split(",")
    unknown = [x for x in labels if x not in ROWS]
    if unknown:
        p.error(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    doc: dict[str, Any] = {"benchmark": "compile_speedup", **run_header(args), "rows": []}
    gen = torch.Generator().manual_seed(0)
    dev = doc["machine"]["cuda"] or "cpu"
    name = f"compile_speedup_{dev.replace(' ', '-')}_{doc['date'][:10]}.json"
    path = None
    for label in labels:
        arch, options = ROWS[label]
        cfg = TrainConfig.from_preset("small", model=arch, model_options=dict(options),
                                      seq_len=args.seq_len, batch_size=args.batch)
        torch.manual_seed(0)
        eager = build_model(cfg, cfg.vocab_size).to(args.device)
        compiled_base = copy.deepcopy(eager)
        ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq_len + 1),
                            generator=gen).to(args.device)
        l_e, w_e, t_e = time_steps(eager, ids, args.device, args.warmup, args.steps)
        compiled = torch.compile(compiled_base)
        l_c, w_c, t_c = time_steps(compiled, ids, args.device, args.warmup, args.steps)
        agree = abs(l_c - l_e) <= 2e-2 * abs(l_e)
        row = {"label": label, "params": sum(q.numel() for q in eager.parameters()),
               "first_loss_eager": l_e, "first_loss_compiled": l_c, "losses_agree": agree,
               "eager_ms": 1e3 * t_e, "compiled_ms": 1e3 * t_c,
               "compile_warmup_s": w_c, "eager_warmup_s": w_e,
               "speedup": t_e / t_c if agree else None,
               "tokens_per_s_eager": args.batch * args.seq_len / t_e,
               "tokens_per_s_compiled": args.batch * args.seq_len / t_c}
        doc["rows"].append(row)
        print(f"{label:<14} eager {1e3 * t_e:8.2f} ms  compiled {1e3 * t_c:8.2f} ms  "
              + (f"x{t_e / t_c:.2f}" if agree else f"LOSSES DISAGREE {l_e:.4f} vs {l_c:.4f}")
              + f"  (compile warm-up {w_c:.0f} s)", flush=True)
        del eager, compiled, compiled_base
        path = write_result(doc, args.out, name, indent=2)  # after every row: a cut run
    print(f"wrote {path}")                                   # keeps the rows it finished
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
