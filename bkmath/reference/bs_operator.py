"""mpmath reference for :mod:`bkmath.bs_operator`: the lattice Birman–Schwinger matrix.

A dense ``mpmath.matrix`` built entry by entry from the closed-form free resolvent
(docs/conventions.md §2, §4); precision scoped with ``mpmath.workdps``, results as mpmath
numbers (convert with ``complex(...)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import mpmath

from bkmath.reference.resolvent import lattice_w_mp

__all__ = ["bs_matrix_mp"]


def bs_matrix_mp(v: Sequence[float], z: complex, *, dps: int = 50) -> mpmath.matrix:
    """Lattice K_mn = sgn(v_m)|v_m|^{1/2} G0(m, n; z) |v_n|^{1/2} on supp V (mpmath).

    ``Im z >= 0``: a real z is the boundary value λ + i0 (on the band) or a real point of
    the resolvent set (off it), as in ``birman_schwinger(v, z, boundary=True)``.
    """
    with mpmath.workdps(dps):
        sites = [(i, mpmath.mpf(x)) for i, x in enumerate(v) if x != 0]
        w = lattice_w_mp(z, boundary=True, dps=dps, as_mp=True)
        c = 1 / (1 / w - w)
        K = mpmath.matrix(len(sites), len(sites))
        for a, (m, vm) in enumerate(sites):
            for b, (n, vn) in enumerate(sites):
                K[a, b] = mpmath.sign(vm) * mpmath.sqrt(abs(vm)) * c * w ** abs(m - n) * (
                    mpmath.sqrt(abs(vn))
                )
        return K
