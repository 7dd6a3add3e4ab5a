"""Tests for bkmath.certificate: Certificate semantics, JSON round trip, reports."""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest

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
