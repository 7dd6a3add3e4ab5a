"""A ``bk train`` process for the multi-process tests (``torchrun ... _ddp_worker.py``).

Runs :class:`bkmodel.train.Trainer` like :func:`bkmodel.train.train` does, with an optional
fault injected on one rank only, and writes ``rank<r>.json`` into the run directory: the
rank's counters, step, data position and a checksum of its parameters (the local shards under
FSDP), so the test can check that every rank took the same decisions.

Usage: ``_ddp_worker.py OUT CONFIG_JSON [--fault KIND@STEP:RANK ...] [--resume]`` with KIND one
of ``guard`` (a ``GuardError`` raised in the forward of block 0), ``nan_loss`` (the logits
replaced by NaN for one step) and ``nan_weight`` (one weight set to NaN).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from bkmodel.distributed import Dist
from bkmodel.guards import GuardError
from bkmodel.presets import TrainConfig
from bkmodel.train import Trainer


def make_fault(specs: list[str], rank: int):
    """``fault(step, model, batch)`` for :class:`Trainer` that fires each spec once."""
    todo = []
    for spec in specs:
        kind, rest = spec.split("@")
        step, on_rank = (int(v) for v in rest.split(":"))
        if on_rank == rank:
            todo.append([kind, step, False])
    hooks: list = []

    def fault(step: int, model: torch.nn.Module, batch: torch.Tensor) -> None:
        while hooks:
            hooks.pop().remove()
        for item in todo:
            kind, at, fired = item
            if fired or step != at:
                continue
            item[2] = True
            block = model.blocks[0]
            if kind == "guard":
                def boom(module, inputs):
                    raise GuardError("injected on this rank")
                hooks.append(block.register_forward_pre_hook(boom))
            elif kind == "nan_loss":  # on the logits, past the BK guards
                hooks.append(model.lm_head.register_forward_hook(
                    lambda module, inputs, out: torch.full_like(out, math.nan)))
            elif kind == "nan_weight":
                p = next(model.parameters())
                with torch.no_grad():
                    (p.to_local() if hasattr(p, "to_local") else p).fill_(math.nan)
            else:
                raise ValueError(f"unknown fault {kind!r}")

    return fault


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("config")
    parser.add_argument("--fault", action="append", default=[])
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = TrainConfig.from_dict(json.loads(args.config))
    dist = Dist(cfg.device)
    try:
        trainer = Trainer(cfg, args.out, dist, resume=args.resume,
                          fault=make_fault(args.fault, dist.rank), progress=False,
                          cache_dir=None, say=print if dist.is_main else (lambda msg: None))
        trainer.fit()
        st = trainer.state
        local = [p.to_local() if hasattr(p, "to_local") else p for p in trainer.raw.parameters()]
        record = {"rank": dist.rank, "world": dist.world, "step": st.step, "skip": st.skip,
                  "tokens": st.tokens, "counters": st.counters,
                  "checksum": float(sum(p.detach().double().sum() for p in local))}
        (args.out / f"rank{dist.rank}.json").write_text(json.dumps(record))
    finally:
        dist.close()


if __name__ == "__main__":
    main()
