"""Tests for bkmath.scattering: ξ, S(λ), δ, threshold data, continued_arg."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bkmath.scattering as scmod
from bkmath.fredholm import perturbation_determinant
from bkmath.operators import JacobiOperator
from bkmath.reference.scattering_ref import scattering_matrix_mp
from bkmath.scattering import (
    bound_state_counts,
    continued_arg,
    scattering_matrix,
    scattering_phase,
    spectral_shift,
    threshold_data,
    transmission,
)

potentials = st.lists(st.floats(-4, 4, allow_nan=False), min_size=1, max_size=12)
band = st.floats(0.01, 3.99)


def test_doctests():
    assert doctest.testmod(scmod).failed == 0


class TestScatteringMatrix:
    @given(potentials, band)
    def test_unitary_reciprocal_and_jost(self, v, lam):
        S = scattering_matrix(v, lam)
        # products of ≤ 14 transfer matrices with entries O(|v| + 4): rounding ≪ 1e-9
        assert np.abs(S.conj().T @ S - np.eye(2)).max() < 1e-9
        assert abs(S[0, 0] - S[1, 1]) < 1e-9
        if np.any(v):
            D = perturbation_determinant(np.asarray(v), lam, boundary=True)
            assert abs(D * S[0, 0] - 1) < 1e-9

    def test_against_mpmath(self):
        v = [0.5, -1.25, 0.0, 2.0]
        for lam in (0.1, 1.3, 3.8):
            ref = np.array(scattering_matrix_mp(v, lam, dps=40).tolist(), dtype=complex)
            np.testing.assert_allclose(scattering_matrix(v, lam), ref, atol=1e-13)

    def test_delta_potential_closed_form(self):
        # one site: t = 2i sin θ / (2i sin θ − v)
        v, lam = 1.7, 1.1
        th = np.arccos(1 - lam / 2)
        assert abs(transmission([v], lam) - 2j * np.sin(th) / (2j * np.sin(th) - v)) < 1e-14

    def test_vectorised(self):
        S = scattering_matrix([1.0, -1.0], np.array([0.5, 1.0, 2.0]))
        assert S.shape == (3, 2, 2)

    def test_errors(self):
        with pytest.raises(ValueError, match="band"):
            scattering_matrix([1.0], 4.5)
        with pytest.raises(ValueError, match="site"):
            scattering_matrix([], 1.0)


class TestSpectralShift:
    @given(potentials, st.floats(-3, 7))
    def test_finite_is_counting_difference(self, v, lam):
        v = np.asarray(v)
        H = JacobiOperator.free_plus(v).to_dense()
        H0 = JacobiOperator.free(v.size).to_dense()
        e, e0 = np.linalg.eigvalsh(H), np.linalg.eigvalsh(H0)
        if min(np.abs(e - lam).min(), np.abs(e0 - lam).min()) < 1e-9:
            return  # ξ is ambiguous at an eigenvalue
        assert spectral_shift(v, lam) == np.sum(e0 < lam) - np.sum(e < lam)

    def test_infinite_off_band_counts_bound_states(self, rng):
        v = rng.normal(0, 2, 6)
        vb = np.concatenate([np.zeros(300), v, np.zeros(300)])
        for lam in (-2.0, -0.1, 4.2, 6.0):
            assert spectral_shift(v, lam, chain="infinite") == spectral_shift(vb, lam)
            n = bound_state_counts(v, lam)
            assert n == abs(spectral_shift(v, lam, chain="infinite"))

    def test_birman_krein(self, rng):
        v = rng.normal(0, 1.5, 5)
        lams = np.linspace(0.05, 3.95, 30)
        xi = spectral_shift(v, lams, chain="infinite")
        detS = np.linalg.det(scattering_matrix(v, lams))
        assert np.abs(detS - np.exp(-2j * np.pi * xi)).max() < 1e-10

    def test_trace_formula_infinite(self):
        # ∫ ξ dλ = tr V = Σ v (Krein's trace formula); one site v = 0.8 has its bound state
        # at E = 2 + √(4 + v²) > 4; integrate piecewise between thresholds and E
        from scipy.integrate import quad

        v = np.array([0.8])
        E = 2 + np.sqrt(4 + 0.64)
        pieces = [(-3.0, 0.0), (0.0, 4.0), (4.0, E), (E, 7.0)]
        total = sum(quad(lambda x: spectral_shift(v, x, chain="infinite"), a, b,
                         epsabs=1e-10, limit=200)[0] for a, b in pieces)
        assert abs(total - v.sum()) < 1e-6

    def test_errors(self):
        with pytest.raises(ValueError, match="threshold"):
            spectral_shift([1.0], 0.0, chain="infinite")
        with pytest.raises(ValueError, match="chain"):
            spectral_shift([1.0], 1.0, chain="ring")
        with pytest.raises(ValueError, match="outside"):
            bound_state_counts([1.0], 2.0)


class TestPhaseAndThresholds:
    def test_phase_relation(self, rng):
        v = rng.normal(0, 1, 4)
        lams = np.array([0.3, 1.0, 2.5, 3.7])
        d = scattering_phase(v, lams)
        xi = spectral_shift(v, lams, chain="infinite")
        np.testing.assert_allclose(d, np.pi * xi - v.sum() / np.sqrt(lams * (4 - lams)),
                                   atol=1e-12)
        grid = np.linspace(0.1, 3.9, 300)
        np.testing.assert_allclose(scattering_phase(v, grid, method="dense"),
                                   scattering_phase(v, grid), atol=1e-9)

    def test_threshold_data_exact(self):
        assert threshold_data(["1", "-1/2"]) == {
            "N_minus": 0, "N_plus": 1, "resonant_0": True, "resonant_4": False}
        assert threshold_data(["-1", "1/2"])["resonant_4"]
        assert threshold_data(["-3", "0", "-3"])["N_minus"] == 2
        assert threshold_data([0, 0])["resonant_0"]
        with pytest.raises(TypeError, match="exact"):
            threshold_data([0.5])

    def test_continued_arg_winding(self):
        # z ↦ z around the unit circle: +2π
        path = np.exp(1j * np.linspace(0, 2 * np.pi, 5))
        assert abs(continued_arg(lambda z: z, path) - 2 * np.pi) < 1e-12

    def test_continued_arg_zero_on_path(self):
        with pytest.raises(RuntimeError, match="no convergence"):
            continued_arg(lambda z: z, [-1.0 + 0j, 1.0 + 0j], max_refine=10)

    def test_phase_errors(self):
        with pytest.raises(ValueError, match="method"):
            scattering_phase([1.0], 1.0, method="magic")
        with pytest.raises(ValueError, match="increasing"):
            scattering_phase([1.0], [2.0, 1.0], method="dense")


def test_spectral_shift_when_a_leading_block_is_singular():
    """Regression: at λ = −0.5 the first pivot of the transparent window of this V is exactly
    zero (2 + v_1 − λ − w(λ) = 0 with w(−0.5) = 1/2) although λ is no eigenvalue; ξ must be
    the integer it is on both sides of λ, not an error."""
    v = [-2, 0, 0.5, 0, 0, 3, -0.5]
    xi = scmod.spectral_shift(v, -0.5, chain="infinite")
    left = scmod.spectral_shift(v, -0.5 - 1e-3, chain="infinite")
    right = scmod.spectral_shift(v, -0.5 + 1e-3, chain="infinite")
    assert abs(xi - round(xi)) < 1e-6
    assert abs(xi - left) < 1e-6 and abs(xi - right) < 1e-6
