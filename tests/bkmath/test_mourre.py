"""Tests of bkmath.mourre: commutator sections against independent references."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from bkmath.mourre import (
    _function_of_position,
    exact_constant,
    hermite_ladder,
    lattice_conjugate_operator,
    mourre_commutator,
    mourre_constant,
    mourre_symbol,
)

EPS = np.finfo(np.float64).eps


def _lattice_reference(size: int, v: np.ndarray | None, scale: float, pad: int = 10):
    """Commutator of truncations on a much larger box, compressed: equals the compression of
    the infinite commutator once ``pad >= 1`` (H and A are tridiagonal)."""
    big = size + 2 * pad
    half = (big - 1) // 2
    sites = np.arange(-half, half + 1, dtype=float)
    vv = np.zeros(big)
    if v is not None:
        start = (big - 1) // 2 - (v.size - 1) // 2
        vv[start : start + v.size] = v
    h = np.diag(2 + vv) - np.eye(big, k=1) - np.eye(big, k=-1)
    a = lattice_conjugate_operator(sites, scale)
    comm = 1j * (h @ a - a @ h)
    inner = slice(pad, pad + size)
    return comm[inner, inner]


class TestMourreCommutator:
    @given(
        half=st.integers(2, 30),
        vlen=st.integers(0, 3),
        scale=st.floats(0.1, 10.0),
        seed=st.integers(0, 2**16),
    )
    def test_lattice_matches_large_box(self, half, vlen, scale, seed):
        size = 2 * half + 1 + 2 * vlen  # odd, with room for v
        v = np.random.default_rng(seed).uniform(-2, 2, 2 * vlen + 1) if vlen else None
        d = mourre_commutator("lattice", size, v=v, scale=scale)
        ref = _lattice_reference(size, v, scale)
        # entries are O(scale · size); products of O(1) matrices: a few ulps of that
        tol = 16 * EPS * scale * size
        assert np.abs(d.commutator - ref).max() <= tol
        np.testing.assert_allclose(d.commutator, d.commutator.T.conj(), atol=tol)

    def test_lattice_free_symbol_in_interior(self):
        d = mourre_commutator("lattice", 41)
        h = d.h
        f = h @ (4 * np.eye(41) - h)
        # away from the two corner sites the section is f(H0) exactly (integers)
        assert np.array_equal(d.commutator[1:-1, 1:-1], f[1:-1, 1:-1])
        assert d.commutator[0, 0] == f[0, 0] - 1  # corner term P H Q H P

    def test_naive_trace_zero_and_edge(self):
        # tr of a commutator of matrices vanishes: the edge term carries -tr f(H0)
        d = mourre_commutator("momentum", 30)
        assert abs(np.trace(d.naive)) < 1e-10
        np.testing.assert_allclose(d.commutator, np.eye(30), atol=1e-12)
        edge = d.edge_term
        assert abs(edge[-1, -1] + 30) < 1e-10  # I - n e_n e_nᵀ
        assert np.abs(edge[:-1, :-1]).max() < 1e-12

    @pytest.mark.parametrize("model", ["momentum", "continuum"])
    def test_hermite_against_mpmath(self, model):
        n = 12
        d = mourre_commutator(model, n)
        with mpmath.workdps(40):
            big = n + 6
            a = mpmath.zeros(big, big)
            for k in range(1, big):
                a[k - 1, k] = mpmath.sqrt(k)
            x = (a + a.T) / mpmath.sqrt(2)
            p = mpmath.mpc(0, 1) * (a.T - a) / mpmath.sqrt(2)
            h0, aa = (p, x) if model == "momentum" else (p * p, (x * p + p * x) / 2)
            c = mpmath.mpc(0, 1) * (h0 * aa - aa * h0)
            ref = np.array([[complex(c[i, j]) for j in range(n)] for i in range(n)])
        # entries O(n): round-off of a few ulps
        assert np.abs(d.commutator - ref).max() < 64 * EPS * n

    @given(length=st.floats(0.5, 3.0), n=st.integers(3, 40))
    @settings(max_examples=20)
    def test_dilation_invariance_of_a(self, length, n):
        # A = (xp + px)/2 commutes with dilations: the section does not depend on L
        d1 = mourre_commutator("continuum", n)
        d2 = mourre_commutator("continuum", n, length=length)
        np.testing.assert_allclose(d2.a, d1.a, atol=1e-12 * n)
        np.testing.assert_allclose(d2.commutator, 2 * d2.h, atol=1e-12 * n / length**2)

    def test_potential_term_continuum(self):
        # [V, iA] = -x V'(x), both sides by the same quadrature
        v = lambda x: -2 * np.exp(-(x**2))  # noqa: E731
        d0 = mourre_commutator("continuum", 40)
        d = mourre_commutator("continuum", 40, v=v)
        xdv = _function_of_position(lambda x: 4 * x * x * np.exp(-(x**2)), 2 * 40 + 80, 40)
        np.testing.assert_allclose(d.commutator - d0.commutator, -xdv, atol=1e-11)

    def test_momentum_potential_commutes(self):
        d = mourre_commutator("momentum", 30, v=lambda x: np.cos(x))
        np.testing.assert_allclose(d.commutator, np.eye(30), atol=1e-12)

    def test_bad_input(self):
        with pytest.raises(ValueError, match="model"):
            mourre_commutator("cubic", 11)
        with pytest.raises(TypeError, match="model"):
            mourre_commutator(3, 11)
        with pytest.raises(ValueError, match="odd"):
            mourre_commutator("lattice", 10)
        with pytest.raises(TypeError, match="size"):
            mourre_commutator("lattice", 11.0)
        with pytest.raises(ValueError, match="size"):
            mourre_commutator("lattice", 1)
        with pytest.raises(ValueError, match="scale"):
            mourre_commutator("lattice", 11, scale=0.0)
        with pytest.raises(ValueError, match="v"):
            mourre_commutator("lattice", 11, v=np.ones(10))
        with pytest.raises(ValueError, match="NaN"):
            mourre_commutator("lattice", 11, v=[np.nan])
        with pytest.raises(TypeError, match="v"):
            mourre_commutator("continuum", 11, v=np.ones(3))
        with pytest.raises(ValueError, match="NaN or Inf"):
            mourre_commutator("continuum", 11, v=lambda x: np.full_like(x, np.inf))
        with pytest.raises(ValueError, match="length"):
            mourre_commutator("continuum", 11, length=-1.0)


class TestQuadrature:
    @given(m=st.integers(20, 300), k=st.integers(1, 20))
    @settings(max_examples=20)
    def test_polynomial_exact(self, m, k):
        # x² = (a + a†)²/2: Gauss–Hermite is exact for polynomials, in the leading block
        k = min(k, m - 3)
        a = hermite_ladder(k + 4)
        x = (a + a.T) / math.sqrt(2)
        ref = (x @ x)[:k, :k]
        got = _function_of_position(lambda t: t * t, m, k)
        assert np.abs(got - ref).max() < 1e-12 * max(1, k)

    @given(m=st.integers(20, 400), width=st.floats(0.3, 3.0))
    @settings(max_examples=20)
    def test_against_golub_welsch(self, m, width):
        # the recurrence equals the eigenvector route (reference) to round-off
        v = lambda x: np.exp(-((x / width) ** 2))  # noqa: E731
        k = min(30, m)
        off = np.sqrt(np.arange(1, m) / 2.0)
        nodes, q = scipy.linalg.eigh_tridiagonal(np.zeros(m), off)
        ref = (q[:k] * v(nodes)) @ q[:k].T
        got = _function_of_position(v, m, k)
        assert np.abs(got - ref).max() < 1e-12 * math.sqrt(m)


class TestMourreConstant:
    @given(
        a=st.floats(-1.0, 5.0),
        w=st.floats(0.01, 3.0),
        model=st.sampled_from(["lattice", "continuum", "momentum"]),
    )
    def test_exact_constant_against_grid(self, a, w, model):
        b = a + w
        lo, hi = {"lattice": (0, 4), "continuum": (0, np.inf), "momentum": (-np.inf, np.inf)}[model]
        grid = np.linspace(max(a, lo), min(b, hi), 20001) if max(a, lo) <= min(b, hi) else []
        c = exact_constant(model, (a, b))
        if len(grid) == 0:
            assert c == math.inf
        else:
            ref = mourre_symbol(model)(grid).min()
            # the grid contains both endpoints and f is concave/linear: exact up to round-off
            assert abs(c - ref) <= 1e-12 * max(1.0, abs(ref))

    @given(s=st.floats(0.05, 20.0))
    @settings(max_examples=10)
    def test_rescaling_rescales_c(self, s):
        e1 = mourre_constant("lattice", (0.5, 3.5), sizes=(41, 81))
        es = mourre_constant("lattice", (0.5, 3.5), sizes=(41, 81), scale=s)
        assert math.isclose(es.c, s * e1.c, rel_tol=1e-14)
        for r1, rs in zip(e1.sizes, es.sizes, strict=True):
            assert math.isclose(rs.mu_min, s * r1.mu_min, rel_tol=1e-10)
            assert rs.count_below == r1.count_below

    def test_interior_interval_holds_threshold_fails(self):
        v = np.array([0.5, -1.0, 0.3])
        good = mourre_constant("lattice", (0.5, 3.5), v=v, sizes=(51, 101, 201))
        assert good.holds and good.c == 1.75
        assert all(r.c_hat >= good.c - 1e-9 for r in good.sizes)
        bad = mourre_constant("lattice", (-0.3, 0.5), v=v, sizes=(51, 101, 201), c_claim=0.2)
        assert not bad.holds
        counts = [r.count_below for r in bad.sizes]
        assert counts[0] < counts[1] < counts[2]

    def test_virial_zero_for_naive(self):
        est = mourre_constant("lattice", (0.5, 3.5), sizes=(51, 101), naive=True)
        assert all(r.naive_diag_max < 1e-10 for r in est.sizes)
        assert not est.holds  # the edge term's norm doubles with the box

    def test_line_models(self):
        est = mourre_constant("continuum", (0.5, 2.0), sizes=(30, 60), length=3.0)
        assert est.holds and est.c == 1.0
        est = mourre_constant("momentum", (-5.0, 5.0), sizes=(20, 40))
        assert est.holds and est.c == 1.0
        assert all(abs(r.mu_min - 1) < 1e-10 for r in est.sizes)

    def test_bad_input(self):
        with pytest.raises(ValueError, match="interval"):
            mourre_constant("lattice", (1.0, 0.5))
        with pytest.raises(ValueError, match="interval"):
            mourre_constant("lattice", (1.0, 2.0, 3.0))
        with pytest.raises(ValueError, match="sizes"):
            mourre_constant("lattice", (1.0, 2.0), sizes=(51,))
        with pytest.raises(ValueError, match="sizes"):
            mourre_constant("lattice", (1.0, 2.0), sizes=(101, 51))
        with pytest.raises(ValueError, match="delta"):
            mourre_constant("lattice", (1.0, 2.0), sizes=(21, 41), delta=-1.0)


class TestHonestSlack:
    """Issue 16: the slack is the numerical error of the count, not a fraction of c."""

    def test_over_claimed_constant_is_refuted(self):
        est = mourre_constant("lattice", (1.9, 2.1), v=[0.3, -0.2], c_claim=4.2)
        assert not est.holds  # λ(4 − λ) ≤ 4 < 4.2 on the whole band
        counts = [r.count_below for r in est.sizes]
        assert counts[-1] > counts[-2]  # the count below 4.2 − δ grows with the box

    def test_true_constant_still_holds_with_numerical_slack(self):
        est = mourre_constant("lattice", (1.9, 2.1), v=[0.3, -0.2])
        assert est.holds and abs(est.c - 1.9 * 2.1) < 1e-15
        assert 0 < est.delta < 1e-6 * est.c  # round-off and rank threshold only

