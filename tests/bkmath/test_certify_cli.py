"""``bk certify`` and the docs/theory.md status-table generator."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bkmath import checks
from bkmath.certificate import Certificate, Kind, Status, write_report
from bkmath.checks import cli as certify_cli
from bkmath.checks import theory_doc
from bkmath.checks.mourre import (
    check_mourre_commutator_identity,
    check_mourre_estimate,
    check_seed_commutator_identity,
)
from bkmath.checks.primes import check_explicit_formula, check_prime_bump_pairing
from bkmodel import cli


def _fake(status: Status, kind: Kind):
    def check_fake(profile):
        """fake"""
        cex = {"x": 1} if status is Status.REFUTED else None
        return [
            Certificate("_fake[one]", "a fake claim", status, kind, margin=-1.0, counterexample=cex)
        ]

    return check_fake


@pytest.fixture
def extra_check(monkeypatch):
    """``extra_check(fn)`` appends the check function ``fn`` to the list ``bk certify`` runs."""

    def install(fn) -> str:
        real = checks.all_checks
        monkeypatch.setattr(checks, "all_checks", lambda: [*real(), fn])
        return checks.CheckSpec.of(fn).name

    return install


@pytest.fixture
def fake_check(extra_check):
    def install(status: Status, kind: Kind) -> str:
        return extra_check(_fake(status, kind))

    return install


class TestCertify:
    def test_runs_writes_and_prints(self, tmp_path, capsys):
        # the seed claims in this check are refuted: an expected outcome, exit code 0
        code = cli.main(
            [
                "certify",
                "--profile",
                "quick",
                "--only",
                "seed_commutator_identity",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
        out = capsys.readouterr().out
        assert code == 0
        assert "seed_commutator_identity[laplacian_x]" in out
        assert re.search(r"seed_claim\s+refuted", out)
        data = json.loads((tmp_path / "certificates.json").read_text())
        assert {d["theorem"] for d in data} >= {"seed_commutator_identity[momentum]"}
        assert "| theorem |" in (tmp_path / "certificates.md").read_text()

    def test_progress_bar_on_stderr(self, capsys):
        assert (
            cli.main(["certify", "--profile", "quick", "--only", "seed_commutator_identity"]) == 0
        )
        assert "certificates" in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("status", "kind", "code"),
        [
            (Status.REFUTED, Kind.THEOREM, 1),  # a theorem refuted: unexpected
            (Status.VERIFIED, Kind.NEGATIVE_CONTROL, 1),  # a control that cannot fail
            (Status.INCONCLUSIVE, Kind.SEED_CLAIM, 1),
            (Status.REFUTED, Kind.SEED_CLAIM, 0),  # a refuted seed claim is a result
            (Status.REFUTED, Kind.NEGATIVE_CONTROL, 0),
        ],
    )
    def test_exit_code(self, fake_check, capsys, status, kind, code):
        name = fake_check(status, kind)
        assert cli.main(["certify", "--only", name, "--no-progress"]) == code
        out = capsys.readouterr().out
        assert ("UNEXPECTED" in out) == (code == 1)

    def test_check_that_raises_is_unexpected(self, extra_check, capsys):
        def check_boom(profile):
            """b"""
            raise ZeroDivisionError("nope")

        name = extra_check(check_boom)
        assert cli.main(["certify", "--only", name, "--no-progress"]) == 1
        assert "ZeroDivisionError" in capsys.readouterr().out

    def test_module_import_failure_reported(self, monkeypatch, fake_check, capsys):
        monkeypatch.delattr(checks, "schatten", raising=False)
        monkeypatch.setitem(sys.modules, "bkmath.checks.schatten", None)
        name = fake_check(Status.VERIFIED, Kind.THEOREM)
        # the other checks still run; the broken module is an unexpected certificate
        assert cli.main(["certify", "--only", name, "--no-progress"]) == 0
        assert cli.main(["certify", "--only", "schatten", "--no-progress"]) == 1
        out = capsys.readouterr().out
        assert "UNEXPECTED schatten: inconclusive" in out and "bkmath.checks.schatten" in out
        assert cli.main(["certify", "--list"]) == 1
        out = capsys.readouterr().out
        assert re.search(r"^schatten +IMPORT ERROR: .*bkmath\.checks\.schatten", out, re.M)
        assert "mourre_estimate" in out  # the other modules' checks are still listed

    def test_unknown_name_is_usage_error(self, capsys):
        assert cli.main(["certify", "--only", "no_such_check"]) == 2
        assert "unknown check" in capsys.readouterr().err

    def test_bad_profile_rejected(self):
        with pytest.raises(SystemExit) as exc:
            cli.main(["certify", "--profile", "fast"])
        assert exc.value.code == 2

    def test_list(self, capsys):
        cli.main(["certify", "--list"])
        out = capsys.readouterr().out
        for name in ("mourre_estimate", "explicit_formula", "prime_bump_pairing"):
            assert name in out

    def test_table_format(self):
        c1 = Certificate("a[x]", "s", Status.VERIFIED, margin=0.5, wall_time=1.25)
        c2 = Certificate("b", "s", Status.REFUTED, Kind.THEOREM, counterexample={})
        text = certify_cli.format_table([c1, c2])
        lines = text.splitlines()
        # the marker column has a header and the table a legend (issue 21, item 8)
        assert lines[0].split() == ["!", "theorem", "kind", "status", "margin", "time", "(s)"]
        assert lines[2].split()[:4] == ["a[x]", "theorem", "verified", "0.5"]
        assert lines[3].startswith("!")  # unexpected row marked
        assert "—" in lines[3]
        legend = "\n".join(lines[4:])
        for word in ("! ", "unexpected", "margin", "refuted", "negative_control", "seed_claim"):
            assert word in legend


class TestTheoryDoc:
    def _certs(self):
        return [
            Certificate(
                "mourre_estimate[lattice]",
                "s",
                Status.VERIFIED,
                margin=1.75,
                precision="float64",
                wall_time=0.5,
            ),
            Certificate(
                "explicit_formula[seed_centres]",
                "s",
                Status.REFUTED,
                Kind.SEED_CLAIM,
                margin=-0.04,
                counterexample={"r": 1},
            ),
            Certificate("x|y", "s", Status.INCONCLUSIVE),
        ]

    def test_render(self):
        table = theory_doc.render_table(self._certs())
        assert "3 certificates — 1 verified, 1 refuted, 1 inconclusive; **1 unexpected**" in table
        assert "| `mourre_estimate[lattice]` | theorem | **verified** |" in table
        assert "x\\|y" in table  # pipes escaped

    def test_update_and_check_round_trip(self, tmp_path):
        doc = tmp_path / "theory.md"
        doc.write_text(f"# T\n\nbefore\n\n{theory_doc.BEGIN}\nold\n{theory_doc.END}\n\nafter\n")
        certs = self._certs()
        write_report(certs, tmp_path / "certificates.json", tmp_path / "certificates.md")
        js = str(tmp_path / "certificates.json")
        assert theory_doc.main([js, "--doc", str(doc), "--check"]) == 1
        assert theory_doc.main([js, "--doc", str(doc)]) == 0
        text = doc.read_text()
        assert "old" not in text and "before" in text and "after" in text
        assert "`explicit_formula[seed_centres]`" in text
        assert theory_doc.main([js, "--doc", str(doc), "--check"]) == 0
        # idempotent
        theory_doc.main([js, "--doc", str(doc)])
        assert doc.read_text() == text

    def _doc_and_json(self, tmp_path, certs):
        doc = tmp_path / "theory.md"
        doc.write_text(f"# T\n\n{theory_doc.BEGIN}\nold\n{theory_doc.END}\n")
        js = tmp_path / "certificates.json"
        write_report(certs, js, tmp_path / "certificates.md")
        return doc, js

    def test_check_compares_statuses_not_wall_times(self, tmp_path, capsys):
        # issue 21, item 6: a new run of the same certificates has other wall times; the
        # table is up to date as long as certificate, kind, status, expected, margin agree
        doc, js = self._doc_and_json(tmp_path, self._certs())
        assert theory_doc.main([str(js), "--doc", str(doc)]) == 0
        rerun = json.loads(js.read_text())
        for d in rerun:
            d["wall_time"] += 1.37
        rerun[0]["margin"] = 1.7500001  # the same margin as displayed (3 digits)
        js.write_text(json.dumps(rerun))
        capsys.readouterr()
        assert theory_doc.main([str(js), "--doc", str(doc), "--check"]) == 0
        assert "up to date" in capsys.readouterr().out
        # a margin that displays differently, or a status, is a change
        for field, value in (("margin", 1.5), ("status", "refuted")):
            changed = [dict(d) for d in rerun]
            changed[0][field] = value
            changed[0]["counterexample"] = {"x": 1}
            js.write_text(json.dumps(changed))
            assert theory_doc.main([str(js), "--doc", str(doc), "--check"]) == 1
            out = capsys.readouterr().out
            assert "OUT OF DATE" in out and "mourre_estimate[lattice]" in out
        # a certificate more than the table has
        extra = [*rerun, Certificate("z_new", "s", Status.VERIFIED).to_dict()]
        js.write_text(json.dumps(extra))
        assert theory_doc.main([str(js), "--doc", str(doc), "--check"]) == 1
        assert "z_new" in capsys.readouterr().out

    def test_regenerating_keeps_the_profile(self, tmp_path):
        doc, js = self._doc_and_json(tmp_path, self._certs())
        assert theory_doc.main([str(js), "--doc", str(doc), "--profile", "default"]) == 0
        assert "`certificates.json` (profile default) by" in doc.read_text()
        assert theory_doc.main([str(js), "--doc", str(doc)]) == 0  # no --profile
        assert "(profile default)" in doc.read_text()
        assert theory_doc.table_profile(doc.read_text()) == "default"
        assert theory_doc.main([str(js), "--doc", str(doc), "--profile", "quick"]) == 0
        assert "(profile quick)" in doc.read_text()

    def test_table_rows(self):
        table = theory_doc.render_table(self._certs())
        rows = theory_doc.table_rows(table)
        assert rows[0] == (
            "`explicit_formula[seed_centres]`",
            "seed_claim",
            "**refuted**",
            "yes",
            "-0.04",
        )
        assert rows[2][0] == "`x\\|y`"  # an escaped pipe stays in its cell
        assert [len(r) for r in rows] == [5, 5, 5]

    def test_missing_markers(self):
        with pytest.raises(ValueError, match="BEGIN"):
            theory_doc.update_text("no markers", "t")

    def test_bad_json(self, tmp_path):
        p = tmp_path / "c.json"
        p.write_text("{}")
        with pytest.raises(ValueError, match="list"):
            theory_doc.load_certificates(p)

    def test_theory_md_documents_every_check(self):
        # docs/theory.md has a section for every check of all_checks(), and the table markers
        text = theory_doc.DEFAULT_DOC.read_text(encoding="utf-8")
        assert theory_doc.BEGIN in text and theory_doc.END in text
        missing = [name for name in checks.registry() if f"`{name}`" not in text]
        assert not missing, f"docs/theory.md does not document: {missing}"


@pytest.mark.parametrize(
    "check",
    [
        check_mourre_commutator_identity,
        check_seed_commutator_identity,
        check_mourre_estimate,
        check_explicit_formula,
        check_prime_bump_pairing,
    ],
    ids=lambda f: f.__name__,
)
def test_quick_profile_outcomes(check):
    # `bk demo` runs the quick profile: its sizes must work too (pytest proofs_checks runs
    # the default profile only)
    checks.assert_expected(checks.run_check(check, "quick"))


def _run_python(code: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=cwd,
    )


# `bk certify` with two stand-in checks: one finishes, the next is interrupted by Ctrl-C
_INTERRUPTED_RUN = """
import os, signal, sys, time
from bkmath import checks
from bkmath.certificate import Certificate, Status
from bkmodel import cli

