"""The paper's certificate tables (:mod:`bkpaper.tables`) from a ``certificates.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bkpaper import tables


class TestPaperTables:
    def _write(self, tmp_path: Path) -> Path:
        from bkmath.certificate import Certificate, Kind, Status

        certs = [
            Certificate("herglotz", "Im G > 0 and |G| ≤ 1/η", Status.VERIFIED, margin=0.5),
            Certificate(
                "seed_s2_bound", "‖K‖_S2 ≤ ½ η^(-1/2) ‖V‖_2", Status.REFUTED, Kind.SEED_CLAIM,
                margin=-0.1, counterexample={"eta": 0.1},
            ),
            Certificate("broken", "x", Status.INCONCLUSIVE, details={"error": "boom"}),
        ]
        path = tmp_path / "certificates.json"
        path.write_text(json.dumps([c.to_dict() for c in certs]))
        return path

    def test_tables_from_certificates(self, tmp_path: Path) -> None:
        path = self._write(tmp_path)
        assert tables.main([str(path), "--out", str(tmp_path / "gen")]) == 0
        table = (tmp_path / "gen" / "certificates_table.tex").read_text()
        assert table.count(r"\\") >= 3 + 2  # three rows plus header rows
        assert r"\textbf{\textsc{refuted}}" in table and r"\textbf{NO}" in table
        statements = (tmp_path / "gen" / "statements.tex").read_text()
        assert r"\ensuremath{\eta}" in statements and "U+" not in statements
        nums = (tmp_path / "gen" / "certificate_numbers.tex").read_text()
        assert r"bknum@cert.refuted\endcsname{1}" in nums
        assert r"bknum@cert.unexpected\endcsname{1}" in nums  # the inconclusive theorem

    def test_missing_file_names_the_command(self, tmp_path: Path, capsys) -> None:
        assert tables.main([str(tmp_path / "nope.json")]) == 2
        assert "pytest proofs_checks" in capsys.readouterr().err

    def test_malformed_file(self, tmp_path: Path) -> None:
        p = tmp_path / "c.json"
        p.write_text(json.dumps({"theorem": "x"}))
        with pytest.raises(ValueError, match="list"):
            tables.load_certificates(p)
