"""Limiting absorption principle (docs/conventions.md §2, §6): measured rates as ε ↓ 0."""

from __future__ import annotations

from bkmath.certificate import Status
from bkmath.checks import assert_expected
from bkmath.checks.limiting_absorption import check_limiting_absorption


def test_limiting_absorption(certify):
    certs = certify(check_limiting_absorption)
    assert_expected(certs)
    by = {c.theorem: c for c in certs}
    assert by["limiting_absorption_weighted_resolvent"].status is Status.VERIFIED
    assert by["limiting_absorption_birman_schwinger"].status is Status.VERIFIED
    assert by["limiting_absorption_negative_control"].status is Status.REFUTED
    rows = by["limiting_absorption_birman_schwinger"].value["lattice"]
    assert all(0.9 < r["order D"] < 1.1 for r in rows)
