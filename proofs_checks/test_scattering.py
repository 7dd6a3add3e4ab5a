"""Spectral shift, Birman–Krein, Levinson and arg det₂ on the lattice (docs/conventions.md §6)."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected
from bkmath.checks.scattering import check_scattering


def test_scattering(certify):
    certs = certify(check_scattering)
    assert_expected(certs)
    by = {c.theorem: c for c in certs}
    for name in ("spectral_shift_finite", "spectral_shift_infinite", "birman_krein",
                 "levinson_lattice", "scattering_phase_det2"):
        assert by[name].status is Status.VERIFIED, name
    # Levinson covers both threshold resonances
    rows = by["levinson_lattice"].value
    assert any(r["resonant_0"] for r in rows) and any(r["resonant_4"] for r in rows)
    negs = [c for c in certs if c.kind is Kind.NEGATIVE_CONTROL]
    assert {c.theorem for c in negs} >= {
        "spectral_shift_negative_control", "birman_krein_negative_control",
        "levinson_negative_control", "scattering_phase_negative_control"}
    assert all(c.status is Status.REFUTED for c in negs)
