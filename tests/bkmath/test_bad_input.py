"""Bad and extreme input across the public API of bkmath (issue 16).

Two parts:

* regression tests, one per reproducer of issue 16, each checked against an mpmath (or
  closed-form) reference where the answer is finite, or against the ValueError that names the
  argument where the input is outside the domain;
* one hypothesis property over every name of ``bkmath.__all__``: fed extreme values (±1e±300,
  ±1.7e308, subnormals, 0, NaN, ±inf, wrong dtypes and shapes, N = 0 and 1, η = 1e-300), each
  function returns finite values or raises ValueError/TypeError — never a silent NaN/inf and
  never LinAlgError/ZeroDivisionError/OverflowError/FloatingPointError.
  ``BKMATH_BAD_INPUT_EXAMPLES`` sets the examples per property (default 25, fast; a thorough
  run: ``BKMATH_BAD_INPUT_EXAMPLES=10000``).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bkmath
from bkmath import fredholm
from bkmath.operators import JacobiOperator
from bkmath.reference.determinant import log_det_mp
from bkmath.reference.resolvent import resolvent_diagonal_mp
from bkmath.reference.scattering import scattering_matrix_mp

EPS = np.finfo(np.float64).eps


def _mp_matrix(M) -> np.ndarray:
    return np.array([[complex(M[i, j]) for j in range(M.cols)] for i in range(M.rows)])


# ------------------------------------------------------------------------------------------
# regression tests: one per reproducer of issue 16
# ------------------------------------------------------------------------------------------


class TestScatteringMatrixOverflow:
    """Reproducer 1: transfer products overflowed once log|1/t| > 709 (NaN)."""

    @pytest.mark.parametrize(
        "v, lam",
        [(np.full(540, 3.0), 1.0), (np.full(60, 1e6), 1.0), (np.full(3, 1e200), 2.0)],
        ids=["barrier540", "1e6x60", "1e200x3"],
    )
    def test_opaque_barrier_gives_t_zero_r_unimodular(self, v, lam):
        S = bkmath.scattering_matrix(v, lam)
        assert np.all(np.isfinite(S))
        with mpmath.workdps(1500):  # |1/t| up to e^{1400}: enough digits for both t and r
            ref = _mp_matrix(scattering_matrix_mp(list(v), lam, dps=1500))
        # r, r' are ratios (relative accuracy ~ N eps); t is below 1e-300 here
        assert np.max(np.abs(S - ref)) <= 100 * EPS * v.size
        assert abs(abs(S[1, 0]) - 1.0) <= 100 * EPS * v.size

    def test_moderate_potential_unchanged_against_mpmath(self):
        rng = np.random.default_rng(3)
        v = rng.uniform(-2, 2, 9)
        for lam in (0.3, 1.7, 2.0, 3.6):
            ref = _mp_matrix(scattering_matrix_mp(list(v), lam, dps=50))
            assert np.max(np.abs(bkmath.scattering_matrix(v, lam) - ref)) <= 100 * EPS * v.size


class TestScatteringMatrixThreshold:
    """Reproducer 2: λ = 1e-300 raised numpy's LinAlgError (θ = arccos(1 − λ/2) rounded to 0)."""

    def test_lambda_near_threshold_is_finite_and_right(self):
        S = bkmath.scattering_matrix([1.0], 1e-300)
        ref = _mp_matrix(scattering_matrix_mp([1.0], 1e-300, dps=700))
        assert np.max(np.abs(S - ref) / np.maximum(np.abs(ref), 1e-300)) <= 10 * EPS

    def test_lambda_near_upper_threshold(self):
        lam = 4.0 - 4e-16
        S = bkmath.scattering_matrix([1.0, -0.5], lam)
        ref = _mp_matrix(scattering_matrix_mp([1.0, -0.5], lam, dps=700))
        # conditioning: the plane waves e^{±iθn} are nearly parallel (sin θ = 2e-8), so the
        # rounding of their O(1) entries costs ~ eps/sin θ ~ 1e-8 relative (the u-recursion
        # of the old code had the same condition number)
        sin_th = math.sqrt(lam * (4 - lam)) / 2
        assert np.all(np.isfinite(S))
        assert np.max(np.abs(S - ref)) <= 100 * EPS / sin_th

    def test_threshold_itself_is_a_value_error(self):
        for lam in (0.0, 4.0, -1e-300):
            with pytest.raises(ValueError, match="lam must lie in the open band"):
                bkmath.scattering_matrix([1.0], lam)


class TestLogDetHuge:
    """Reproducer 3: log_det with hopping 1e300 returned inf+nanj (b c overflowed)."""

    def test_hopping_1e300_against_mpmath(self):
        for n in (2, 3, 5):
            op = JacobiOperator(np.zeros(n), np.full(n - 1, 1e300))
            got = bkmath.log_det(op, 1j)
            ref = complex(log_det_mp(op, 1j, dps=60))
            # Re: log 1e600 = 1381.55; Im: the documented branch Σ Arg d_i (= -π for n = 2;
            # the "+iπ" is the principal log, not this branch)
            assert abs(got - ref) <= 100 * EPS * abs(ref)

    def test_sturm_count_with_hopping_1e300(self):
        op = JacobiOperator(np.zeros(3), [1e300, 1e300])  # eigenvalues 0, ±√2·1e300
        got = bkmath.eigenvalue_count(op, [-1e301, -0.5, 0.5, 1e301])
        assert got.tolist() == [0, 1, 2, 3]


