"""Mourre commutators and Mourre estimates (docs/conventions.md §5): bkmath.checks.mourre."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected
from bkmath.checks.mourre import (
    check_mourre_commutator_identity,
    check_mourre_estimate,
    check_seed_commutator_identity,
)


def _by_name(certs):
    return {c.theorem: c for c in certs}


def test_commutator_identities(certify):
    certs = certify(check_mourre_commutator_identity)
    assert_expected(certs)
    names = _by_name(certs)
    for model in ("momentum", "continuum", "lattice"):
        assert names[f"mourre_commutator_identity[{model}]"].status is Status.VERIFIED
    assert any(c.kind is Kind.NEGATIVE_CONTROL for c in certs)
    # the lattice identity is also proved on a small section in exact rational arithmetic
    assert names["mourre_commutator_identity[lattice]"].details["exact_rational"]["equal"]


def test_seed_identity(certify):
    certs = certify(check_seed_commutator_identity)
    assert_expected(certs)
    status = {c.theorem: c.status for c in certs}
    # true where the seeds state it (momentum operator), false for the Laplacians
    assert status["seed_commutator_identity[momentum]"] is Status.VERIFIED
    for setting in ("laplacian_x", "laplacian_dilation", "lattice"):
        assert status[f"seed_commutator_identity[{setting}]"] is Status.REFUTED


def test_mourre_estimate(certify):
    certs = certify(check_mourre_estimate)
    assert_expected(certs)
    names = _by_name(certs)
    lat = names["mourre_estimate[lattice]"]
    assert lat.value["c"] == 1.75  # min of λ(4 - λ) on [1/2, 7/2]
    assert lat.details["scale_0.5"]["c(0.5 A) / c(A)"] == 0.5
    negs = [c for c in certs if c.kind is Kind.NEGATIVE_CONTROL]
    assert len(negs) >= 3 and all(c.status is Status.REFUTED for c in negs)
    # issue 16: an over-claimed constant (c_claim = 4.2 > sup λ(4-λ) = 4) is refuted, and the
    # slack is the numerical error only (no fraction of c)
    over = names["mourre_estimate[negative_control:lattice:over_claim]"]
    assert over.status is Status.REFUTED
    assert lat.tolerance < 1e-6 * lat.value["c"]
