"""Weyl–Titchmarsh m-functions (docs/theory.md): the backward continued fraction, the
Herglotz representation and its spectral measure, Gauss-quadrature truncations converging
weakly, with two negative controls."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected
from bkmath.checks.mfunction import check_mfunction


def test_mfunction(certify):
    certs = certify(check_mfunction)
    assert_expected(certs)
    by = {c.theorem: c for c in certs}
    for name in ("mfunction_continued_fraction", "mfunction_herglotz_representation",
                 "mfunction_gauss_moments", "mfunction_weak_convergence"):
        assert by[name].status is Status.VERIFIED, name
    errs = by["mfunction_weak_convergence"].details["errors by N"]
    assert errs[0] > 1e3 * errs[-1]  # the convergence is visible, not a constant
    for name in ("mfunction_wrong_branch", "mfunction_far_end_weights"):
        c = by[name]
        assert c.kind is Kind.NEGATIVE_CONTROL and c.status is Status.REFUTED
