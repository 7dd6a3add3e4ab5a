"""Tests for bkmath.resonances: the lattice Jost polynomial, its zeros and their Arb boxes."""

from __future__ import annotations

import doctest
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bkmath
import bkmath.resonances as resmod
from bkmath.reference.resonances import (
    jost_polynomial_exact,
    jost_polynomial_mp,
    matched_inverse_error,
    transparent_qep_zeros,
    window_eigenvalues,
)
from bkmath.resonances import (
    jost_polynomial,
    jost_polynomial_degree,
    lattice_resonances,
    resonance_balls,
    support_window,
)
from bkmath.scattering import threshold_data

EPS = np.finfo(np.float64).eps
entry = st.floats(-3, 3, allow_nan=False).filter(lambda x: abs(x) > 1e-2)
potentials = st.lists(entry, min_size=1, max_size=9).map(np.array)



def test_doctests():
    assert doctest.testmod(resmod).failed == 0


class TestJostPolynomial:
    def test_single_site_closed_form(self):
        for v in (1.0, -2.5, 1e-3, 40.0):
            assert jost_polynomial([v]).tolist() == [1.0, v, -1.0]

    def test_two_sites(self):
        v1, v2 = 0.75, -1.25
        assert jost_polynomial([v1, v2]).tolist() == [1.0, v1 + v2, v1 * v2 - 1.0]

    def test_free_and_padding(self):
        assert jost_polynomial([0.0, 0.0]).tolist() == [1.0, 0.0, -1.0]  # D = 1
        v = np.array([0.5, 0.0, -1.5, 2.0])
        padded = np.concatenate([np.zeros(3), v, np.zeros(2)])
        assert np.array_equal(jost_polynomial(padded), jost_polynomial(v))
        assert support_window(padded).tolist() == v.tolist()

    @given(potentials)
    def test_degree_and_leading_coefficient(self, v):
        P = jost_polynomial_exact(v)
        L = v.size
        assert P.degree() == jost_polynomial_degree(v) == jost_polynomial(v).size - 1
        assert P[0] == 1
        if L >= 3:
            assert P.degree() == 2 * L - 2
            top = P[2 * L - 2]
            assert Fraction(int(top.p), int(top.q)) == Fraction(v[0]) * Fraction(v[-1])

    def test_degree_drop_at_v1v2_equal_one(self):
        # regression: 3 · fl(1/3) rounds to 1 in float64 but not exactly: degree 2, a zero
        # near w = −6e16 (found by hypothesis)
        v = [3.0, 1 / 3]
        c = jost_polynomial(v)
        assert c.size == 3 and c[2] == float(Fraction(3) * Fraction(1 / 3) - 1) != 0
        assert lattice_resonances(v).kind == ("eigenvalue", "antibound")
        assert jost_polynomial_degree([2.0, 0.5]) == 1
        assert jost_polynomial_exact([2.0, 0.5]).degree() == 1
        assert jost_polynomial_degree([-1.0, -1.0]) == 1

    @given(potentials, st.sampled_from([0.7 + 0.4j, -1.0 + 2.0j, 3.9 + 0.05j, 2.0 + 1e-3j]))
    def test_identity_with_fredholm_det(self, v, z):
        # P(w) = (1 − w²) det(I + K(z)), K the dense Birman–Schwinger matrix
        w = complex(bkmath.lattice_w(z))
        c = jost_polynomial(v)
        D = bkmath.fredholm_det(bkmath.birman_schwinger(v, z))
        scale = np.sum(np.abs(c) * abs(w) ** np.arange(c.size)) + abs(D)
        assert abs(np.polyval(c[::-1], w) - (1 - w * w) * D) <= 1e3 * EPS * v.size * scale

    @pytest.mark.parametrize("dps", [30, 60])
    def test_mpmath_equals_exact(self, dps):
        v = np.random.default_rng(1).uniform(-3, 3, 7)
        P = jost_polynomial_exact(v)
        with mpmath.workdps(dps):
            cm = jost_polynomial_mp(v, dps=dps)
            for i in range(P.degree() + 1):
                ref = mpmath.mpf(int(P[i].p)) / int(P[i].q)
                assert abs(cm[i] - ref) <= mpmath.mpf(10) ** (-dps + 3) * max(1, abs(ref))


