"""Resonances on the line (docs/theory.md): every zero of the Jost function of step
potentials in a region Arb-certified and the list proved complete, against mpmath, closed
forms, the pairing k ↔ −k̄ and the counting law, with three negative controls."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected
from bkmath.checks.line_resonances import check_line_resonances


def test_line_resonances(certify):
    certs = certify(check_line_resonances)
    assert_expected(certs)
    by = {c.theorem: c for c in certs}
    for name in ("line_resonances_arb_complete", "line_resonances_mpmath",
                 "line_resonances_closed_form", "line_resonances_pairs",
                 "line_resonances_counting"):
        assert by[name].status is Status.VERIFIED, name
    kinds = by["line_resonances_arb_complete"].details["kinds"]
    assert kinds.get("resonance", 0) >= 8 and kinds.get("bound", 0) >= 2
    assert kinds.get("antibound", 0) >= 1
    for name in ("line_resonances_conjugate_pairs", "line_resonances_missing_antibound",
                 "line_resonances_counting_half"):
        c = by[name]
        assert c.kind is Kind.NEGATIVE_CONTROL and c.status is Status.REFUTED, name
    # the missing zero is exactly one: the anti-bound state
    d = by["line_resonances_missing_antibound"].details
    assert d["certified"] - d["claimed"] == 1