class TestFredholmDetOverflow:
    """Reproducer 4: det(I + K) = 1e600 came back as inf+nanj."""

    def test_overflow_is_a_value_error_and_the_log_is_right(self):
        K = np.diag([1e300, 1e300])
        with pytest.raises(ValueError, match=r"det\(I \+ K\).*overflows float64"):
            bkmath.fredholm_det(K)
        ld = fredholm.log_fredholm_det(K)
        assert abs(ld - 2 * math.log1p(1e300)) <= 10 * EPS * abs(ld)

    def test_det2_in_the_log_domain(self):
        # det(I + K) e^{-tr K} = (1 + 800) e^{-800}: both factors out of range, det₂ is not
        K = np.diag([800.0])
        with mpmath.workdps(30):
            ref = float(801 * mpmath.exp(-800))
        assert abs(bkmath.det2(K) - ref) <= 10 * EPS * ref


class TestFredholmDetHugeCancellingEntries:
    """Found by the property at 10⁴ examples: ``fredholm_det([[1e300, 2**53, 0],
    [1e300, 2**53 - 1, 0], [0, 1.1e-308, 0]])`` returned nan+nanj — an exactly zero pivot
    of the complex LU gave numpy's slogdet the sign 0/|0|."""

    K = [[1e300, 2.0**53, 0.0], [1e300, 2.0**53 - 1, 0.0], [0.0, 1.1e-308, 0.0]]

    def test_fredholm_det_1e300_2pow53_is_the_determinant_of_fl_i_plus_k(self):
        got = bkmath.fredholm_det(self.K)
        assert got == 0j
        assert bkmath.det2(self.K) == 0j
        with pytest.raises(ValueError, match="I \\+ K is singular"):
            fredholm.log_fredholm_det(self.K)
        # mpmath on I + K as formed in float64 (1 + 1e300 rounds to 1e300): exactly singular
        A = np.eye(3) + np.array(self.K)
        with mpmath.workprec(4200):
            assert mpmath.det(mpmath.matrix(A.tolist())) == 0
            # the unrounded I + K has det 2^53, which no float64 LU can see; the answer is
            # within the backward-error bound 4·n·eps·Σ|a_ij||C_ij| (C the cofactors)
            exact = mpmath.matrix(self.K) + mpmath.eye(3)
            assert abs(mpmath.det(exact) - 2**53) < 1e-100
            Am = mpmath.matrix(A.tolist())
            cof = sum(
                abs(Am[i, j]) * abs(mpmath.det(_minor(Am, i, j)))
                for i in range(3)
                for j in range(3)
            )
            assert abs(got - mpmath.det(exact)) <= 4 * 3 * EPS * cof

    def test_zero_pivot_real_and_complex_agree(self):
        # the real LU gave sign 1 with log|det| = −inf: both are now "singular"
        for K in (np.array(self.K), np.array(self.K, dtype=complex)):
            assert bkmath.fredholm_det(K) == 0j

    def test_overflow_inside_the_lu_is_rescaled(self):
        # u22 = 1.7e308 + 1.7e308 overflowed in the elimination (log|det| = inf before)
        M = np.array([[1.7e308, 1e300], [-1.7e308, 1.7e308]])
        ld = fredholm.log_fredholm_det(M - np.eye(2))
        with mpmath.workdps(40):
            ref = mpmath.log(mpmath.det(mpmath.matrix(M.tolist())))
        assert abs(ld - complex(ref)) <= 10 * EPS * abs(complex(ref))

    def test_badly_scaled_but_well_conditioned_is_unchanged(self):
        # I + K = D B D' with D = diag(2^900, 1, 2^-900), D' reversed: det = det B = 18
        B = np.array([[2.0, 1, 0], [1, 3, 1], [0, 1, 4]])
        d = np.array([2.0**900, 1.0, 2.0**-900])
        M = d[:, None] * B * d[::-1][None, :]
        assert abs(bkmath.fredholm_det(M - np.eye(3)) - 18.0) <= 10 * EPS * 18.0


def _minor(M, i, j):
    n = M.rows
    return mpmath.matrix([[M[r, c] for c in range(n) if c != j] for r in range(n) if r != i])

class TestSchattenNormOverflow:
    """Reproducer 5: ‖full((2, 2), 1e300)‖_S2 = 2e300 came back as inf."""

    @pytest.mark.parametrize("p, ref", [(2, 2e300), (1, 2e300), (np.inf, 2e300)])
    def test_huge_entries(self, p, ref):
        got = bkmath.schatten_norm(np.full((2, 2), 1e300), p)
        assert abs(got - ref) <= 10 * EPS * ref

    def test_tiny_entries_do_not_underflow(self):
        got = bkmath.schatten_norm(np.full((2, 2), 1e-200), 2)
        assert abs(got - 2e-200) <= 10 * EPS * 2e-200

    def test_overflowing_norm_is_a_value_error(self):
        with pytest.raises(ValueError, match="overflows float64"):
            bkmath.schatten_norm(np.full((4, 4), 1.7e308), 2)


