"""Tests for bkmath.reference: the mpmath and dense references agree with each other, are
precision-scoped, and the floating-point θ/φ continuant formula overflows where predicted."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from bkmath import JacobiOperator, lattice_w, resolvent_diagonal
from bkmath.reference import (
    continuant_diagonal,
    continuants_mp,
    det_mp,
    eigenvalue_count_dense,
    eigenvalue_count_mp,
    free_resolvent_mp,
    lattice_w_mp,
    log_det_dense,
    log_det_mp,
    resolvent_diagonal_dense,
    resolvent_diagonal_mp,
)

EPS = np.finfo(np.float64).eps


@pytest.fixture
def op(rng):
    return JacobiOperator(rng.normal(size=15), rng.uniform(-1.5, 1.5, size=14))


class TestMpVsDense:
    @pytest.mark.parametrize("side", ["both", "left", "right"])
    @pytest.mark.parametrize("z", [0.3 + 0.2j, 2.0 + 1e-3j, -3 + 1j])
    def test_resolvent_diagonal(self, op, side, z):
        m = resolvent_diagonal_mp(op, z, side=side, dps=40)
        d = resolvent_diagonal_dense(op, z, side=side)
        cond = np.linalg.cond(op.to_dense(z))
        np.testing.assert_allclose(m, d, rtol=0, atol=64 * EPS * cond * np.max(np.abs(m)))

    @pytest.mark.parametrize("side", ["both", "left", "right"])
    def test_transparent_boundary_value(self, rng, side):
        op = JacobiOperator.free_plus(rng.normal(size=12), boundary="transparent")
        m = resolvent_diagonal_mp(op, 1.4, side=side, dps=40)
        d = resolvent_diagonal_dense(op, 1.4, side=side)
        np.testing.assert_allclose(m, d, rtol=1e-12)

    def test_nonsymmetric_complex(self, rng):
        op = JacobiOperator(rng.normal(size=9) + 1j, rng.normal(size=8), rng.normal(size=8) - 1j)
        np.testing.assert_allclose(
            resolvent_diagonal_mp(op, 0.5j), resolvent_diagonal_dense(op, 0.5j), rtol=1e-11
        )

    @pytest.mark.parametrize("z", [0.3 + 0.2j, 1.0, 5.0 + 1e-9j])
    def test_det_and_log_det(self, op, z):
        d = complex(det_mp(op, z))
        ref = np.linalg.det(op.to_dense(z).astype(np.complex128))
        assert d == pytest.approx(ref, rel=1e-11)
        lm = log_det_mp(op, z)
        ld = log_det_dense(op, z)
        assert lm.real == pytest.approx(ld.real, rel=1e-12)
        assert np.exp(1j * lm.imag) == pytest.approx(np.exp(1j * ld.imag), abs=1e-11)

    def test_log_det_mp_branch_for_hermitian(self, op):
        z = 0.7 + 0.01j
        ev = np.linalg.eigvalsh(op.to_dense())
        assert log_det_mp(op, z).imag == pytest.approx(np.sum(np.angle(ev - z)), abs=1e-11)
        # real z: -π per eigenvalue below
        assert log_det_mp(op, 0.7).imag == pytest.approx(-np.pi * np.sum(ev < 0.7), abs=1e-11)

    def test_eigenvalue_count(self, op):
        lam = np.linspace(-4, 4, 13)
        dense = eigenvalue_count_dense(op, lam)
        assert [eigenvalue_count_mp(op, x) for x in lam] == dense.tolist()

    def test_eigenvalue_count_tie_convention(self):
        op = JacobiOperator([0.0, 1.0], [0.0])
        assert [eigenvalue_count_mp(op, x) for x in (0.0, 1.0, 1.5)] == [0, 1, 2]


class TestPrecision:
    def test_two_precisions_agree_to_the_lower_one(self, op):
        lo = resolvent_diagonal_mp(op, 0.4 + 1e-6j, dps=30, as_mp=True)
        hi = resolvent_diagonal_mp(op, 0.4 + 1e-6j, dps=60, as_mp=True)
        with mpmath.workdps(60):
            rel = max(abs(a - b) / abs(b) for a, b in zip(lo, hi, strict=True))
        # condition of the resolvent here ~ 1e6 (η = 1e-6): 30 digits leave >= 20 correct
        assert rel < mpmath.mpf(10) ** -20

    def test_global_precision_restored(self, op):
        dps = mpmath.mp.dps
        resolvent_diagonal_mp(op, 1j, dps=90)
        log_det_mp(op, 1j, dps=70)
        eigenvalue_count_mp(op, 0.0, dps=45)
        assert mpmath.mp.dps == dps

    def test_precision_restored_after_error(self, op):
        dps = mpmath.mp.dps
        with pytest.raises(ValueError):
            resolvent_diagonal_mp(op, 1j, side="nope", dps=90)
        assert mpmath.mp.dps == dps

    def test_as_mp_returns_mp_numbers(self, op):
        g = resolvent_diagonal_mp(op, 1j, as_mp=True)
        assert isinstance(g[0], mpmath.mpc)
        assert isinstance(lattice_w_mp(1j, as_mp=True), mpmath.mpc)

    @pytest.mark.parametrize("z", [1 + 1j, 2.0, 0.5, -1.0, 6.0])
    def test_lattice_w_branch_matches_fast(self, z):
        got = lattice_w(z, boundary=True) if isinstance(z, float) else lattice_w(z)
        assert lattice_w_mp(z, boundary=isinstance(z, float)) == pytest.approx(got, abs=4e-16)

    def test_free_resolvent_threshold(self):
        with pytest.raises(ValueError, match="threshold"):
            free_resolvent_mp(0, 0, 4.0, boundary=True)


class TestContinuants:
    def test_continuants_are_leading_minors(self, op):
        z = 0.1 + 0.3j
        theta, phi = continuants_mp(op, z)
        m = op.to_dense(z)
        for i in (1, 5, 15):
            assert complex(theta[i]) == pytest.approx(np.linalg.det(m[:i, :i]), rel=1e-11)
        assert complex(phi[3]) == pytest.approx(np.linalg.det(m[3:, 3:]), rel=1e-11)

    def test_continuant_formula_matches_on_short_chain(self, op):
        z = 0.3 + 0.2j
        np.testing.assert_allclose(
            continuant_diagonal(op, z), resolvent_diagonal_mp(op, z), rtol=1e-11
        )

    def test_continuant_formula_overflows_where_predicted(self):
        # v = 10: alpha = 12 - z, θ_N ~ r^N with r the larger root of x² - alpha x + 1 = 0.
        # float64 overflows when |θ_N| > 1.8e308, i.e. at N* ≈ 308.25 / log10 r (≈ 287).
        z = 1.0 + 0.1j
        alpha = 12 - z
        r = abs((alpha + np.sqrt(alpha * alpha - 4)) / 2)
        predicted = np.log(np.finfo(np.float64).max) / np.log(r)
        finite = []
        for n in range(int(predicted) - 6, int(predicted) + 7):
            op = JacobiOperator.free_plus(np.full(n, 10.0))
            finite.append(bool(np.all(np.isfinite(continuant_diagonal(op, z)))))
        first_bad = int(predicted) - 6 + finite.index(False)
        assert abs(first_bad - predicted) <= 2
        assert all(finite[: finite.index(False)]) and not any(finite[finite.index(False):])
        # the stable recursion at 10x that length is finite and matches mpmath
        op = JacobiOperator.free_plus(np.full(10 * first_bad, 10.0))
        g = resolvent_diagonal(op, z)
        assert np.all(np.isfinite(g))
        ref = resolvent_diagonal_mp(op, z, dps=30)
        np.testing.assert_allclose(g, ref, rtol=1e-13)

    def test_continuant_formula_underflows_too(self):
        # |alpha| < 1 on a chain without hopping: θ_N = alpha^N underflows to 0 -> nan
        op = JacobiOperator(np.full(2000, 0.1), np.zeros(1999))
        g = continuant_diagonal(op, 0.01j)
        assert not np.all(np.isfinite(g))
        np.testing.assert_allclose(resolvent_diagonal(op, 0.01j), 1 / (0.1 - 0.01j), rtol=1e-15)


class TestReferenceValidation:
    def test_mp_rejects_batches(self):
        with pytest.raises(ValueError, match="single chain"):
            resolvent_diagonal_mp(JacobiOperator.free_plus(np.zeros((2, 3))), 1j)

    def test_mp_rejects_vector_z(self):
        with pytest.raises(ValueError, match="scalar"):
            resolvent_diagonal_mp(JacobiOperator.free(3), np.array([1j, 2j]))

    def test_mp_rejects_lower_half_plane(self):
        with pytest.raises(ValueError, match="Im z must be > 0"):
            resolvent_diagonal_mp(JacobiOperator.free(3), 1.0)

    def test_mp_rejects_non_operator(self):
        with pytest.raises(TypeError, match="JacobiOperator"):
            det_mp(np.eye(2), 1j)

    def test_mp_eigenvalue_count_rejects_nonhermitian(self):
        with pytest.raises(ValueError, match="Hermitian"):
            eigenvalue_count_mp(JacobiOperator([0.0, 1.0], [1.0], [2.0]), 0.0)

    def test_dense_rejects_bad_side(self):
        with pytest.raises(ValueError, match="side"):
            resolvent_diagonal_dense(JacobiOperator.free(3), 1j, side="up")

    def test_continuant_rejects_batches(self):
        with pytest.raises(ValueError, match="single chain"):
            continuant_diagonal(JacobiOperator.free_plus(np.zeros((2, 3))), 1j)
