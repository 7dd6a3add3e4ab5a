"""How hard a theorem check works: the :class:`Profile` every check function takes.

A check is a function ``check_<name>(profile: Profile) -> list[Certificate]`` (see
:mod:`bkmath.checks`); the family modules import :class:`Profile` from here, so that the
package, which lists their check functions, is imported by none of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

from bkmath.certificate import Certificate

__all__ = ["Profile", "CheckFn"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Profile:
    """How hard to check: ``quick`` (seconds, used by ``bk demo``), ``default`` (the
    ``pytest proofs_checks`` run, < 5 min in all) or ``thorough`` (larger sizes, higher
    precision).

    >>> Profile("quick").pick(quick=50, default=200, thorough=2000)
    50
    """

    name: str = "default"

    def __post_init__(self) -> None:
        if self.name not in ("quick", "default", "thorough"):
            raise ValueError(f"profile must be 'quick', 'default' or 'thorough', got {self.name!r}")

    def pick(self, *, quick: T, default: T, thorough: T) -> T:
        return {"quick": quick, "default": default, "thorough": thorough}[self.name]


#: A theorem check: takes a :class:`Profile`, returns its certificates.
CheckFn = Callable[[Profile], list[Certificate]]
