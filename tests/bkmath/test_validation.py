"""Tests for bkmath._validation: every bad input raises an error that names the argument."""

from __future__ import annotations

import numpy as np
import pytest

from bkmath._validation import (
    as_numeric_array,
    as_real_array,
    as_spectral_parameter,
    check_positive,
)


class TestAsNumericArray:
    def test_integers_promoted(self):
        out = as_numeric_array([1, 2, 3], "x")
        assert out.dtype == np.float64

    def test_bool_promoted(self):
        assert as_numeric_array([True, False], "x").dtype == np.float64

    def test_float32_kept(self):
        assert as_numeric_array(np.zeros(2, np.float32), "x").dtype == np.float32

    def test_complex_allowed_by_default(self):
        assert as_numeric_array([1j], "x").dtype == np.complex128

    def test_string_rejected(self):
        with pytest.raises(TypeError, match="x must be numeric"):
            as_numeric_array("12", "x")

    def test_object_rejected(self):
        with pytest.raises(TypeError, match="x must be a real or complex numeric array"):
            as_numeric_array(np.array([None]), "x")

    def test_ragged_rejected(self):
        with pytest.raises(TypeError, match="x could not be converted"):
            as_numeric_array([[1.0], [1.0, 2.0]], "x")

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_nonfinite_rejected(self, bad):
        with pytest.raises(ValueError, match="x contains NaN or Inf"):
            as_numeric_array([0.0, bad], "x")

    def test_nonfinite_allowed_when_asked(self):
        assert np.isnan(as_numeric_array([np.nan], "x", finite=False)[0])

    def test_ndim(self):
        with pytest.raises(ValueError, match="x must have 1 dimension"):
            as_numeric_array([[1.0]], "x", ndim=1)
        with pytest.raises(ValueError, match="x must have at least 2"):
            as_numeric_array([1.0], "x", min_ndim=2)


class TestAsRealArray:
    def test_complex_rejected(self):
        with pytest.raises(TypeError, match="v must be a real numeric array"):
            as_real_array([1j], "v")

    def test_real_passes(self):
        np.testing.assert_array_equal(as_real_array([1.5], "v"), [1.5])


class TestSpectralParameter:
    def test_returns_complex128(self):
        assert as_spectral_parameter(1j).dtype == np.complex128

    @pytest.mark.parametrize("z", [1.0, 0j, 1 - 1e-300j, -2.0 + 0j])
    def test_strict_upper_half_plane(self, z):
        with pytest.raises(ValueError, match="Im z must be > 0"):
            as_spectral_parameter(z)

    def test_boundary_accepts_real(self):
        assert as_spectral_parameter(2.0, boundary=True) == 2.0

    def test_boundary_rejects_lower(self):
        with pytest.raises(ValueError, match="Im zeta must be >= 0"):
            as_spectral_parameter(1 - 1j, "zeta", boundary=True)

    def test_array_any_bad_entry(self):
        with pytest.raises(ValueError, match="Im z must be > 0"):
            as_spectral_parameter(np.array([1j, 2j, 3.0 + 0j]))

    def test_nan(self):
        with pytest.raises(ValueError, match="z contains NaN"):
            as_spectral_parameter(complex(np.nan, 1.0))

    def test_string(self):
        with pytest.raises(TypeError, match="z must be a complex number"):
            as_spectral_parameter("1j")


class TestCheckPositive:
    def test_ok(self):
        assert check_positive(2, "eta") == 2.0

    def test_zero(self):
        with pytest.raises(ValueError, match="eta must be > 0"):
            check_positive(0.0, "eta")
        assert check_positive(0.0, "eta", strict=False) == 0.0

    def test_negative_nonstrict(self):
        with pytest.raises(ValueError, match="eta must be >= 0"):
            check_positive(-1.0, "eta", strict=False)

    def test_nonfinite(self):
        with pytest.raises(ValueError, match="eta must be finite"):
            check_positive(float("inf"), "eta")

    @pytest.mark.parametrize("bad", [True, "1", 1j, None])
    def test_type(self, bad):
        with pytest.raises(TypeError, match="eta must be a real number"):
            check_positive(bad, "eta")
