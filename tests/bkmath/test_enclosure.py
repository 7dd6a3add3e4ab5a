"""Tests for bkmath.enclosure: balls contain the references and are narrow."""

from __future__ import annotations

import doctest
from fractions import Fraction

import flint
import numpy as np
import pytest
from flint import arb

import bkmath.enclosure as emod
from bkmath.bs_operator import birman_schwinger
from bkmath.enclosure import (
    arb_precision,
    ball_contains,
    bs_matrix_ball,
    det_ball,
    exact_negative_count,
    hs_norm_sq_ball,
    lattice_w_ball,
    perturbation_determinant_ball,
    resolvent_ball,
    symmetric_negative_count_ball,
    to_acb,
    to_fmpq,
)
from bkmath.fredholm import fredholm_det, perturbation_determinant
from bkmath.operators import JacobiOperator
from bkmath.resolvent import lattice_w


def test_doctests():
    assert doctest.testmod(emod).failed == 0


def test_exact_input_only():
    assert to_fmpq("3/2") == flint.fmpq(3, 2)
    assert to_fmpq(Fraction(-1, 3)) == flint.fmpq(-1, 3)
    with pytest.raises(TypeError, match="exact"):
        to_fmpq(0.5)
    with pytest.raises(TypeError, match="exact"):
        to_fmpq(True)


def test_precision_scoped():
    old = flint.ctx.prec
    with arb_precision(300):
        assert flint.ctx.prec == 300
    assert flint.ctx.prec == old
    with pytest.raises(ValueError, match="bits"):
        with arb_precision(4):
            pass


def test_lattice_w_contains_float_and_is_narrow():
    with arb_precision(128):
        w = lattice_w_ball(to_acb("1", "1/4"))
    assert ball_contains(w, lattice_w(1 + 0.25j), slack=1e-15)
    assert float(w.real.rad()) < 1e-35


def test_lattice_w_undecidable():
    with arb_precision(64):
        with pytest.raises(ValueError, match="certify"):
            lattice_w_ball(flint.acb(2, arb(0, 1e-30)) + flint.acb(0, arb("1e-40")))


def test_determinant_balls_overlap_and_contain_floats():
    vq = ["1/2", "-5/4", "0", "2"]
    vf = np.array([0.5, -1.25, 0.0, 2.0])
    with arb_precision(200):
        dense, ratio = perturbation_determinant_ball(vq, to_acb("1", "1"))
        k = det_ball(bs_matrix_ball(vq, to_acb("1", "1")))
    assert dense.overlaps(ratio) and dense.overlaps(k)
    D = perturbation_determinant(vf, 1 + 1j)
    # float64 result vs ball: slack = 1e-13·|D| (cond·eps of the float computation)
    assert ball_contains(ratio, D, slack=1e-13 * abs(D))
    assert ball_contains(dense, fredholm_det(birman_schwinger(vf, 1 + 1j)), slack=1e-13 * abs(D))
    assert float(ratio.real.rad()) < 1e-50


def test_resolvent_ball_contains_numpy_inverse():
    diag, off = ["3", "-1/2", "2"], ["-1", "1/3"]
    with arb_precision(128):
        R = resolvent_ball(diag, off, to_acb("1/2", "1/5"))
    H = JacobiOperator([3.0, -0.5, 2.0], [-1.0, 1 / 3]).to_dense()
    Rf = np.linalg.inv(H - (0.5 + 0.2j) * np.eye(3))
    for i in range(3):
        for j in range(3):
            assert ball_contains(R[i, j], Rf[i, j], slack=1e-14)


def test_exact_counts():
    diag = [Fraction(2) + Fraction(x) for x in ("3/2", "-1", "0", "2", "-5/2")]
    for lam in ("-1/3", "7/5", "3", "9/2"):
        n = exact_negative_count(diag, [-1] * 4, lam)
        H = JacobiOperator([float(d) for d in diag], -1.0)
        assert n == int(np.sum(np.linalg.eigvalsh(H.to_dense()) < float(Fraction(lam))))
    with pytest.raises(ValueError, match="zero pivot"):
        exact_negative_count([1, 2], [1], 1)
    with pytest.raises(ValueError, match="off"):
        exact_negative_count([1, 2], [], 0)


def test_symmetric_count_ball():
    M = [[arb(2), arb(1)], [arb(1), arb(-3)]]
    assert symmetric_negative_count_ball(M) == 1
    with pytest.raises(ValueError, match="contains 0"):
        symmetric_negative_count_ball([[arb(0, 1e-3)]])


def test_hs_norm_ball():
    vq = ["1", "-1/2", "0", "3/4"]
    with arb_precision(128):
        b = hs_norm_sq_ball(vq, to_acb("2", "1/10"))
    f = np.linalg.norm(birman_schwinger([1.0, -0.5, 0.0, 0.75], 2 + 0.1j)) ** 2
    assert ball_contains(b, f, slack=1e-13 * f)
