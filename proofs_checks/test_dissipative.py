"""Dissipative Jacobi chains (the selective BK layer's operator, docs/theory.md): the edge
Green's function recurrence, and the per-site Herglotz bound with two negative controls."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected
from bkmath.checks.dissipative import check_dissipative_herglotz, check_green_resolvent


def test_dissipative_herglotz(certify):
    certs = certify(check_dissipative_herglotz)
    assert_expected(certs)
    by = {c.theorem: c for c in certs}
    assert by["dissipative_edge_green_identity"].status is Status.VERIFIED
    ok = by["dissipative_herglotz"]
    assert ok.status is Status.VERIFIED and ok.margin >= 0
    # the bound is nearly attained (a narrow certificate, not a loose one): max eta|g| ~ 1
    assert ok.details["max η|g| − 1"] > -1e-3
    for name in ("dissipative_herglotz_negative_eta", "dissipative_herglotz_uniform_bound"):
        c = by[name]
        assert c.kind is Kind.NEGATIVE_CONTROL and c.status is Status.REFUTED
        assert c.counterexample["eta |g| at the site"] > 1


def test_green_resolvent(certify):
    """Green's-function attention (bkmodel.model.GreenBKLayer): the product formula for the
    off-diagonal resolvent, the Ward identity, the pair bound, and two negative controls."""
    certs = certify(check_green_resolvent)
    assert_expected(certs)
    by = {c.theorem: c for c in certs}
    for name in ("green_resolvent_identity", "green_ward_identity", "green_resolvent_bound"):
        assert by[name].status is Status.VERIFIED, by[name]
    # narrow: the pair bound is nearly attained on the random chains
    assert by["green_resolvent_bound"].details["max |G|/bound − 1"] > -0.05
    for name in ("green_resolvent_bound_negative_eta", "green_resolvent_bound_max_bound"):
        c = by[name]
        assert c.kind is Kind.NEGATIVE_CONTROL and c.status is Status.REFUTED
        assert c.counterexample["|G(i,j)| / bound"] > 1
