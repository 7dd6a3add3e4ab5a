"""Tests for bkmath.line_resonances (all zeros of the Jost function on the line in a region)
against mpmath, closed forms and finite differences."""

from __future__ import annotations

import doctest

import mpmath
import numpy as np
import pytest
from flint import acb
from hypothesis import given, settings
from hypothesis import strategies as st

import bkmath.line_resonances as lmod
from bkmath.continuum import StepPotential, jost_function, step_potential
from bkmath.line_resonances import (
    certified_zero_count,
    jost_entire,
    jost_entire_ball,
    line_zero_balls,
    line_zero_count,
    line_zeros,
)
from bkmath.reference.line_resonances import jost_mp, line_zero_mp, square_well_zero_mp

EPS = np.finfo(np.float64).eps


@st.composite
def steps(draw):
    m = draw(st.integers(1, 3))
    widths = draw(st.lists(st.sampled_from([0.25, 0.5, 0.75, 1.0]), min_size=m, max_size=m))
    vals = draw(st.lists(st.floats(-8, 8, allow_nan=False).map(lambda x: round(x, 3)),
                         min_size=m, max_size=m))
    vals = [v if abs(v) > 0.05 else 1.0 for v in vals]  # jumps at both ends
    return step_potential(np.concatenate([[0.0], np.cumsum(widths)]), vals)


def test_doctests():
    assert doctest.testmod(lmod, optionflags=doctest.ELLIPSIS).failed == 0


class TestJostEntire:
    @settings(max_examples=30, deadline=None)
    @given(steps(), st.complex_numbers(max_magnitude=6).filter(lambda k: abs(k) > 0.05
                                                               and k.imag > -2))
    def test_against_mpmath(self, pot, k):
        a, b = pot.support
        G, dG = jost_entire(k, pot, derivative=True)
        with mpmath.workdps(40):
            D = jost_mp(k, pot.edges, pot.values)
            ref_mp = 2j * mpmath.mpc(k) * mpmath.exp(-1j * mpmath.mpc(k) * (b - a)) * D
            ref = complex(ref_mp)
            h = mpmath.mpf(10) ** -15
            Dp = jost_mp(mpmath.mpc(k) + h, pot.edges, pot.values)
            refp = 2j * (mpmath.mpc(k) + h) * mpmath.exp(-1j * (mpmath.mpc(k) + h) * (b - a)) * Dp
            dref = complex((refp - ref_mp) / h)
        # cos/sin cancellation: the cell products are e^{Σ|Im q|L} larger than G
        big = np.exp(2 * np.sum(np.abs(np.sqrt(complex(k) ** 2 - pot.values).imag)
                                * np.diff(pot.edges))) + 1
        assert abs(G - ref) <= 1e3 * EPS * big * (1 + abs(ref))
        assert abs(dG - dref) <= 1e3 * EPS * big * (1 + abs(dref)) + 1e-12 * abs(dref)

    def test_d_relation_and_threshold(self):
        pot = StepPotential.well(-3.0, -1.0, 0.5)
        k = 0.7 - 0.3j
        assert abs(jost_entire(k, pot) - 2j * k * np.exp(-1.5j * k) * jost_function(k, pot)) \
            < 1e-13
        # half-bound well: W(0) = 0, so G(0) = 0 (D itself is finite there)
        assert abs(jost_entire(0.0, StepPotential.well(-np.pi ** 2, 0.0, 1.0))) < 1e-13
        assert abs(jost_entire(0.0, StepPotential.well(-1.0, 0.0, 1.0))) > 0.1

    def test_series_branch_continuous(self):  # |k² − V| L² ≤ 1 uses the power series
        pot = StepPotential.well(4.0, 0.0, 1.0)
        for k in (2.0 + 1e-9, 2.0 + 0.49, 2.0 + 0.51):
            h = 1e-6
            G, dG = jost_entire(k, pot, derivative=True)
            fd = (jost_entire(k + h, pot) - jost_entire(k - h, pot)) / (2 * h)
            assert abs(dG - fd) < 1e-7 * max(1, abs(dG))

    def test_ball_contains_float(self):
        pot = step_potential([-1, 0, 0.5, 2], [-3, 5, -8])
        for k in (1.0 - 0.5j, 0.3j, 4.0 + 0.0j, 0.0):
            G, dG = jost_entire(k, pot, derivative=True)
            Gb, dGb = jost_entire_ball(k, pot)
            assert abs(complex(Gb.mid()) - G) < 1e-12 * (1 + abs(G))
            assert abs(complex(dGb.mid()) - dG) < 1e-12 * (1 + abs(dG))
            assert Gb.rad() < 1e-25 * (1 + abs(G))


