"""Birman–Schwinger principle (design.md §4): certificates from bkmath.checks."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected


def test_birman_schwinger_principle(certify):
    certs = certify("birman_schwinger")
    assert_expected(certs)
    by = {c.theorem: c for c in certs}
    for name in ("birman_schwinger_principle_lattice", "birman_schwinger_principle_arb",
                 "birman_schwinger_principle_continuum"):
        assert by[name].status is Status.VERIFIED
    # the Arb certificate is a proof: every count certified
    assert all(r["bs_count"] == r["N_H"] for r in by["birman_schwinger_principle_arb"].value)
    neg = by["birman_schwinger_principle_negative_control"]
    assert neg.kind is Kind.NEGATIVE_CONTROL and neg.status is Status.REFUTED