class TestLatticeResonances:
    def test_single_site(self):
        for v in (1.0, -2.5, 1e-3, 37.0):
            r = lattice_resonances([v])
            with mpmath.workdps(40):  # w = (v ± √(v² + 4))/2, eigenvalue 2 + sign(v) √(v² + 4)
                s = mpmath.sqrt(mpmath.mpf(v) ** 2 + 4)
                ref = sorted([float((v + s) / 2), float((v - s) / 2)], key=abs)
                ev = float(2 + mpmath.sign(v) * s)
            assert np.allclose(r.w, ref, rtol=4 * EPS, atol=0)
            assert r.kind == ("eigenvalue", "antibound")
            assert r.eigenvalues[0] == pytest.approx(ev, rel=8 * EPS)

    def test_threshold_zero(self):
        r = lattice_resonances([1.0, -0.5])  # P(1) = v1 + v2 + v1 v2 = 0
        assert "threshold" in r.kind and r.of_kind("threshold").tolist() == [1.0]
        assert threshold_data([1, Fraction(-1, 2)])["resonant_0"]

    def test_double_barrier_has_narrow_resonances(self):
        r = lattice_resonances([4.0, 0, 0, 0, 4.0])
        res = r.z[[k == "resonance" for k in r.kind]]
        band = res[(res.real > 0) & (res.real < 4)]
        assert band.size and np.min(np.abs(band.imag)) < 0.1

    @given(potentials)
    def test_against_transparent_qep(self, v):
        r = lattice_resonances(v)
        assert r.w.size == r.degree
        if r.degree:
            assert matched_inverse_error(r.w, transparent_qep_zeros(v, r.degree)) <= 1e-8

    @given(potentials)
    def test_structure(self, v):
        r = lattice_resonances(v)
        # real coefficients: the zero set is closed under conjugation; eigenvalues real
        if r.degree:
            assert matched_inverse_error(r.w, r.w.conj()) <= 1e-10
        ev = r.of_kind("eigenvalue")
        assert np.all(ev.imag == 0) and np.all(np.abs(ev) < 1)
        assert np.all(np.abs(r.of_kind("resonance")) > 1)
        td = threshold_data([Fraction(float(x)) for x in v])
        assert int(np.sum(ev.real > 0)) == td["N_minus"]
        assert int(np.sum(ev.real < 0)) == td["N_plus"]

    @given(potentials)
    def test_eigenvalues_against_window(self, v):
        r = lattice_resonances(v)
        ev_w = np.sort(r.of_kind("eigenvalue"))
        if np.all(np.abs(ev_w) ** 800 < 1e-16):  # the truncation has converged
            ref = window_eigenvalues(v, 400)
            assert ref.size == ev_w.size
            assert np.allclose(r.eigenvalues, ref, rtol=1e3 * EPS, atol=1e3 * EPS)

    def test_bad_input(self):
        for bad in ([np.nan], [1.0, np.inf], [[1.0, 2.0]]):
            with pytest.raises(ValueError):
                lattice_resonances(bad)
        with pytest.raises((ValueError, TypeError)):
            lattice_resonances([1 + 1j])
        with pytest.raises(ValueError, match="dps"):
            lattice_resonances([1.0], dps=5)
        with pytest.raises(ValueError, match="kind"):
            lattice_resonances([1.0]).of_kind("bound")


class TestResonanceBalls:
    @given(potentials)
    def test_every_zero_certified_and_contains_the_reference(self, v):
        r = lattice_resonances(v)
        balls = resonance_balls(v, r.w)
        hi = lattice_resonances(v, dps=90)  # a more precise reference zero
        for w, k, b, wh in zip(r.w, r.kind, balls, hi.w, strict=True):
            if k == "threshold":
                continue
            assert b["unique"] and b["contains_input"], (v, w)
            assert b["ball"].contains(bkmath.enclosure.to_acb(Fraction(wh.real),
                                                              Fraction(wh.imag)))
            assert b["radius"] <= 1e-10 * max(1, abs(w)) * (1 + 1e-12)
            assert b["inside"] == (k == "eigenvalue")
            assert b["real"] == (k in ("eigenvalue", "antibound"))

    def test_a_wrong_point_is_not_vouched_for(self):
        # the box is re-centred on the true zero: it certifies that zero, not the input
        v = [1.0, -2.0, 0.5]
        r = lattice_resonances(v)
        wrong = r.w[0] * (1 + 1e-6)
        (b,) = resonance_balls(v, [wrong])
        assert b["unique"] and not b["contains_input"]
        assert b["ball"].contains(bkmath.enclosure.to_acb(Fraction(r.w[0].real)))
