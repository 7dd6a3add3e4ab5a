"""``bk figures --quick`` end to end (:mod:`bkpaper.cli`), the failure modes of the figure
driver (:mod:`bkpaper.framework`) and :func:`~bkpaper.framework.tex_number`.

``bk figures --quick`` runs once per module (fixture) into a temporary directory; each
figure is then checked for its files (PDF, PNG, JSON sidecar, LaTeX snippet), their sizes, and
that every sanity assertion recorded in the sidecar holds. Figures 6 and 7 read the committed
results files (GPU benchmark, lm_compare metrics) when present, else they launch a CPU timing
run and two tiny training runs (the slow part of this module); their missing-results error path
in full mode is tested separately.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bkmodel import cli
from bkpaper import framework
from bkpaper.framework import FigureResult, MissingResultsError, tex_number

EXPECTED = {
    1: "resolvent",
    2: "schatten",
    3: "spectral_shift",
    4: "mourre",
    5: "primes",
    6: "scaling",
    7: "training",
    8: "continuum",
    9: "act",
    10: "length_extrapolation",
    11: "spectral",
    12: "resonances",
}
# drawn only from a results file of benchmarks/length_extrapolation.py, else skipped
OPTIONAL = {10: "length_extrapolation_*.json"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("figures")
    code = cli.main(["figures", "--quick", "--no-progress", "--out", str(out)])
    return code, out


class TestQuickRun:
    def test_registry_lists_the_seven_figures(self) -> None:
        assert {n: s.name for n, s in framework.FIGURES.items()} == EXPECTED

    def test_exit_code(self, quick_run: tuple[int, Path]) -> None:
        code, _ = quick_run
        assert code == 0

    @pytest.mark.parametrize("number", sorted(EXPECTED), ids=lambda n: f"fig{n}")
    def test_files_and_sanity(self, quick_run: tuple[int, Path], number: int) -> None:
        _, out = quick_run
        stem = f"fig{number}_{EXPECTED[number]}"
        results = framework.REPO_ROOT / "benchmarks" / "results"
        if number in OPTIONAL and not list(results.glob(OPTIONAL[number])):
            assert not (out / f"{stem}.json").exists()
            pytest.skip(f"no {OPTIONAL[number]} in {results}: the figure is skipped")
        for ext, min_bytes in ((".pdf", 2000), (".png", 5000), (".json", 100), (".tex", 100)):
            path = out / f"{stem}{ext}"
            assert path.is_file(), f"{path.name} missing"
            assert path.stat().st_size >= min_bytes, f"{path.name} is nearly empty"
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
        side = json.loads((out / f"{stem}.json").read_text())
        assert side["mode"] == "quick"
        assert side["checks"], "a figure without a sanity assertion"
        failed = [k for k, ok in side["checks"].items() if ok is not True]
        assert not failed, f"sanity assertions failed: {failed}"
        assert side["source"], "the caption must name the command that produced the data"
        assert side["numbers"], "the paper quotes no measured number from this figure"
        tex = (out / f"{stem}.tex").read_text()
        assert f"{stem}.pdf" in tex and f"fig:{EXPECTED[number]}" in tex

    def test_numbers_tex_defines_every_number(self, quick_run: tuple[int, Path]) -> None:
        _, out = quick_run
        text = (out / "numbers.tex").read_text()
        for side_path in out.glob("fig*.json"):
            side = json.loads(side_path.read_text())
            for key in side["numbers"]:
                assert f"bknum@{side['number']}.{key}\\endcsname" in text


def _fake_figure(checks: dict[str, bool]):
    def func(ctx: framework.FigureContext) -> FigureResult:
        fig, axes = framework.new_figure(1, 1, 3, 2)
        axes[0, 0].plot([0, 1], [0, 1])
        return FigureResult(fig, "A test figure.", "pytest", checks, numbers={"x": 1.5})

    return func


class TestDriver:
    def test_failed_sanity_assertion_writes_nothing_and_fails(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        spec = framework.FigureSpec(
            99, "bad", "Bad", _fake_figure({"finite": True, "bound": False})
        )
        monkeypatch.setitem(framework.FIGURES, 99, spec)
        res = framework.generate([99], quick=True, out=tmp_path, progress=False)
        assert res[99] is not None and "bound" in res[99]
        assert not list(tmp_path.glob("fig99*"))

    def test_figure_without_sanity_assertion_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        spec = framework.FigureSpec(98, "unchecked", "Unchecked", _fake_figure({}))
        monkeypatch.setitem(framework.FIGURES, 98, spec)
        res = framework.generate([98], quick=True, out=tmp_path, progress=False)
        assert res[98] is not None and "no sanity assertion" in res[98]

    def test_good_figure_writes_all_outputs(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        spec = framework.FigureSpec(97, "good", "Good", _fake_figure({"ok": True}))
        monkeypatch.setitem(framework.FIGURES, 97, spec)
        assert framework.generate([97], quick=False, out=tmp_path, progress=False) == {97: None}
        suffixes = {p.suffix for p in tmp_path.glob("fig97_good.*")}
        assert suffixes == {".pdf", ".png", ".json", ".tex"}
        assert r"\def\csname bknum@97.x\endcsname{1.5}" in (tmp_path / "numbers.tex").read_text()

    def test_absent_results_skip_without_failing(self, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
        res = framework.generate([10], quick=True, out=tmp_path / "out", progress=False,
                                 results=tmp_path)
        assert isinstance(res[10], framework.Skipped)
        assert "length_extrapolation.py" in res[10] and "skipped" in res[10]
        assert not list((tmp_path / "out").glob("fig10*"))
        code = cli.main(["figures", "--quick", "--only", "10", "--no-progress", "--out",
                         str(tmp_path / "out"), "--results-dir", str(tmp_path)])
        assert code == 0
        assert "1 skipped" in capsys.readouterr().out

    def test_unknown_figure_number(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="figure numbers"):
            framework.generate([1000], out=tmp_path, progress=False)

    def test_missing_results_full_mode_names_the_command(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # an empty repository root: no benchmark JSON, no training metrics
        monkeypatch.setattr(framework, "REPO_ROOT", tmp_path)
        for n in (6, 7):
            ctx = framework.FigureContext(quick=False, out=tmp_path / "out", root=tmp_path)
            with pytest.raises(MissingResultsError) as info:
                framework.FIGURES[n].func(ctx)
            msg = str(info.value)
            assert "does not exist" in msg or "no " in msg
            assert "python" in msg or "bk " in msg, msg


class TestTexNumber:
    @pytest.mark.parametrize(
        ("x", "expected"),
        [
            (3.14159e-16, r"3.14\times 10^{-16}"),
            (0.25, "0.25"),
            (3.96, "3.96"),
            (12, "12"),
            (123456, "123{,}456"),
            (9.996e-7, r"1\times 10^{-6}"),
            (2.0e5, r"2\times 10^{5}"),
            (1234.5, "1234"),
            (0.0, "0"),
            (math.inf, r"\infty"),
            ("H100", "H100"),
        ],
    )
    def test_format(self, x: object, expected: str) -> None:
        assert tex_number(x) == expected


class TestQuickNeverOverwritesFull:
    """``bk figures --quick`` keeps its hands off full-mode results (issue 21, item 4)."""

    @staticmethod
    def _full_dir(root: Path) -> Path:
        """A copy of the committed full-mode ``numbers.tex`` and one full-mode sidecar."""
        full = root / "paper" / "figures"
        full.mkdir(parents=True)
        committed = framework.REPO_ROOT / "paper" / "figures"
        (full / "numbers.tex").write_text((committed / "numbers.tex").read_text())
        side = json.loads((committed / "fig1_resolvent.json").read_text())
        assert side["mode"] == "full"
        (full / "fig1_resolvent.json").write_text(json.dumps(side))
        return full

    def test_default_out_of_quick_mode_is_build(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        spec = framework.FigureSpec(97, "good", "Good", _fake_figure({"ok": True}))
        monkeypatch.setitem(framework.FIGURES, 97, spec)
        full = self._full_dir(tmp_path)
        before = (full / "numbers.tex").read_text()
        monkeypatch.chdir(tmp_path)
        assert cli.main(["figures", "--quick", "--only", "97", "--no-progress"]) == 0
        assert (full / "numbers.tex").read_text() == before
        assert not list(full.glob("fig97*"))
        side = json.loads((tmp_path / "build/figures-quick/fig97_good.json").read_text())
        assert side["mode"] == "quick"

    def test_quick_into_a_full_directory_is_refused_unless_forced(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import subprocess
        import sys

        full = self._full_dir(tmp_path)
        before = sorted((p.name, p.read_bytes()) for p in full.iterdir())
        p = subprocess.run(
            [sys.executable, "-m", "bkmodel.cli", "figures", "--quick", "--only", "1",
             "--no-progress", "--out", str(full)],
            capture_output=True, text=True, timeout=600,
        )
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1, p.stderr
        assert lines[0].startswith(f"bk figures: {full} holds full-mode results")
        assert "--force" in lines[0] and "Traceback" not in p.stderr
        assert sorted((q.name, q.read_bytes()) for q in full.iterdir()) == before
        # the library refuses too; --force (force=True) is the explicit way through
        spec = framework.FigureSpec(97, "good", "Good", _fake_figure({"ok": True}))
        monkeypatch.setitem(framework.FIGURES, 97, spec)
        with pytest.raises(framework.FullModeResultsError, match="full-mode"):
            framework.generate([97], quick=True, out=full, progress=False)
        assert not list(full.glob("fig97*"))
        assert framework.generate([97], quick=True, out=full, progress=False,
                                  force=True) == {97: None}
        assert "(quick mode)" in (full / "numbers.tex").read_text()
        # full mode into a full directory and quick mode into a quick one stay allowed
        assert framework.generate([97], quick=False, out=full, progress=False) == {97: None}
        quick = tmp_path / "quick"
        for _ in range(2):
            assert framework.generate([97], quick=True, out=quick, progress=False) == {97: None}