class TestPerturbationDeterminantLargePotential:
    """Reproducer 6: v = 1e160 gave a false "zero pivot" (θ_N overflow not detected)."""

    @pytest.mark.parametrize("height", [1e150, 1e160, 1e200, 1e300])
    def test_against_mpmath(self, height):
        v = np.full(2, height)
        got = fredholm.log_perturbation_determinant(v, 1j)
        H = JacobiOperator.free_plus(v, boundary="transparent")
        H0 = JacobiOperator.free(2, boundary="transparent")
        ref = complex(log_det_mp(H, 1j, dps=60)) - complex(log_det_mp(H0, 1j, dps=60))
        assert abs(got - ref) <= 100 * EPS * abs(ref)


class TestJostDeterminantValidatesPotential:
    """Reproducer 7: v(x) = NaN gave NaN instead of an error naming v."""

    def test_nan_potential(self):
        with pytest.raises(ValueError, match=r"v\(x\) contains NaN or Inf"):
            bkmath.jost_determinant(lambda x: np.nan * x, 1j, (0.0, 1.0))

    def test_complex_potential_and_non_callable(self):
        with pytest.raises(TypeError, match=r"v\(x\) must be a real"):
            bkmath.jost_determinant(lambda x: 1j * x, 1j, (0.0, 1.0))
        with pytest.raises(TypeError, match="v must be a callable"):
            bkmath.jost_determinant(np.ones(3), 1j, (0.0, 1.0))

    def test_bad_interval(self):
        with pytest.raises(ValueError, match="interval"):
            bkmath.jost_determinant(np.cos, 1j, (0.0, np.inf))


class TestPrimeBumpExtremes:
    """Reproducer 8: x = 800 raised OverflowError, eps = 1e-300 ZeroDivisionError."""

    def test_default_cutoff_beyond_the_sieve_names_x(self):
        with pytest.raises(ValueError, match="x, eps: the default cutoff"):
            bkmath.prime_bump_potential([800.0], 0.1)

    def test_explicit_cutoff_far_point(self):
        v = bkmath.prime_bump_potential([800.0], 0.1, n_max=100)
        assert v.tolist() == [0.0]  # every bump is > 7000 widths away

    def test_tiny_eps(self):
        assert bkmath.prime_bump_potential([1.0], 1e-300).tolist() == [0.0]
        # at a bump centre the height Λ(2) 2^{-1/2} / (√(2π) eps) is finite
        x = math.log(2.0)
        got = bkmath.prime_bump_potential([x], 1e-300, n_max=2)[0]
        ref = math.log(2) / math.sqrt(2) / (math.sqrt(2 * math.pi) * 1e-300)
        assert abs(got - ref) <= 10 * EPS * ref

    def test_very_negative_x(self):
        assert bkmath.prime_bump_potential([-1e300], 1.0).tolist() == [0.0]


class TestSpectralShiftAtEigenvalue:
    """Reproducer 9: λ = 3 (an eigenvalue of H = [3]) returned 1.0."""

    def test_eigenvalue_of_h(self):
        with pytest.raises(ValueError, match="lam = 3.0 is .* an eigenvalue of H"):
            bkmath.spectral_shift([1.0], 3.0)

    def test_eigenvalue_of_h0(self):
        with pytest.raises(ValueError, match="eigenvalue of H0"):
            bkmath.spectral_shift([1.0], 2.0)  # H0 = [2]

    def test_off_spectrum_unchanged(self):
        assert bkmath.spectral_shift([1.0], 2.5) == 1.0


class TestResolventDiagonalHugeHopping:
    """Reproducer 10: hopping 1e300 blamed a "singular H − z"."""

    @pytest.mark.parametrize("side", ["both", "left", "right"])
    @pytest.mark.parametrize("n", [2, 3, 4])
    def test_against_mpmath(self, side, n):
        op = JacobiOperator(np.zeros(n), np.full(n - 1, 1e300))
        got = bkmath.resolvent_diagonal(op, 1j, side=side)
        ref = resolvent_diagonal_mp(op, 1j, side=side, dps=60).astype(np.complex128)
        # entries are either O(1) (e.g. G_11 = i/2 for n = 3) or below 1e-300 (rounded to 0)
        assert np.max(np.abs(got - ref)) <= 100 * EPS * max(1.0, np.abs(ref).max())

    def test_singular_still_raises(self):
        with pytest.raises(ValueError, match="vanished or overflowed"):
            bkmath.resolvent_diagonal(JacobiOperator([1j], []), 1j)


class TestFreeResolventFarSites:
    """Property failure at 1500 examples: free_resolvent(1.7e308, 0, 1e-300j) gave nan+infj
    (numpy's w**d with d = 1.7e308); w^d is now e^{iθd} as modulus times phase (bkmath.free)."""

    def test_far_site_decays_to_zero(self):
        assert bkmath.free_resolvent(1.7e308, 0, 1e-300j) == 0

    def test_decay_where_abs_w_rounds_to_one(self):
        # z = 2 + 1e-300 i: |w| = 1 - 5e-301 is 1.0 in float64, yet |w|^d = e^{-1} at d = 2e300
        # (|s| = 2: |G0| = e^{-1}/2); log|w| from |w| would give 1/2
        got = abs(bkmath.free_resolvent(2e300, 0, 2 + 1e-300j))
        assert abs(got - math.exp(-1) / 2) <= 10 * EPS

    @pytest.mark.parametrize("z", [1 + 1j, 2 + 1e-300j, 3.9 + 1e-3j, -5 + 1e-8j, 1e6 + 1j])
    @pytest.mark.parametrize("d", [0, 1, 7, 1000])
    def test_moderate_sites_against_mpmath(self, d, z):
        from bkmath.reference.resolvent import free_resolvent_mp

        ref = complex(free_resolvent_mp(d, 0, z, dps=60))
        got = bkmath.free_resolvent(d, 0, z)
        # conditioning of w^d: relative error ~ d eps
        assert abs(got - ref) <= 10 * EPS * (d + 1) * abs(ref)

    def test_undecayed_phase_beyond_float64_names_m_n(self):
        with pytest.raises(ValueError, match="m, n: the phase"):
            bkmath.free_resolvent(1.7e308, -1.7e308, 2.0, boundary=True)


