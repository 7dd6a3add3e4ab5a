"""Tests for bkmath.continuum (scattering on the line) against mpmath and closed forms."""

from __future__ import annotations

import doctest

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bkmath.continuum as cmod
from bkmath.continuum import (
    StepPotential,
    jost_function,
    levinson_count,
    line_bound_states,
    line_resonances,
    line_scattering,
    line_scattering_phase,
    line_transfer_matrix,
    step_potential,
    zero_energy_data,
)
from bkmath.fredholm import square_well_jost
from bkmath.reference.continuum import step_scattering_mp

EPS = np.finfo(np.float64).eps


@st.composite
def steps(draw):
    m = draw(st.integers(1, 4))
    widths = draw(st.lists(st.floats(0.1, 1.0), min_size=m, max_size=m))
    vals = draw(st.lists(st.floats(-6, 6, allow_nan=False), min_size=m, max_size=m))
    x0 = draw(st.floats(-2, 1))
    return step_potential(x0 + np.concatenate([[0.0], np.cumsum(widths)]), vals)


def test_doctests():
    assert doctest.testmod(cmod, optionflags=doctest.ELLIPSIS).failed == 0


class TestClosedForms:
    def test_free(self):
        s = line_scattering([0.1, 1.0, 7.0], StepPotential.well(0.0, -1.0, 2.0))
        assert np.allclose(s.t, 1, atol=1e-14) and np.allclose(s.r, 0, atol=1e-14)

    def test_square_well_matches_fredholm_closed_form(self):
        for depth in (-3.0, 5.0):
            for k in (0.3, 2.0, 1.0 + 0.5j):
                D = jost_function(k, StepPotential.well(depth, 0.0, 1.0))
                ref = square_well_jost(depth, (0.0, 1.0), complex(k) ** 2)
                assert abs(D - ref) <= 1e3 * EPS * abs(ref)

    def test_thin_barrier_tends_to_delta(self):
        # V = (g/ε) 1_[0, ε] → g δ: t = 1/(1 + ig/(2k))
        g, k = 1.5, 0.8
        t = line_scattering(k, StepPotential.well(g / 1e-6, 0.0, 1e-6)).t
        assert abs(t - 1 / (1 + 1j * g / (2 * k))) < 1e-5


class TestAgainstMpmath:
    @settings(max_examples=40, deadline=None)
    @given(steps(), st.floats(0.05, 10.0))
    def test_scattering_data(self, pot, k):
        s = line_scattering(k, pot)
        ref = step_scattering_mp(k, pot.edges, pot.values, dps=40)
        # cond: |M| ≤ e^{Σ √V₊ L}: the relative error of the cell product scales with it
        cond = np.exp(np.sum(np.sqrt(np.maximum(pot.values, 0)) * np.diff(pot.edges)))
        tol = 200 * EPS * pot.values.size * cond ** 2
        assert abs(s.t - complex(ref["t"])) <= tol * max(1, abs(complex(ref["t"])))
        assert abs(s.r - complex(ref["r"])) <= tol
        assert abs(s.r_prime - complex(ref["r_prime"])) <= tol

    def test_precision_is_scoped(self):
        dps = mpmath.mp.dps
        step_scattering_mp(1.0, [0.0, 1.0], [2.0], dps=60)
        assert mpmath.mp.dps == dps


