"""The theorem-check registry behind proofs_checks/ and ``bk certify``."""

from __future__ import annotations

import pytest

from bkmath import checks
from bkmath.certificate import Certificate, Kind, Status


class TestProfile:
    def test_pick(self):
        assert checks.Profile("quick").pick(quick=1, default=2, thorough=3) == 1
        assert checks.Profile("thorough").pick(quick=1, default=2, thorough=3) == 3

    def test_bad_profile(self):
        with pytest.raises(ValueError, match="profile"):
            checks.Profile("fast")


class TestRegistry:
    def test_every_module_registers_a_check(self):
        specs = checks.registry()
        modules = {s.module for s in specs.values()}
        assert set(checks.CHECK_MODULES) <= modules

    def test_unknown_check(self):
        with pytest.raises(ValueError, match="unknown check"):
            checks.run_check("no such theorem")

    def test_exception_becomes_unexpected_inconclusive(self, monkeypatch):
        def boom(profile):
            raise ArithmeticError("kaboom")

        monkeypatch.setitem(
            checks._REGISTRY, "_boom", checks.CheckSpec("_boom", "explodes", boom, __name__)
        )
        (cert,) = checks.run_check("_boom")
        assert cert.status is Status.INCONCLUSIVE
        assert not cert.expected
        assert "kaboom" in cert.details["error"]
        with pytest.raises(AssertionError, match="_boom"):
            checks.assert_expected([cert])

    def test_expected_outcomes(self):
        ok = Certificate("t", "s", Status.VERIFIED)
        ctrl = Certificate("t", "s", Status.REFUTED, Kind.NEGATIVE_CONTROL, counterexample={})
        seed = Certificate("t", "s", Status.REFUTED, Kind.SEED_CLAIM, counterexample={"v": 1})
        checks.assert_expected([ok, ctrl, seed])
        assert not Certificate("t", "s", Status.VERIFIED, Kind.NEGATIVE_CONTROL).expected


def test_flat_api_names_are_not_shadowed_by_submodules():
    """Regression: a submodule named like a flat-API function (once bkmath.birman_schwinger)
    replaced the function on the package as soon as any module imported it."""
    import importlib

    import bkmath

    for name, module in bkmath._API.items():
        importlib.import_module(module)
        assert not isinstance(getattr(bkmath, name), type(bkmath)), name