class TestBirmanSchwingerOverflow:
    """Property failure at 1500 examples: birman_schwinger([1e300], 1e-300j) gave inf (and the
    continuum model with weight 1e300 NaN): the true |K| = |v| |G0| ~ 5e449 overflows."""

    def test_overflowing_k_names_v(self):
        with pytest.raises(ValueError, match=r"v: K\(z\) .* overflows float64"):
            bkmath.birman_schwinger([1e300], 1e-300j)
        with pytest.raises(ValueError, match=r"v: K\(z\) .* overflows float64"):
            bkmath.birman_schwinger([1e300], 1j, model="continuum", nodes=[1e300],
                                    weights=[1e300])

    def test_operator_form_keeps_the_factors(self):
        op = bkmath.birman_schwinger([1e300], 1e-300j, form="operator")
        assert np.isfinite(op.c) and np.all(np.isfinite(op.left))
        with pytest.raises(ValueError, match="overflows float64"):
            bkmath.schatten_norm(op, 2)

    def test_scaled_entries_huge_and_tiny_potential(self):
        # K_01 = G0(0, 1) although |v_0| = 1e300 and |v_1| = 1e-300 (sqrt products scaled)
        z = 1j
        K = bkmath.birman_schwinger([1e300, 1e-300], z)
        g00 = bkmath.free_resolvent(0, 0, z)
        g01 = bkmath.free_resolvent(0, 1, z)
        ref = np.array([[1e300 * g00, g01], [g01, 1e-300 * g00]])
        assert np.all(np.abs(K - ref) <= 10 * EPS * np.abs(ref))

    def test_lattice_exponent_keeps_the_decay(self):
        # sites 0 and 2e300 at z = 2 + 1e-300 i: |K_01| = |G0(0, 2e300)| = e^{-1}/2 (log w
        # lost Re L = -Im θ, giving 1/2)
        K = bkmath.birman_schwinger([1.0, 1.0], 2 + 1e-300j, nodes=[0.0, 2e300])
        assert abs(abs(K[0, 1]) - math.exp(-1) / 2) <= 10 * EPS

    def test_node_spread_beyond_float64(self):
        with pytest.raises(ValueError, match="nodes: the spread"):
            bkmath.birman_schwinger([1.0, 1.0], 1j, model="continuum",
                                    nodes=[-1.7e308, 1.7e308], weights=[1.0, 1.0])


class TestMourreCommutatorOverflowingScale:
    """Property failure at 1500 examples: mourre_commutator("lattice", 5, scale=1.7e308)
    returned an all-NaN commutator (s·A overflowed inside the products)."""

    def test_overflowing_scale_names_scale(self):
        for model in ("lattice", "momentum", "continuum"):
            size = 5
            with pytest.raises(ValueError, match=r"scale = 1.7e\+308: s·A or \[H, i sA\]"):
                bkmath.mourre_commutator(model, size, scale=1.7e308)

    def test_large_finite_scale_is_linear(self):
        d1 = bkmath.mourre_commutator("lattice", 5, v=[0.3, -0.2, 0.1])
        ds = bkmath.mourre_commutator("lattice", 5, v=[0.3, -0.2, 0.1], scale=2.0**900)
        assert np.array_equal(ds.commutator, 2.0**900 * d1.commutator)
        assert np.array_equal(ds.a, 2.0**900 * d1.a)
        assert np.array_equal(ds.h, d1.h) and ds.scale == 2.0**900