class TestLineZeros:
    @settings(max_examples=12, deadline=None)
    @given(steps())
    def test_against_mpmath_and_complete(self, pot):
        top = np.sqrt(max(0.0, -pot.values.min())) + 0.37
        reg = (-4.1, 4.2, -1.3, top)
        try:
            z = line_zeros(pot, reg, upper=True)
        except ValueError as exc:  # a zero numerically on the boundary: not this test's case
            assert "boundary" in str(exc)
            return
        assert z.count == len(z.k) == int(np.sum(z.multiplicity))
        for k in z.k:
            if k != 0:
                km = complex(line_zero_mp(k, pot.edges, pot.values, dps=40))
                assert abs(km - k) <= 1e-11 * abs(k)
        # bound states agree with the real-axis root finder
        from bkmath.continuum import line_bound_states

        kap = np.sort(z.of_kind("bound").imag)
        E = line_bound_states(pot)
        E = E[np.sqrt(-E) < top]
        np.testing.assert_allclose(-kap[::-1] ** 2, E, rtol=1e-9, atol=1e-12)

    def test_square_barrier_closed_form(self):
        z = line_zeros(StepPotential.well(5.0, 2.0, 3.0), (-9.0, 9.0, -4.0, 0.0))
        assert z.kind == ("resonance",) * 4 and z.count == 4
        for k in z.k:
            kc, _ = square_well_zero_mp(k, 5.0, 0.5)
            assert abs(complex(kc) - k) < 1e-13 * abs(k)
        # pairs k, −k̄
        assert np.allclose(np.sort_complex(z.k), np.sort_complex(-np.conj(z.k)), atol=1e-13)

    def test_certified(self):
        pot = StepPotential.well(-2.0, 0.0, 1.0)
        reg = (-4.0, 4.0, -3.6, 1.8)
        z = line_zeros(pot, reg, upper=True)
        balls = line_zero_balls(pot, z.k)
        assert [b["kind"] for b in balls] == ["bound", "antibound"]
        assert certified_zero_count(pot, reg)["count"] == 2
        with mpmath.workdps(40):
            km = line_zero_mp(z.k[1], pot.edges, pot.values)
            assert balls[1]["ball"].contains(acb(mpmath.nstr(km.real, 40),
                                                 mpmath.nstr(km.imag, 40)))

    def test_threshold_zero(self):
        z = line_zeros(StepPotential.well(-np.pi ** 2, 0.0, 1.0), (-1.0, 1.0, -0.5, 0.5),
                       upper=True)
        assert "threshold" in z.kind

    def test_count_matches_subregions(self):
        pot = step_potential([-1.5, -1, 1, 1.5], [20, 0, 20])
        n = line_zero_count(pot, (-3.0, 3.0, -0.1, 0.0))
        assert n == line_zero_count(pot, (-3.0, 0.013, -0.1, 0.0)) + line_zero_count(
            pot, (0.013, 3.0, -0.1, 0.0)) == 4


class TestBadInput:
    pot = StepPotential.well(5.0, 0.0, 1.0)

    @pytest.mark.parametrize("region", [(-1, 1, -1, 0.5), (1, 1, -1, 0), (-1, 1, 0, -1),
                                        (0, np.inf, -1, 0), (1, 2, 3), "abcd"])
    def test_region(self, region):
        with pytest.raises(ValueError, match="region"):
            line_zeros(self.pot, region)

    def test_not_a_step_potential(self):
        with pytest.raises(ValueError, match="pot"):
            line_zeros(lambda x: np.exp(-x * x), (-1, 1, -1, 0))
        with pytest.raises(ValueError, match="pot"):
            certified_zero_count(np.array([1.0, 2.0]), (-1, 1, -1, 0))

    def test_zero_on_boundary(self):
        k0 = line_zeros(self.pot, (-5.0, 5.0, -2.0, 0.0)).k[1]
        with pytest.raises(ValueError, match="region"):
            line_zero_count(self.pot, (k0.real, 5.0, -2.0, 0.0))
