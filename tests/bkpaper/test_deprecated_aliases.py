"""The deprecated modules ``bkmodel.figures`` and ``bkmodel.paper_tables`` (moved to
:mod:`bkpaper`): importing them warns, and every old name is the new object."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bkmodel
from bkpaper import cli, framework, model_figs, resolvent_figs, scattering_figs, tables


def _fresh_import(name: str, monkeypatch: pytest.MonkeyPatch):
    """Import ``bkmodel.<name>`` anew (its warning fires once per import); the cached module
    and the package attribute are restored after the test."""
    monkeypatch.delitem(sys.modules, f"bkmodel.{name}", raising=False)
    monkeypatch.delattr(bkmodel, name, raising=False)
    with pytest.warns(DeprecationWarning, match="bkpaper"):
        return importlib.import_module(f"bkmodel.{name}")


class TestFiguresAlias:
    def test_import_warns_and_forwards(self, monkeypatch: pytest.MonkeyPatch) -> None:
        old = _fresh_import("figures", monkeypatch)
        assert old.FIGURES is framework.FIGURES
        assert old.generate is framework.generate
        assert old.FigureResult is framework.FigureResult
        assert old.MissingResultsError is framework.MissingResultsError
        assert old.tex_number is framework.tex_number
        assert old._new_figure is framework.new_figure
        assert old.configure_parser is cli.configure_parser and old.run is cli.run
        assert old.figure_resolvent is resolvent_figs.figure_resolvent
        assert old.figure_mourre is scattering_figs.figure_mourre
        assert old.figure_training is model_figs.figure_training

    def test_every_old_name_resolves(self, monkeypatch: pytest.MonkeyPatch) -> None:
        old = _fresh_import("figures", monkeypatch)
        for name in old._MOVED:
            assert getattr(old, name) is not None, name
        assert set(old.__all__) <= set(old._MOVED)
        with pytest.raises(AttributeError, match="no attribute"):
            old.not_a_name  # noqa: B018

    def test_bk_figures_runs_the_new_module(self) -> None:
        from bkmodel import cli as bk_cli

        assert bk_cli.COMMANDS["figures"][0] == "bkpaper.cli"


class TestPaperTablesAlias:
    def test_import_warns_and_forwards(self, monkeypatch: pytest.MonkeyPatch) -> None:
        old = _fresh_import("paper_tables", monkeypatch)
        for name in (*old.__all__, "main"):
            assert getattr(old, name) is getattr(tables, name), name

    def test_python_m_still_runs(self, tmp_path: Path) -> None:
        # the old command line runs bkpaper.tables.main (here: the missing-file error path)
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": str(root)}
        proc = subprocess.run(
            [sys.executable, "-m", "bkmodel.paper_tables", str(tmp_path / "nope.json")],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert "pytest proofs_checks" in proc.stderr
        assert "DeprecationWarning" in proc.stderr and "bkpaper.tables" in proc.stderr
