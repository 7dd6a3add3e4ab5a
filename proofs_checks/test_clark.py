"""Clark measures (docs/theory.md): rank-one perturbations H + α⟨δ_s, ·⟩δ_s of −Δ + V on Z —
Aronszajn–Donoghue, Sturm-located point masses of weight 1/(α²F'), Aleksandrov's
disintegration, with two negative controls."""

from __future__ import annotations

from bkmath.certificate import Kind, Status
from bkmath.checks import assert_expected
from bkmath.checks.clark import check_clark


def test_clark(certify):
    certs = certify(check_clark)
    assert_expected(certs)
    by = {c.theorem: c for c in certs}
    for name in ("clark_borel_transform", "clark_aronszajn_donoghue", "clark_measure_herglotz",
                 "clark_aleksandrov"):
        assert by[name].status is Status.VERIFIED, name
    assert by["clark_aronszajn_donoghue"].details["count mismatches"] == 0
    for name in ("clark_weight_sign", "clark_aleksandrov_ac_only"):
        c = by[name]
        assert c.kind is Kind.NEGATIVE_CONTROL and c.status is Status.REFUTED
        assert c.value > 1e-3  # refuted by a wide margin, not by rounding
