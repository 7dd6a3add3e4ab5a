"""mpmath reference for :mod:`bkmath.primes`: the prime-bump potential V_ε(x).

``prime_bump_potential_mp`` is defined next to the fast routine in :mod:`bkmath.primes` (it
shares the prime-power table); it is re-exported here so that every reference is found by
the family of the code it checks.
"""

from __future__ import annotations

from bkmath.primes import prime_bump_potential_mp

__all__ = ["prime_bump_potential_mp"]
