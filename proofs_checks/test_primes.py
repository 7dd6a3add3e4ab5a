"""Weil explicit formula and the prime-bump potential (docs/conventions.md §7)."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected
from bkmath.checks.primes import check_explicit_formula, check_prime_bump_pairing


def test_explicit_formula(certify):
    certs = certify(check_explicit_formula)
    assert_expected(certs)
    kinds = {c.kind for c in certs}
    assert kinds == {Kind.THEOREM, Kind.NEGATIVE_CONTROL, Kind.SEED_CLAIM}
    for c in certs:
        if c.kind is Kind.THEOREM:
            # both precisions decided, and the zeros actually mattered in the modulated case
            assert "float64" in c.details and "mpmath" in c.details
    mod = next(c for c in certs if c.theorem == "explicit_formula[modulated]")
    assert abs(mod.details["mpmath"]["zero_sum"]) > 1.0


def test_prime_bump_pairing(certify):
    certs = certify(check_prime_bump_pairing)
    assert_expected(certs)
    assert certs[0].status is Status.VERIFIED
    assert any(c.kind is Kind.NEGATIVE_CONTROL and c.status is Status.REFUTED for c in certs)
