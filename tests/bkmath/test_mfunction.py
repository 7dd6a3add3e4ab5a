"""Tests for bkmath.mfunction against the mpmath and dense references."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bkmath.mfunction as mf
from bkmath import JacobiOperator, resolvent_diagonal
from bkmath.mfunction import (
    free_m_function,
    half_line_measure,
    m_function,
    truncation_measure,
)
from bkmath.reference.mfunction import m_function_dense, m_function_mp, moments_exact

EPS = np.finfo(np.float64).eps
diag = st.lists(st.floats(-1, 5), min_size=1, max_size=8).map(np.array)
upper = st.tuples(st.floats(-2, 6), st.floats(0.05, 3)).map(lambda t: complex(*t))


def test_doctests():
    assert doctest.testmod(mf).failed == 0


class TestContinuedFraction:
    @given(diag, upper)
    def test_against_mpmath(self, a, z):
        m = m_function(z, a)
        ref = m_function_mp(z, a, dps=30)
        # N Möbius steps, each backward stable: O(N eps) times the condition ~ 1/(Im z |m|)
        tol = 32 * (a.size + 1) * EPS * (1 + 1 / (z.imag * abs(ref)))
        assert abs(m - ref) <= tol * abs(ref)

    @given(diag, upper)
    def test_is_bk_recursion_run_backwards(self, a, z):
        b = -np.ones(a.size - 1)
        md = m_function(z, a, b, tail="dirichlet")
        gR = resolvent_diagonal(JacobiOperator(a, b), z, side="right")[0]
        tol = 32 * a.size * EPS * (1 + 1 / (z.imag * abs(gR)))
        assert abs(md - gR) <= tol * abs(gR)
        assert abs(md - m_function_dense(z, a, b, tail="dirichlet")) <= tol * abs(gR)

    @given(upper)
    def test_free_closed_form(self, z):
        m0 = free_m_function(z)
        assert m0.imag > 0 and abs(m0) < 1
        assert abs(m0 - 1 / (2 - z - m0)) <= 16 * EPS * (1 + 1 / z.imag)
        assert abs(m_function(z, [2.0, 2.0, 2.0]) - m0) <= 16 * EPS * (1 + 1 / z.imag)

    @given(diag, upper)
    def test_herglotz(self, a, z):
        m = m_function(z, a)
        assert m.imag > 0 and abs(m) <= (1 + 8 * EPS) / z.imag


class TestSpectralMeasure:
    def test_herglotz_representation(self):
        a, b = [0.5, -3.0, 1.0, 2.5], [-1.0, -0.7, -1.2, -1.0]
        mu = half_line_measure(a, b)
        z = np.array([0.5 + 0.8j, 5.0 + 1j, -4 + 0.5j])
        assert abs(mu.mass(n=2048) - 1) < 1e-12
        assert np.allclose(mu.borel(z, n=2048), m_function(z, a, b), rtol=1e-12)

    def test_truncation_points_converge(self):
        a = [-1.0, 3.0]
        mu = half_line_measure(a)
        lam, w = truncation_measure(a, n=200)
        out = (lam < 0) | (lam > 4)
        assert np.allclose(lam[out], mu.points, atol=1e-13)
        assert np.allclose(w[out], mu.weights, atol=1e-13)

    @given(st.lists(st.integers(-3, 3), min_size=1, max_size=4), st.integers(1, 5))
    def test_gauss_moments(self, a, n):
        full = moments_exact(a, [-1] * len(a), 2 * n)
        an = (list(a) + [2] * n)[:n]
        trunc = moments_exact(an, [-1] * (n - 1), 2 * n, tail="dirichlet")
        assert full[: 2 * n] == trunc[: 2 * n]


class TestBadInput:
    def test_lower_half_plane(self):
        with pytest.raises(ValueError, match="Im z"):
            m_function(1.0 - 1j, [1.0])
        with pytest.raises(ValueError, match="Im z"):
            free_m_function(1.0)

    def test_empty_and_lengths(self):
        with pytest.raises(ValueError, match="a"):
            m_function(1j, [])
        with pytest.raises(ValueError, match="b"):
            m_function(1j, [1.0, 2.0], [1.0, 1.0, 1.0])
        with pytest.raises(ValueError, match="boundary"):
            m_function(1.0, [1.0], tail="dirichlet", boundary=True)
        with pytest.raises(ValueError, match="tail"):
            m_function(1j, [1.0], tail="periodic")
