"""What the result files of the benchmark scripts share: the run header (command, date,
machine, arguments) and the write into ``benchmarks/results``."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def run_header(args: argparse.Namespace) -> dict[str, Any]:
    """``{"command", "date", "machine", "args"}`` of this run (``args.device`` names the
    device; on CUDA the machine records the GPU's name)."""
    import torch

    return {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "device": args.device,
                    "cuda": torch.cuda.get_device_name() if args.device.startswith("cuda")
                    else None},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }


def write_result(doc: Any, out: Path | None, name: str, *, indent: int,
                 default: Callable[[Any], Any] | None = None) -> Path:
    """Write ``doc`` as JSON (and a newline) to ``out``, or to ``benchmarks/results/name``
    when ``out`` is None (the results folder is created either way); the path written."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = out or RESULTS / name
    out.write_text(json.dumps(doc, indent=indent, default=default) + "\n")
    return out


def write_device_result(doc: dict[str, Any], out: Path | None, benchmark: str) -> Path:
    """:func:`write_result` of a ``doc`` made with :func:`run_header`, named
    ``<benchmark>_<device>_<date>.json`` (the CUDA device's name, or ``cpu``, with every run
    of other characters replaced by ``-``); prints and returns the path written."""
    dev = doc["machine"]["cuda"] or "cpu"
    dev = re.sub(r"[^A-Za-z0-9]+", "-", dev).strip("-")
    path = write_result(doc, out, f"{benchmark}_{dev}_{doc['date'][:10]}.json", indent=2)
    print(f"wrote {path}")
    return path
