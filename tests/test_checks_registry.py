"""The theorem checks behind proofs_checks/ and ``bk certify``: the list of all checks, the
module layout, and how a check's failure is reported."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import pytest

from bkmath import checks
from bkmath.certificate import Certificate, Kind, Status

ROOT = Path(__file__).resolve().parents[1]
#: bkmath/checks modules that are not theorem modules
_NOT_THEOREMS = {"cli", "profile", "theory_doc"}


def _theorem_modules() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(checks.__path__)
        if not m.name.startswith("_") and m.name not in _NOT_THEOREMS
    )


class TestProfile:
    def test_pick(self):
        assert checks.Profile("quick").pick(quick=1, default=2, thorough=3) == 1
        assert checks.Profile("thorough").pick(quick=1, default=2, thorough=3) == 3

    def test_bad_profile(self):
        with pytest.raises(ValueError, match="profile"):
            checks.Profile("fast")


class TestAllChecks:
    def test_every_module_contributes_a_check(self):
        modules = {f.__module__ for f in checks.all_checks()}
        assert {f"bkmath.checks.{m}" for m in _theorem_modules()} <= modules
        assert not [f for f in checks.all_checks() if hasattr(f, "import_error")]

    def test_every_check_function_is_listed(self):
        """A ``check_*`` function defined in a theorem module but missing from the explicit
        list would silently drop out of ``bk certify`` and docs/theory.md."""
        listed = set(checks.all_checks())
        for m in _theorem_modules():
            mod = importlib.import_module(f"bkmath.checks.{m}")
            defined = {
                f for name, f in inspect.getmembers(mod, inspect.isfunction)
                if name.startswith("check_") and f.__module__ == mod.__name__
            }
            assert defined and defined <= listed, m

    def test_names_descriptions_and_order(self):
        specs = checks.registry()
        assert list(specs) == [checks.CheckSpec.of(f).name for f in checks.all_checks()]
        assert len(specs) == len(checks.all_checks())  # names unique
        for name, spec in specs.items():
            assert spec.func.__name__ == f"check_{name}"
            assert spec.description and "\n" not in spec.description
        # report order: the resolvent theorems first, the primes last
        assert list(specs)[:2] == ["free_resolvent", "resolvent_identity"]
        assert list(specs)[-1] == "prime_bump_pairing"
        names = list(specs)  # issue 19's spectral families sit between resonances and mourre
        assert (names.index("resonances") < names.index("clark") < names.index("mfunction")
                < names.index("mourre_commutator_identity"))

    @pytest.mark.parametrize("module", _theorem_modules())
    def test_proofs_checks_imports_every_check_of_its_module(self, module):
        """Theorem module ``bkmath/checks/<m>.py`` ↔ ``proofs_checks/test_<m>.py``, which
        imports each of its check functions directly (no lookup by name)."""
        test = ROOT / "proofs_checks" / f"test_{module}.py"
        assert test.exists(), test
        imported = {
            alias.name
            for node in ast.walk(ast.parse(test.read_text(encoding="utf-8")))
            if isinstance(node, ast.ImportFrom) and node.module == f"bkmath.checks.{module}"
            for alias in node.names
        }
        mine = {f.__name__ for f in checks.all_checks()
                if f.__module__ == f"bkmath.checks.{module}"}
        assert mine and mine <= imported


class TestRunCheck:
    def test_by_function_and_by_name(self):
        from bkmath.checks.mourre import check_seed_commutator_identity

        a = checks.run_check(check_seed_commutator_identity, "quick")
        b = checks.run_check("seed_commutator_identity", "quick")
        assert [c.theorem for c in a] == [c.theorem for c in b]
        assert [c.status for c in a] == [c.status for c in b]

    def test_unknown_check(self):
        with pytest.raises(ValueError, match="unknown check"):
            checks.run_check("no such theorem")

    def test_exception_becomes_unexpected_inconclusive(self):
        def check_boom(profile):
            """explodes"""
            raise ArithmeticError("kaboom")

        (cert,) = checks.run_check(check_boom)
        assert cert.theorem == "boom" and cert.statement == "explodes"
        assert cert.status is Status.INCONCLUSIVE
        assert not cert.expected
        assert "kaboom" in cert.details["error"]
        with pytest.raises(AssertionError, match="boom"):
            checks.assert_expected([cert])

    def test_no_certificate_is_an_error(self):
        def check_empty(profile):
            return []

        with pytest.raises(RuntimeError, match="'empty' returned no certificate"):
            checks.run_check(check_empty)

    def test_import_failure_becomes_a_stand_in_check(self, monkeypatch):
        monkeypatch.delattr(checks, "schatten", raising=False)
        monkeypatch.setitem(sys.modules, "bkmath.checks.schatten", None)
        listed = checks.all_checks()
        (stand_in,) = [f for f in listed if hasattr(f, "import_error")]
        assert stand_in.__name__ == "check_schatten"
        # the other modules' checks are all still there, in order
        assert len(listed) == len(checks.registry())
        assert "mourre_estimate" in checks.registry()
        (cert,) = checks.run_check(stand_in, "quick")
        assert cert.theorem == "schatten" and cert.status is Status.INCONCLUSIVE
        assert not cert.expected and "bkmath.checks.schatten" in cert.details["error"]

    def test_expected_outcomes(self):
        ok = Certificate("t", "s", Status.VERIFIED)
        ctrl = Certificate("t", "s", Status.REFUTED, Kind.NEGATIVE_CONTROL, counterexample={})
        seed = Certificate("t", "s", Status.REFUTED, Kind.SEED_CLAIM, counterexample={"v": 1})
        checks.assert_expected([ok, ctrl, seed])
        assert not Certificate("t", "s", Status.VERIFIED, Kind.NEGATIVE_CONTROL).expected


def test_flat_api_names_are_not_shadowed_by_submodules():
    """Regression: a submodule named like a flat-API function (once bkmath.birman_schwinger)
    replaced the function on the package as soon as any module imported it."""
    import bkmath

    for name, module in bkmath._API.items():
        importlib.import_module(module)
        assert not isinstance(getattr(bkmath, name), type(bkmath)), name
