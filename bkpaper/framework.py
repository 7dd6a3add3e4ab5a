"""The figure framework: registry, sanity assertions, outputs and the runner of ``bk figures``.

A figure is a function ``f(ctx: FigureContext) -> FigureResult`` registered with
:func:`register_figure` under a number and a name. It computes its data on the spot (with
:mod:`bkmath`) or reads a results file that a repository command writes; the caption names
that command. Before anything is written, the data passes a *sanity assertion* (an error below
a bound, a staircase that is monotone, curves that are finite, ...): a figure whose data fails
it is not written and :func:`generate` reports it as failed.

Outputs, in the output directory, for figure ``N`` named ``NAME``:

* ``figN_NAME.pdf`` and ``figN_NAME.png`` — the figure;
* ``figN_NAME.json`` — caption, source command, sanity checks, the measured numbers quoted in
  the paper, the mode (quick/full) and the wall time;
* ``figN_NAME.tex`` — a LaTeX ``figure`` environment (included by ``paper/main.tex``);
* ``numbers.tex`` — every measured number of every figure present, as ``\\bknum{N.key}``
  macros, so no number in the paper is typed by hand.

Quick mode (:attr:`FigureContext.quick`) uses small sizes and is run by CI. Where a results
file does not exist (GPU benchmarks, training metrics), quick mode launches the tiny real run
itself; full mode raises :class:`MissingResultsError` naming the missing file and the command
that writes it. No figure is ever drawn from invented data. Quick mode never writes into a
directory that holds full-mode results (:class:`FullModeResultsError`, unless ``force``), so
CI-size numbers cannot replace the paper's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "FIGURES",
    "FigureContext",
    "FigureResult",
    "FigureSanityError",
    "FigureSpec",
    "FullModeResultsError",
    "MissingResultsError",
    "Skipped",
    "SkippedFigure",
    "generate",
    "new_figure",
    "register_figure",
    "sanity",
    "tex_escape",
    "tex_number",
    "write_numbers_tex",
]

T = TypeVar("T")

#: The repository root (figures read ``benchmarks/results`` and ``runs`` relative to it).
REPO_ROOT = Path(__file__).resolve().parents[1]


class FullModeResultsError(RuntimeError):
    """Quick mode was asked to write into a directory that holds full-mode results."""


def _full_mode_results(out: Path) -> list[str]:
    """The full-mode results in ``out``: ``numbers.tex`` figure lines that say full mode and
    ``fig*.json`` sidecars with ``"mode": "full"`` (names, empty when there are none)."""
    found = []
    tex = out / "numbers.tex"
    if tex.is_file() and "(full mode)" in tex.read_text(encoding="utf-8", errors="replace"):
        found.append(tex.name)
    for side in sorted(out.glob("fig*.json")):
        try:
            if json.loads(side.read_text()).get("mode") == "full":
                found.append(side.name)
        except (OSError, ValueError, AttributeError):
            continue
    return found


class MissingResultsError(RuntimeError):
    """A figure needs a results file that does not exist; the message names the command
    that writes it."""


class SkippedFigure(RuntimeError):
    """An optional figure whose results file does not exist yet (a GPU run not made): nothing
    is written and the run does not fail; the message names the command that writes it."""


class Skipped(str):
    """The message of a skipped figure in :func:`generate`'s result (not a failure)."""


class FigureSanityError(AssertionError):
    """A figure's data failed its sanity assertion; the figure is not written."""