class TestCertificateFromBoundNonFinite:
    """Certificate.from_bound raised OverflowError for a complex bound of size ~1e308 (abs of
    the difference) and marked value = -inf <= bound as verified. A non-finite value, bound or
    tolerance is where a float64 computation overflowed, not a measurement: inconclusive."""

    @pytest.mark.parametrize(
        "value, sense",
        [(v, s) for v in (-math.inf, math.inf, math.nan) for s in ("<=", ">=", "==")]
        + [(complex(1, math.inf), "=="), (complex(math.nan, 0), "==")],
    )
    def test_non_finite_value_is_inconclusive(self, value, sense):
        cert = bkmath.Certificate.from_bound("t", "s", value=value, bound=0.0, sense=sense,
                                             tol=1.0)
        assert cert.status is bkmath.Status.INCONCLUSIVE
        assert cert.value is value  # recorded as given

    def test_minus_inf_below_bound_is_not_verified(self):
        cert = bkmath.Certificate.from_bound("t", "err <= tol", value=-math.inf, bound=1e-12)
        assert cert.status is bkmath.Status.INCONCLUSIVE
        assert cert.counterexample is None

    def test_non_finite_bound_or_tol(self):
        for kw in ({"bound": math.inf}, {"bound": -math.inf, "sense": ">="},
                   {"bound": 0.0, "sense": "==", "tol": math.inf}):
            cert = bkmath.Certificate.from_bound("t", "s", value=1.0, **kw)
            assert cert.status is bkmath.Status.INCONCLUSIVE

    def test_complex_near_overflow(self):
        big = 1.7e308 + 1.7e308j
        # |value - bound| = 0: verified, no OverflowError from abs()
        cert = bkmath.Certificate.from_bound("t", "s", value=big, bound=big, sense="==",
                                             tol=1e-12)
        assert cert.status is bkmath.Status.VERIFIED and cert.margin == 1e-12
        # |big| ~ 2.4e308 exceeds float64: truly larger than tol, refuted (both finite)
        cert = bkmath.Certificate.from_bound("t", "s", value=big, bound=0.0, sense="==",
                                             tol=1.0)
        assert cert.status is bkmath.Status.REFUTED and cert.margin == -math.inf

    def test_complex_inequality_is_a_type_error(self):
        with pytest.raises(TypeError, match="value, bound: sense '<=' compares real numbers"):
            bkmath.Certificate.from_bound("t", "s", value=1 + 1j, bound=2.0)

    def test_finite_verdicts_unchanged(self):
        assert bkmath.Certificate.from_bound("t", "s", value=3e-13, bound=1e-12).status is (
            bkmath.Status.VERIFIED)
        assert bkmath.Certificate.from_bound("t", "s", value=1.5, bound=1.0, sense="==",
                                             tol=0.1).status is bkmath.Status.REFUTED


# ------------------------------------------------------------------------------------------
# the property: every public name, extreme input
# ------------------------------------------------------------------------------------------

N_EXAMPLES = int(os.environ.get("BKMATH_BAD_INPUT_EXAMPLES", "25"))
PROFILE = settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

EXTREMES = [0.0, -0.0, 1.0, -3.0, 2.0, 4.0, 1e-300, -1e-300, 5e-324, 1e300, -1e300,
            1.7e308, -1.7e308, np.nan, np.inf, -np.inf]
reals = st.one_of(st.sampled_from(EXTREMES), st.floats(allow_nan=True, allow_infinity=True))
moderate = st.floats(-5, 5, allow_nan=False)
real_lists = st.lists(reals, min_size=0, max_size=4)
bad_objects = st.sampled_from(["1j", b"x", None, [[1.0], [1.0, 2.0]], object(), {"a": 1}])
complexes = st.builds(complex, reals, reals)
spectral = st.one_of(
    complexes,
    st.builds(complex, moderate, st.sampled_from([1e-300, 1e-12, 1.0, 1e300])),
    st.sampled_from([1j, 1e-300j, 2.0, 1e-300, 4.0 - 4e-16, 2 + 1e-300j]),
    bad_objects,
)
arrays = st.one_of(real_lists, st.lists(moderate, min_size=1, max_size=4), bad_objects,
                   st.just(np.zeros((2, 2))), st.just(np.array([1 + 1j])))
matrices = st.one_of(
    st.integers(0, 3).flatmap(
        lambda n: st.lists(st.lists(reals, min_size=n, max_size=n), min_size=n, max_size=n)
    ),
    st.just(np.zeros((2, 3))),
    bad_objects,
)

# exceptions a caller may see: a ValueError or TypeError that explains the argument
ALLOWED = (ValueError, TypeError)
FORBIDDEN = (np.linalg.LinAlgError, ZeroDivisionError, OverflowError, FloatingPointError,
             ArithmeticError, IndexError, KeyError, AttributeError, RuntimeError)


def _finite(x, *, allow_neg_inf_real=False) -> bool:
    """All numbers inside a result are finite (recursing into containers and dataclasses)."""
    if isinstance(x, (bool, str, enum.Enum)) or x is None:
        return True
    if isinstance(x, (int, float, complex, np.number, np.ndarray)):
        a = np.asarray(x)
        if a.dtype.kind not in "biufc":
            return True
        if allow_neg_inf_real and a.dtype.kind == "c":  # log_det: log 0 = -inf documented
            re_ok = np.isfinite(a.real) | (a.real == -np.inf)
            return bool(np.all(re_ok & np.isfinite(a.imag)))
        return bool(np.all(np.isfinite(a)))
    if isinstance(x, (list, tuple)):
        return all(_finite(y) for y in x)
    if dataclasses.is_dataclass(x):
        return True  # checked field by field by the callers that return one
    return True


