"""Equal-token language-model comparisons on a GPU: ResNet-BK layers, the Transformer, peers.

Every row of a suite is trained by the project's own loop (:func:`bkmodel.train.train`) with
the same tokenizer, data order, optimiser, schedule, batch and number of steps; only the
model differs. The Transformer is matched in parameters to the suite's ResNet-BK default
(its feed-forward width is solved by :func:`bkmodel.baseline.matched_config`). Reported per
row: parameters, validation/test perplexity (whole held-out plays), training tokens/s,
peak GPU memory and wall time.

Suites::

    gpu2k     seq 2048, batch 8, 1,200 steps (19.7M tokens), d 256, 4 layers, BPE 4096:
              the new selective layer, the classic layer, the Transformer, and the
              ablation of the selective layer (each ingredient switched off in turn)
    gpu16k    seq 16,384, batch 1: training throughput of the new layer vs the Transformer

Usage (on the GPU machine, from the repository root)::

    PYTHONPATH=. python benchmarks/lm_suites.py --suite gpu2k [--rows bk,transformer]

The fla peers (``--rows gla,hgrn2``) are warmed up first (:func:`warm_up`: their kernels
autotune on first use, for minutes); the warm-up time is recorded as ``warm_up_s`` and is not
in the row's wall time or tokens/s. Run one peer per call on the lent GPU. On the H200
(2026-12-03, fla 0.6.0, triton 3.6) GLA's forward kernels alone autotuned for 167 s (fla's
fused swiglu 49 s, ``chunk_fwd_kernel_h`` 39 s, ``chunk_gla_fwd_kernel_o`` 30 s, two layer
norms 29 s, ...) before the backward's began, which outlasts a 10-minute call with the
training. fla's autotuners cache their results on disk, so the work accumulates across calls
when the Triton cache travels with them::

    export TRITON_CACHE_DIR=/tmp/tc; [ -f .tc/tc.tgz ] && tar xzf .tc/tc.tgz -C /tmp
    timeout 400 python benchmarks/lm_suites.py --suite gpu2k --rows gla ...
    tar czf $OUT/tc.tgz -C /tmp tc   # after the timeout too; bring it back as .tc/tc.tgz

Or, to get a peer's perplexity inside one call, ``--peer-autotune one``: every autotuned
kernel compiles one configuration (:func:`limit_autotune`); the row's tokens/s is then a
lower bound (marked in the table and the JSON), its perplexity is unaffected.

Writes ``benchmarks/results/lm_<suite>_<device>_<date>.json`` and prints the tables; rows are
appended to the JSON as they finish (a killed run keeps the finished rows).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from bkmodel.evaluate import evaluate_checkpoint  # noqa: E402
from bkmodel.peers import PEERS  # noqa: E402
from bkmodel.presets import TrainConfig  # noqa: E402
from bkmodel.train import train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

#: The selective layer as the suites use it (bkmodel.config.ModelConfig fields): 128 chains
#: and a wide MLP, no convolution — chosen by the H200 ablation of 2026-12-03 (README), at
#: ~9.3M parameters: 1,024 chains + convolution val ppl 60.7, 256 chains 53.3, 128 chains 51.9.
SELECTIVE: dict[str, Any] = dict(layer="selective", n_channels=128, ffn="mlp", ffn_mult=14,
                                 conv_size=0)

#: Green's-function attention (bkmodel.model.GreenBKLayer): 4 heads of one selective chain
#: each, q.k-weighted resolvent entries, a short convolution and a standard-width MLP.
GREEN: dict[str, Any] = dict(layer="green", n_channels=4, ffn="mlp", ffn_mult=4, conv_size=4)

#: Training setup shared by every row of a suite (bkmodel.presets.TrainConfig fields).
SETUPS: dict[str, dict[str, Any]] = {
    "gpu2k": dict(preset="small", seq_len=2048, batch_size=8, max_steps=1200,
                  warmup_steps=100, eval_every=400, ckpt_every=400, eval_tokens=131072,
                  cuda_graph=True),
    "tiny": dict(preset="tiny"),  # CPU exploration: seq 128, 400 steps, d 128, 2 layers
    "gpu16k": dict(preset="small", seq_len=16384, batch_size=1, max_steps=150,
                   warmup_steps=20, eval_every=1000, ckpt_every=1000, eval_tokens=131072,
                   cuda_graph=True),
}

#: Energies just above the band (real, non-rotating transfer factors; README, green layer).
EDGE: dict[str, Any] = {"lam_init_center": 2.5, "lam_init_range": 0.5}

#: label -> (model, ModelConfig overrides). The ablation rows switch one ingredient off.
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "bk": ("bk", SELECTIVE),
    "transformer": ("transformer", SELECTIVE),  # matched to the selective default's size
    "green": ("bk", GREEN),
    "transformer-green": ("transformer", GREEN),  # matched to the green layer's size
    "green-f12": ("bk", {**GREEN, "ffn_mult": 12}),
    "transformer-green-f12": ("transformer", {**GREEN, "ffn_mult": 12}),
    "green-h8-f12": ("bk", {**GREEN, "ffn_mult": 12, "n_channels": 8}),
    "green-h16-f12": ("bk", {**GREEN, "ffn_mult": 12, "n_channels": 16}),
    "green-h8-f12-noconv": ("bk", {**GREEN, "ffn_mult": 12, "n_channels": 8, "conv_size": 0}),
    "green-edge": ("bk", {**GREEN, "lam_init_center": 2.5, "lam_init_range": 0.5}),
    "selective-edge": ("bk", {**SELECTIVE, "lam_init_center": 2.5, "lam_init_range": 0.5}),
    "green-edge-h8": ("bk", {**GREEN, "n_channels": 8, "lam_init_center": 2.5,
                             "lam_init_range": 0.5}),
    "green-edge-f12": ("bk", {**GREEN, "ffn_mult": 12, "lam_init_center": 2.5,
                              "lam_init_range": 0.5}),
    "green-edge-silu-l2": ("bk", {**GREEN, **EDGE, "qkv_act": "silu", "qk_norm": True}),
    "green-edge-silu": ("bk", {**GREEN, **EDGE, "qkv_act": "silu"}),
    "green-edge-l2": ("bk", {**GREEN, **EDGE, "qk_norm": True}),
    "green-edge-f12-silu-l2": ("bk", {**GREEN, **EDGE, "ffn_mult": 12, "qkv_act": "silu",
                                      "qk_norm": True}),
    "green-edge-h8-f12": ("bk", {**GREEN, **EDGE, "ffn_mult": 12, "n_channels": 8}),
    "green-h8-edge": ("bk", {**GREEN, "ffn_mult": 12, "n_channels": 8, "conv_size": 0,
                             "lam_init_center": 2.5, "lam_init_range": 0.5}),
    "green-h8-kv64": ("bk", {**GREEN, "ffn_mult": 9, "n_channels": 8, "conv_size": 0,
                             "key_dim": 64, "value_dim": 64}),
    "gla": ("gla", {**GREEN, "ffn_mult": 12}),  # fla peers, matched to green-f12's size
    "hgrn2": ("hgrn2", {**GREEN, "ffn_mult": 12}),
    "gla-nodrop": ("gla", {**GREEN, "ffn_mult": 12, "peer_dropout": 0.0}),  # fla's default
    "hgrn2-nodrop": ("hgrn2", {**GREEN, "ffn_mult": 12, "peer_dropout": 0.0}),
    "green-noconv": ("bk", {**GREEN, "conv_size": 0}),
    "green-h8": ("bk", {**GREEN, "n_channels": 8}),
    "green-h2": ("bk", {**GREEN, "n_channels": 2}),
    "bk-classic": ("bk", {}),  # the classic layer's defaults (C=16, MoE 4 experts)
    "bk-c1024-conv4": ("bk", dict(layer="selective", n_channels=1024, ffn="mlp")),
    "bk-c1024": ("bk", dict(layer="selective", n_channels=1024, ffn="mlp", conv_size=0)),
    "bk-c256": ("bk", {**SELECTIVE, "n_channels": 256, "ffn_mult": 12}),
    "bk-c64-e4": ("bk", {**SELECTIVE, "n_channels": 64, "n_energies": 4}),
    "abl-with-conv": ("bk", {**SELECTIVE, "conv_size": 4}),
    "abl-no-selectivity": ("bk", {**SELECTIVE, "selective": False}),
    "abl-one-timescale": ("bk", {**SELECTIVE, "timescales": "constant"}),
    "abl-no-gate": ("bk", {**SELECTIVE, "output_gate": False}),
    "abl-no-norm": ("bk", {**SELECTIVE, "out_norm": False}),
    "abl-eta-g-features": ("bk", {**SELECTIVE, "feature_map": "eta_g"}),
}
SUITE_ROWS = {
    "gpu2k": list(ROWS),
    "gpu16k": ["bk", "transformer"],
    "tiny": ["green", "transformer-green", "bk"],
}


def warm_up(cfg: TrainConfig, vocab_size: int, steps: int = 3) -> float:
    """Seconds of ``steps`` forward + backward passes of a throw-away model of ``cfg`` at the
    suite's batch shape (bf16 autocast on CUDA): fla's kernels autotune on first use, for
    minutes; their autotuners cache per process, so the timed run that follows starts warm,
    as the project's Triton kernels do after their first compilation.

    On the H200 this warm-up outlasted 290-420 s calls three times with no output, so it now
    says where the time goes: every ``BK_WARMUP_TRACE_S`` seconds (default 60; 0: off) the
    Python stacks of all threads are dumped to stderr (:mod:`faulthandler`), and Triton prints
    each autotuning result (``TRITON_PRINT_AUTOTUNING=1`` unless already set)."""
    import faulthandler
    import os

    os.environ.setdefault("TRITON_PRINT_AUTOTUNING", "1")
    trace_s = float(os.environ.get("BK_WARMUP_TRACE_S", "60"))
    if trace_s > 0:
        faulthandler.dump_traceback_later(trace_s, repeat=True, file=sys.stderr)
    try:
        return _warm_up(cfg, vocab_size, steps)
    finally:
        if trace_s > 0:
            faulthandler.cancel_dump_traceback_later()


def _warm_up(cfg: TrainConfig, vocab_size: int, steps: int) -> float:
    from bkmodel.factory import build_model

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"  warm-up: building the model on {dev}", flush=True)
    model = build_model(cfg, vocab_size).to(dev)
    ids = torch.randint(0, vocab_size, (cfg.batch_size, cfg.seq_len + 1), device=dev)
    t0 = time.perf_counter()
    for i in range(steps):
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            _, loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
        if dev == "cuda":
            torch.cuda.synchronize()
        print(f"  warm-up step {i + 1}/{steps}: {time.perf_counter() - t0:.1f} s", flush=True)
    del model
    return time.perf_counter() - t0


def pick_one_config(configs: list[Any]) -> Any:
    """The launch configuration kept by :func:`limit_autotune`: the first with 4 warps and at
    most 3 pipeline stages (a shape every kernel family compiles on Hopper within its
    shared memory), else the first one."""
    for c in configs:
        if getattr(c, "num_warps", None) == 4 and (getattr(c, "num_stages", None) or 0) <= 3:
            return c
    return configs[0]


def limit_autotune() -> None:
    """Make every Triton autotuner (hence fla's) take one configuration, chosen by
    :func:`pick_one_config` from its pruned list, instead of compiling and timing all of them.

    fla 0.6.0's first use autotunes for minutes (module docstring), which outlasts the lent
    GPU's 10-minute calls. With one configuration each kernel compiles once, so a peer can be
    trained and evaluated in one call. What it changes: speed only — every configuration
    computes the same function (to rounding), so the peer's perplexity is the one it gets
    tuned, while its tokens/s is a lower bound; rows run this way record
    ``"peer_autotune": "one config"`` and the table marks their tokens/s."""
    from triton.runtime.autotuner import Autotuner

    if getattr(Autotuner.prune_configs, "_bk_one_config", False):
        return
    original = Autotuner.prune_configs

    def prune_configs(self: Any, kwargs: dict) -> list[Any]:
        return [pick_one_config(list(original(self, kwargs)))]

    prune_configs._bk_one_config = True  # type: ignore[attr-defined]
    Autotuner.prune_configs = prune_configs  # type: ignore[method-assign]


def run_row(suite: str, label: str, out_dir: Path, progress: bool,
            scan_backend: str | None = None, max_steps: int | None = None,
            seed: int | None = None, peer_autotune: str = "full") -> dict[str, Any]:
    """Train and evaluate one row; returns its result dict."""
    model, options = ROWS[label]
    if scan_backend is not None and options.get("layer") in ("selective", "green"):
        options = {**options, "scan_backend": scan_backend}
    fields = {k: v for k, v in SETUPS[suite].items() if k != "preset"}
    if max_steps is not None:
        fields["max_steps"] = max_steps
    if seed is not None:
        fields["seed"] = seed
    cfg = TrainConfig.from_preset(SETUPS[suite]["preset"], model=model,
                                  model_options=dict(options), **fields)
    run_dir = out_dir / f"{suite}-{label}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cuda = torch.cuda.is_available()
    warm_s = None
    if model in PEERS:  # autotune outside the timed run (see warm_up)
        if peer_autotune == "one":
            limit_autotune()
        warm_s = warm_up(cfg, cfg.vocab_size)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    summary = train(cfg, run_dir, progress=progress)
    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    ev = evaluate_checkpoint(run_dir, ("validation", "test"), batch_size=cfg.batch_size,
                             device="cuda" if cuda else "cpu")
    return {
        "label": label, "model": model, "options": options,
        "params": summary["params"], "steps": summary["steps"],
        "train_tokens": summary["tokens"],
        "val_ppl": ev["validation"]["ppl"], "test_ppl": ev["test"]["ppl"],
        "val_loss": ev["validation"]["loss"], "test_loss": ev["test"]["loss"],
        "train_tokens_per_s": summary["train_tokens_per_s"],
        "eval_tokens_per_s": ev["validation"]["tokens_per_s"],
        "peak_mem_gib": peak, "wall_s": wall, "counters": summary.get("counters"),
        "warm_up_s": warm_s,
        "peer_autotune": ("one config" if peer_autotune == "one" else "full")
        if model in PEERS else None,
    }


def print_table(suite: str, rows: list[dict[str, Any]]) -> None:
    header = (f"{'row':<22}{'params':>12}{'val ppl':>9}{'test ppl':>9}{'train tok/s':>13}"
              f"{'peak GiB':>9}{'wall s':>8}")
    print(f"\n{suite}")
    print(header)
    print("-" * len(header))
    tf = next((r for r in rows if r["label"] == "transformer"), None)
    for r in rows:
        peak = f"{r['peak_mem_gib']:.2f}" if r["peak_mem_gib"] is not None else "-"
        untuned = "*" if r.get("peer_autotune") == "one config" else ""
        print(f"{r['label']:<22}{r['params']:>12,}{r['val_ppl']:>9.2f}{r['test_ppl']:>9.2f}"
              f"{r['train_tokens_per_s']:>12,.0f}{untuned or ' '}{peak:>9}{r['wall_s']:>8.0f}")
    if any(r.get("peer_autotune") == "one config" for r in rows):
        print("  * one autotune configuration per kernel (--peer-autotune one): tokens/s is a "
              "lower bound; perplexity is unaffected")
    if tf is not None:
        for r in rows:
            if r is not tf:
                print(f"  {r['label']} / transformer: val ppl x{r['val_ppl'] / tf['val_ppl']:.3f}"
                      f", tokens/s x{r['train_tokens_per_s'] / tf['train_tokens_per_s']:.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default="gpu2k", choices=sorted(SETUPS))
    p.add_argument("--rows", default=None, help="comma-separated row labels (default: all)")
    p.add_argument("--out-dir", type=Path, default=Path("runs/lm_suites"))
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--tag", default="", help="suffix of the results file name")
    p.add_argument("--scan-backend", default=None, choices=["torch", "triton", "naive"],
                   help="BK scan backend of the selective-layer rows (default: the config's auto)")
    p.add_argument("--max-steps", type=int, default=None, help="override the suite's steps")
    p.add_argument("--seed", type=int, default=None, help="override the run seed (init and "
                   "data order) of every row")
    p.add_argument("--peer-autotune", choices=["full", "one"], default="full",
                   help="fla peers: Triton's full autotuning (minutes on first use) or one "
                   "configuration per kernel (perplexity unchanged, tokens/s a lower bound)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    labels = SUITE_ROWS[args.suite] if args.rows is None else args.rows.split(",")
    unknown = [x for x in labels if x not in ROWS]
    if unknown:
        p.error(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    started = dt.datetime.now(dt.timezone.utc)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    args.results.mkdir(parents=True, exist_ok=True)
    tag = f"_{args.tag}" if args.tag else ""
    path = args.results / (f"lm_{args.suite}{tag}_{device.replace(' ', '-')}_"
                           f"{started:%Y-%m-%d}.json")
    command = "python benchmarks/lm_suites.py " + " ".join(sys.argv[1:] if argv is None
                                                           else argv)
    result: dict[str, Any] = {
        "benchmark": "lm_suites", "suite": args.suite, "date": started.isoformat(),
        "command": command.strip(), "setup": SETUPS[args.suite],
        "scan_backend": args.scan_backend, "max_steps": args.max_steps, "seed": args.seed,
        "machine": {"platform": platform.platform(), "device": device,
                    "torch": torch.__version__}, "rows": [],
    }
    for label in labels:
        print(f"== {args.suite} / {label}", flush=True)
        try:
            row = run_row(args.suite, label, args.out_dir, not args.no_progress,
                          args.scan_backend, args.max_steps, args.seed, args.peer_autotune)
        except Exception as exc:  # one failing row must not lose the others
            import traceback
            traceback.print_exc()
            result.setdefault("failed", []).append({"label": label, "error": repr(exc)})
            path.write_text(json.dumps(result, indent=2) + "\n")
            continue
        result["rows"].append(row)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: row[k] for k in ("label", "params", "val_ppl", "test_ppl",
                                              "train_tokens_per_s", "peak_mem_gib")}),
              flush=True)
    print_table(args.suite, result["rows"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
