"""Tests for bkmath.certificate: Certificate semantics, JSON round trip, reports."""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bkmath.certificate import (
    Certificate,
    Kind,
    Status,
    from_jsonable,
    markdown_table,
    timed,
    to_jsonable,
    write_report,
)


def _full_cert() -> Certificate:
    return Certificate(
        theorem="herglotz",
        statement="Im G > 0",
        status=Status.REFUTED,
        kind=Kind.NEGATIVE_CONTROL,
        hypotheses={"H real symmetric": False},
        inputs={"z": 1 + 2j, "v": np.array([1.0, -2.0]), "n": np.int64(3)},
        value={"min": -0.5},
        bound=0.0,
        margin=-0.5,
        precision="float64",
        tolerance=1e-15,
        tolerance_reason="rounding",
        counterexample={"z": 0.5 - 1e-3j, "G": complex(0.1, -2.0), "inf": math.inf},
        wall_time=0.25,
        details={"mp": mpmath.mpf("0.1"), "nan": float("nan")},
    )


class TestCertificate:
    def test_json_round_trip(self):
        c = _full_cert()
        s = c.to_json()
        json.loads(s)  # standard JSON (no NaN/Infinity tokens)
        assert "NaN" not in s and "Infinity" not in s
        back = Certificate.from_json(s)
        assert back.status is Status.REFUTED and back.kind is Kind.NEGATIVE_CONTROL
        assert back.inputs["z"] == 1 + 2j
        assert back.inputs["v"] == [1.0, -2.0]
        assert back.counterexample["G"] == complex(0.1, -2.0)
        assert back.counterexample["inf"] == math.inf
        assert math.isnan(back.details["nan"])
        assert back.to_dict() == c.to_dict()

    def test_expected_logic(self):
        assert Certificate("t", "s", Status.VERIFIED).expected
        assert not Certificate("t", "s", Status.INCONCLUSIVE).expected
        assert not Certificate("t", "s", Status.REFUTED, counterexample={"x": 1}).expected
        assert Certificate("t", "s", "refuted", "negative_control", counterexample={}).expected
        assert not Certificate("t", "s", "verified", "negative_control").expected
        assert Certificate("t", "s", "verified", "seed_claim").expected
        assert not Certificate("t", "s", "inconclusive", "seed_claim").expected

    def test_refuted_needs_counterexample(self):
        with pytest.raises(ValueError, match="counterexample"):
            Certificate("t", "s", Status.REFUTED)

    def test_bad_status_and_kind(self):
        with pytest.raises(ValueError):
            Certificate("t", "s", "proved")
        with pytest.raises(ValueError):
            Certificate("t", "s", "verified", "lemma")

    def test_unknown_field_rejected(self):
        d = _full_cert().to_dict()
        d["colour"] = "red"
        with pytest.raises(ValueError, match="unknown certificate fields"):
            Certificate.from_dict(d)

    def test_summary(self):
        assert "refuted" in _full_cert().summary()
        assert "margin —" in Certificate("t", "s", Status.VERIFIED).summary()


