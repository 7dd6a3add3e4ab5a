"""Host-side profile of ResNet-BK training steps on CUDA (where does the step time go?).

Builds the ``small`` preset model (or the Transformer baseline), runs a few warm-up steps
(forward under bf16 autocast, backward, AdamW), then profiles ``--steps`` steps with
torch.profiler and prints: wall time per step, GPU kernel time per step, kernel launches
and host-device synchronisations per step, the host functions with the most self time and
the GPU kernels with the most device time (ms per step). ``--row`` takes a row of
``benchmarks/lm_suites.py`` (model and options), e.g. ``green-edge-h8-f12``::

    PYTHONPATH=. python benchmarks/profile_train.py [--model bk | --row LABEL] [--seq-len 2048]

Writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="bk", choices=["bk", "transformer"])
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--no-guard", action="store_true")
    p.add_argument("--row", default=None,
                   help="a row label of benchmarks/lm_suites.py (its model and options), "
                        "e.g. green-edge-h8-f12; overrides --model")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("profile_train: needs a CUDA device", file=sys.stderr)
        return 2
    from torch.profiler import ProfilerActivity, profile

    from bkmodel.factory import build_model
    from bkmodel.presets import TrainConfig

    model_name, options = args.model, {}
    if args.row is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from lm_suites import ROWS

        if args.row not in ROWS:
            p.error(f"--row: unknown row {args.row!r}; known: {', '.join(ROWS)}")
        model_name, options = ROWS[args.row]
    cfg = TrainConfig.from_preset("small", model=model_name, seq_len=args.seq_len,
                                  batch_size=args.batch)  # fmt: skip
    cfg.model_options.update(options)
    if args.no_guard:
        cfg.bk_options["guard"] = {"enabled": False}
    dev = torch.device("cuda")
    model = build_model(cfg, 4096).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, 4096, (args.batch, args.seq_len + 1))

    def step():
        b = x.to(dev)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = model(b[:, :-1], b[:, 1:])
        loss.backward()
        float(loss.detach())
        float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
        _ = (getattr(model, "last_aux", None) or {}).get("skip_step")
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / args.steps
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(args.steps):
            step()
        torch.cuda.synchronize()
    n = args.steps
    gpu = sum(e.device_time for e in prof.events()
              if e.device_type == torch.autograd.DeviceType.CUDA) / n  # fmt: skip
    calls = Counter(e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CPU)
    launches = sum(v for k, v in calls.items() if "LaunchKernel" in k or k == "cuLaunchKernel")
    marks = ("Synchronize", "Memcpy", "item", "_local_scalar")
    syncs = {k: v / n for k, v in calls.items() if any(s in k for s in marks)}
    print(f"{args.row or model_name} n_seq={args.seq_len} batch={args.batch}: "
          f"wall {wall * 1e3:.1f} ms/step, "
          f"GPU kernels {gpu / 1e3:.1f} ms/step, {launches / n:.0f} launches/step")  # fmt: skip
    print("synchronising calls per step:", {k: round(v, 1) for k, v in sorted(syncs.items())})
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top,
                                    max_name_column_width=60))  # fmt: skip
    print("GPU kernels by device time (ms per step):")
    dev_time: Counter = Counter()
    dev_calls: Counter = Counter()
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            dev_time[e.name] += e.device_time / n / 1e3
            dev_calls[e.name] += 1 / n
    for name, ms in dev_time.most_common(args.top):
        print(f"  {ms:8.3f} ms  {dev_calls[name]:5.0f}x  {name[:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
