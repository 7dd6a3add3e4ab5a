"""Resolvent theorems (docs/conventions.md §2–3): closed forms, resolvent identity, Herglotz."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected
from bkmath.checks.resolvent import (
    check_free_resolvent,
    check_herglotz,
    check_resolvent_diagonal_mpmath,
    check_resolvent_identity,
)


def _by_name(certs):
    return {c.theorem: c for c in certs}


def test_free_resolvent_closed_forms(certify):
    certs = certify(check_free_resolvent)
    assert_expected(certs)
    by = _by_name(certs)
    assert by["free_resolvent_lattice"].status is Status.VERIFIED
    assert by["free_resolvent_continuum"].status is Status.VERIFIED
    # second order finite differences, measured not assumed
    orders = by["free_resolvent_continuum"].details["measured_orders"]
    assert all(1.8 < o < 2.2 for o in orders)
    for name in ("free_resolvent_lattice_wrong_branch", "free_resolvent_continuum_wrong_branch"):
        assert by[name].kind is Kind.NEGATIVE_CONTROL and by[name].status is Status.REFUTED
        assert by[name].counterexample["error"] > by[name].counterexample["bound"]


def test_resolvent_identity(certify):
    certs = certify(check_resolvent_identity)
    assert_expected(certs)
    by = _by_name(certs)
    assert by["resolvent_identity_finite"].details["mpmath_residual_dps40"] < 1e-30
    assert by["resolvent_identity_lattice"].status is Status.VERIFIED
    assert by["resolvent_identity_lattice_wrong_branch"].status is Status.REFUTED


def test_herglotz(certify):
    certs = certify(check_herglotz)
    assert_expected(certs)
    by = _by_name(certs)
    assert by["herglotz"].status is Status.VERIFIED
    assert by["herglotz"].details["mpmath_confirms"]
    for name in ("herglotz_complex_potential", "herglotz_lower_half_plane"):
        ce = by[name].counterexample
        assert by[name].status is Status.REFUTED and ce["G"].imag < 0


def test_resolvent_diagonal_mpmath(certify):
    certs = certify(check_resolvent_diagonal_mpmath)
    assert_expected(certs)
    by = _by_name(certs)
    assert by["resolvent_diagonal_mpmath"].value <= 1e-12
    assert by["resolvent_diagonal_continuant_overflow"].counterexample["theta_N overflows"]
