"""Figure 10 (``length_extrapolation``): perplexity against position on long held-out streams,
ResNet-BK (state carried) against the Transformer (sliding window at its training length, and
direct beyond it), from ``benchmarks/results/length_extrapolation_*.json``
(``benchmarks/length_extrapolation.py``).

The results file comes from a GPU run of trained models; until one exists the figure is
skipped (:class:`~bkpaper.framework.SkippedFigure`, in quick and full mode alike), never drawn
from anything else. The file's ``label`` (``cpu-smoke`` for the CPU smoke run of tiny,
briefly trained models) is printed in the caption and the panel title.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bkpaper.framework import (
    FigureContext,
    FigureResult,
    SkippedFigure,
    new_figure,
    register_figure,
    sanity,
    tex_escape,
)

__all__ = ["EXTRAPOLATION_CMD", "figure_length_extrapolation"]

EXTRAPOLATION_CMD = ("python benchmarks/length_extrapolation.py --bk RUN_BK --transformer RUN_TF "
                     "--max-length 65536 --device cuda --bf16")
CURVES = {
    "bk_carried": ("ResNet-BK, state carried", "C0", "o-"),
    "transformer_sliding": ("Transformer, sliding window (training length)", "C1", "s--"),
    "transformer_direct": ("Transformer, direct (RoPE beyond training length)", "C3", "^:"),
}


#: Fewest tokens a bucket of a curve is drawn from.
MIN_TOKENS = 64


def _latest(results: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable results file (by its ``date``; a GPU run before a CPU smoke one
    of the same date)."""
    found = []
    for f in results.glob("length_extrapolation_*.json"):
        try:
            d = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(d, dict) and d.get("curves") and d.get("buckets"):
            found.append((str(d.get("date", "")), "smoke" not in str(d.get("label")), f, d))
    if not found:
        return None
    _, _, f, d = max(found, key=lambda t: (t[0][:10], t[1], t[0]))
    return f, d


@register_figure(10, "length_extrapolation", "Length extrapolation: perplexity against position")
def figure_length_extrapolation(ctx: FigureContext) -> FigureResult:
    """Figure 10: per-bucket perplexity of the curves of the newest results file.

    Raises
    ------
    SkippedFigure
        When ``benchmarks/results`` holds no ``length_extrapolation_*.json``.
    """
    assert ctx.results is not None
    got = _latest(ctx.results)
    if got is None:
        raise SkippedFigure(f"no length_extrapolation_*.json in {ctx.results}; run "
                            f"`{EXTRAPOLATION_CMD}` on trained runs to draw it")
    path, d = got
    buckets = [tuple(b) for b in d["buckets"]]
    mids = [math.sqrt(lo * hi) for lo, hi in buckets]
    checks: dict[str, bool] = {}
    sanity(checks, "buckets increasing and contiguous",
           buckets[0][0] == 1
           and all(b[0] == a[1] + 1 for a, b in zip(buckets[:-1], buckets[1:], strict=True)))
    curves = {k: v for k, v in d["curves"].items() if k in CURVES}
    # a bucket a curve scored on only a few tokens (the direct Transformer's forward capped
    # by --tf-direct-max inside the last bucket) is noise, not a point of the curve
    counts = d.get("tokens_per_bucket") or {}
    thin: dict[str, list[int]] = {}
    for k, ys in curves.items():
        n_tok = counts.get(k)
        if n_tok and len(n_tok) == len(ys):
            thin[k] = [i for i, n in enumerate(n_tok) if ys[i] is not None and n < MIN_TOKENS]
            curves[k] = [None if i in thin[k] else y for i, y in enumerate(ys)]
    sanity(checks, "the ResNet-BK and the sliding-window Transformer curves are present",
           {"bk_carried", "transformer_sliding"} <= set(curves))
    for k, ys in curves.items():
        vals = [y for y in ys if y is not None]
        sanity(checks, f"{k}: one value per bucket", len(ys) == len(buckets))
        sanity(checks, f"{k}: perplexities finite and > 1",
               bool(vals) and all(math.isfinite(y) and y > 1 for y in vals))
    for k in ("bk_carried", "transformer_sliding"):
        sanity(checks, f"{k}: every bucket scored", all(y is not None for y in curves.get(k, [])))
    label = str(d.get("label", "?"))
    models = d.get("models", {})
    train_len = {m: models.get(m, {}).get("seq_len") for m in ("bk", "transformer")}

    fig, axes = new_figure(1, width=4.6, height=3.0)
    ax = axes[0, 0]
    for k, ys in curves.items():
        name, color, style = CURVES[k]
        pts = [(x, y) for x, y in zip(mids, ys, strict=True) if y is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, ms=3, label=name)
    for m, n in train_len.items():
        if n:
            ax.axvline(n, color="0.5", lw=0.6, ls="--" if m == "bk" else ":")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("context length (tokens from the sequence start; bucket geometric mean)")
    ax.set_ylabel("perplexity in the bucket")
    ax.set_title(f"held-out stream, {label} run" + (f" (trained at {train_len['bk']})"
                                                   if train_len["bk"] else ""))
    ax.legend(loc="best")
    numbers: dict[str, Any] = {"label": label, "maxlength": int(buckets[-1][1]),
                               "buckets": len(buckets)}
    for k, ys in curves.items():
        key = k.replace("_", "")
        vals = [y for y in ys if y is not None]
        numbers[f"{key}first"] = float(vals[0])
        numbers[f"{key}last"] = float(vals[-1])
    for m, n in train_len.items():
        if n:
            numbers[f"{m}trainlen"] = int(n)
    caption = (
        r"Next-token perplexity per bucket of context length on sequences of "
        rf"{buckets[-1][1]:,} consecutive tokens of held-out plays "
        rf"(results file \texttt{{{tex_escape(path.name)}}}, run label "
        rf"\texttt{{{tex_escape(label)}}}): ResNet-BK reads each sequence in chunks of its "
        r"training length with its state carried; the Transformer through a sliding window "
        r"of its training length (every token sees at most that many) and in one direct "
        r"forward (its rotary positions allow lengths beyond training). Vertical lines: the "
        r"training lengths."
        + (rf" Buckets scored on fewer than {MIN_TOKENS} tokens are not drawn."
           if any(thin.values()) else "")
        + (r" \emph{CPU smoke run of briefly trained tiny models: not a result about long "
           r"context.}" if "smoke" in label else "")
    )
    source = str(d.get("command") or f"python benchmarks/length_extrapolation.py ({path.name})")
    return FigureResult(fig, caption, source, checks, numbers,
                        {"buckets": d["buckets"], "curves": curves, "file": path.name})
