"""Continuum scattering on the line (docs/theory.md): transfer matrices against mpmath and an
ODE integrator, unitarity, the fine-lattice limit, Birman–Krein against the Nyström
determinant, bound states, Levinson's theorem with the half-bound case, and three negative
controls."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected
from bkmath.checks.continuum import check_continuum


def test_continuum(certify):
    certs = certify(check_continuum)
    assert_expected(certs)
    by = {c.theorem: c for c in certs}
    for name in ("continuum_transfer_mpmath", "continuum_unitarity",
                 "continuum_fine_lattice_limit", "continuum_birman_krein",
                 "continuum_bound_states", "levinson_line"):
        assert by[name].status is Status.VERIFIED, name
    assert by["levinson_line"].details["half-bound cases"] >= 4
    assert by["levinson_line"].details["generic cases"] >= 3
    for name in ("continuum_birman_krein_wrong_sign", "levinson_line_no_half",
                 "levinson_line_half_bound_generic_form"):
        c = by[name]
        assert c.kind is Kind.NEGATIVE_CONTROL and c.status is Status.REFUTED, name
    # the ½ of Levinson's theorem on the line is exactly what the controls miss
    assert abs(by["levinson_line_no_half"].details["max |δ(0+)/π − N_b|"] - 0.5) < 1e-3
