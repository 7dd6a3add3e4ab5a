"""Tests for bkmath.breit_wigner: the exact decomposition of the lattice phase near a
resonance, its remainder bound, and bad input."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bkmath.breit_wigner as bwmod
from bkmath.breit_wigner import (
    band_angle,
    breit_wigner_bound,
    breit_wigner_phase,
    lattice_phase,
    narrow_resonance,
)
from bkmath.scattering import transmission


def test_doctests():
    assert doctest.testmod(bwmod).failed == 0


class TestResonance:
    def test_sheet_and_width(self):
        r = narrow_resonance([8.0, 0.0, 0.0, 0.0, 8.0])
        assert abs(r.w) > 1 and r.w.imag > 0 and r.gamma > 0
        assert abs(r.z - (2 - r.w - 1 / r.w)) < 1e-15 and 0 < r.E < 4

    def test_phase_is_arg_t(self):
        v = [4.0, 0.0, -1.0, 0.0, 4.0]
        lam = np.linspace(0.1, 3.9, 37)
        d = lattice_phase(v, lam)
        t = transmission(np.array(v), lam)
        assert np.allclose(np.exp(1j * d), t / np.abs(t), atol=1e-12)

    @settings(max_examples=20, deadline=None)
    @given(st.floats(6.0, 40.0), st.integers(3, 6))
    def test_remainder_within_bound(self, B, gap):
        v = np.concatenate([[B], np.zeros(gap), [B]])
        r = narrow_resonance(v, near=2.0)
        lam = r.E + np.linspace(-4, 4, 17) * r.gamma / 2
        lam = lam[(lam > 0) & (lam < 4)]
        d = lattice_phase(v, lam)
        err = np.abs(d - breit_wigner_phase(lam, r.E, r.gamma, float(lattice_phase(v, r.E))))
        # a Lipschitz bound, no slack; 1e-12 absorbs rounding of the pivot phase
        assert np.all(err <= breit_wigner_bound(r, lam) + 1e-12)

    def test_bound_shrinks_with_width(self):
        g, b = [], []
        for B in (8.0, 16.0, 32.0):
            r = narrow_resonance([B, 0, 0, 0, B], near=2.0)
            lam = r.E + np.array([-5.0, 5.0]) * r.gamma / 2
            g.append(r.gamma)
            b.append(float(np.max(breit_wigner_bound(r, lam))))
        assert g[0] > g[1] > g[2] and b[0] > b[1] > b[2]
        assert np.allclose(np.array(b) / np.array(g), b[0] / g[0], rtol=0.1)  # O(Γ)

    def test_wrong_width_fails(self):
        r = narrow_resonance([32.0, 0, 0, 0, 32.0], near=2.0)
        lam = r.E + np.linspace(-5, 5, 21) * r.gamma / 2
        d = lattice_phase([32.0, 0, 0, 0, 32.0], lam)
        d0 = float(lattice_phase([32.0, 0, 0, 0, 32.0], r.E))
        err = np.abs(d - breit_wigner_phase(lam, r.E, 2 * r.gamma, d0))
        assert np.any(err > breit_wigner_bound(r, lam))


class TestBadInput:
    def test_band(self):
        with pytest.raises(ValueError, match="lam"):
            band_angle([0.0])
        with pytest.raises(ValueError, match="lam"):
            lattice_phase([1.0, 0.0, 1.0], [4.5])

    def test_gamma(self):
        with pytest.raises(ValueError, match="gamma"):
            breit_wigner_phase(1.0, 1.0, -0.1, 0.0)

    def test_no_resonance(self):
        with pytest.raises(ValueError, match="resonance"):
            narrow_resonance([1.0])
        with pytest.raises(ValueError, match="v must be nonzero"):
            narrow_resonance([0.0, 0.0])