class TestStructure:
    @settings(max_examples=40, deadline=None)
    @given(steps())
    def test_unitary_and_det_s(self, pot):
        k = np.geomspace(1e-3, 30, 25)
        s = line_scattering(k, pot)
        S = s.S
        cond = np.exp(2 * np.sum(np.sqrt(np.maximum(pot.values, 0)) * np.diff(pot.edges)))
        tol = 500 * EPS * cond
        assert np.max(np.abs(np.einsum("kji,kjl->kil", S.conj(), S) - np.eye(2))) <= tol
        assert np.max(np.abs(s.det_S - s.t / np.conj(s.t))) <= tol
        assert np.allclose(np.abs(line_transfer_matrix(k, pot).__array__()[..., 0, 0]),
                           np.abs(s.jost), rtol=1e-10)  # M₁₁ = conj M₂₂

    @settings(max_examples=25, deadline=None)
    @given(steps())
    def test_levinson(self, pot):
        assume_generic = not zero_energy_data(pot)["half_bound"]
        d0 = line_scattering_phase(1e-7, pot) / np.pi
        assert abs(d0 - levinson_count(pot)) < 1e-4
        nb = line_bound_states(pot).size
        assert nb == zero_energy_data(pot)["zeros"]
        if assume_generic:
            assert levinson_count(pot) == nb - 0.5

    def test_half_bound(self):
        for n in (1, 2):
            pot = StepPotential.well(-(n * np.pi) ** 2, 0.0, 1.0)
            assert zero_energy_data(pot)["half_bound"]
            assert abs(line_scattering_phase(1e-7, pot) / np.pi - n) < 1e-5

    def test_phase_is_minus_pi_xi_and_anchored(self):
        pot = step_potential([-1, 0, 0.5, 2], [-3, 5, -8])
        k = np.array([0.5, 2.0, 40.0])
        d = line_scattering_phase(k, pot)
        s = line_scattering(k, pot)
        assert np.allclose(np.exp(1j * d), s.t / np.abs(s.t), atol=1e-12)
        int_v = float(np.sum(pot.values * np.diff(pot.edges)))
        assert abs(d[-1] + int_v / (2 * 40.0)) < 5 * (pot.l1_norm / 40.0) ** 2

    def test_bound_states_are_zeros(self):
        pot = StepPotential.well(-16.0, 0.0, 1.0)
        kap = np.sqrt(-line_bound_states(pot))
        assert np.all(np.abs(jost_function(1j * kap, pot)) * np.exp(-kap) < 1e-12)

    def test_resonances_newton(self):
        pot = step_potential([-1.0, -0.9, 0.9, 1.0], [40.0, 0.0, 40.0])
        k = line_resonances(pot, [2.0 - 0.05j])[0]
        assert k.imag < 0 and abs(jost_function(k, pot)) < 1e-9


class TestGeneralV:
    def test_richardson_order(self):
        f = lambda x: np.where(np.abs(x) < 1, 3 * (1 - x * x) ** 3, 0.0)  # noqa: E731
        errs = []
        ref = jost_function(1.3, StepPotential.from_function(f, (-1, 1), 4096),
                            richardson=StepPotential.from_function(f, (-1, 1), 8192))
        for n in (64, 128, 256):
            errs.append(abs(jost_function(1.3, StepPotential.from_function(f, (-1, 1), n))
                            - ref))
        rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
        assert np.all(np.abs(rates - 2) < 0.1)  # mid-point cells: order 2


class TestBadInput:
    def test_not_compactly_supported(self):
        with pytest.raises(ValueError, match="not compactly supported"):
            StepPotential.from_function(lambda x: np.exp(-x * x), (-1, 1))

    @pytest.mark.parametrize("k", [0.0, -1.0, 1.0 + 1j, np.nan])
    def test_k_on_shell(self, k):
        with pytest.raises(ValueError, match="k"):
            line_scattering(k, StepPotential.well(1.0, 0, 1))

    def test_k_zero_and_nonfinite(self):
        with pytest.raises(ValueError, match="k must be nonzero"):
            jost_function(0.0, StepPotential.well(1.0, 0, 1))
        with pytest.raises(ValueError, match="k must be finite"):
            jost_function(np.inf, StepPotential.well(1.0, 0, 1))

    def test_bad_potential(self):
        with pytest.raises(ValueError, match="edges"):
            step_potential([0.0, 0.0], [1.0])
        with pytest.raises(ValueError, match="values"):
            step_potential([0.0, 1.0], [np.nan])
        with pytest.raises(ValueError, match="support"):
            StepPotential.from_function(np.sin, (1.0, 0.0))
        with pytest.raises(ValueError, match="n_cells"):
            StepPotential.from_function(np.sin, (0.0, 1.0), 0)
