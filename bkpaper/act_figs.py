"""Figure of early exit (adaptive computation) in the language model (:mod:`bkmodel.early_exit`).

9. ``act`` — perplexity against the measured average forward FLOPs per token of per-token
   early exit, for ResNet-BK (static exits, the seeds' scattering halting from the BK
   layers' g, softmax-confidence exits) and the Transformer baseline (static and confidence
   exits), from ``benchmarks/results/act_curve_*.json`` (``python benchmarks/act_curve.py``).

Where there is no results file, quick mode trains two 3-block ``ci``-preset models itself and
sweeps a few thresholds; full mode raises :class:`~bkpaper.framework.MissingResultsError`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from bkpaper.framework import (
    FigureContext,
    FigureResult,
    MissingResultsError,
    new_figure,
    register_figure,
    sanity,
)

__all__ = ["ACT_CMD", "figure_act"]

ACT_CMD = "python benchmarks/act_curve.py"
_FAMILIES = {  # rule family -> (label, marker, colour): the same in both panels
    "static": ("static exit after block l", "s-", "C0"),
    "scattering-coherence": ("scattering: chain coherence |Σg|/Σ|g|", "o-", "C1"),
    "scattering-phase": ("scattering: phase arg Σg / π", "^-", "C2"),
    "confidence": ("softmax confidence", "d-", "C3"),
}


def _family(p: dict[str, Any]) -> str:
    if p["kind"] == "scattering":
        return f"scattering-{p['statistic']}"
    return p["kind"]


def _quick_results(ctx: FigureContext) -> dict[str, Any]:
    """Two short real runs (preset ``ci``, 3 blocks) and a small threshold sweep."""
    import numpy as np

    from bkmodel.checkpoint import load_run
    from bkmodel.data import load_split
    from bkmodel.early_exit import EarlyExit, HaltingRule, evaluate_early_exit
    from bkmodel.presets import TrainConfig
    from bkmodel.tokenizer import encode_documents

    models = {}
    for kind in ctx.progress(["bk", "transformer"], "tiny early-exit runs"):
        cfg = TrainConfig.from_preset("ci", model=kind, n_layers=3, max_steps=30)
        model, tok, _ = load_run(ctx.tiny_run(f"act-ci-{kind}", cfg))
        tokens = encode_documents(tok, load_split("validation", cfg.corpus))
        rules = [HaltingRule("none"), HaltingRule("static", exit_layer=0),
                 HaltingRule("static", exit_layer=1)]
        stats = ("coherence", "phase") if kind == "bk" else ()
        ths = {"confidence": (0.2, 0.5, 0.8)}
        if kind == "bk":  # thresholds at quantiles of the statistics of block 0
            ee = EarlyExit(model)
            x = np.asarray(tokens[: cfg.seq_len + 1])
            import torch

            with torch.no_grad():
                h, c = ee._embed(torch.from_numpy(x[None, :-1]))
                h, g = ee._block(0, h, c)
                for s in stats:
                    v = ee._score(HaltingRule("scattering", 0.5, s), h, g).numpy().ravel()
                    ths[s] = tuple(float(np.clip(q, 1e-6, 1 - 1e-6))
                                   for q in np.quantile(v, (0.2, 0.5, 0.8)))
        for s in stats:
            rules += [HaltingRule("scattering", t, s) for t in sorted(set(ths[s]))]
        rules += [HaltingRule("confidence", t) for t in ths["confidence"]]
        pts = [evaluate_early_exit(model, tokens, r, seq_len=cfg.seq_len, max_tokens=2048)
               for r in rules]
        full = pts[0]
        ok = [p for p in pts if p["ppl"] <= full["ppl"] * 1.01]
        best = min(ok, key=lambda p: p["flops_per_token"])
        models[kind] = {"points": pts, "n_layers": 3,
                        "verdict": {"full_ppl": full["ppl"], "tolerance": 0.01,
                                    "best_rule_within_tolerance": best["rule"],
                                    "best_flops_fraction": best["flops_fraction"],
                                    "flops_saving_factor": 1 / best["flops_fraction"]}}
    return {"models": models, "command": "bk figures --quick --only 9 (preset ci, 30 steps)"}


def _results(ctx: FigureContext) -> tuple[dict[str, Any], str]:
    assert ctx.results is not None
    files = sorted(ctx.results.glob("act_curve_*.json"))
    if files:
        f = files[-1]
        d = json.loads(f.read_text())
        return d, f"{d.get('command', ACT_CMD)} ({f.name})"
    if not ctx.quick:
        raise MissingResultsError(f"no act_curve_*.json in {ctx.results}; run `{ACT_CMD}` "
                                  "(or use `bk figures --quick`, which trains tiny models)")
    d = _quick_results(ctx)
    return d, d["command"]


@register_figure(9, "act", "Early exit: perplexity against FLOPs per token")
def figure_act(ctx: FigureContext) -> FigureResult:
    """Figure 9: ppl vs measured mean FLOPs per token of per-token early exit, both models.

    Raises
    ------
    MissingResultsError
        In full mode, when no ``act_curve_*.json`` exists.
    """
    import numpy as np

    d, source = _results(ctx)
    families = {**_FAMILIES,  # the learned baseline (absent from files older than it)
                "ponder": ("learned halting: PonderNet head (frozen model)", "v-", "C9")}
    checks: dict[str, bool] = {}
    titles = {"bk": "(a) ResNet-BK", "transformer": "(b) Transformer (matched params)"}
    fig, axes = new_figure(2)
    numbers: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for k, (m, res) in enumerate(d["models"].items()):
        pts = res["points"]
        ppl = np.array([p["ppl"] for p in pts])
        frac = np.array([p["flops_fraction"] for p in pts])
        none = [p for p in pts if p["kind"] == "none"]
        sanity(checks, f"{m}: perplexities finite and > 1", bool(np.all(np.isfinite(ppl)
                                                                         & (ppl > 1))))
        sanity(checks, f"{m}: the full model is charged its whole forward (fraction 1)",
               len(none) == 1 and math.isclose(none[0]["flops_fraction"], 1.0, rel_tol=1e-9))
        sanity(checks, f"{m}: FLOPs fractions positive", bool(np.all(frac > 0)))
        static = sorted((p for p in pts if p["kind"] == "static"), key=lambda p: p["exit_layer"])
        sanity(checks, f"{m}: static exits cost more FLOPs the later they exit",
               bool(np.all(np.diff([p["flops_fraction"] for p in static]) > 0)))
        sanity(checks, f"{m}: exit fractions sum to 1",
               all(math.isclose(sum(p["exit_fraction"]), 1.0, rel_tol=1e-9) for p in pts))
        ax = axes[0, k]
        full = none[0]
        for fam, (label, style, colour) in families.items():
            fp = sorted((p for p in pts if _family(p) == fam), key=lambda p: p["flops_fraction"])
            if fam == "static":
                fp = fp + [full]
            if not fp:
                continue
            ax.plot([p["flops_fraction"] for p in fp], [p["ppl"] for p in fp], style, ms=3,
                    lw=0.9, color=colour, label=label)
        ax.plot([1.0], [full["ppl"]], "k*", ms=8, label="full model (no exit)")
        ax.axhline(full["ppl"] * 1.01, color="0.5", lw=0.6, ls="--", label="full ppl + 1 %")
        ax.axvline(0.5, color="C4", lw=0.6, ls=":", label="the seeds' claim: ½ the FLOPs")
        ax.set_xlabel("mean forward FLOPs per token / full model's")
        ax.set_ylabel("validation perplexity")
        ax.set_title(titles.get(m, m))
        ax.legend(fontsize=5.5, loc="upper right")
        v = res["verdict"]
        numbers[f"{m}fullppl"] = float(v["full_ppl"])
        numbers[f"{m}bestfraction"] = float(v["best_flops_fraction"])
        numbers[f"{m}savingfactor"] = float(v["flops_saving_factor"])
        numbers[f"{m}bestrule"] = str(v["best_rule_within_tolerance"])
        half = [p for p in pts if p["flops_fraction"] <= 0.5]
        if half:
            numbers[f"{m}pplathalf"] = float(min(p["ppl"] for p in half))
        data[m] = {"points": [{key: p[key] for key in ("rule", "ppl", "flops_fraction",
                                                        "exit_fraction")} for p in pts]}
    caption = (
        r"Per-token early exit: validation perplexity against the mean forward FLOPs per "
        r"token (analytic per-layer counts of \texttt{bkmodel.flops}, relative to the full "
        r"model; exits through the final norm and LM head, halted tokens' states copied to "
        r"the deeper layers, which are charged their state updates; confidence exits pay a "
        r"head per block). Static: every token exits after the same block. Scattering: halt "
        r"when a statistic of the block's Green's functions $g$ reaches a threshold. "
        r"PonderNet: halt when a learned halting head's $\lambda_n$ (trained with the "
        r"PonderNet loss on the frozen model) reaches a threshold. Dashed: "
        r"the full model's perplexity $+1\,\%$; dotted: half the FLOPs, the seeds' claim."
    )
    return FigureResult(fig, caption, source, checks, numbers, data)
