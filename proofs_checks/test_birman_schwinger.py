"""Birman–Schwinger principle (docs/conventions.md §4): bkmath.checks.birman_schwinger."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected
from bkmath.checks.birman_schwinger import check_birman_schwinger


def test_birman_schwinger_principle(certify):
    certs = certify(check_birman_schwinger)
    assert_expected(certs)
    by = {c.theorem: c for c in certs}
    for name in ("birman_schwinger_principle_lattice", "birman_schwinger_principle_arb",
                 "birman_schwinger_principle_continuum"):
        assert by[name].status is Status.VERIFIED
    # the Arb certificate is a proof: every count certified
    assert all(r["bs_count"] == r["N_H"] for r in by["birman_schwinger_principle_arb"].value)
    neg = by["birman_schwinger_principle_negative_control"]
    assert neg.kind is Kind.NEGATIVE_CONTROL and neg.status is Status.REFUTED
