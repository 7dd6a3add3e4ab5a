"""Tests of bkmath.primes: von Mangoldt table, prime-bump potential, explicit formula."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from bkmath.primes import (
    GaussianTestFunction,
    default_prime_cutoff,
    explicit_formula,
    explicit_formula_arb,
    explicit_formula_float64,
    prime_bump_l1_norm,
    prime_bump_pairing,
    prime_bump_potential,
    prime_bump_potential_mp,
    von_mangoldt_table,
    zeta_zeros,
)


def _mangoldt_bruteforce(n: int) -> float:
    f = sympy.factorint(n)
    return math.log(next(iter(f))) if len(f) == 1 else 0.0


class TestVonMangoldt:
    @given(n_max=st.integers(1, 3000))
    @settings(max_examples=20)
    def test_against_factorint(self, n_max):
        ns, lam = von_mangoldt_table(n_max)
        ref = {n: _mangoldt_bruteforce(n) for n in range(2, n_max + 1)}
        assert ns.tolist() == [n for n, v in ref.items() if v > 0]
        np.testing.assert_allclose(lam, [ref[n] for n in ns.tolist()], rtol=1e-15)

    def test_chebyshev_psi(self):
        # ψ(x) = Σ_{n ≤ x} Λ(n) = log lcm(1..x)
        ns, lam = von_mangoldt_table(100)
        assert math.isclose(lam.sum(), math.log(math.lcm(*range(1, 101))), rel_tol=1e-13)

    def test_l1_norm_grows_like_2_sqrt_n(self):
        # PNT: Σ_{n≤N} Λ(n)/√n ~ 2√N; the ratio is within 10% at N = 10^5
        r = prime_bump_l1_norm(10**5) / (2 * math.sqrt(10**5))
        assert 0.9 < r < 1.1

    def test_bad_cutoff(self):
        with pytest.raises(TypeError, match="n_max"):
            von_mangoldt_table(10.0)
        with pytest.raises(ValueError, match="n_max"):
            von_mangoldt_table(0)
        with pytest.raises(ValueError, match="n_max"):
            von_mangoldt_table(10**9)


class TestPrimeBumpPotential:
    @given(
        x=st.floats(-1.0, 4.0),
        eps=st.floats(0.02, 0.5),
    )
    @settings(max_examples=25)
    def test_against_mpmath(self, x, eps):
        n_max = 60
        got = prime_bump_potential([x], eps, n_max=n_max)[0]
        ref = float(prime_bump_potential_mp(x, eps, n_max, dps=30))
        # a sum of at most 20 positive terms: relative round-off ~ 20 ulps; bumps farther than
        # 12 widths are skipped, each below e^-72 times its peak value
        ns, lam = von_mangoldt_table(n_max)
        peaks = float(np.sum(lam / np.sqrt(ns))) / math.sqrt(2 * math.pi * eps * eps)
        assert abs(got - ref) <= 1e-13 * ref + math.exp(-72) * peaks

    def test_bump_positions_and_weights(self):
        # p^k sits at k log p with weight log p · p^{-k/2} (not at log p as in the seeds)
        eps = 1e-3
        for n, p in [(8, 2), (9, 3), (25, 5)]:
            x = math.log(n)
            v = prime_bump_potential([x], eps, n_max=n)[0]
            peak = math.log(p) / math.sqrt(n) / math.sqrt(2 * math.pi * eps * eps)
            assert math.isclose(v, peak, rel_tol=1e-12)

    def test_shape_and_order_preserved(self, rng):
        x = rng.uniform(0, 3, (4, 5))
        v = prime_bump_potential(x, 0.1)
        assert v.shape == (4, 5)
        v2 = prime_bump_potential(x.ravel()[::-1], 0.1)
        np.testing.assert_array_equal(v.ravel()[::-1], v2)

    def test_default_cutoff_complete(self):
        x = np.linspace(0, 3, 301)
        eps = 0.1
        v = prime_bump_potential(x, eps)
        v_more = prime_bump_potential(x, eps, n_max=10 * default_prime_cutoff(3.0, eps))
        np.testing.assert_allclose(v, v_more, rtol=1e-15, atol=0)

    def test_bad_input(self):
        with pytest.raises(ValueError, match="eps"):
            prime_bump_potential([1.0], 0.0)
        with pytest.raises(TypeError, match="x"):
            prime_bump_potential([1 + 1j], 0.1)
        with pytest.raises(ValueError, match="x"):
            prime_bump_potential([np.nan], 0.1)
        with pytest.raises(ValueError, match="n_max"):
            prime_bump_potential([100.0], 0.1)  # default cutoff e^101 is refused
        assert prime_bump_potential([], 0.1).shape == (0,)


class TestGaussianTestFunction:
    @given(
        sigma=st.floats(0.2, 2.0),
        gamma0=st.floats(0.0, 5.0),
        eps=st.floats(0.0, 0.5),
        u=st.floats(-3.0, 3.0),
    )
    @settings(max_examples=10)
    def test_g_is_inverse_transform_of_h(self, sigma, gamma0, eps, u):
        t = GaussianTestFunction(sigma, gamma0, eps)
        with mpmath.workdps(25):
            ref = mpmath.quad(lambda r: t.h(r) * mpmath.cos(r * u), [-mpmath.inf, 0, mpmath.inf])
            ref /= 2 * mpmath.pi
            got = t.g(mpmath.mpf(u))
            # quad at 25 digits of a smooth Gaussian integrand
            assert abs(got - ref) < mpmath.mpf(10) ** -18

    def test_numpy_and_mpmath_agree(self):
        t = GaussianTestFunction(0.5, 3.0, 0.1)
        for r in (0.0, 1.3, 0.5j):
            assert abs(complex(t.h(r)) - complex(t.h(r, lib=np))) < 1e-14

    def test_bad_parameters(self):
        with pytest.raises(ValueError, match="sigma"):
            GaussianTestFunction(0.0)
        with pytest.raises(ValueError, match="eps"):
            GaussianTestFunction(1.0, 0.0, -0.1)
        with pytest.raises(ValueError, match="gamma0"):
            GaussianTestFunction(1.0, math.inf)


class TestExplicitFormula:
    def test_zeros(self):
        z = zeta_zeros(3, 20)
        with mpmath.workdps(30):
            assert abs(z[0] - mpmath.mpf("14.134725141734693790457251983562")) < 1e-18
        with pytest.raises(ValueError, match="n"):
            zeta_zeros(0)

    def test_formula_mpmath_and_float64(self):
        ef = explicit_formula(0.3, n_zeros=10, dps=20)
        # dps 20: quadrature and round-off ~ 1e-17 relative to the terms
        assert abs(ef.residual) <= 1e-15 * ef.scale + ef.zero_tail + ef.prime_tail
        ef64 = explicit_formula_float64(0.3, n_zeros=10, n_max=ef.n_max)
        assert abs(ef64.residual) <= 1e-12 * ef64.scale
        for term in ("zero_sum", "pole", "log_pi", "archimedean", "prime_sum"):
            assert abs(getattr(ef64, term) - getattr(ef, term)) <= 1e-12 * ef.scale

    def test_variants_break_it(self):
        ok = explicit_formula(0.3, n_zeros=10, dps=20)
        for variant in ("pole_sign_flipped", "no_archimedean", "seed_centres"):
            bad = explicit_formula(0.3, n_zeros=10, dps=20, variant=variant)
            assert abs(bad.residual) > 1e6 * (abs(ok.residual) + ok.zero_tail + ok.prime_tail)

    def test_tail_bound_covers_omitted_zeros(self):
        # with only the first zero the residual is visible, and the proved bound on the
        # omitted zeros must cover it (and not be uselessly wide)
        for k in (1, 2, 3):
            ef = explicit_formula(0.5, gamma0=14.134725, n_zeros=k, dps=20)
            assert abs(ef.residual) <= ef.zero_tail + ef.prime_tail + 1e-15
            assert ef.zero_tail < 1e4 * abs(ef.residual)
        assert abs(explicit_formula(0.5, gamma0=14.134725, n_zeros=1, dps=20).residual) > 1e-4

    def test_pairing_with_potential(self):
        pr = prime_bump_pairing(0.4, 0.1)
        ef = explicit_formula(0.4, eps=0.1, n_zeros=10, dps=20)
        zero_side = 0.5 * (ef.pole + ef.log_pi + ef.archimedean - ef.lhs)
        assert abs(pr["value"] - zero_side) < 1e-12

    def test_arb_balls_contain_mpmath_and_are_narrow(self):
        from flint import arb

        ef = explicit_formula(0.3, gamma0=2.0, n_zeros=10, dps=40)
        ball = explicit_formula_arb(0.3, gamma0=2.0, n_zeros=10, n_max=ef.n_max, prec=128)
        for term in ("zero_sum", "pole", "log_pi", "archimedean", "prime_sum"):
            b = arb(getattr(ball, term))
            x = getattr(ef, term)  # mpmath at 40 digits, stored rounded to float64
            # the ball is narrow and its centre is the mpmath value up to that rounding
            assert float(b.rad()) < 1e-15
            assert abs(float(b.mid()) - x) <= 2.0**-52 * max(1.0, abs(x))
        assert ball.consistent and not ball.violated
        assert ball.residual_abs_upper < 1e-30

    def test_arb_refutes_variants(self):
        for variant in ("pole_sign_flipped", "no_archimedean", "seed_centres"):
            ball = explicit_formula_arb(0.3, n_zeros=10, prec=64, variant=variant)
            assert ball.violated and not ball.consistent

    def test_bad_input(self):
        with pytest.raises(ValueError, match="prec"):
            explicit_formula_arb(0.3, prec=10)
        with pytest.raises(ValueError, match="n_zeros"):
            explicit_formula_arb(0.3, n_zeros=0)
        with pytest.raises(ValueError, match="variant"):
            explicit_formula_arb(0.3, variant="x")
        with pytest.raises(ValueError, match="variant"):
            explicit_formula(0.3, variant="nope")
        with pytest.raises(ValueError, match="dps"):
            explicit_formula(0.3, dps=5)
        with pytest.raises(ValueError, match="sigma"):
            explicit_formula(-1.0)
