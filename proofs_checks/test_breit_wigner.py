"""Breit–Wigner form of the lattice scattering phase near narrow resonances (docs/theory.md):
the O(Γ) remainder bound, the jump by π, and two negative controls (wrong width, broad
resonance)."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected
from bkmath.checks.breit_wigner import check_breit_wigner


def test_breit_wigner(certify):
    certs = certify(check_breit_wigner)
    assert_expected(certs)
    by = {c.theorem: c for c in certs}
    for name in ("breit_wigner_remainder", "breit_wigner_jump"):
        assert by[name].status is Status.VERIFIED, name
    rows = by["breit_wigner_remainder"].details["rows"]
    assert rows[-1]["Gamma"] < rows[0]["Gamma"] and rows[-1]["max err"] < rows[0]["max err"]
    for name in ("breit_wigner_wrong_width", "breit_wigner_broad"):
        c = by[name]
        assert c.kind is Kind.NEGATIVE_CONTROL and c.status is Status.REFUTED, name
