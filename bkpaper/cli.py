"""``bk figures``: regenerate every figure of the paper from real runs.

Figures (``--only N`` selects by number):

1. ``resolvent`` — O(N) resolvent diagonal vs the mpmath reference across N and η, and the
   overflow of the θ/φ continuant formula;
2. ``schatten`` — ‖K(z)‖_S2, ‖K(z)‖_S1 against the proved bounds and the seeds' bounds over Im z;
3. ``spectral_shift`` — ξ(λ) (eigenvalue staircase) against (1/π) arg det(I + K(λ + iε)) for
   decreasing ε; the scattering phase across the band and Levinson's count;
4. ``mourre`` — the Mourre constant of the discrete Laplacian over energy intervals;
5. ``primes`` — the prime-bump potential and the explicit-formula check against the number of
   ζ zeros used;
6. ``scaling`` — BK scan time against attention over N, with the roofline, from
   ``benchmarks/results/*.json``;
7. ``training`` — validation perplexity vs tokens for ResNet-BK and the Transformer baseline,
   and the certificate-guard events over training;
8. ``length_extrapolation`` — perplexity vs position (context length) on long held-out
   streams, ResNet-BK with its state carried against the Transformer (sliding window and
   direct), from ``benchmarks/results/length_extrapolation_*.json``; skipped (not failed)
   when there is none.

The figures are written to ``--out`` (default ``paper/figures``, and ``build/figures-quick``
with ``--quick``); :mod:`bkpaper.framework` describes the files. ``--quick`` uses small sizes
and is run by CI (``make figures-quick``; the README's CI numbers include it); it refuses to
write into a directory that holds full-mode results (exit code 2) unless ``--force``, so the
committed paper figures and ``numbers.tex`` are never replaced by CI-size numbers. Where a
results file does not exist (GPU benchmarks, training metrics), quick mode launches the tiny
real run itself; full mode fails with a message naming the missing file and the command that
writes it. No figure is ever drawn from invented data.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bkpaper.framework import FIGURES, FullModeResultsError, Skipped, generate

__all__ = ["DEFAULT_OUT", "DEFAULT_OUT_QUICK", "configure_parser", "run"]

DEFAULT_OUT = Path("paper/figures")
DEFAULT_OUT_QUICK = Path("build/figures-quick")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``bk figures`` to ``parser``."""
    parser.description = "Regenerate the paper figures from real runs (PDF + PNG)."
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (a few minutes on 2 CPU cores; CI)"
    )
    parser.add_argument(
        "--out", type=Path, default=None,
        help=f"output directory (default {DEFAULT_OUT}; with --quick {DEFAULT_OUT_QUICK})",
    )
    parser.add_argument(
        "--force", action="store_true",
        help="let --quick write into a directory that holds full-mode results",
    )
    parser.add_argument(
        "--only", type=int, nargs="+", metavar="N", choices=sorted(FIGURES),
        help="figure numbers to generate (default: all): "
        + ", ".join(f"{s.number}={s.name}" for s in FIGURES.values()),
    )
    parser.add_argument(
        "--results-dir", type=Path, default=None, metavar="DIR",
        help="where the benchmark/training results JSON files are (default benchmarks/results)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Generate the figures selected by ``args``; return the exit code (1 if any failed)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    t0 = time.perf_counter()
    out = args.out or (DEFAULT_OUT_QUICK if args.quick else DEFAULT_OUT)
    try:
        results = generate(
            args.only, quick=args.quick, out=out, progress=not args.no_progress,
            results=args.results_dir, force=args.force,
        )
    except FullModeResultsError as exc:
        print(f"bk figures: {exc}", file=sys.stderr)
        return 2
    bad = {n: msg for n, msg in results.items()
           if msg is not None and not isinstance(msg, Skipped)}
    skipped = sorted(n for n, msg in results.items() if isinstance(msg, Skipped))
    ok = [n for n, msg in results.items() if msg is None]
    print(
        f"bk figures: {len(ok)} written to {out} "
        f"({'quick' if args.quick else 'full'} mode) in {time.perf_counter() - t0:.1f} s"
        + (f"; {len(skipped)} skipped (no results yet): {skipped}" if skipped else "")
    )
    if bad:
        print(f"bk figures: {len(bad)} FAILED: {sorted(bad)}", file=sys.stderr)
        for msg in bad.values():
            print("  " + " ".join(msg.split("Traceback")[0].split())[:400], file=sys.stderr)
        return 1
    return 0
