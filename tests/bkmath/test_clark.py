"""Tests for bkmath.clark against the mpmath references (bkmath.reference.clark)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bkmath.clark as clark
from bkmath.clark import (
    borel_derivative,
    borel_transform,
    clark_borel,
    clark_measure,
    clark_measures,
)
from bkmath.reference.clark import borel_transform_mp, window_point_masses

EPS = np.finfo(np.float64).eps
entry = st.floats(-3, 3, allow_nan=False)
windows = st.lists(entry, min_size=1, max_size=6).map(np.array)
upper = st.tuples(st.floats(-2, 6), st.floats(0.05, 3)).map(lambda t: complex(*t))


def test_doctests():
    assert doctest.testmod(clark).failed == 0


class TestBorelTransform:
    @given(windows, upper, st.integers(0, 5))
    def test_against_mpmath(self, v, z, s):
        s = s % v.size
        F = borel_transform(v, z, site=s)
        ref = borel_transform_mp(v, z, site=s, dps=30)
        # tridiagonal solve of L <= 6 rows: backward error O(L eps); condition <= |F|/Im z
        tol = 64 * v.size * EPS * (1 + 1 / (z.imag * abs(ref)))
        assert abs(F - ref) <= tol * abs(ref)

    def test_free_closed_form(self):
        z = np.array([0.5 + 0.1j, 3.0 + 2j, -1 + 1e-3j])
        s = np.sqrt(z) * np.sqrt(z - 4)
        assert np.allclose(borel_transform([0.0, 0.0, 0.0], z, site=1), -1 / s, rtol=8 * EPS)

    def test_vectorised_equals_looped(self):
        v, z = [0.5, -1.0, 2.0], np.array([[0.3 + 0.2j, 1j], [5 + 0.1j, -2 + 3j]])
        loop = np.array([[borel_transform(v, x, site=2) for x in row] for row in z])
        assert np.array_equal(borel_transform(v, z, site=2), loop)

    @given(windows, upper)
    def test_herglotz(self, v, z):
        F = borel_transform(v, z)
        assert F.imag > 0 and abs(F) <= (1 + 4 * EPS) / z.imag


class TestAronszajnDonoghue:
    @given(windows, st.floats(-10, 10), upper)
    def test_rank_one_formula(self, v, a, z):
        va = v.copy()
        va[0] += a
        ref = borel_transform(va, z)
        tol = 256 * EPS * (1 + abs(a) / z.imag) * (1 + 1 / (z.imag * abs(ref)))
        assert abs(clark_borel(v, a, z) - ref) <= tol * abs(ref)

    @given(windows, st.floats(0.2, 8).flatmap(lambda x: st.sampled_from([x, -x])))
    def test_weights(self, v, a):
        m = clark_measure(v, a)
        if m.points.size:
            Fp = np.asarray(borel_derivative(v, m.points, boundary=True)).real
            assert np.all(Fp > 0)
            assert np.allclose(m.weights, 1 / (a * a * Fp), rtol=1e-9, atol=1e-13)
        assert np.all(m.weights > 0)

    def test_against_window(self):
        v, a = np.array([0.5, -2.0, 0.0, 1.5]), 2.5
        m = clark_measure(v, a, site=1)
        E, w = window_point_masses(v, a, site=1)
        assert np.allclose(m.points, E, rtol=0, atol=1e-13)
        assert np.allclose(m.weights, w, rtol=0, atol=1e-13)

    def test_total_mass_and_batch(self):
        al = [-4.0, -0.3, 0.0, 0.7, 6.0]
        for a, m in zip(al, clark_measures([1.0, -0.5], al), strict=True):
            assert abs(m.mass(n=4096) - 1) < 1e-12
            one = clark_measure([1.0, -0.5], a)
            assert np.array_equal(one.points, m.points)


class TestBadInput:
    @pytest.mark.parametrize("alpha", [np.inf, np.nan, -np.inf])
    def test_alpha_not_finite(self, alpha):
        with pytest.raises(ValueError, match="alpha"):
            clark_borel([1.0], alpha, 1j)
        with pytest.raises(ValueError, match="alpha"):
            clark_measure([1.0], alpha)

    def test_lower_half_plane(self):
        with pytest.raises(ValueError, match="Im z"):
            borel_transform([1.0], 1.0 - 0.1j)
        with pytest.raises(ValueError, match="Im z"):
            borel_transform([1.0], 1.0)

    def test_empty_potential_and_site(self):
        with pytest.raises(ValueError, match="v"):
            borel_transform([], 1j)
        with pytest.raises(ValueError, match="site"):
            borel_transform([1.0, 2.0], 1j, site=2)
