"""Tests for bkmath.resolvent: lattice_w, free resolvents, the O(N) resolvent diagonal.

Tolerances. The recursions are backward stable: the computed values are exact for H - z with
every alpha_i and beta_i perturbed by a few ulps *relative* (each entry is used in one step).
First-order perturbation theory then bounds the forward error of a diagonal entry by
``|dG_ii| <= ||G||_2^2 ||dH||_2`` with ``||dH||_2 <= c eps S``, ``S = max|a - z| + 2 max|b|
+ 2 max|c|`` (the scale of the entries). ``||G||_2`` is ``1/dist(z, spec H)`` for Hermitian H
(``<= 1/eta`` for every leading/trailing block, by the Herglotz bound), and ``1/sigma_min``
of the relevant block otherwise. We use c = 64 (a handful of roundings per step, rounded
up); the mpmath reference runs at 50 digits, so its own error is negligible.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bkmath import (
    JacobiOperator,
    free_resolvent,
    free_resolvent_continuum,
    lattice_w,
    resolvent_diagonal,
)
from bkmath.reference import (
    free_resolvent_continuum_mp,
    free_resolvent_mp,
    lattice_w_mp,
    resolvent_diagonal_dense,
    resolvent_diagonal_mp,
)

EPS = np.finfo(np.float64).eps
C_BACKWARD = 64.0


def _potential(rng: np.random.Generator, n: int, scale_exp: int, spikes: bool) -> np.ndarray:
    """Random potential of scale 10**scale_exp, optionally with huge (1e8) / tiny (1e-8)
    entries sprinkled in."""
    v = rng.normal(size=n) * 10.0**scale_exp
    if spikes and n > 1:
        k = rng.integers(1, max(2, n // 5))
        idx = rng.choice(n, size=k, replace=False)
        v[idx] = rng.choice([-1.0, 1.0], size=k) * 10.0 ** rng.choice([-8.0, 8.0], size=k)
    return v


def _scale(op: JacobiOperator, z: complex) -> float:
    s = float(np.max(np.abs(op.a - z)))
    if op.n > 1:
        s += 2 * float(np.max(np.abs(op.b))) + 2 * float(np.max(np.abs(op.c)))
    return s


def _block_gnorms(m: np.ndarray, side: str) -> np.ndarray:
    """||(block)^{-1}||_2 for each leading (left) / trailing (right) block, or the full matrix
    broadcast (both)."""
    n = m.shape[0]
    if side == "both":
        return np.full(n, 1.0 / np.linalg.svd(m, compute_uv=False)[-1])
    out = np.empty(n)
    for i in range(n):
        blk = m[: i + 1, : i + 1] if side == "left" else m[i:, i:]
        out[i] = 1.0 / np.linalg.svd(blk, compute_uv=False)[-1]
    return out


# ------------------------------------------------------------------------------------------
class TestLatticeW:
    @given(lam=st.floats(-10, 10), log_eta=st.floats(-12, 2))
    def test_root_modulus_and_sign(self, lam, log_eta):
        z = complex(lam, 10.0**log_eta)
        w = lattice_w(z)
        # w solves the quadratic (relative to its largest term), |w| < 1, Im w > 0
        resid = abs(w * w - (2 - z) * w + 1) / max(1.0, abs((2 - z) * w))
        assert resid < 8 * EPS
        assert abs(w) < 1.0
        assert w.imag > 0

    @given(lam=st.floats(1e-6, 4 - 1e-6))
    def test_boundary_value_in_band_is_upper_unit_circle(self, lam):
        w = lattice_w(lam, boundary=True)
        theta = np.arccos(1 - lam / 2)  # θ ∈ (0, π), z = 2 - 2 cos θ
        # |dw/dλ| = 1/|2 sin θ| : the reference arccos loses that factor near thresholds
        assert abs(w - np.exp(1j * theta)) < 16 * EPS / abs(np.sin(theta))
        assert abs(abs(w) - 1) < 8 * EPS and w.imag > 0

    @pytest.mark.parametrize("lam", [-3.0, -1e-9, 4 + 1e-9, 7.5])
    def test_boundary_value_outside_band_is_real_inside_disc(self, lam):
        w = lattice_w(lam, boundary=True)
        assert w.imag == 0 and abs(w) < 1

    @pytest.mark.parametrize("lam", [0.3, 1.0, 2.0, 3.9, -2.0, 6.0])
    def test_limit_from_upper_half_plane(self, lam):
        w0 = lattice_w(lam, boundary=True)
        for eps in (1e-4, 1e-8, 1e-12):
            assert abs(lattice_w(complex(lam, eps)) - w0) < 10 * np.sqrt(eps)

    def test_thresholds(self):
        assert lattice_w(0.0, boundary=True) == pytest.approx(1.0)
        assert lattice_w(4.0, boundary=True) == pytest.approx(-1.0)

    def test_negative_zero_imaginary_part_is_plus_i0(self):
        assert lattice_w(complex(1.0, -0.0), boundary=True).imag > 0

    @pytest.mark.parametrize(
        "z", [1e-12 + 1e-12j, 2 + 1e-10j, 4 - 1e-9 + 1e-9j, -1e3 + 1j, 1e8 + 1e-3j, 0.5j]
    )
    def test_against_mpmath(self, z):
        ref = lattice_w_mp(z, dps=40)
        assert abs(lattice_w(z) - ref) <= 4 * EPS * abs(ref) + 1e-300

    def test_vectorised(self):
        z = np.array([[1 + 1j, 2 + 0.5j], [-1 + 0.1j, 5 + 2j]])
        w = lattice_w(z)
        assert w.shape == (2, 2)
        np.testing.assert_array_equal(w[1, 0], lattice_w(z[1, 0]))

    def test_wrong_branch_violates_modulus(self):
        # the other root 1/w has |.| > 1 and Im < 0 in the upper half-plane: not the branch
        w = lattice_w(1 + 0.1j)
        assert abs(1 / w) > 1 and (1 / w).imag < 0

    @pytest.mark.parametrize("z", [1.0, 1 - 1e-3j, 0j])
    def test_rejects_closed_lower_half_plane(self, z):
        with pytest.raises(ValueError, match="Im z must be > 0"):
            lattice_w(z)

    def test_boundary_rejects_lower_half_plane(self):
        with pytest.raises(ValueError, match="Im z must be >= 0"):
            lattice_w(1 - 1e-3j, boundary=True)

    def test_rejects_nan_and_strings(self):
        with pytest.raises(ValueError, match="NaN"):
            lattice_w(complex(np.nan, 1.0))
        with pytest.raises(TypeError, match="z must be"):
            lattice_w("1+1j")


# ------------------------------------------------------------------------------------------
class TestFreeResolvent:
    @pytest.mark.parametrize("z", [1 + 0.3j, -0.5 + 0.01j, 3.9 + 0.2j, 6 + 1j])
    def test_against_large_truncation(self, z):
        # finite chain of 2L+1 sites, centre site 0: the truncation error is O(|w|^L)
        big = 1200
        h = JacobiOperator.free(2 * big + 1).to_sparse(z).tocsc()
        import scipy.sparse.linalg as spla

        e = np.zeros(2 * big + 1)
        e[big] = 1.0
        col = spla.spsolve(h, e)
        assert abs(lattice_w(z)) ** big < 1e-20
        d = np.arange(-5, 6)
        np.testing.assert_allclose(col[big + d], free_resolvent(0, d, z), rtol=1e-12, atol=0)

    @given(m=st.integers(-50, 50), n=st.integers(-50, 50), lam=st.floats(-2, 6),
           log_eta=st.floats(-8, 1))
    def test_against_mpmath(self, m, n, lam, log_eta):
        z = complex(lam, 10.0**log_eta)
        ref = free_resolvent_mp(m, n, z, dps=40)
        got = free_resolvent(m, n, z)
        # condition: w^d amplifies a relative error of w by d; 1/s by 1 (s = w^{-1} - w)
        assert abs(got - ref) <= 16 * (abs(m - n) + 2) * EPS * abs(ref) + 1e-300

    def test_closed_form_in_theta(self):
        z = 1.2 + 0.4j
        theta = np.arccos(1 - z / 2)
        if theta.imag < 0:
            theta = -theta
        for d in range(6):
            ref = 1j * np.exp(1j * theta * d) / (2 * np.sin(theta))
            assert free_resolvent(0, d, z) == pytest.approx(ref, rel=1e-12)

    def test_boundary_value_band_centre(self):
        # z = 2 + i0: θ = π/2, G0(0,0) = i/2
        assert free_resolvent(0, 0, 2.0, boundary=True) == pytest.approx(0.5j, abs=1e-15)

    def test_boundary_value_is_limit(self):
        lam = 1.3
        g0 = free_resolvent(3, 0, lam, boundary=True)
        assert abs(free_resolvent(3, 0, lam + 1e-10j) - g0) < 1e-8

    def test_transparent_free_chain_reproduces_g0_exactly(self):
        # the window of the free chain with transparent leads IS the free operator on Z
        for z in (1.3 + 0.01j, 0.7, 3.2, -0.4, 5.0):
            op = JacobiOperator.free(9, boundary="transparent")
            g = resolvent_diagonal(op, z)
            np.testing.assert_allclose(g, free_resolvent(0, 0, z, boundary=True), rtol=1e-13)
            full = np.linalg.inv(op.to_dense(z))
            ref = free_resolvent(np.arange(9)[:, None], np.arange(9)[None, :], z, boundary=True)
            np.testing.assert_allclose(full, ref, rtol=1e-12, atol=1e-14)

    def test_symmetry_and_broadcast(self):
        m = np.arange(4)[:, None]
        n = np.arange(4)[None, :]
        g = free_resolvent(m, n, 1 + 1j)
        assert g.shape == (4, 4)
        np.testing.assert_array_equal(g, g.T)

    def test_threshold_raises(self):
        with pytest.raises(ValueError, match="threshold"):
            free_resolvent(0, 0, 0.0, boundary=True)
        with pytest.raises(ValueError, match="threshold"):
            free_resolvent(0, 0, 4.0, boundary=True)

    def test_bad_sites(self):
        with pytest.raises(ValueError, match="m must hold integer"):
            free_resolvent(0.5, 0, 1j)
        with pytest.raises(TypeError, match="n must be"):
            free_resolvent(0, 1j, 1j)

    def test_requires_upper_half_plane(self):
        with pytest.raises(ValueError, match="Im z must be > 0"):
            free_resolvent(0, 0, 1.0)


class TestFreeResolventContinuum:
    @given(x=st.floats(-5, 5), y=st.floats(-5, 5), lam=st.floats(-3, 10),
           log_eta=st.floats(-6, 1))
    def test_against_mpmath(self, x, y, lam, log_eta):
        z = complex(lam, 10.0**log_eta)
        ref = free_resolvent_continuum_mp(x, y, z, dps=40)
        got = free_resolvent_continuum(x, y, z)
        k = abs(np.sqrt(z))
        # exp(ik|x-y|) turns a relative error of k into an absolute phase error k|x-y|
        assert abs(got - ref) <= 16 * EPS * (1 + k * abs(x - y)) * abs(ref) + 1e-300

    @pytest.mark.parametrize("z", [1 + 0.5j, -1 + 0.2j, 4 + 1j])
    def test_lattice_discretisation_converges_at_second_order(self, z):
        # -d²/dx² on the grid hZ is h^{-2}(-Δ); its kernel h·G0(m, n; h² z) -> R0(x, y)
        x, y = 0.0, 1.0
        ref = free_resolvent_continuum(x, y, z)
        errs = []
        for h in (0.02, 0.01, 0.005):
            m = round((x - y) / h)
            errs.append(abs(h * free_resolvent(m, 0, h * h * z) - ref))
        assert errs[0] / errs[1] == pytest.approx(4, rel=0.05)
        assert errs[1] / errs[2] == pytest.approx(4, rel=0.05)

    def test_outgoing_boundary_value(self):
        lam = 2.25  # k = 1.5 > 0
        g = free_resolvent_continuum(0.0, 2.0, lam, boundary=True)
        assert g == pytest.approx(1j * np.exp(3j) / 3.0, rel=1e-15)

    def test_decay_in_upper_half_plane(self):
        g = free_resolvent_continuum(0.0, np.array([0.0, 10.0, 20.0]), -1 + 0j + 1e-3j)
        assert abs(g[2]) < abs(g[1]) < abs(g[0])

    def test_zero_raises(self):
        with pytest.raises(ValueError, match="threshold"):
            free_resolvent_continuum(0.0, 0.0, 0.0, boundary=True)

    def test_requires_upper_half_plane(self):
        with pytest.raises(ValueError, match="Im z must be > 0"):
            free_resolvent_continuum(0.0, 1.0, 2.0 - 1e-3j)


# ------------------------------------------------------------------------------------------
@st.composite
def _hermitian_case(draw, max_n=300):
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, max_n))
    rng = np.random.default_rng(seed)
    v = _potential(rng, n, draw(st.integers(-3, 3)), draw(st.booleans()))
    hop = draw(st.sampled_from(["free", "random"]))
    b = -np.ones(n - 1) if hop == "free" else rng.uniform(-2, 2, size=n - 1)
    lam = draw(st.floats(-5, 9))
    eta = 10.0 ** draw(st.floats(-8, 1))
    return JacobiOperator(2.0 + v, b), complex(lam, eta)


class TestResolventDiagonal:
    @given(case=_hermitian_case(), side=st.sampled_from(["both", "left", "right"]))
    def test_hermitian_against_mpmath(self, case, side):
        op, z = case
        got = resolvent_diagonal(op, z, side=side)
        ref = resolvent_diagonal_mp(op, z, side=side, dps=50)
        if side == "both":
            ev = np.linalg.eigvalsh(op.to_dense())
            gnorm = 1.0 / np.min(np.abs(ev - z))
        else:
            gnorm = 1.0 / z.imag  # every block: Herglotz
        tol = C_BACKWARD * EPS * _scale(op, z) * gnorm**2
        err = np.max(np.abs(got - ref))
        assert err <= tol, (err, tol)

    @given(case=_hermitian_case(), side=st.sampled_from(["both", "left", "right"]))
    def test_herglotz(self, case, side):
        op, z = case
        g = resolvent_diagonal(op, z, side=side)
        # rounding can push a vanishing Im g to -|g| eps; |g| <= 1/eta up to one rounding
        assert np.all(g.imag >= -4 * EPS * np.abs(g))
        assert np.all(np.abs(g) <= (1 + 8 * EPS) / z.imag)

    @given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60),
           side=st.sampled_from(["both", "left", "right"]), lam=st.floats(-3, 7),
           log_eta=st.floats(-6, 1))
    def test_complex_nonsymmetric_against_mpmath(self, seed, n, side, lam, log_eta):
        rng = np.random.default_rng(seed)
        a = rng.normal(size=n) + 1j * rng.normal(size=n)
        b = rng.normal(size=n - 1) + 1j * rng.normal(size=n - 1)
        c = rng.normal(size=n - 1) + 0.5j * rng.normal(size=n - 1)
        op = JacobiOperator(a, b, c)
        z = complex(lam, 10.0**log_eta)
        got = resolvent_diagonal(op, z, side=side)
        ref = resolvent_diagonal_mp(op, z, side=side, dps=50)
        gn = _block_gnorms(op.to_dense(z), side)
        tol = C_BACKWARD * EPS * _scale(op, z) * gn**2
        assert np.all(np.abs(got - ref) <= tol)

    @given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60),
           side=st.sampled_from(["both", "left", "right"]), lam=st.floats(-1, 5),
           log_eta=st.one_of(st.just(None), st.floats(-8, 0)))
    def test_transparent_against_mpmath(self, seed, n, side, lam, log_eta):
        # includes real z = λ + i0 (log_eta None): exact boundary values
        rng = np.random.default_rng(seed)
        op = JacobiOperator.free_plus(rng.normal(size=n), boundary="transparent")
        z = complex(lam, 0.0 if log_eta is None else 10.0**log_eta)
        if abs(lam) < 1e-9 or abs(lam - 4) < 1e-9:
            return  # thresholds: w = ±1, no absorption
        got = resolvent_diagonal(op, z, side=side)
        ref = resolvent_diagonal_mp(op, z, side=side, dps=50)
        gn = _block_gnorms(op.to_dense(z), side)
        tol = C_BACKWARD * EPS * (_scale(op, z) + 2) * gn**2
        assert np.all(np.abs(got - ref) <= tol)

    def test_transparent_boundary_value_is_herglotz_limit(self, rng):
        op = JacobiOperator.free_plus(rng.normal(size=20), boundary="transparent")
        g0 = resolvent_diagonal(op, 1.7)
        assert np.all(g0.imag > 0)  # absorbing leads: Im G(λ + i0) > 0 in the band
        g = resolvent_diagonal(op, 1.7 + 1e-9j)
        np.testing.assert_allclose(g, g0, rtol=1e-6)

    def test_against_dense_batch(self, rng):
        v = rng.normal(size=(3, 17))
        op = JacobiOperator.free_plus(v)
        for side in ("both", "left", "right"):
            got = resolvent_diagonal(op, 0.4 + 0.2j, side=side)
            ref = resolvent_diagonal_dense(op, 0.4 + 0.2j, side=side)
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)

    def test_batched_equals_looped(self, rng):
        v = rng.normal(size=(4, 33))
        z = np.array([0.5 + 0.1j, 1.5 + 1e-4j, -1 + 2j])
        op = JacobiOperator.free_plus(v)
        out = resolvent_diagonal(op, z[:, None], side="both")
        assert out.shape == (3, 4, 33)
        for i in range(3):
            for j in range(4):
                single = resolvent_diagonal(JacobiOperator.free_plus(v[j]), z[i])
                np.testing.assert_array_equal(out[i, j], single)

    def test_threaded_batch_equals_looped(self, rng, monkeypatch):
        # enough work (rows x N >= 2e4) for run_rows to split the rows over two threads
        monkeypatch.setenv("BKMATH_NUM_THREADS", "2")
        v = rng.normal(size=(5, 8000))
        op = JacobiOperator.free_plus(v)
        for side in ("both", "left", "right"):
            out = resolvent_diagonal(op, 0.7 + 0.01j, side=side)
            for j in range(5):
                single = resolvent_diagonal(JacobiOperator.free_plus(v[j]), 0.7 + 0.01j, side)
                np.testing.assert_array_equal(out[j], single)

    def test_batch_hopping_broadcast(self, rng):
        a = rng.normal(size=(2, 10))
        b = rng.normal(size=(3, 1, 9))
        out = resolvent_diagonal(JacobiOperator(a, b), 1j)
        assert out.shape == (3, 2, 10)
        np.testing.assert_array_equal(
            out[2, 1], resolvent_diagonal(JacobiOperator(a[1], b[2, 0]), 1j)
        )

    def test_z_array_on_single_chain(self):
        op = JacobiOperator.free(8)
        z = np.array([1 + 1j, 2 + 1j])
        out = resolvent_diagonal(op, z, side="left")
        assert out.shape == (2, 8)
        np.testing.assert_array_equal(out[1], resolvent_diagonal(op, z[1], side="left"))

    def test_left_is_causal(self, rng):
        v = rng.normal(size=50)
        g = resolvent_diagonal(JacobiOperator.free_plus(v), 0.3 + 0.05j, side="left")
        v2 = v.copy()
        v2[30:] += rng.normal(size=20) * 10
        g2 = resolvent_diagonal(JacobiOperator.free_plus(v2), 0.3 + 0.05j, side="left")
        np.testing.assert_array_equal(g[:30], g2[:30])
        assert np.all(g[30:] != g2[30:])

    def test_right_is_anticausal(self, rng):
        v = rng.normal(size=50)
        g = resolvent_diagonal(JacobiOperator.free_plus(v), 0.3 + 0.05j, side="right")
        v2 = v.copy()
        v2[:20] -= 3
        g2 = resolvent_diagonal(JacobiOperator.free_plus(v2), 0.3 + 0.05j, side="right")
        np.testing.assert_array_equal(g[20:], g2[20:])

    def test_sides_consistent_at_edges(self, rng):
        op = JacobiOperator.free_plus(rng.normal(size=40))
        z = 1.1 + 0.01j
        g, gl, gr = (resolvent_diagonal(op, z, side=s) for s in ("both", "left", "right"))
        assert g[-1] == pytest.approx(gl[-1], rel=1e-13)
        assert g[0] == pytest.approx(gr[0], rel=1e-13)

    def test_long_chain_no_overflow_and_sides_agree(self, rng):
        # 2·10^5 sites with a strong potential: θ_N ~ 10^(2·10^5); the ratio forms don't care.
        n = 200_000
        op = JacobiOperator.free_plus(rng.normal(size=n) * 5)
        z = 0.9 + 1e-3j
        g = resolvent_diagonal(op, z)
        gl = resolvent_diagonal(op, z, side="left")
        gr = resolvent_diagonal(op, z, side="right")
        assert np.all(np.isfinite(g)) and np.all(g.imag > 0)
        # G_ii = 1 / (1/g^L_i - b_i^2 g^R_{i+1}): the two one-sided (continuant) sweeps and the
        # two-sided (ratio) sweep are different algorithms
        comb = 1.0 / (1.0 / gl[:-1] - op.b**2 * gr[1:])
        np.testing.assert_allclose(comb, g[:-1], rtol=1e-9)

    @pytest.mark.parametrize("side", ["both", "left", "right"])
    def test_huge_entries(self, side):
        # |alpha| ~ 1e250: the rescaled continuants overflow within one step; the one-sided
        # sweeps fall back to the ratio recursion, the two-sided one never needs to
        from bkmath import _kernels

        a = np.array([1e100, 1e250, 2.0, 5e249, -1e100, -1e250])
        b = np.array([1.0, 1e150, 1.0, -1e150, 2e140])  # beta up to 1e300
        op = JacobiOperator(a, b)
        o = np.empty((6, 2))
        # the continuant pair (θ_1 ~ 1e100 unscaled) times alpha_2 = 1e250 overflows
        assert np.isnan(_kernels._rd_left_real(a, b, b, 0.0, 1.0, 0.0, 0.0, o))
        got = resolvent_diagonal(op, 1j, side=side)
        ref = resolvent_diagonal_mp(op, 1j, side=side, dps=50)
        np.testing.assert_allclose(got, ref, rtol=1e-13)

    @pytest.mark.parametrize("side", ["both", "left", "right"])
    def test_float32(self, rng, side):
        v = rng.normal(size=64).astype(np.float32)
        op = JacobiOperator.free_plus(v)
        g = resolvent_diagonal(op, 0.5 + 0.1j, side=side)
        assert g.dtype == np.complex64
        ref = resolvent_diagonal_mp(op, 0.5 + 0.1j, side=side, dps=30)
        # float64 arithmetic inside, one rounding to complex64 at the end (+ float64 error)
        eps32 = np.finfo(np.float32).eps
        assert np.max(np.abs(g - ref) / np.abs(ref)) < 2 * eps32

    def test_complex64_operator(self, rng):
        a = (rng.normal(size=10) + 1j * rng.normal(size=10)).astype(np.complex64)
        op = JacobiOperator(a, np.ones(9, dtype=np.float32))
        assert resolvent_diagonal(op, 1j).dtype == np.complex64

    def test_hermitian_complex_hopping(self, rng):
        b = rng.normal(size=11) + 1j * rng.normal(size=11)
        op = JacobiOperator(rng.normal(size=12), b, np.conj(b))
        assert op.real_beta
        ref = resolvent_diagonal_dense(op, 0.2 + 0.3j)
        np.testing.assert_allclose(resolvent_diagonal(op, 0.2 + 0.3j), ref, rtol=1e-12)

    def test_single_site(self):
        op = JacobiOperator([1.5], [])
        for side in ("both", "left", "right"):
            assert resolvent_diagonal(op, 1j, side=side)[0] == pytest.approx(1 / (1.5 - 1j))

    # ---------------------------------------------------------------- bad input
    @pytest.mark.parametrize("z", [1.0, 1 - 1j, 0j, -2 + 0j])
    def test_rejects_eta_nonpositive(self, z):
        with pytest.raises(ValueError, match="Im z must be > 0"):
            resolvent_diagonal(JacobiOperator.free(5), z)

    def test_rejects_eta_negative_transparent(self):
        with pytest.raises(ValueError, match="Im z must be >= 0"):
            resolvent_diagonal(JacobiOperator.free(5, boundary="transparent"), 1 - 1e-3j)

    def test_rejects_nan_z(self):
        with pytest.raises(ValueError, match="NaN"):
            resolvent_diagonal(JacobiOperator.free(5), complex(np.nan, 1))
        with pytest.raises(ValueError, match="NaN"):
            resolvent_diagonal(JacobiOperator.free(5), np.array([1j, complex(1, np.inf)]))

    def test_rejects_bad_side(self):
        with pytest.raises(ValueError, match="side must be"):
            resolvent_diagonal(JacobiOperator.free(5), 1j, side="middle")

    def test_rejects_non_operator(self):
        with pytest.raises(TypeError, match="op must be a JacobiOperator"):
            resolvent_diagonal(np.eye(3), 1j)

    def test_rejects_non_numeric_z(self):
        with pytest.raises(TypeError, match="z must be"):
            resolvent_diagonal(JacobiOperator.free(3), "1j")
        with pytest.raises(TypeError, match="z must be"):
            resolvent_diagonal(JacobiOperator.free(3), np.array([object()]))

    def test_rejects_non_broadcasting_z(self):
        op = JacobiOperator.free_plus(np.zeros((3, 5)))
        with pytest.raises(ValueError, match="does not broadcast"):
            resolvent_diagonal(op, np.full(4, 1j))

    def test_singular_raises_instead_of_nan(self):
        # non-Hermitian: H - z can be exactly singular in the upper half-plane
        op = JacobiOperator([1j], [])
        with pytest.raises(ValueError, match="vanished or overflowed"):
            resolvent_diagonal(op, 1j)


def test_mpmath_precision_untouched():
    dps = mpmath.mp.dps
    resolvent_diagonal_mp(JacobiOperator.free(4), 1j, dps=80)
    assert mpmath.mp.dps == dps
