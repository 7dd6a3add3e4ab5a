"""Tests for bkmath.determinant: log_det (scaled continuants) and eigenvalue_count (Sturm).

Tolerances. The continuant recursion is backward stable: the computed θ_N is exact for H - z
with each alpha_i, beta_i perturbed by a few ulps relative, i.e. ``||dH||_2 <= c eps S``
(``S = max|a - z| + 2 max|b| + 2 max|c|``). Then ``|d log det| = |tr((H - z)^{-1} dH)|
<= N ||G||_2 c eps S``; the final ``log`` adds ``eps |log det|``. For the Sturm count the
computed count is exact for such a perturbed matrix, so it can only differ from LAPACK's when
an eigenvalue lies within ``c eps S`` of λ: those draws are discarded (``assume``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bkmath import JacobiOperator, eigenvalue_count, lattice_w, log_det
from bkmath.reference import (
    eigenvalue_count_dense,
    eigenvalue_count_mp,
    log_det_dense,
    log_det_mp,
)

EPS = np.finfo(np.float64).eps
C_BACKWARD = 64.0


def _scale(op: JacobiOperator, z: complex) -> float:
    s = float(np.max(np.abs(op.a - z)))
    if op.n > 1:
        s += 2 * float(np.max(np.abs(op.b))) + 2 * float(np.max(np.abs(op.c)))
    return s


@st.composite
def _hermitian(draw, max_n=250):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, max_n))
    v = rng.normal(size=n) * 10.0 ** draw(st.integers(-3, 3))
    if draw(st.booleans()) and n > 1:  # huge / tiny spikes
        k = int(rng.integers(1, max(2, n // 5)))
        idx = rng.choice(n, size=k, replace=False)
        v[idx] = rng.choice([-1.0, 1.0], size=k) * 10.0 ** rng.choice([-8.0, 8.0], size=k)
    b = -np.ones(n - 1) if draw(st.booleans()) else rng.uniform(-2, 2, size=n - 1)
    return JacobiOperator(2.0 + v, b)


def _wrap(x: np.ndarray) -> np.ndarray:
    return (x + np.pi) % (2 * np.pi) - np.pi


class TestLogDet:
    @given(op=_hermitian(), lam=st.floats(-5, 9), log_eta=st.floats(-8, 1))
    def test_hermitian_against_mpmath(self, op, lam, log_eta):
        z = complex(lam, 10.0**log_eta)
        got = log_det(op, z)
        ref = log_det_mp(op, z, dps=50)
        ev = np.linalg.eigvalsh(op.to_dense())
        gnorm = 1.0 / np.min(np.abs(ev - z))
        tol = C_BACKWARD * (op.n * EPS * _scale(op, z) * gnorm + EPS * abs(ref))
        assert abs(got - ref) <= tol, (got, ref, tol)

    @given(op=_hermitian(max_n=120), lam=st.floats(-5, 9), log_eta=st.floats(-8, 1))
    def test_branch_is_sum_of_eigenvalue_arguments(self, op, lam, log_eta):
        # Im log det(H - z) = Σ_k Arg(λ_k - z) ∈ (-Nπ, 0): continuous in the upper half-plane
        z = complex(lam, 10.0**log_eta)
        ev = np.linalg.eigvalsh(op.to_dense())
        ref = np.sum(np.angle(ev - z))
        got = log_det(op, z).imag
        gnorm = 1.0 / np.min(np.abs(ev - z))
        # eigenvalues from LAPACK carry errors ~ eps ||H||: Arg moves by that / |λ_k - z|
        tol = C_BACKWARD * op.n * EPS * (_scale(op, z) * gnorm + 1)
        assert abs(got - ref) <= tol
        assert -op.n * np.pi < got < 0

    @given(op=_hermitian(max_n=120), lam=st.floats(-5, 9), log_eta=st.floats(-3, 1))
    def test_against_slogdet_modulo_two_pi(self, op, lam, log_eta):
        z = complex(lam, 10.0**log_eta)
        got = log_det(op, z)
        ref = log_det_dense(op, z)
        ev = np.linalg.eigvalsh(op.to_dense())
        tol = C_BACKWARD * op.n * EPS * (_scale(op, z) / np.min(np.abs(ev - z)) + 1)
        assert abs(got.real - ref.real) <= tol + C_BACKWARD * EPS * abs(ref.real)
        assert abs(_wrap(got.imag - ref.imag)) <= tol

    @given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 80), lam=st.floats(-3, 7),
           log_eta=st.floats(-4, 1))
    def test_complex_nonsymmetric_against_mpmath(self, seed, n, lam, log_eta):
        rng = np.random.default_rng(seed)
        op = JacobiOperator(
            rng.normal(size=n) + 1j * rng.normal(size=n),
            rng.normal(size=n - 1) + 1j * rng.normal(size=n - 1),
            rng.normal(size=n - 1) - 0.3j * rng.normal(size=n - 1),
        )
        z = complex(lam, 10.0**log_eta)
        got = log_det(op, z)
        ref = log_det_mp(op, z, dps=50)
        gnorm = 1.0 / np.linalg.svd(op.to_dense(z), compute_uv=False)[-1]
        tol = C_BACKWARD * (op.n * EPS * _scale(op, z) * gnorm + EPS * abs(ref))
        # the branch (sum of principal pivot arguments) can differ by 2π only if a pivot sits
        # on the negative real axis within rounding: measure-zero for random draws
        assert abs(got - ref) <= tol

    @given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 80), lam=st.floats(-1, 5),
           real_z=st.booleans())
    def test_transparent_against_mpmath(self, seed, n, lam, real_z):
        assume(abs(lam) > 1e-6 and abs(lam - 4) > 1e-6)
        rng = np.random.default_rng(seed)
        op = JacobiOperator.free_plus(rng.normal(size=n), boundary="transparent")
        z = complex(lam, 0.0 if real_z else 1e-3)
        got = log_det(op, z)
        ref = log_det_mp(op, z, dps=50)
        gnorm = 1.0 / np.linalg.svd(op.to_dense(z), compute_uv=False)[-1]
        tol = C_BACKWARD * (op.n * EPS * (_scale(op, z) + 2) * gnorm + EPS * abs(ref))
        assert abs(got - ref) <= tol

    def test_regression_near_real_pivots_keep_their_half_plane(self):
        # transparent leads at real λ: deep in the chain the pivots are almost real; a negative
        # one whose computed imaginary part has the wrong sign once made the winding count off
        # by 2π (the Herglotz half-plane is now used to decide the direction of rotation)
        rng = np.random.default_rng(0)
        op = JacobiOperator.free_plus(rng.normal(size=77), boundary="transparent")
        assert log_det(op, 0.25) == pytest.approx(log_det_mp(op, 0.25, dps=50), abs=1e-9)

    def test_regression_negative_zero_imaginary_part(self):
        # transparent leads outside the band (w real): all pivots real, the last continuant
        # -0.254 - 0j; atan2(-0.0, x < 0) = -π once flipped the result's sign
        op = JacobiOperator.free_plus([1.35906164, 1.64001999], boundary="transparent")
        got = log_det(op, 4.795724176721748)
        assert got.imag == pytest.approx(-np.pi)
        assert got == pytest.approx(log_det_mp(op, 4.795724176721748), rel=1e-14)

    @given(op=_hermitian(max_n=120), lam=st.floats(-5, 9))
    def test_real_z_is_plus_i0_limit(self, op, lam):
        ev = np.linalg.eigvalsh(op.to_dense())
        assume(np.min(np.abs(ev - lam)) > 1e-6 * (1 + _scale(op, lam)))
        got = log_det(op, lam)
        assert got.imag == pytest.approx(-np.pi * np.sum(ev < lam), abs=1e-9 * op.n)
        assert got.imag == pytest.approx(-np.pi * eigenvalue_count(op, lam), abs=1e-9 * op.n)

    @pytest.mark.parametrize("z", [0.3 + 0.2j, 1.0 + 1e-6j, 2.5])
    def test_real_nonsymmetric_negative_beta(self, rng, z):
        # b c < 0: complex eigenvalues, no Herglotz structure -> the general winding rule
        n = 60
        op = JacobiOperator(rng.normal(size=n), rng.uniform(0.5, 1, n - 1),
                            -rng.uniform(0.5, 1, n - 1))
        ref = log_det_mp(op, z, dps=50)
        assert log_det(op, z) == pytest.approx(ref, abs=1e-10 * abs(ref))

    def test_free_chain_ten_million_sites(self):
        # closed form: det(H0_N - z) = (w^{-(N+1)} - w^{N+1}) / (w^{-1} - w); θ_N ~ |w|^{-N}
        # overflows float64 after ~10^3 sites, the scaled continuants do not.
        n = 10**7
        z = 0.5 + 0.01j
        op = JacobiOperator.free(n)
        got = log_det(op, z)
        w = lattice_w(z)
        ref_re = -(n + 1) * np.log(abs(w)) + np.log(abs(1 - w ** (2 * (n + 1)))) - np.log(
            abs(1 / w - w)
        )
        assert got.real == pytest.approx(ref_re, rel=1e-10)
        k = np.arange(1, n + 1)
        ev = 2 - 2 * np.cos(k * np.pi / (n + 1))
        ref_im = np.sum(np.angle(ev - z))
        assert got.imag == pytest.approx(ref_im, rel=1e-9)

    def test_block_additivity_long_chain(self, rng):
        # decoupled halves (b = 0 in the middle): log det is the sum; 10^6 sites, strong V
        n = 500_000
        v = rng.normal(size=2 * n) * 20
        b = -np.ones(2 * n - 1)
        b[n - 1] = 0.0
        z = 1.0 + 1e-2j
        whole = log_det(JacobiOperator(2 + v, b), z)
        left = log_det(JacobiOperator(2 + v[:n], b[: n - 1]), z)
        right = log_det(JacobiOperator(2 + v[n:], b[n:]), z)
        assert np.isfinite(whole)
        assert whole == pytest.approx(left + right, rel=1e-11)

    def test_batched_equals_looped(self, rng):
        v = rng.normal(size=(3, 40))
        z = np.array([0.3 + 0.1j, 2 + 1e-5j])
        op = JacobiOperator.free_plus(v)
        out = log_det(op, z[:, None])
        assert out.shape == (2, 3)
        for i in range(2):
            for j in range(3):
                assert out[i, j] == log_det(JacobiOperator.free_plus(v[j]), z[i])

    def test_threaded_batch_equals_looped(self, rng, monkeypatch):
        monkeypatch.setenv("BKMATH_NUM_THREADS", "2")
        v = rng.normal(size=(5, 8000))
        op = JacobiOperator.free_plus(v)
        out = log_det(op, 0.7 + 0.01j)
        cnt = eigenvalue_count(op, 1.3)
        for j in range(5):
            single = JacobiOperator.free_plus(v[j])
            assert out[j] == log_det(single, 0.7 + 0.01j)
            assert cnt[j] == eigenvalue_count(single, 1.3)

    def test_scalar_returns_python_complex(self):
        assert isinstance(log_det(JacobiOperator.free(3), 1j), complex)

    def test_exactly_singular(self):
        op = JacobiOperator([1j, 1.0], [0.0])
        assert log_det(op, 1j).real == -np.inf

    def test_huge_entries_fall_back_without_overflow(self):
        # entries ~1e200: the continuant overflows within one step; the ratio fallback doesn't
        op = JacobiOperator(np.array([1e200, -1e200, 3e200]), np.array([1e150, 2e150]))
        got = log_det(op, 1j)
        ref = log_det_mp(op, 1j, dps=50)
        assert got == pytest.approx(ref, rel=1e-13)

    def test_rejects_lower_half_plane(self):
        with pytest.raises(ValueError, match="Im z must be >= 0"):
            log_det(JacobiOperator.free(3), 1 - 1j)

    def test_rejects_nan(self):
        with pytest.raises(ValueError, match="NaN"):
            log_det(JacobiOperator.free(3), complex(np.nan, 1))

    def test_rejects_non_operator(self):
        with pytest.raises(TypeError, match="op must be a JacobiOperator"):
            log_det([1, 2, 3], 1j)


class TestEigenvalueCount:
    @given(op=_hermitian(), lam=st.floats(-10, 12))
    def test_against_eigvalsh(self, op, lam):
        ev = np.linalg.eigvalsh(op.to_dense())
        assume(np.min(np.abs(ev - lam)) > C_BACKWARD * op.n * EPS * _scale(op, lam))
        assert eigenvalue_count(op, lam) == int(np.sum(ev < lam))

    @given(op=_hermitian(max_n=100), lam=st.floats(-10, 12))
    def test_against_mpmath(self, op, lam):
        assert eigenvalue_count(op, lam) == eigenvalue_count_mp(op, lam, dps=40) or (
            # only a near-tie may differ (backward error)
            np.min(np.abs(np.linalg.eigvalsh(op.to_dense()) - lam))
            <= C_BACKWARD * op.n * EPS * _scale(op, lam)
        )

    def test_ties_are_strictly_below(self):
        op = JacobiOperator([1.0, 0.0, 2.0], [0.0, 0.0])  # eigenvalues 0, 1, 2 exactly
        assert eigenvalue_count(op, [0.0, 1.0, 2.0, 2.5]).tolist() == [0, 1, 2, 3]
        assert eigenvalue_count_mp(op, 1.0) == 1

    def test_vectorised_and_batched(self, rng):
        v = rng.normal(size=(4, 30))
        lam = np.linspace(-2, 6, 11)
        op = JacobiOperator.free_plus(v)
        out = eigenvalue_count(op, lam[:, None])
        assert out.shape == (11, 4)
        np.testing.assert_array_equal(out, eigenvalue_count_dense(op, lam[:, None]))

    def test_monotone_in_lambda(self, rng):
        op = JacobiOperator.free_plus(rng.normal(size=500) * 2)
        counts = eigenvalue_count(op, np.linspace(-8, 12, 400))
        assert np.all(np.diff(counts) >= 0) and counts[0] == 0 and counts[-1] == 500

    def test_free_chain_ten_million_sites(self):
        n = 10**7
        lam = np.array([0.5, 2.0 + 1e-9, 3.7])
        got = eigenvalue_count(JacobiOperator.free(n), lam)
        # λ_k = 2 - 2 cos(kπ/(N+1)) < λ  <=>  k < (N+1) arccos(1 - λ/2)/π
        ref = np.floor((n + 1) * np.arccos(1 - lam / 2) / np.pi).astype(int)
        np.testing.assert_array_equal(got, ref)

    def test_hermitian_complex_hopping(self, rng):
        b = rng.normal(size=19) + 1j * rng.normal(size=19)
        op = JacobiOperator(rng.normal(size=20), b, np.conj(b))
        lam = np.linspace(-4, 4, 17)
        np.testing.assert_array_equal(eigenvalue_count(op, lam), eigenvalue_count_dense(op, lam))

    def test_scalar_returns_int(self):
        assert isinstance(eigenvalue_count(JacobiOperator.free(3), 2.0), int)

    def test_rejects_nonhermitian(self):
        with pytest.raises(ValueError, match="Hermitian"):
            eigenvalue_count(JacobiOperator([1.0, 2.0], [1.0], [2.0]), 0.0)
        with pytest.raises(ValueError, match="Hermitian"):
            eigenvalue_count(JacobiOperator.free_plus([1j, 0.0]), 0.0)

    def test_rejects_transparent(self):
        with pytest.raises(ValueError, match="Dirichlet"):
            eigenvalue_count(JacobiOperator.free(3, boundary="transparent"), 0.0)

    def test_rejects_complex_lambda(self):
        with pytest.raises(TypeError, match="lam must be"):
            eigenvalue_count(JacobiOperator.free(3), 1j)

    def test_rejects_nan_lambda(self):
        with pytest.raises(ValueError, match="lam contains NaN"):
            eigenvalue_count(JacobiOperator.free(3), [0.0, np.nan])
