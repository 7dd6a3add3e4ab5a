"""Lattice resonances (docs/theory.md): the Jost polynomial of a finitely supported potential,
its degree, every zero Arb-certified and classified, eigenvalues and resonances against
independent references, with two negative controls."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected
from bkmath.checks.resonances import check_resonances


def test_resonances(certify):
    certs = certify(check_resonances)
    assert_expected(certs)
    by = {c.theorem: c for c in certs}
    for name in ("resonances_jost_identity", "resonances_arb_count", "resonances_eigenvalues",
                 "resonances_transparent_qep"):
        assert by[name].status is Status.VERIFIED, name
    count = by["resonances_arb_count"].details
    # every kind occurs, and the boxes are narrow
    assert all(n > 0 for n in count["kinds"].values())
    assert count["max relative box radius"] <= 1.000001e-10
    for name in ("resonances_unit_disc", "resonances_wrong_degree"):
        c = by[name]
        assert c.kind is Kind.NEGATIVE_CONTROL and c.status is Status.REFUTED
    assert by["resonances_unit_disc"].counterexample["max |w|"] > 1
