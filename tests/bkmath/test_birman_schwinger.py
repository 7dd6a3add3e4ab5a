"""Tests for bkmath.bs_operator: kernels, the semiseparable form, validation."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.integrate import quad

import bkmath.bs_operator as bsmod
from bkmath import free_resolvent, free_resolvent_continuum
from bkmath.bs_operator import (
    BirmanSchwingerOperator,
    birman_schwinger,
    free_kernel_diagonal,
    gauss_legendre,
    lattice_w_boundary,
)
from bkmath.operators import JacobiOperator

EPS = np.finfo(float).eps

potentials = st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=30)
zs = st.builds(complex, st.floats(-3, 7), st.floats(1e-2, 5))


def test_doctests():
    assert doctest.testmod(bsmod).failed == 0


class TestLattice:
    def test_matches_restricted_box_resolvent(self, rng):
        # G0 on Z restricted to the support = (H0_box − z)⁻¹ restricted, up to the box
        # truncation error |w|^{2d} (d = 300 free sites each side: < 1e-30 here)
        n, pad = 8, 300
        v = rng.normal(size=n)
        z = 1.3 + 0.2j
        N = n + 2 * pad
        G = np.linalg.inv(JacobiOperator.free(N).to_dense(z))
        idx = np.arange(pad, pad + n)
        a = np.sign(v) * np.sqrt(np.abs(v))
        ref = a[:, None] * G[np.ix_(idx, idx)] * np.sqrt(np.abs(v))[None, :]
        np.testing.assert_allclose(birman_schwinger(v, z), ref, rtol=0, atol=1e-13)

    def test_kernel_is_core_free_resolvent(self):
        z = 0.7 + 0.3j
        K = birman_schwinger(np.ones(5), z)
        m = np.arange(5)
        np.testing.assert_allclose(K, free_resolvent(m[:, None], m[None, :], z), rtol=1e-14)

    def test_support_only(self):
        K = birman_schwinger([0.0, 2.0, 0.0, -3.0, 0.0], 1j)
        assert K.shape == (2, 2)

    def test_boundary_value_on_band(self):
        # λ + i0 with λ = 2: w = i, G0(0,0) = i/2
        K = birman_schwinger([1.0], 2.0, boundary=True)
        assert abs(K[0, 0] - 0.5j) < 1e-15
        assert abs(lattice_w_boundary(2.0) - 1j) < 1e-15

    def test_threshold_rejected(self):
        with pytest.raises(ValueError, match="threshold"):
            birman_schwinger([1.0], 0.0, boundary=True)


class TestSemiseparable:
    @given(potentials, zs, st.sampled_from(["lattice", "continuum", "momentum"]))
    def test_matvec_hs_trace_match_dense(self, v, z, model):
        v = np.asarray(v)
        if not np.any(v):
            v = np.append(v, 1.0)
        kw = {}
        if model != "lattice":
            x, w = gauss_legendre((0.0, 3.0), v.size)
            kw = {"nodes": x, "weights": w}
        op = birman_schwinger(v, z, model=model, form="operator", **kw)
        assert isinstance(op, BirmanSchwingerOperator)
        K = op.dense()
        u = np.cos(np.arange(K.shape[0])) + 1j * np.sin(2.0 * np.arange(K.shape[0]))
        scale = np.abs(K).max() * K.shape[0] * np.abs(u).max() + 1e-300
        # both sides sum N terms of size ≤ max|K|·|u|: error ≤ N·eps·that (×100 slack)
        assert np.abs(op @ u - K @ u).max() <= 100 * EPS * scale
        # reference Frobenius norm scaled by max|K| first: np.linalg.norm squares the entries
        # and returns 0 for |K_ij| ~ 1e-194 (issue 16: hs_norm no longer underflows there)
        kmax = np.abs(K).max()
        fro = kmax * np.linalg.norm(K / kmax) if kmax > 0 else 0.0
        assert abs(op.hs_norm() - fro) <= 100 * EPS * K.shape[0] * max(fro, 1e-300)
        assert abs(op.trace() - np.trace(K)) <= 100 * EPS * K.shape[0] * (np.abs(K).max() + 1)

    def test_long_support_no_overflow(self):
        v = np.ones(20000)
        op = birman_schwinger(v, 2.0 + 1e-3j, form="operator")
        y = op @ np.ones(20000)
        assert np.all(np.isfinite(y)) and np.isfinite(op.hs_norm())


class TestContinuumAndMomentum:
    def test_continuum_kernel(self):
        x, w = gauss_legendre((-1.0, 2.0), 7)
        z = 0.4 + 0.9j
        K = birman_schwinger(np.ones(7), z, model="continuum", nodes=x, weights=w)
        R = free_resolvent_continuum(x[:, None], x[None, :], z)
        np.testing.assert_allclose(K, np.sqrt(w)[:, None] * R * np.sqrt(w)[None, :],
                                   rtol=1e-14)

    def test_momentum_kernel_and_diagonal_convention(self):
        x, w = gauss_legendre((0.0, 1.0), 5)
        z = 1.0 + 0.5j
        K = birman_schwinger(np.ones(5), z, model="momentum", nodes=x, weights=w)
        d = x[:, None] - x[None, :]
        R = np.where(d > 0, 1j * np.exp(1j * z * d), 0.0) + np.where(d == 0, 0.5j, 0.0)
        np.testing.assert_allclose(K, np.sqrt(w)[:, None] * R * np.sqrt(w)[None, :],
                                   rtol=1e-14)
        assert free_kernel_diagonal(z, "momentum") == 0.5j

    def test_momentum_resolvent_solves_the_equation(self):
        # u = R0 f, R0(x, y) = i e^{iz(x−y)} θ(x−y), must solve −i u' − z u = f
        z = 0.3 + 0.8j
        f = lambda y: np.exp(-(y**2))  # noqa: E731

        def u(x):
            re = quad(lambda y: (1j * np.exp(1j * z * (x - y)) * f(y)).real, -np.inf, x,
                      epsabs=1e-13)[0]
            im = quad(lambda y: (1j * np.exp(1j * z * (x - y)) * f(y)).imag, -np.inf, x,
                      epsabs=1e-13)[0]
            return re + 1j * im

        for x0 in (-0.7, 0.2, 1.5):
            h = 1e-4
            du = (u(x0 + h) - u(x0 - h)) / (2 * h)  # O(h²) ≈ 1e-8 error
            assert abs(-1j * du - z * u(x0) - f(x0)) < 1e-6

    def test_callable_potential(self):
        K = birman_schwinger(np.cos, 1j, model="continuum", interval=(0, 1), n=6)
        assert K.shape == (6, 6)


class TestValidation:
    def test_im_z(self):
        with pytest.raises(ValueError, match="Im z"):
            birman_schwinger([1.0], 1.0)
        with pytest.raises(ValueError, match="Im z"):
            birman_schwinger([1.0], 1.0 - 1j, boundary=True)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="model"):
            birman_schwinger([1.0], 1j, model="dirac")
        with pytest.raises(ValueError, match="form"):
            birman_schwinger([1.0], 1j, form="sparse")
        with pytest.raises(ValueError, match="interval"):
            birman_schwinger(np.cos, 1j, model="continuum")
        with pytest.raises(ValueError, match="nodes and weights"):
            birman_schwinger([1.0], 1j, model="continuum")
        with pytest.raises(ValueError, match="same shape"):
            birman_schwinger([1.0, 2.0], 1j, model="momentum", nodes=[0.0], weights=[1.0])
        with pytest.raises(ValueError, match="weights"):
            birman_schwinger([1.0], 1j, model="momentum", nodes=[0.0], weights=[0.0])
        with pytest.raises(ValueError, match="integer"):
            birman_schwinger([1.0], 1j, nodes=[0.5])
        with pytest.raises(TypeError, match="v"):
            birman_schwinger("abc", 1j)
        with pytest.raises(TypeError, match="v"):
            birman_schwinger([1j], 1j)
        with pytest.raises(ValueError, match="NaN"):
            birman_schwinger([np.nan], 1j)
