"""Tests for bkmath.operators.JacobiOperator: constructors, views, flags, validation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from bkmath import JacobiOperator, lattice_w


class TestConstruction:
    def test_free_matrix(self):
        h = JacobiOperator.free(5).to_dense()
        ref = 2 * np.eye(5) - np.eye(5, k=1) - np.eye(5, k=-1)
        np.testing.assert_array_equal(h, ref)

    def test_free_plus_is_free_plus_diag(self):
        v = np.array([0.5, -1.0, 2.0, 0.0])
        np.testing.assert_array_equal(
            JacobiOperator.free_plus(v).to_dense(),
            JacobiOperator.free(4).to_dense() + np.diag(v),
        )

    def test_general_tridiagonal_layout(self):
        a, b, c = np.array([1.0, 2, 3]), np.array([4.0, 5]), np.array([6.0, 7])
        h = JacobiOperator(a, b, c).to_dense()
        np.testing.assert_array_equal(h, [[1, 4, 0], [6, 2, 5], [0, 7, 3]])

    def test_single_site(self):
        op = JacobiOperator([3.0], [])
        assert op.n == 1
        np.testing.assert_array_equal(op.to_dense(), [[3.0]])

    def test_scalar_hopping(self):
        op = JacobiOperator(np.zeros(4), -1.0)
        np.testing.assert_array_equal(op.b, -np.ones(3))

    def test_batch_broadcast(self):
        a = np.zeros((3, 2, 5))
        b = np.ones(4)
        op = JacobiOperator(a, b)
        assert op.batch_shape == (3, 2)
        assert op.to_dense().shape == (3, 2, 5, 5)

    def test_free_plus_batched_shares_hopping(self):
        op = JacobiOperator.free_plus(np.zeros((4, 6)))
        assert op.batch_shape == (4,)
        assert op.b.shape == (5,)

    def test_integer_input_promoted(self):
        op = JacobiOperator([1, 2, 3], [1, 1])
        assert op.a.dtype == np.float64
        assert op.dtype == np.complex128

    def test_float32_dtype(self):
        op = JacobiOperator.free_plus(np.zeros(3, dtype=np.float32))
        assert op.dtype == np.complex64
        mixed = JacobiOperator(np.zeros(3, dtype=np.float32), np.ones(2))
        assert mixed.dtype == np.complex128


class TestFlags:
    def test_symmetric_default(self):
        op = JacobiOperator([1.0, 2.0], [3.0])
        assert op.is_symmetric and op.is_real and op.is_hermitian and op.real_beta

    def test_c_equal_b_is_symmetric(self):
        assert JacobiOperator([1.0, 2.0], [3.0], [3.0]).is_symmetric

    def test_nonsymmetric_real(self):
        op = JacobiOperator([1.0, 2.0], [3.0], [4.0])
        assert not op.is_symmetric and not op.is_hermitian and op.real_beta

    def test_complex_hermitian(self):
        b = np.array([1 + 2j, -1j])
        op = JacobiOperator([1.0, 2.0, 0.0], b, np.conj(b))
        assert op.is_hermitian and op.real_beta and not op.is_symmetric
        np.testing.assert_allclose(op.to_dense(), op.to_dense().conj().T)

    def test_complex_potential_not_hermitian(self):
        op = JacobiOperator.free_plus([1j, 0.0])
        assert op.is_symmetric and not op.is_hermitian and not op.real_beta

    def test_repr(self):
        assert "n=3" in repr(JacobiOperator.free(3))


class TestViews:
    def test_to_dense_with_z(self):
        op = JacobiOperator.free(3)
        np.testing.assert_array_equal(op.to_dense(1j), op.to_dense() - 1j * np.eye(3))

    def test_transparent_dense_adds_self_energy(self):
        z = 0.7 + 0.2j
        op = JacobiOperator.free(4, boundary="transparent")
        m = op.to_dense(z)
        w = lattice_w(z)
        ref = op.to_dense() - z * np.eye(4)
        ref[0, 0] -= w
        ref[3, 3] -= w
        np.testing.assert_allclose(m, ref, rtol=0, atol=0)

    def test_transparent_single_site_gets_both_leads(self):
        z = 1.0 + 0.5j
        m = JacobiOperator.free(1, boundary="transparent").to_dense(z)
        assert m[0, 0] == pytest.approx(2 - z - 2 * lattice_w(z), abs=1e-15)

    def test_transparent_accepts_real_z(self):
        m = JacobiOperator.free(2, boundary="transparent").to_dense(1.0)
        assert m[0, 0].imag < 0  # -Im w(1 + i0) < 0

    def test_to_dense_batched_z(self):
        op = JacobiOperator.free_plus(np.zeros((2, 3)))
        z = np.array([[1j], [2j], [3j]])
        m = op.to_dense(z)
        assert m.shape == (3, 2, 3, 3)
        np.testing.assert_array_equal(m[2, 1], op.to_dense()[1] - 3j * np.eye(3))

    def test_self_energy(self):
        z = 1.5 + 0.0j
        assert JacobiOperator.free(3, boundary="transparent").self_energy(z) == lattice_w(
            z, boundary=True
        )
        assert JacobiOperator.free(3).self_energy(z) == 0

    def test_sparse_matches_dense(self, rng):
        v = rng.normal(size=7)
        op = JacobiOperator(v, rng.normal(size=6), rng.normal(size=6))
        s = op.to_sparse()
        assert sp.issparse(s)
        np.testing.assert_array_equal(s.toarray(), op.to_dense())
        np.testing.assert_allclose(op.to_sparse(0.3j).toarray(), op.to_dense(0.3j))

    def test_sparse_transparent(self):
        op = JacobiOperator.free(5, boundary="transparent")
        np.testing.assert_allclose(op.to_sparse(1.5).toarray(), op.to_dense(1.5))

    def test_sparse_rejects_batch(self):
        with pytest.raises(ValueError, match="single chain"):
            JacobiOperator.free_plus(np.zeros((2, 3))).to_sparse()


class TestValidation:
    def test_bad_boundary(self):
        with pytest.raises(ValueError, match="boundary"):
            JacobiOperator.free(3, boundary="periodic")

    def test_b_wrong_length(self):
        with pytest.raises(ValueError, match="b must have last dimension"):
            JacobiOperator([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])

    def test_c_wrong_length(self):
        with pytest.raises(ValueError, match="c must have last dimension"):
            JacobiOperator([1.0, 2.0, 3.0], [1.0, 2.0], [1.0])

    def test_empty_chain(self):
        with pytest.raises(ValueError, match="at least one site"):
            JacobiOperator([], [])

    def test_scalar_a(self):
        with pytest.raises(ValueError, match="a must have at least 1"):
            JacobiOperator(1.0, [])

    def test_nan_in_a(self):
        with pytest.raises(ValueError, match="a contains NaN"):
            JacobiOperator([1.0, np.nan], [1.0])

    def test_inf_in_b(self):
        with pytest.raises(ValueError, match="b contains NaN or Inf"):
            JacobiOperator([1.0, 2.0], [np.inf])

    def test_string_input(self):
        with pytest.raises(TypeError, match="a must be"):
            JacobiOperator("abc", [])

    def test_object_dtype(self):
        with pytest.raises(TypeError, match="b must be"):
            JacobiOperator([1.0, 2.0], np.array([object()]))

    def test_batch_mismatch(self):
        with pytest.raises(ValueError, match="do not broadcast"):
            JacobiOperator(np.zeros((2, 4)), np.zeros((3, 3)))

    def test_free_bad_n(self):
        with pytest.raises(ValueError, match="n must be >= 1"):
            JacobiOperator.free(0)
        with pytest.raises(TypeError, match="n must be an integer"):
            JacobiOperator.free(2.5)

    def test_free_plus_bad_v(self):
        with pytest.raises(ValueError, match="v contains NaN"):
            JacobiOperator.free_plus([0.0, np.nan])
        with pytest.raises(ValueError, match="v must have at least 1"):
            JacobiOperator.free_plus(1.0)

    def test_transparent_dense_rejects_lower_half_plane(self):
        with pytest.raises(ValueError, match="Im z must be >= 0"):
            JacobiOperator.free(3, boundary="transparent").to_dense(1 - 1j)
