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


class TestLatticeW:
    """One mpmath w(z) (bkmath.reference.resolvent.lattice_w_mp) serves every reference."""

    @pytest.mark.parametrize("dps", [30, 50])
    @pytest.mark.parametrize("z", [1e6j, 1e8 + 1e8j, -1e7 + 1j, 1e10j])
    def test_large_z_keeps_every_digit(self, z, dps):
        # regression: the old scattering_ref.lattice_w_mp took the small root of
        # ((2 - z) ± s)/2 and lost ~2 log10|z| digits to cancellation (2e-12 at z = 1e10 i, dps 30)
        w = lattice_w_mp(z, dps=dps, as_mp=True)
        with mpmath.workdps(dps + 40):
            exact = lattice_w_mp(z, dps=dps + 40, as_mp=True)
            assert abs(w - exact) / abs(exact) < mpmath.mpf(10) ** (1 - dps)

    @pytest.mark.parametrize("lam", [0.3, 1.0, 2.0, 3.7])
    def test_band_boundary_value(self, lam):
        with mpmath.workdps(40):
            w = lattice_w_mp(lam, boundary=True, dps=40, as_mp=True)
            assert abs(w - mpmath.exp(1j * mpmath.acos(1 - mpmath.mpf(lam) / 2))) < 1e-38

    def test_mpmath_input_taken_exactly(self):
        with mpmath.workdps(50):
            z = mpmath.mpf(1) / 3 + mpmath.mpc(0, 1) / 7  # not a float64 number
            w = lattice_w_mp(z, dps=50, as_mp=True)
            assert abs(w) < 1
            assert abs(w * w - (2 - z) * w + 1) < mpmath.mpf(10) ** -48

    def test_mpmath_input_validated(self):
        with pytest.raises(ValueError, match="Im z must be >= 0"):
            lattice_w_mp(mpmath.mpc(1, -1), boundary=True)
        with pytest.raises(ValueError, match="Im z must be > 0"):
            lattice_w_mp(mpmath.mpf(1))

    @pytest.mark.parametrize("z", [1 + 1j, 3.7 + 0.01j, 2.0, -1.0, 0.7, 3.6])
    def test_bs_matrix_uses_it(self, z):
        from bkmath.reference.bs_operator import bs_matrix_mp

        K = bs_matrix_mp([0.5, 0.0, -2.0], z, dps=40)
        with mpmath.workdps(40):
            w = lattice_w_mp(z, boundary=True, dps=40, as_mp=True)
            g0 = 1 / (1 / w - w)  # G0(0, 0; z)
            tol = mpmath.mpf(10) ** -38  # 40 digits, a few roundings
            assert abs(K[0, 0] - g0 / 2) < tol * abs(g0)
            assert abs(K[0, 1] - g0 * w**2) < tol * abs(g0)  # sites 0, 2: |v|^½ = √½, -√2
            assert abs(K[1, 0] + g0 * w**2) < tol * abs(g0)


class TestLayout:
    """References are organised by library family; the old modules are aliases."""

    FAMILIES = ("resolvent", "determinant", "bs_operator", "fredholm", "schatten", "scattering",
                "primes")

    @pytest.mark.parametrize("family", FAMILIES)
    def test_named_after_a_library_module(self, family):
        import importlib

        ref = importlib.import_module(f"bkmath.reference.{family}")
        lib = importlib.import_module(f"bkmath.{family}")
        assert ref.__all__ and all(name.endswith("_mp") for name in ref.__all__)
        for name in ref.__all__:  # defined in the family module (primes: next to the fast code)
            assert getattr(ref, name).__module__ in (ref.__name__, lib.__name__), name

    def test_deprecated_aliases(self):
        from bkmath.reference import (
            determinant,
            fredholm,
            mp,
            resolvent,
            scattering,
            scattering_ref,
            schatten,
        )
        from bkmath.reference.bs_operator import bs_matrix_mp

        assert mp.lattice_w is resolvent.lattice_w_mp is lattice_w_mp
        assert mp.resolvent_diagonal is resolvent.resolvent_diagonal_mp
        assert mp.continuants is resolvent.continuants_mp is continuants_mp
        assert mp.free_resolvent is free_resolvent_mp
        assert mp.free_resolvent_continuum is resolvent.free_resolvent_continuum_mp
        assert (mp.det, mp.log_det, mp.eigenvalue_count) == (
            determinant.det_mp, determinant.log_det_mp, determinant.eigenvalue_count_mp)
        assert scattering_ref.bs_matrix_mp is bs_matrix_mp
        assert scattering_ref.fredholm_det_mp is fredholm.fredholm_det_mp
        assert scattering_ref.det2_mp is fredholm.det2_mp
        assert scattering_ref.square_well_jost_mp is fredholm.square_well_jost_mp
        assert scattering_ref.singular_values_mp is schatten.singular_values_mp
        assert scattering_ref.box_hs_norm_sq_mp is schatten.box_hs_norm_sq_mp
        assert scattering_ref.trace_class_constant_mp is schatten.trace_class_constant_mp
        assert scattering_ref.scattering_matrix_mp is scattering.scattering_matrix_mp
        for name in scattering_ref.__all__ + mp.__all__:
            assert hasattr(scattering_ref if name in scattering_ref.__all__ else mp, name)

    @pytest.mark.parametrize("z", [1 + 1j, 2.0, 0.7, -1.0, 6.0])
    def test_scattering_ref_lattice_w_keeps_its_convention(self, z):
        # old calling convention: current precision, mpmath result, λ + i0 for real z
        from bkmath.reference import scattering_ref

        with mpmath.workdps(40):
            w = scattering_ref.lattice_w_mp(z)
            assert isinstance(w, mpmath.mpc)
            assert w == lattice_w_mp(z, boundary=True, dps=40, as_mp=True)