def check_done(profile):
    \"\"\"finishes\"\"\"
    return [Certificate("done", "s", Status.VERIFIED, margin=1.0)]

def check_interrupted(profile):
    \"\"\"Ctrl-C while it runs\"\"\"
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)
    return []

signal.signal(signal.SIGINT, signal.default_int_handler)
checks.all_checks = lambda: [check_done, check_interrupted]
sys.exit(cli.main(["certify", *sys.argv[1:]]))
"""


@pytest.mark.parametrize("progress", [False, True])
def test_ctrl_c_one_line_exit_130_nothing_written(tmp_path, progress):
    # issue 21, item 7: no KeyboardInterrupt traceback; no partial report as if complete
    out = tmp_path / "cert"
    argv = ["--out", str(out)] + ([] if progress else ["--no-progress"])
    p = _run_python(_INTERRUPTED_RUN, *argv)
    assert p.returncode == 130, p.stderr
    assert "Traceback" not in p.stderr and "KeyboardInterrupt" not in p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last == f"bk certify: interrupted; nothing written to {out}"
    if not progress:
        assert p.stderr.strip() == last  # exactly one line
    assert not (out / "certificates.json").exists() and not (out / "certificates.md").exists()
    assert "certificates from" not in p.stdout  # no summary of a run that did not finish


def test_pytest_proofs_checks_names_the_report(tmp_path):
    # issue 21, item 8: the terminal summary says where certificates.* were written (here the
    # working directory, the default)
    test = Path(__file__).resolve().parents[2] / "proofs_checks" / "test_dissipative.py"
    code = "import sys, pytest; sys.exit(pytest.main(sys.argv[1:]))"
    p = _run_python(code, "-q", "-p", "no:cacheprovider", str(test), cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-2000:]
    assert (tmp_path / "certificates.json").exists()
    line = next(x for x in p.stdout.splitlines() if "certificates written to" in x)
    assert str(tmp_path / "certificates.json") in line
    assert str(tmp_path / "certificates.md") in line


# `bk demo --skip-train` on one stand-in check (the quick run itself takes seconds)
_DEMO_RUN = """
import sys
from bkmath import checks
from bkmath.certificate import Certificate, Status
from bkmodel import cli

def check_one(profile):
    \"\"\"one\"\"\"
    return [Certificate("one", "s", Status.VERIFIED, margin=1.0)]

checks.all_checks = lambda: [check_one]
sys.exit(cli.main(["demo", "--skip-train", *sys.argv[1:]]))
"""


@pytest.mark.parametrize("flag", [["--no-progress"], []])
def test_demo_redirected_log_has_no_progress_frames(tmp_path, flag):
    # issue 21, item 8: `bk demo --no-progress`, and no bar when the output is not a terminal
    p = _run_python(_DEMO_RUN, "--out", str(tmp_path), *flag)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # no tqdm frame
    assert re.search(r"^!\s+theorem\s+kind\s+status", p.stdout, re.M)
    assert "\nrefuted  " in p.stdout and "\nmargin   " in p.stdout  # the legend
    assert f"wrote {tmp_path / 'certificates.json'}" in p.stdout
