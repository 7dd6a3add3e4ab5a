"""Tests for bkmath.schatten: norms, the derived bounds, the seeds' bounds as stated."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bkmath.schatten as smod
from bkmath.bs_operator import birman_schwinger, free_kernel_diagonal
from bkmath.reference.scattering_ref import singular_values_mp, trace_class_constant_mp
from bkmath.schatten import (
    potential_norm,
    resolvent_l2_squared,
    s1_bound,
    s2_bound,
    s2_bound_l1,
    schatten_norm,
    seed_s1_bound,
    seed_s2_bound,
    trace_class_constant,
)

EPS = np.finfo(float).eps
potentials = st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=25)
zs = st.builds(complex, st.floats(-3, 7), st.floats(1e-2, 10))


def test_doctests():
    assert doctest.testmod(smod).failed == 0


class TestNorms:
    def test_against_mpmath_singular_values(self):
        v = [1.0, -0.5, 2.0]
        K = birman_schwinger(v, 0.5 + 0.3j)
        from bkmath.reference.scattering_ref import bs_matrix_mp

        s = [float(x) for x in singular_values_mp(bs_matrix_mp(v, 0.5 + 0.3j, dps=30))]
        assert abs(schatten_norm(K, 1) - sum(s)) < 1e-13 * sum(s)
        assert abs(schatten_norm(K, np.inf) - s[0]) < 1e-13 * s[0]
        assert abs(schatten_norm(K, 2) - np.sqrt(sum(x * x for x in s))) < 1e-13 * s[0]

    def test_operator_form_uses_o_n_path(self):
        op = birman_schwinger(np.ones(50), 1 + 1j, form="operator")
        assert abs(schatten_norm(op, 2) - np.linalg.norm(op.dense())) < 1e-12

    def test_bad_p(self):
        with pytest.raises(ValueError, match="p must"):
            schatten_norm(np.eye(2), 3)
        with pytest.raises(ValueError, match="p must"):
            potential_norm([1.0], 3)


class TestBounds:
    @given(potentials, zs)
    def test_lattice_bounds_hold(self, v, z):
        v = np.asarray(v)
        if not np.any(v):
            return
        K = birman_schwinger(v, z)
        # theorems (exact for the finite-rank lattice K); rounding slack 1e-10 relative
        assert schatten_norm(K, 2) <= s2_bound(v, z) * (1 + 1e-10)
        assert schatten_norm(K, 2) <= s2_bound_l1(v, z) * (1 + 1e-10)
        assert schatten_norm(K, 1) <= s1_bound(v, z) * (1 + 1e-10)

    @given(zs)
    def test_ward_identity(self, z):
        # Σ_n |G0(0, n; z)|² = Im G0(0,0; z) / Im z
        lhs = resolvent_l2_squared(z)
        rhs = free_kernel_diagonal(z).imag / z.imag
        assert abs(lhs - rhs) <= 1e-9 * rhs

    def test_trace_class_constant_vs_mpmath(self):
        for z in (1 + 1j, 0.3 + 0.05j, 5 + 0.2j, -1 + 2j):
            for model in ("lattice", "continuum"):
                ref = float(trace_class_constant_mp(z, model))
                assert abs(trace_class_constant(z, model) - ref) < 1e-10 * ref
        assert trace_class_constant(1j, "momentum") == np.inf

    def test_continuum_and_momentum_constants(self):
        z = 1 + 1j
        k = np.sqrt(z)
        assert abs(resolvent_l2_squared(z, "continuum") - 1 / (4 * abs(k) ** 2 * k.imag)) < 1e-15
        assert resolvent_l2_squared(z, "momentum") == 0.5

    def test_seed_bounds_as_stated_and_refuted(self):
        v = np.ones(16)
        assert seed_s2_bound(v, 2 + 0.1j) == pytest.approx(0.5 * 4 / np.sqrt(0.1))
        assert seed_s1_bound(v, 2 + 0.1j) == pytest.approx(0.5 * 16 / 0.1)
        # regression: the counterexamples reported by the certificates
        assert schatten_norm(birman_schwinger(v, 2 + 0.1j), 2) > seed_s2_bound(v, 2 + 0.1j)
        one = np.array([1.0])
        assert schatten_norm(birman_schwinger(one, 3j), 1) > seed_s1_bound(one, 3j)

    def test_errors(self):
        with pytest.raises(ValueError, match="Im z"):
            s2_bound([1.0], 1.0)
        with pytest.raises(ValueError, match="model"):
            resolvent_l2_squared(1j, "dirac")
        with pytest.raises(ValueError, match="shape"):
            potential_norm([1.0, 2.0], 2, weights=[1.0])
