"""The continuant of the lattice Jost polynomial, in any arithmetic (float, mpmath, fmpq_poly).

Private: shared by :mod:`bkmath.resonances` and its reference :mod:`bkmath.reference.resonances`
(which evaluate it in different arithmetics), so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["jost_continuant"]


def jost_continuant(win: Sequence, one, zero):
    """Coefficient lists (ascending) of P(w) = det(I + w(H_L − 2) + w²(I − E_11 − E_LL)) from
    the continuant θ_n = d_n θ_{n−1} − w² θ_{n−2}, in the arithmetic of ``one``/``zero``."""
    L = len(win)
    if L == 0:
        return [one, zero, -one]  # v ≡ 0: D ≡ 1, P = 1 − w²
    if L == 1:
        return [one, win[0], -one]

    def mul(p, q):
        out = [zero] * (len(p) + len(q) - 1)
        for i, a in enumerate(p):
            for j, b in enumerate(q):
                out[i + j] = out[i + j] + a * b
        return out

    def sub_w2(p, q):  # p − w² q
        out = list(p) + [zero] * max(0, len(q) + 2 - len(p))
        for j, b in enumerate(q):
            out[j + 2] = out[j + 2] - b
        return out

    prev2, prev = [one], [one, win[0]]
    for n in range(1, L):
        d = [one, win[n]] if n == L - 1 else [one, win[n], one]
        prev2, prev = prev, sub_w2(mul(d, prev), prev2)
    return prev
