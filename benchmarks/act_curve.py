"""Early exit (ACT) on CPU: perplexity against measured average forward FLOPs per token.

Trains (unless the run directories hold the final checkpoint) ResNet-BK and the Transformer
baseline with the project's loop (:class:`bkmodel.train.Trainer`, without its final
whole-split evaluation) from the ``tiny`` preset with ``--layers``
blocks (default 4: two blocks leave too little depth to exit from) and ``--steps`` steps of
``--batch-size`` windows, then evaluates on the validation split (``--max-tokens`` tokens,
windows spread evenly) with :func:`bkmodel.early_exit.evaluate_early_exit`:

* ``none`` (the full model) and ``static@l`` (every token exits after block l);
* ResNet-BK only: ``scattering`` with the ``coherence`` and ``phase`` statistics of the BK
  layers' g, thresholds at quantiles of the statistic (so the points spread over the range);
* both: ``confidence`` (max softmax probability of the exit), thresholds likewise;
* both: ``ponder``, the learned (PonderNet) halting heads of :mod:`bkmodel.early_exit`,
  trained by :func:`~bkmodel.early_exit.train_ponder_halting` on the *frozen* model (so every
  rule is a halting policy on the same trained model) for ``--ponder-steps`` full-batch Adam
  steps on ``--ponder-windows`` windows of the training split (KL weight ``--ponder-beta``,
  geometric prior ``--ponder-lambda-p``); thresholds on ``lambda_n`` at quantiles likewise.

``--rules`` picks the families (``none`` is always evaluated).

FLOPs are :mod:`bkmodel.flops`' analytic per-layer counts charged per token as
:mod:`bkmodel.early_exit` states (copied-state convention; exits, halting statistics and the
deeper layers' state updates included). The verdict compares, per architecture, the smallest
FLOPs any rule reaches at a perplexity within ``--tolerance`` (default 1 %) of the full model.

Usage::

    nice python benchmarks/act_curve.py            # a few minutes on 2 shared CPU cores

Writes ``benchmarks/results/act_curve_tiny_<date>.json`` (read by ``bkpaper.act_figs``); a
file of the same day keeps the entries of the models not run this time (``--models bk`` and
``--models transformer`` can run separately).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from bkmodel.checkpoint import load_run  # noqa: E402
from bkmodel.data import load_split  # noqa: E402
from bkmodel.early_exit import (  # noqa: E402
    EarlyExit,
    HaltingRule,
    PonderHalting,
    evaluate_early_exit,
    train_ponder_halting,
)
from bkmodel.presets import TrainConfig  # noqa: E402
from bkmodel.tokenizer import encode_documents  # noqa: E402
from bkmodel.train import Trainer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9, 0.97, 0.99)
TOLERANCES = (0.01, 0.02, 0.05, 0.10)
RULE_FAMILIES = ("static", "scattering", "confidence", "ponder")


def _machine() -> dict:
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "device": "cpu", "loadavg": list(os.getloadavg())}


class _Trainer(Trainer):
    """The project's training loop without its final whole-split evaluation (on a shared
    2-core CPU that pass over the ~200k validation tokens costs more than the training; the
    benchmarks evaluate ``--max-tokens`` tokens themselves)."""

    def _finish(self, model: torch.nn.Module | None = None) -> dict:
        return {"steps": self.state.step}


def train_without_final_eval(cfg: TrainConfig, run: Path) -> float:
    """Train ``cfg`` into ``run`` with :class:`bkmodel.train.Trainer` (same steps, data,
    optimizer and checkpoints as ``bk train``); returns the wall time in seconds. Nothing is
    done when ``run`` holds a checkpoint of step ``cfg.max_steps``."""
    from bkmodel.checkpoint import load_checkpoint
    from bkmodel.distributed import Dist

    if (run / "checkpoint.pt").exists() and load_checkpoint(run)[0]["step"] == cfg.max_steps:
        return 0.0
    t0 = time.perf_counter()
    dist = Dist(cfg.device)
    try:
        _Trainer(cfg, run, dist, resume=False, fault=None, progress=False, cache_dir=None,
                 say=lambda msg: print(msg, file=sys.stderr, flush=True)).fit()
    finally:
        dist.close()
    return time.perf_counter() - t0


def _train_or_load(kind: str, args) -> tuple[torch.nn.Module, object, dict]:
    run = Path(args.out_dir) / f"tiny-L{args.layers}-{kind}"
    cfg = TrainConfig.from_preset("tiny", model=kind, n_layers=args.layers,
                                  max_steps=args.steps, batch_size=args.batch_size,
                                  warmup_steps=max(1, args.steps // 10),
                                  eval_every=args.steps, ckpt_every=args.steps,
                                  eval_tokens=8192, device="cpu")
    info: dict = {"run_dir": str(run), "config": cfg.to_dict(),
                  "train_wall_s": train_without_final_eval(cfg, run)}
    model, tok, _ = load_run(run)
    return model.eval(), tok, info


def _family(p: dict) -> str:
    return f"scattering-{p['statistic']}" if p["kind"] == "scattering" else p["kind"]


def _scores(model, tokens: np.ndarray, seq_len: int, max_tokens: int,
            halting: PonderHalting | None = None) -> dict[str, np.ndarray]:
    """The halting statistics of every non-final block over the evaluation windows (rule
    ``none``), for choosing thresholds at quantiles (``ponder``: the heads' ``lambda_n``,
    when ``halting`` is given)."""
    from bkmodel.data import batch_from_stream, eval_windows

    ee = EarlyExit(model, halting)
    out: dict[str, list] = {"coherence": [], "phase": [], "confidence": [], "ponder": []}
    starts = eval_windows(len(tokens), seq_len, max_tokens)
    with torch.no_grad():
        for i in range(0, len(starts), 16):
            rows = torch.from_numpy(batch_from_stream(tokens, starts[i: i + 16], seq_len))
            x, ctx = ee._embed(rows[:, :-1])
            for layer in range(ee.n_layers - 1):
                x, g = ee._block(layer, x, ctx)
                out["confidence"].append(ee._score(HaltingRule("confidence", 0.5), x, g))
                if halting is not None:
                    out["ponder"].append(ee._score(HaltingRule("ponder", 0.5), x, g, layer))
                if g is not None:
                    for s in ("coherence", "phase"):
                        out[s].append(ee._score(HaltingRule("scattering", 0.5, s), x, g))
    return {k: torch.cat([t.reshape(-1) for t in v]).numpy() for k, v in out.items() if v}


def _thresholds(values: np.ndarray) -> list[float]:
    qs = np.quantile(values, QUANTILES)
    return sorted({float(np.clip(q, 1e-6, 1 - 1e-6)) for q in qs})


def curve(kind: str, args) -> dict:
    model, tok, info = _train_or_load(kind, args)
    seq_len = model.config.n_seq if kind == "bk" else model.config.max_seq_len
    tokens = encode_documents(tok, load_split("validation", "shakespeare"))
    families = set(args.rules.split(","))
    L = len(model.blocks)
    halting = None
    if "ponder" in families:  # the learned halting heads, on the frozen model
        t0 = time.perf_counter()
        train_tokens = encode_documents(tok, load_split("train", "shakespeare"))
        halting, pinfo = train_ponder_halting(
            model, train_tokens, seq_len=seq_len, steps=args.ponder_steps,
            windows=args.ponder_windows, beta=args.ponder_beta, lambda_p=args.ponder_lambda_p,
            lr=args.ponder_lr)
        info["ponder_training"] = {**pinfo, "wall_s": time.perf_counter() - t0}
        print(f"{kind:12s} ponder heads: loss {pinfo['loss_init']:.4f} -> "
              f"{pinfo['loss_final']:.4f}, expected exit {pinfo['expected_exit_init']:.3f} -> "
              f"{pinfo['expected_exit_final']:.3f} ({pinfo['steps']} steps, "
              f"{pinfo['tokens']} tokens)", flush=True)
    rules = [HaltingRule("none")]
    if "static" in families:
        rules += [HaltingRule("static", exit_layer=e) for e in range(L - 1)]
    scores = _scores(model, tokens, seq_len, args.max_tokens, halting)
    if kind == "bk" and "scattering" in families:
        for stat in ("coherence", "phase"):
            rules += [HaltingRule("scattering", t, stat) for t in _thresholds(scores[stat])]
    if "confidence" in families:
        rules += [HaltingRule("confidence", t) for t in _thresholds(scores["confidence"])]
    if halting is not None:
        rules += [HaltingRule("ponder", t) for t in _thresholds(scores["ponder"])]
    points = []
    t0 = time.perf_counter()
    for rule in rules:
        r = evaluate_early_exit(model, tokens, rule, seq_len=seq_len,
                                max_tokens=args.max_tokens, halting=halting)
        points.append(r)
        print(f"{kind:12s} {r['rule']:32s} ppl {r['ppl']:8.2f}  FLOPs/token "
              f"{r['flops_per_token']:12,.0f} ({r['flops_fraction']:.3f})", flush=True)
    costs = EarlyExit(model).flop_costs(seq_len)
    full = points[0]
    ok = [p for p in points if p["ppl"] <= full["ppl"] * (1 + args.tolerance)]
    best = min(ok, key=lambda p: p["flops_per_token"])
    families = sorted({_family(p) for p in points} - {"none"})
    by_family = {}  # family -> tolerance -> smallest FLOPs fraction within it (or None)
    for fam in families:
        fp = [p for p in points if _family(p) == fam]
        by_family[fam] = {}
        for tol in TOLERANCES:
            within = [p for p in fp if p["ppl"] <= full["ppl"] * (1 + tol)]
            by_family[fam][f"{tol:g}"] = (min(p["flops_fraction"] for p in within)
                                         if within else None)
        half = [p for p in fp if p["flops_fraction"] <= 0.5]
        by_family[fam]["ppl_at_half_flops"] = min((p["ppl"] for p in half), default=None)
    return {**info, "params": model.num_params(), "n_layers": L, "seq_len": seq_len,
            "flop_costs": costs, "eval_wall_s": time.perf_counter() - t0,
            "score_quantiles": {k: np.quantile(v, QUANTILES).tolist()
                                for k, v in scores.items()},
            "points": points,
            "verdict": {"full_ppl": full["ppl"], "tolerance": args.tolerance,
                        "best_rule_within_tolerance": best["rule"],
                        "best_flops_fraction": best["flops_fraction"],
                        "flops_saving_factor": 1.0 / best["flops_fraction"],
                        "min_flops_fraction_within_tolerance": by_family}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=4096)
    p.add_argument("--tolerance", type=float, default=0.01)
    p.add_argument("--models", default="bk,transformer")
    p.add_argument("--rules", default=",".join(RULE_FAMILIES),
                   help="rule families besides none (default: %(default)s)")
    p.add_argument("--ponder-steps", type=int, default=200,
                   help="Adam steps of the halting heads (frozen model)")
    p.add_argument("--ponder-windows", type=int, default=128,
                   help="training-split windows the heads are trained on")
    p.add_argument("--ponder-beta", type=float, default=0.01, help="KL weight")
    p.add_argument("--ponder-lambda-p", type=float, default=0.2,
                   help="geometric prior's halting probability (and the heads' initial one)")
    p.add_argument("--ponder-lr", type=float, default=0.05)
    p.add_argument("--out-dir", default="runs/act")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args(argv)
    unknown = set(args.rules.split(",")) - set(RULE_FAMILIES)
    if unknown:
        p.error(f"--rules: unknown {', '.join(sorted(unknown))} (choose from "
                f"{', '.join(RULE_FAMILIES)})")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    models = {k: curve(k, args) for k in args.models.split(",")}
    date = dt.date.today().isoformat()
    result = {"benchmark": "act_curve", "preset": "tiny", "date": date,
              "command": "python benchmarks/act_curve.py " + " ".join(argv or sys.argv[1:]),
              "machine": _machine(), "settings": vars(args), "wall_s": time.perf_counter() - t0,
              "models": models}
    out = Path(args.results) / f"act_curve_tiny_{date}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():  # the same day's other models (run separately) are kept
        old = json.loads(out.read_text())
        kept = {k: v for k, v in old.get("models", {}).items() if k not in models}
        result["models"] = {**kept, **models}
        if kept:  # the commands that produced the kept entries, and this one
            result["commands"] = sorted({*old.get("commands", [old.get("command", "")]),
                                         result["command"]})
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    for k, m in models.items():
        v = m["verdict"]
        print(f"{k}: full ppl {v['full_ppl']:.2f}; within {v['tolerance']:.0%}: "
              f"{v['best_rule_within_tolerance']} at {v['best_flops_fraction']:.3f} of the "
              f"FLOPs ({v['flops_saving_factor']:.2f}x fewer)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