def _call(f, *args, allow_neg_inf_real=False, **kw):
    """Call f; it must return finite values or raise ValueError/TypeError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RuntimeWarnings of numpy on the way are fine
        try:
            out = f(*args, **kw)
        except ALLOWED as exc:
            assert str(exc), f"{f.__name__}: an empty error message"
            return None
        except FORBIDDEN as exc:  # pragma: no cover (the failure the property looks for)
            pytest.fail(f"{f.__name__}{args!r:.200} raised {type(exc).__name__}: {exc}")
    assert _finite(out, allow_neg_inf_real=allow_neg_inf_real), (
        f"{f.__name__}{args!r:.200} {kw} returned a non-finite value: {out!r:.300}"
    )
    return out


def _op(a, b):
    return _call(JacobiOperator, a, b)


class TestEveryPublicName:
    """The property of issue 16 for each name of ``bkmath.__all__`` (the test below fails if a
    new public name is added without a property here)."""

    COVERED = {
        "Certificate", "Status", "JacobiOperator", "free_resolvent", "free_resolvent_continuum",
        "lattice_w", "resolvent_diagonal", "log_det", "eigenvalue_count", "birman_schwinger",
        "schatten_norm", "fredholm_det", "perturbation_determinant", "jost_determinant",
        "det2", "spectral_shift", "scattering_matrix", "scattering_phase",
        "mourre_commutator", "mourre_constant", "prime_bump_potential",
        "jost_polynomial", "lattice_resonances",
        # continuum scattering, Breit–Wigner, Clark measures, m-functions, line resonances
        "StepPotential", "jost_function", "line_scattering", "line_scattering_phase",
        "line_bound_states", "narrow_resonance", "borel_transform", "clark_borel",
        "clark_measure", "m_function", "free_m_function", "half_line_measure",
        "LineZeros", "jost_entire", "line_zero_count", "line_zeros", "line_zero_balls",
        "certified_zero_count",
    }

    def test_every_public_name_is_covered(self):
        public = set(bkmath.__all__) - {"reference", "__version__"}
        assert public == self.COVERED

    @PROFILE
    @given(a=arrays, b=arrays, z=spectral, side=st.sampled_from(["both", "left", "right", "x"]))
    def test_operator_routines(self, a, b, z, side):
        op = _op(a, b)
        if op is None:
            return
        _call(bkmath.resolvent_diagonal, op, z, side)
        _call(bkmath.log_det, op, z, allow_neg_inf_real=True)
        _call(bkmath.eigenvalue_count, op, z)

    @PROFILE
    @given(a=arrays, z=spectral, lam=st.one_of(reals, spectral))
    def test_operator_extreme_diagonal(self, a, z, lam):
        # the hopping of −Δ with an extreme diagonal, on both boundaries
        try:
            n = len(np.atleast_1d(np.asarray(a, dtype=float)))
        except (TypeError, ValueError):
            n = 0
        op = _op(a, np.full(max(n - 1, 0), -1.0))
        if op is None:
            return
        _call(bkmath.resolvent_diagonal, op, z)
        _call(bkmath.log_det, op, z, allow_neg_inf_real=True)
        _call(bkmath.eigenvalue_count, op, lam)

    @PROFILE
    @given(h=reals, n=st.integers(1, 4), z=spectral)
    def test_huge_hopping(self, h, n, z):
        op = _op(np.zeros(n), np.full(n - 1, h))
        if op is None:
            return
        for side in ("both", "left", "right"):
            _call(bkmath.resolvent_diagonal, op, z, side)
        _call(bkmath.log_det, op, z, allow_neg_inf_real=True)
        _call(bkmath.eigenvalue_count, op, h)

    @PROFILE
    @given(m=st.one_of(st.integers(-10**6, 10**6), reals, bad_objects), z=spectral,
           x=reals, y=reals, boundary=st.booleans())
    def test_free_resolvents(self, m, z, x, y, boundary):
        _call(bkmath.lattice_w, z, boundary=boundary)
        _call(bkmath.free_resolvent, m, 0, z, boundary=boundary)
        _call(bkmath.free_resolvent_continuum, x, y, z, boundary=boundary)

    @PROFILE
    @given(v=arrays, z=spectral, boundary=st.booleans(),
           model=st.sampled_from(["lattice", "continuum", "momentum", "nope"]))
    def test_birman_schwinger_family(self, v, z, boundary, model):
        kw = {} if model == "lattice" else {"nodes": v, "weights": v}
        K = _call(bkmath.birman_schwinger, v, z, model=model, boundary=boundary, **kw)
        if K is not None:
            for p in (1, 2, np.inf):
                _call(bkmath.schatten_norm, K, p)
            _call(bkmath.fredholm_det, K)
            _call(bkmath.det2, K)
        op = _call(bkmath.birman_schwinger, v, z, model=model, boundary=boundary,
                   form="operator", **kw)
        if op is not None:
            _call(bkmath.schatten_norm, op, 2)
        _call(bkmath.perturbation_determinant, v, z, boundary=boundary)
        _call(bkmath.perturbation_determinant, v, z, chain="finite", boundary=boundary)

    @PROFILE
    @given(K=matrices, p=st.sampled_from([1, 2, np.inf, 3, "2"]))
    def test_matrix_functions(self, K, p):
        _call(bkmath.schatten_norm, K, p)
        _call(bkmath.fredholm_det, K)
        _call(bkmath.det2, K)

    @PROFILE
    @given(c=reals, z=spectral, a=reals, b=reals,
           method=st.sampled_from(["rk4", "transfer"]), n_steps=st.sampled_from([1, 7, 0, 2.5]))
    def test_jost_determinant(self, c, z, a, b, method, n_steps):
        _call(bkmath.jost_determinant, lambda x: c + 0.0 * x, z, (a, b), n_steps=n_steps,
              method=method)
        _call(bkmath.jost_determinant, lambda x: np.full(3, c), z, (0.0, 1.0), n_steps=5)

    @PROFILE
    @given(v=arrays, lam=st.one_of(reals, st.lists(reals, max_size=3), bad_objects),
           chain=st.sampled_from(["finite", "infinite", "other"]))
    def test_scattering_family(self, v, lam, chain):
        _call(bkmath.spectral_shift, v, lam, chain=chain)
        _call(bkmath.scattering_matrix, v, lam)
        _call(bkmath.scattering_phase, v, lam)

    @PROFILE
    @given(x=st.one_of(real_lists, bad_objects, reals), eps=st.one_of(reals, bad_objects),
           n_max=st.sampled_from([None, 0, 1, 50, 10**9, 2.5]))
    def test_prime_bump_potential(self, x, eps, n_max):
        _call(bkmath.prime_bump_potential, x, eps, n_max=n_max)

    @settings(PROFILE, max_examples=max(5, N_EXAMPLES // 3))
    @given(model=st.sampled_from(["lattice", "continuum", "momentum", "bad"]),
           size=st.sampled_from([0, 1, 2, 5, 9, 2.5]), v=st.one_of(st.none(), arrays),
           scale=reals, length=reals)
    def test_mourre_commutator(self, model, size, v, scale, length):
        d = _call(bkmath.mourre_commutator, model, size, v=v, scale=scale, length=length)
        if d is not None:
            assert _finite(d.commutator) and _finite(d.h)

    @settings(PROFILE, max_examples=max(5, N_EXAMPLES // 3))
    @given(lo=reals, hi=reals, c_claim=st.one_of(st.none(), reals), scale=reals,
           v=st.one_of(st.none(), st.lists(moderate, min_size=1, max_size=3)))
    def test_mourre_constant(self, lo, hi, c_claim, scale, v):
        est = _call(bkmath.mourre_constant, "lattice", (lo, hi), v=v, sizes=(9, 17),
                    c_claim=c_claim, scale=scale)
        if est is not None:
            assert math.isfinite(est.delta) and est.delta > 0
            assert isinstance(est.holds, bool)

    @PROFILE
    @given(v=st.one_of(arrays, st.lists(reals, min_size=1, max_size=5)))
    def test_lattice_resonances(self, v):
        _call(bkmath.jost_polynomial, v)
        _call(bkmath.lattice_resonances, v)

    @PROFILE
    @given(value=st.one_of(reals, complexes), bound=st.one_of(reals, complexes),
           tol=st.one_of(st.none(), reals), sense=st.sampled_from(["<=", ">=", "==", "?"]))
    def test_certificate(self, value, bound, tol, sense):
        # Certificate / Status: the constructor records what it is given (NaN and ±inf
        # included: a certificate of a non-finite number is a result, and from_bound must
        # then say inconclusive, never "verified")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                cert = bkmath.Certificate.from_bound("t", "s", value=value, bound=bound,
                                                     tol=tol, sense=sense)
            except ALLOWED:
                return
        if not (np.isfinite(value) and np.isfinite(bound)) or (
            sense == "==" and not np.isfinite(tol)
        ):
            assert cert.status is bkmath.Status.INCONCLUSIVE


# ------------------------------------------------------------------------------------------
# continuum scattering on the line, Breit–Wigner, Clark measures, m-functions, line zeros
# ------------------------------------------------------------------------------------------

FEW = settings(PROFILE, max_examples=max(5, N_EXAMPLES // 3))
FEWER = settings(PROFILE, max_examples=max(3, N_EXAMPLES // 6))

# a few valid step potentials (moderate: the routines below stay fast on them), the extremes
# through the constructor, and objects that are not a StepPotential
_POTS = [bkmath.StepPotential.well(-2.0, 0.0, 1.0), bkmath.StepPotential.well(5.0, -0.5, 0.5),
         bkmath.StepPotential(np.array([0.0, 0.5, 1.5]), np.array([3.0, -4.0]))]
pots = st.one_of(st.sampled_from(_POTS), bad_objects, st.just([1.0, 2.0]),
                 st.just(np.zeros(3)))
ext_reals = st.sampled_from(EXTREMES)
momenta = st.one_of(spectral, ext_reals, moderate, st.lists(ext_reals, max_size=3),
                    st.just([]), st.just(np.zeros((2, 2))))
regions = st.one_of(st.tuples(ext_reals, ext_reals, ext_reals, ext_reals),
                    st.sampled_from([(-2.0, 2.0, -1.0, 0.5), (-1.0, 1.0, -1.0, 0.0),
                                     (-1.0, 1.0, -1.0), (1.0, -1.0, -1.0, 0.0)]),
                    bad_objects)
tails = st.sampled_from(["free", "dirichlet", "x", (2.0, -1.0), (0.5, 2.0), (np.nan, 1.0),
                         (0.0, 0.0), (1e300, 1.7e308), (1e300, 1e-300), (1.0,), None])


def _pot_from(edges, values):
    return _call(bkmath.StepPotential, edges, values)


class TestEveryPublicNameLine:
    """The property of issue 16 for the continuum, Clark, m-function and line-resonance
    names (covered in :class:`TestEveryPublicName`)."""

    @PROFILE
    @given(edges=arrays, values=arrays, d=reals, a=reals, b=reals)
    def test_step_potential(self, edges, values, d, a, b):
        p = _pot_from(edges, values)
        if p is not None:
            assert _finite(p.edges) and _finite(p.values) and np.all(np.diff(p.edges) > 0)
            assert _finite(p(np.array([-1.0, 0.0, 1.0])))
        p = _call(bkmath.StepPotential.well, d, a, b)
        if p is not None:
            assert _finite(p.edges) and _finite(p.values)

    @FEW
    @given(pot=pots, k=momenta, edges=st.lists(ext_reals, min_size=2, max_size=3),
           v=ext_reals, max_step=st.sampled_from([0.25, 0.0, 1.0, np.nan, "a", None]))
    def test_continuum_scattering(self, pot, k, edges, v, max_step):
        for p in (pot, _pot_from(sorted(edges), [v] * (len(edges) - 1))):
            if p is None:
                continue
            _call(bkmath.jost_function, k, p)
            _call(bkmath.jost_function, k, p, richardson=p)
            s = _call(bkmath.line_scattering, k, p)
            if s is not None:
                assert all(_finite(x) for x in (s.t, s.r, s.r_prime, s.jost, s.S, s.det_S))
            _call(bkmath.line_scattering_phase, k, p, max_step=max_step)
            _call(bkmath.line_scattering_phase, k, p)
            _call(bkmath.line_bound_states, p)
        _call(bkmath.line_bound_states, _POTS[0], n_grid=k if isinstance(k, float) else 0)

    @FEW
    @given(v=st.one_of(arrays, st.lists(st.sampled_from([0.0, 4.0, -3.0, 1e300, np.nan]),
                                        min_size=1, max_size=5)),
           which=st.sampled_from([0, 1, -1, 2.5, "0", True]),
           near=st.one_of(st.none(), ext_reals, st.just("a"), st.just(1j)))
    def test_narrow_resonance(self, v, which, near):
        for vv in (v, [4.0, 0.0, 0.0, 0.0, 4.0]):
            r = _call(bkmath.narrow_resonance, vv, which=which, near=near)
            if r is not None:
                assert _finite([r.w, r.z, r.E, r.gamma]) and _finite(r.others)
                assert r.gamma > 0 and 0 < r.E < 4

    @FEW
    @given(v=arrays, z=spectral, alpha=st.one_of(reals, complexes, bad_objects),
           site=st.sampled_from([0, 1, -1, 2.5, True, "0"]), boundary=st.booleans())
    def test_clark(self, v, z, alpha, site, boundary):
        _call(bkmath.borel_transform, v, z, site=site, boundary=boundary)
        _call(bkmath.clark_borel, v, alpha, z, site=site, boundary=boundary)
        for vv in (v, [0.5, -1.0]):
            mu = _call(bkmath.clark_measure, vv, alpha, site=site if site != 1 else 0)
            if mu is not None:
                assert _finite(mu.points) and _finite(mu.weights)
                assert np.all(mu.weights >= 0)

    @FEW
    @given(z=spectral, a=arrays, b=st.one_of(st.none(), arrays), tail=tails,
           boundary=st.booleans())
    def test_m_functions(self, z, a, b, tail, boundary):
        _call(bkmath.m_function, z, a, b, tail=tail, boundary=boundary)
        _call(bkmath.free_m_function, z, boundary=boundary)
        mu = _call(bkmath.half_line_measure, a, b, tail=tail)
        if mu is not None:
            assert _finite(mu.points) and _finite(mu.weights)
            assert np.all(mu.weights >= 0)

    @FEW
    @given(pot=pots, k=momenta, derivative=st.booleans(), region=regions,
           upper=st.booleans(), tol=st.sampled_from([1e-13, 0.0, 1e-3, np.nan, "a"]))
    def test_line_zeros(self, pot, k, derivative, region, upper, tol):
        _call(bkmath.jost_entire, k, pot, derivative=derivative)
        _call(bkmath.line_zero_count, pot, region, upper=upper)
        z = _call(bkmath.line_zeros, pot, region, upper=upper, tol=tol)
        if z is not None:
            assert isinstance(z, bkmath.LineZeros)
            assert _finite(z.k) and _finite(z.multiplicity) and _finite(z.energies)
            assert z.count == int(np.sum(z.multiplicity)) and len(z.kind) == z.k.size
            _call(z.of_kind, "resonance")
            _call(z.of_kind, "nope")

    @FEWER
    @given(pot=pots, zeros=st.one_of(st.lists(st.one_of(complexes, st.just(-3.30113562j)),
                                              max_size=2),
                                     bad_objects, st.just("1j"), st.just(np.zeros((2, 2)))),
           rel_radius=st.sampled_from([1e-10, 0.0, 1.0, np.nan, "a"]),
           region=st.one_of(regions, st.just((-1.0, 1.0, -1.0, 1.0))),
           max_segments=st.sampled_from([20_000, 0, -1, 2.5]))
    def test_line_zero_certificates(self, pot, zeros, rel_radius, region, max_segments):
        balls = _call(bkmath.line_zero_balls, pot, zeros, rel_radius=rel_radius)
        if balls is not None:
            for b in balls:
                assert b["ball"].mid().is_finite() and math.isfinite(b["radius"])
        c = _call(bkmath.certified_zero_count, pot, region, max_segments=max_segments)
        if c is not None:
            assert c["count"] is None or isinstance(c["count"], int)
