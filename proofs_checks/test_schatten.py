"""Schatten S2/S1 bounds: the correct ones verified, the seeds' tested as stated
(docs/conventions.md §4)."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected
from bkmath.checks.schatten import check_schatten


def test_schatten_bounds(certify):
    certs = certify(check_schatten)
    assert_expected(certs)
    by = {c.theorem: c for c in certs}
    for name in ("schatten_s2_exact", "schatten_s2_bound", "schatten_s1_bound"):
        assert by[name].status is Status.VERIFIED, name
    # the seeds' bounds, in each setting: a verdict with its counterexample when refuted
    for setting in ("lattice", "continuum", "momentum"):
        for p in ("s2", "s1"):
            c = by[f"seed_{p}_bound_{setting}"]
            assert c.kind is Kind.SEED_CLAIM
            assert c.status in (Status.VERIFIED, Status.REFUTED)
            if c.status is Status.REFUTED:
                assert c.counterexample
    # the lattice S2 counterexample is proved in Arb, not only found in float64
    assert by["seed_s2_bound_lattice"].details["arb_refutes"]
    assert by["schatten_bounds_negative_control"].status is Status.REFUTED