class TestFromBound:
    """Certificate.from_bound: margin and status derived from value, bound and tolerance."""

    @pytest.mark.parametrize(
        ("sense", "value", "bound", "margin", "status"),
        [
            ("<=", 0.25, 1.0, 0.75, "verified"),
            ("<=", 1.0, 1.0, 0.0, "verified"),
            ("<=", 1.5, 1.0, -0.5, "refuted"),
            ("<", 0.25, 1.0, 0.75, "verified"),
            ("<", 1.0, 1.0, 0.0, "refuted"),
            (">=", 2.0, 1.0, 1.0, "verified"),
            (">=", 1.0, 1.0, 0.0, "verified"),
            (">", 1.0, 1.0, 0.0, "refuted"),
            (">", 0.5, 1.0, -0.5, "refuted"),
        ],
    )
    def test_inequalities(self, sense, value, bound, margin, status):
        c = Certificate.from_bound("t", "s", value=value, bound=bound, sense=sense)
        assert (c.margin, c.status.value) == (margin, status)
        assert (c.value, c.bound, c.tolerance) == (value, bound, None)

    def test_identity_with_tolerance(self):
        c = Certificate.from_bound("t", "s", value=1.25, bound=1.0, sense="==", tol=0.5)
        assert (c.margin, c.status, c.tolerance) == (0.25, Status.VERIFIED, 0.5)
        c = Certificate.from_bound("t", "s", value=0.5, bound=1.0, sense="==", tol=0.5)
        assert (c.margin, c.status) == (0.0, Status.VERIFIED)
        c = Certificate.from_bound("t", "s", value=0.5, bound=1.0, sense="==", tol=0.5,
                                   strict=True)
        assert (c.margin, c.status) == (0.0, Status.REFUTED)
        c = Certificate.from_bound("t", "s", value=-1.0, bound=1.0, sense="==", tol=0.5)
        assert (c.margin, c.status) == (-1.5, Status.REFUTED)

    def test_tolerance_recorded_not_added_for_inequalities(self):
        c = Certificate.from_bound("t", "s", value=3e-13, bound=1e-12, tol=1e-12)
        assert c.margin == 1e-12 - 3e-13 and c.tolerance == 1e-12

    def test_requires_refutes_without_touching_the_margin(self):
        c = Certificate.from_bound("t", "s", value=0.5, bound=1.0, requires=False,
                                   counterexample={"mpmath": "disagrees"})
        assert (c.status, c.margin) == (Status.REFUTED, 0.5)
        assert c.counterexample == {"mpmath": "disagrees"}

    def test_nan_is_inconclusive(self):
        for kind in Kind:  # unexpected whatever the kind: a NaN decides nothing
            for v, b in ((math.nan, 1.0), (0.5, math.nan)):
                c = Certificate.from_bound("t", "s", value=v, bound=b, kind=kind)
                assert c.status is Status.INCONCLUSIVE and not c.expected
                assert math.isnan(c.margin)
        c = Certificate.from_bound("t", "s", value=math.nan, bound=1.0, sense="==", tol=1.0)
        assert c.status is Status.INCONCLUSIVE

    def test_counterexample(self):
        ok = Certificate.from_bound("t", "s", value=0.0, bound=1.0, counterexample={"x": 1})
        assert ok.counterexample is None  # dropped when verified
        bad = Certificate.from_bound("t", "s", value=2.0, bound=1.0, inputs={"z": 1j})
        assert bad.counterexample == {"inputs": {"z": 1j}, "value": 2.0, "bound": 1.0,
                                      "margin": -1.0}
        ctrl = Certificate.from_bound("t", "s", value=2.0, bound=1.0, sense="<",
                                      kind=Kind.NEGATIVE_CONTROL, counterexample={"err": 2.0})
        assert ctrl.expected and ctrl.counterexample == {"err": 2.0}

    def test_fields_pass_through_and_round_trip(self):
        c = Certificate.from_bound("t", "s", value=np.float64(0.5), bound=1, precision="dps=50",
                                   tolerance_reason="why", wall_time=0.5, details={"k": 1})
        assert type(c.margin) is float and c.margin == 0.5
        assert (c.precision, c.tolerance_reason, c.wall_time) == ("dps=50", "why", 0.5)
        assert Certificate.from_json(c.to_json()).to_dict() == c.to_dict()

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="sense"):
            Certificate.from_bound("t", "s", value=1.0, bound=1.0, sense="=<")
        with pytest.raises(ValueError, match="tol"):
            Certificate.from_bound("t", "s", value=1.0, bound=1.0, sense="==")
        with pytest.raises(ValueError, match="strict"):
            Certificate.from_bound("t", "s", value=1.0, bound=1.0, sense="<=", strict=True)

    @given(st.floats(allow_nan=False, allow_infinity=False),
           st.floats(allow_nan=False, allow_infinity=False),
           st.floats(min_value=0.0, allow_nan=False, allow_infinity=False))
    def test_verdict_is_the_comparison(self, value, bound, tol):
        """The sign of a float64 difference is exact (subnormals included): the verdict
        from the margin's sign is the comparison the check sites used to write by hand."""
        def status(**kw):
            return Certificate.from_bound("t", "s", value=value, bound=bound, **kw).status

        assert (status(sense="<=") is Status.VERIFIED) == (value <= bound)
        assert (status(sense="<") is Status.VERIFIED) == (value < bound)
        assert (status(sense=">=") is Status.VERIFIED) == (value >= bound)
        assert (status(sense=">") is Status.VERIFIED) == (value > bound)
        err = abs(value - bound)
        assert (status(sense="==", tol=tol) is Status.VERIFIED) == (err <= tol)
        assert (status(sense="==", tol=tol, strict=True) is Status.VERIFIED) == (err < tol)


class TestJsonable:
    def test_scalars(self):
        assert to_jsonable(np.float32(1.5)) == 1.5
        assert to_jsonable(True) is True
        assert to_jsonable(-math.inf) == "-inf"
        assert to_jsonable(Status.VERIFIED) == "verified"
        assert to_jsonable(np.array(2.0)) == 2.0

    def test_nested(self):
        x = {"a": [1, (2.0, 3j)], 4: np.array([[1j]])}
        back = from_jsonable(json.loads(json.dumps(to_jsonable(x))))
        assert back == {"a": [1, [2.0, 3j]], "4": [[1j]]}


def test_timed():
    with timed() as t:
        sum(range(1000))
    assert t["seconds"] >= 0


def test_write_report(tmp_path):
    certs = [_full_cert(), Certificate("b", "s", Status.VERIFIED, margin=0.5)]
    write_report(certs, tmp_path / "c.json", tmp_path / "c.md")
    data = json.loads((tmp_path / "c.json").read_text())
    assert [d["theorem"] for d in data] == ["herglotz", "b"]
    md = (tmp_path / "c.md").read_text()
    assert md == markdown_table(certs)
    assert "| herglotz | negative_control | **refuted** | yes |" in md
    assert not list(tmp_path.glob("*.tmp"))


def test_dir_of_bkmath_is_the_api():
    # issue 21, item 9: dir(bkmath) lists the public API (and dunders), not the helpers that
    # bkmath/__init__.py imports
    import bkmath

    names = dir(bkmath)
    for helper in ("Any", "annotations", "importlib", "_API"):
        assert helper not in names
    assert set(bkmath.__all__) <= set(names)
    public = {n for n in names if not n.startswith("__")}
    assert public == {n for n in bkmath.__all__ if not n.startswith("__")}
    assert "Certificate" in names and "__version__" in names
