"""The run's ``metrics.jsonl`` and its plot.

``metrics.jsonl`` holds one JSON object per line, written by rank 0 (:class:`MetricsLog`):

* training rows ``{"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", ...}`` every
  ``log_every`` steps, with the model's scalar statistics as ``aux.<name>``
  (:func:`aux_stats`), its certificate-guard counters as ``guard.<name>``
  (:func:`guard_counts`) and the loop's counters (skips, spikes, rollbacks, ...);
* validation rows ``{"step", "val_loss", "val_ppl"}``;
* events ``{"event": "start" | "skip" | "spike" | "grad_norm_spike" | "rollback" | "end",
  "step", ...}``.

On resume the log is truncated to the checkpoint's step, on a rollback too (events kept), so
the file always describes one trajectory. :func:`plot_metrics` draws it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

__all__ = ["MetricsLog", "aux_stats", "guard_counts", "plot_metrics"]


class MetricsLog:
    """Append-only JSON-lines log (rank 0), truncated to a step on resume/rollback.

    With ``enabled`` False (the other DDP ranks) writing and truncating do nothing.
    """

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def truncate(self, step: int, keep_events: bool) -> None:
        """Drop the rows after ``step`` (events too, unless ``keep_events``) and torn lines."""
        if not self.enabled or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a torn last line after a kill
                continue
            if row.get("step", 0) <= step or (keep_events and "event" in row):
                kept.append(json.dumps(row))
        self.path.write_text("".join(k + "\n" for k in kept))

    def write(self, row: dict[str, Any]) -> None:
        """Append one row."""
        if self.enabled:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict[str, Any]]:
        """Every readable row (a torn line is skipped)."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out


def guard_counts(model: nn.Module) -> dict[str, float]:
    """The model's ``guard_report()`` flattened to ``{"a.b": float}`` (``{}`` without one).

    A report that raises gives ``{"guard_report_error": message}``: logging never stops
    training.
    """
    report = getattr(model, "guard_report", None)
    if report is None:
        return {}
    try:
        rep = report()
    except Exception as exc:  # noqa: BLE001 - a broken report must not stop training
        return {"guard_report_error": str(exc)}  # type: ignore[dict-item]
    out: dict[str, float] = {}

    def flatten(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                flatten(f"{prefix}{k}.", v)
        elif isinstance(obj, (int, float, bool)) or (
            isinstance(obj, torch.Tensor) and obj.numel() == 1
        ):
            out[prefix.rstrip(".")] = float(obj)

    flatten("", rep if isinstance(rep, dict) else {})
    return out


def aux_stats(model: nn.Module) -> dict[str, float]:
    """The scalar entries of the model's ``last_aux`` (MoE load, guard flags) as floats."""
    aux = getattr(model, "last_aux", None) or {}
    out = {}
    for k, v in aux.items():
        if isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1):
            out[k] = float(v)
    return out


def plot_metrics(metrics_path: Path | str, png_path: Path | str) -> Path:
    """Plot train/validation loss, learning rate, gradient norm and tokens/s to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = MetricsLog(Path(metrics_path), False).rows()
    tr = [r for r in rows if "loss" in r and "event" not in r]
    ev = [r for r in rows if "val_loss" in r and "event" not in r]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    ax = axes[0, 0]
    ax.plot([r["step"] for r in tr], [r["loss"] for r in tr], label="train")
    ax.plot([r["step"] for r in ev], [r["val_loss"] for r in ev], "o-", label="validation")
    for r in rows:
        if r.get("event") in ("rollback", "skip", "spike"):
            ax.axvline(r["step"], color="red", alpha=0.3, lw=0.8)
    ax.set(xlabel="step", ylabel="loss (nats/token)", title="loss")
    ax.legend()
    for ax, key, title in ((axes[0, 1], "lr", "learning rate"),
                           (axes[1, 0], "grad_norm", "gradient norm (before clipping)"),
                           (axes[1, 1], "tokens_per_s", "training throughput (tokens/s)")):
        ax.plot([r["step"] for r in tr], [r[key] for r in tr])
        ax.set(xlabel="step", title=title)
    fig.tight_layout()
    png_path = Path(png_path)
    tmp = png_path.with_name(f".{png_path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, png_path)
    return png_path