@dataclasses.dataclass
class FigureContext:
    """What a figure function needs besides its own code.

    Attributes
    ----------
    quick : bool
        Small sizes (CI); the figure functions pick their sizes with :meth:`pick`.
    out : Path
        Output directory of the figures.
    root : Path
        Repository root: run directories named in results files are relative to it.
    results : Path
        Directory of the results files (default ``root/benchmarks/results``).
    work : Path
        Scratch directory for the tiny runs that quick mode may launch.
    position : int
        tqdm position of the inner progress bars.
    show_progress : bool
        Show the inner progress bars.
    """

    quick: bool
    out: Path
    root: Path = REPO_ROOT
    results: Path | None = None
    work: Path | None = None
    position: int = 1
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.work is None:
            self.work = self.out / "_runs"
        if self.results is None:
            self.results = self.root / "benchmarks" / "results"

    def pick(self, *, quick: T, full: T) -> T:
        """``quick`` in quick mode, else ``full``."""
        return quick if self.quick else full

    def tiny_run(self, name: str, cfg: Any) -> Path:
        """Train ``cfg`` (a :class:`bkmodel.presets.TrainConfig`) quietly into a fresh run
        directory ``work / name`` (an old one is removed first) and return it: quick mode's
        own tiny runs."""
        import shutil

        from bkmodel.train import train

        assert self.work is not None
        run = self.work / name
        if run.exists():
            shutil.rmtree(run)
        train(cfg, run, progress=False, log=lambda msg: None)
        return run

    def progress(self, iterable: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
        """An inner tqdm bar (cleared when done)."""
        from tqdm import tqdm

        yield from tqdm(
            iterable, desc=f"  {desc}", total=total, position=self.position, leave=False,
            unit="step", dynamic_ncols=True, disable=not self.show_progress,
        )


@dataclasses.dataclass
class FigureResult:
    """What a figure function returns.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
        The drawn figure.
    caption : str
        LaTeX caption text (without the data-source sentence, which is added from
        ``source``).
    source : str
        The command that produces the figure's data (named in the caption).
    checks : dict[str, bool]
        Each sanity assertion and its outcome; every one must be True.
    numbers : dict[str, Any]
        Measured numbers quoted in the paper (``\\bknum{N.key}``): floats, ints or strings.
    data : dict[str, Any]
        The plotted data (JSON-able), kept in the sidecar so the figure can be audited.
    """

    figure: Any
    caption: str
    source: str
    checks: dict[str, bool]
    numbers: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """A registered figure.

    Attributes
    ----------
    number : int
        Figure number (``--only N``; the files are ``figN_NAME.*``).
    name : str
        Short name (``NAME`` in the file names, ``fig:NAME`` as the LaTeX label).
    title : str
        Bold title at the start of the caption.
    func : callable
        ``func(ctx) -> FigureResult``: computes the data and draws the figure.
    """

    number: int
    name: str
    title: str
    func: Callable[[FigureContext], FigureResult]


#: The registered figures, by number, in figure order (filled by the figure modules of
#: :mod:`bkpaper`, which the package imports).
FIGURES: dict[int, FigureSpec] = {}

FigureFunc = Callable[[FigureContext], FigureResult]


def register_figure(number: int, name: str, title: str) -> Callable[[FigureFunc], FigureFunc]:
    """Decorator: register ``func(ctx) -> FigureResult`` as figure ``number`` in :data:`FIGURES`.

    Parameters
    ----------
    number : int
        Figure number.
    name : str
        Short name, used in the file names and the LaTeX label.
    title : str
        Bold title of the caption.
    """

    def deco(func: FigureFunc) -> FigureFunc:
        FIGURES[number] = FigureSpec(number, name, title, func)
        ordered = sorted(FIGURES.items())  # keep the registry in figure order
        FIGURES.clear()
        FIGURES.update(ordered)
        return func

    return deco


def sanity(checks: dict[str, bool], name: str, ok: Any) -> None:
    """Record sanity assertion ``name`` (a numpy bool is accepted)."""
    checks[name] = bool(ok)


def new_figure(
    ncols: int = 2, nrows: int = 1, width: float = 7.0, height: float = 2.8
) -> tuple[Any, Any]:
    """A matplotlib figure in the paper's style and its axes (a 2-D array, ``axes[row, col]``).

    Parameters
    ----------
    ncols, nrows : int
        Panels per row and rows.
    width, height : float
        Size in inches.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 8,
            "axes.titlesize": 8,
            "axes.labelsize": 8,
            "legend.fontsize": 6.5,
            "xtick.labelsize": 7,
            "ytick.labelsize": 7,
            "lines.linewidth": 1.2,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "savefig.bbox": "tight",
        }
    )
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained"
    )
    return fig, axes


def tex_number(x: Any, digits: int = 3) -> str:
    """Format a measured number for LaTeX math mode with ``digits`` significant digits.

    ``3.14\\times 10^{-16}``, ``0.25``, ``12``, ``123{,}456``; strings pass through (use them
    for numbers that need more digits, e.g. a ratio of ``0.999997``).
    """
    if isinstance(x, str):
        return x
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}".replace(",", "{,}")
    xf = float(x)
    if not math.isfinite(xf):
        return r"\infty" if xf > 0 else (r"-\infty" if xf < 0 else r"\mathrm{NaN}")
    if xf == 0:
        return "0"
    mant, exp = f"{xf:.{digits - 1}e}".split("e")
    e = int(exp)
    if -3 <= e <= 4:
        return f"{xf:.{digits}g}" if e < digits else f"{xf:.0f}"
    mant = mant.rstrip("0").rstrip(".")
    return rf"{mant}\times 10^{{{e}}}"


_TEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def tex_escape(s: str) -> str:
    """Escape text for LaTeX (used for commands and paths in captions)."""
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in s)


def _jsonable(x: Any) -> Any:
    import numpy as np

    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        return f if math.isfinite(f) else str(f)
    if isinstance(x, (complex, np.complexfloating)):
        return {"re": _jsonable(x.real), "im": _jsonable(x.imag)}
    return x


def _write_outputs(spec: FigureSpec, res: FigureResult, ctx: FigureContext, secs: float) -> None:
    stem = f"fig{spec.number}_{spec.name}"
    out = ctx.out
    out.mkdir(parents=True, exist_ok=True)
    # reproducible files: no creation date in the PDF, no software tag in the PNG
    res.figure.savefig(out / f"{stem}.pdf", metadata={"CreationDate": None, "Creator": None})
    res.figure.savefig(out / f"{stem}.png", dpi=160, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(res.figure)
    mode = "quick" if ctx.quick else "full"
    sidecar = {
        "number": spec.number,
        "name": spec.name,
        "title": spec.title,
        "caption": res.caption,
        "source": res.source,
        "mode": mode,
        "checks": res.checks,
        "numbers": res.numbers,
        "data": res.data,
        "seconds": round(secs, 2),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "generated": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    (out / f"{stem}.json").write_text(json.dumps(_jsonable(sidecar), indent=1) + "\n")
    quick_note = (
        r" \emph{Quick mode (CI sizes).}" if ctx.quick else ""
    )
    tex = (
        "% generated by `bk figures`: do not edit\n"
        "\\begin{figure*}[t]\n\\centering\n"
        f"\\includegraphics[width=\\textwidth]{{{stem}.pdf}}\n"
        f"\\caption{{\\textbf{{{spec.title}.}} {res.caption} "
        f"Data: \\texttt{{{tex_escape(res.source)}}}.{quick_note}}}\n"
        f"\\label{{fig:{spec.name}}}\n"
        "\\end{figure*}\n"
    )
    (out / f"{stem}.tex").write_text(tex)


def write_numbers_tex(out: Path) -> Path:
    """Collect the measured numbers of every ``fig*.json`` in ``out`` into ``numbers.tex``.

    Each number becomes ``\\bknum{N.key}`` (math mode content, e.g. ``\\(\\bknum{1.max_err}\\)``).
    """
    lines = [
        "% generated by `bk figures` from the fig*.json sidecars: do not edit",
        r"\providecommand{\bknum}[1]{\ifcsname bknum@#1\endcsname"
        r"\csname bknum@#1\endcsname\else\textbf{??#1}\fi}",
    ]
    for path in sorted(out.glob("fig*.json"), key=lambda p: json.loads(p.read_text())["number"]):
        side = json.loads(path.read_text())
        n = side["number"]
        lines.append(f"% figure {n}: {side['name']} ({side['mode']} mode)")
        lines.append(
            rf"\expandafter\def\csname bknum@{n}.mode\endcsname{{\text{{{side['mode']}}}}}"
        )
        for key, val in side["numbers"].items():
            lines.append(rf"\expandafter\def\csname bknum@{n}.{key}\endcsname{{{tex_number(val)}}}")
    target = out / "numbers.tex"
    target.write_text("\n".join(lines) + "\n")
    return target


def generate(
    numbers: Iterable[int] | None = None,
    *,
    quick: bool = False,
    out: str | Path = "paper/figures",
    progress: bool = True,
    results: str | Path | None = None,
    force: bool = False,
) -> dict[int, str | None]:
    """Generate figures; return ``{number: None on success, else the error message}``
    (a :class:`Skipped` message, a ``str``, for a figure that raised :class:`SkippedFigure`).

    Parameters
    ----------
    numbers : iterable of int, optional
        Figures to generate (default: all).
    quick : bool
        Small sizes (CI).
    out : path
        Output directory.
    progress : bool
        Show tqdm bars.
    results : path, optional
        Directory of the results files (default ``benchmarks/results``).
    force : bool
        Let quick mode write into a directory that holds full-mode results.

    Raises
    ------
    FullModeResultsError
        In quick mode, without ``force``, when ``out`` holds full-mode results (its
        ``numbers.tex`` or a sidecar says full mode): CI-size numbers must never replace the
        paper's. Nothing is written.
    """
    from tqdm import tqdm

    selected = sorted(FIGURES) if numbers is None else sorted(set(numbers))
    for n in selected:
        if n not in FIGURES:
            raise ValueError(f"figure numbers must be in {sorted(FIGURES)}, got {n}")
    if quick and not force:
        full = _full_mode_results(Path(out))
        if full:
            raise FullModeResultsError(
                f"{out} holds full-mode results ({', '.join(full[:3])}"
                f"{', ...' if len(full) > 3 else ''}); quick mode will not overwrite them: "
                "choose another --out (default build/figures-quick) or pass --force")
    ctx = FigureContext(quick=quick, out=Path(out), show_progress=progress,
                        results=None if results is None else Path(results))
    results: dict[int, str | None] = {}
    bar = tqdm(selected, desc="figures", unit="fig", disable=not progress, position=0)
    for n in bar:
        spec = FIGURES[n]
        bar.set_postfix_str(f"{n}: {spec.name}")
        t0 = time.perf_counter()
        try:
            res = spec.func(ctx)
            failed = [k for k, ok in res.checks.items() if not ok]
            if not res.checks:
                raise FigureSanityError(f"figure {n} ({spec.name}) has no sanity assertion")
            if failed:
                raise FigureSanityError(
                    f"figure {n} ({spec.name}): sanity assertion(s) failed: {failed}"
                )
            _write_outputs(spec, res, ctx, time.perf_counter() - t0)
            results[n] = None
            if progress:
                tqdm.write(f"figure {n} ({spec.name}): written in "
                           f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
        except MissingResultsError as exc:
            results[n] = f"figure {n} ({spec.name}): {exc}"
        except SkippedFigure as exc:
            results[n] = Skipped(f"figure {n} ({spec.name}): skipped: {exc}")
        except Exception as exc:  # reported with its traceback, never hidden
            tb = traceback.format_exc(limit=6)
            results[n] = f"figure {n} ({spec.name}): {type(exc).__name__}: {exc}\n{tb}"
        if results[n] is not None:
            tqdm.write(results[n], file=sys.stderr)
    if any(ctx.out.glob("fig*.json")):
        write_numbers_tex(ctx.out)
    return results

