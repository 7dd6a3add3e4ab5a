"""Perturbation determinants, det₂, the continuum Fredholm determinant (docs/conventions.md §4)."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected
from bkmath.checks.determinant import check_determinant


def test_determinants(certify):
    certs = certify(check_determinant)
    assert_expected(certs)
    by = {c.theorem: c for c in certs}
    for name in ("det_identity_lattice", "det_identity_lattice_arb", "det_box_limit",
                 "det2_relation", "fredholm_det_continuum", "fredholm_det_momentum"):
        assert by[name].status is Status.VERIFIED, name
    orders = by["fredholm_det_continuum"].details["measured_orders"]
    # measured, not assumed: the diagonal kink makes Gauss–Legendre Nyström order ~2
    assert 1.5 < orders["nystrom_square_well"] < 2.5
    assert 3.5 < orders["rk4_bump"] < 4.5
    negs = [c for c in certs if c.kind is Kind.NEGATIVE_CONTROL]
    assert len(negs) >= 3 and all(c.status is Status.REFUTED for c in negs)
