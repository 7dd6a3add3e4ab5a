"""Registry of theorem checks: each check returns a list of :class:`~bkmath.Certificate`.

One module per theorem under ``bkmath/checks/``; each registers its check functions with
:func:`register`. ``pytest proofs_checks`` and ``bk certify`` both run the checks from this
registry, so the report and the test suite can never disagree.

A check function takes a :class:`Profile` and returns certificates::

    @register("herglotz", "Herglotz bounds Im G > 0, |G| <= 1/Im z for real symmetric H")
    def check_herglotz(profile: Profile) -> list[Certificate]:
        n = profile.pick(quick=50, default=200, thorough=2000)
        ...
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from bkmath.certificate import Certificate, Kind, Status

__all__ = [
    "Profile",
    "CheckSpec",
    "register",
    "registry",
    "run_check",
    "run_checks",
    "assert_expected",
]

#: Modules that define checks, in report order. Add a module here when you add a theorem.
CHECK_MODULES: list[str] = [
    "bkmath.checks.resolvent_checks",
    "bkmath.checks.birman_schwinger_checks",
    "bkmath.checks.determinant_checks",
    "bkmath.checks.schatten_checks",
    "bkmath.checks.scattering_checks",
    "bkmath.checks.limiting_absorption_checks",
    "bkmath.checks.mourre_checks",
    "bkmath.checks.primes_checks",
]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Profile:
    """How hard to check: ``quick`` (seconds, used by ``bk demo``), ``default`` (the
    ``pytest proofs_checks`` run, < 5 min in all) or ``thorough`` (larger sizes, higher
    precision)."""

    name: str = "default"

    def __post_init__(self) -> None:
        if self.name not in ("quick", "default", "thorough"):
            raise ValueError(f"profile must be 'quick', 'default' or 'thorough', got {self.name!r}")

    def pick(self, *, quick: T, default: T, thorough: T) -> T:
        return {"quick": quick, "default": default, "thorough": thorough}[self.name]


CheckFn = Callable[[Profile], list[Certificate]]


@dataclasses.dataclass(frozen=True)
class CheckSpec:
    name: str
    description: str
    func: CheckFn
    module: str


_REGISTRY: dict[str, CheckSpec] = {}


def register(name: str, description: str) -> Callable[[CheckFn], CheckFn]:
    """Decorator registering a check function under ``name``."""

    def deco(func: CheckFn) -> CheckFn:
        if name in _REGISTRY and _REGISTRY[name].func is not func:
            raise ValueError(f"check {name!r} registered twice")
        _REGISTRY[name] = CheckSpec(name, description, func, func.__module__)
        return func

    return deco


def registry(*, load: bool = True) -> dict[str, CheckSpec]:
    """All registered checks (importing every module of ``CHECK_MODULES`` first)."""
    if load:
        for mod in CHECK_MODULES:
            importlib.import_module(mod)
    return dict(_REGISTRY)


def run_check(name: str, profile: Profile | str = "default") -> list[Certificate]:
    """Run one registered check and return its certificates.

    An exception inside a check is not swallowed into a pass: it becomes an
    ``inconclusive`` certificate of kind ``theorem`` (hence unexpected) carrying the error.
    """
    prof = profile if isinstance(profile, Profile) else Profile(profile)
    specs = registry()
    if name not in specs:
        raise ValueError(f"unknown check {name!r}; known: {sorted(specs)}")
    spec = specs[name]
    t0 = time.perf_counter()
    try:
        certs = spec.func(prof)
    except Exception as exc:  # reported, not hidden
        return [_error_certificate(spec, exc, t0)]
    if not certs:
        raise RuntimeError(f"check {name!r} returned no certificate")
    return certs


def _error_certificate(spec: CheckSpec, exc: Exception, t0: float) -> Certificate:
    """The ``inconclusive`` certificate reporting that check ``spec`` raised ``exc`` (started
    at ``time.perf_counter() == t0``)."""
    return Certificate(
        theorem=spec.name,
        statement=spec.description,
        status=Status.INCONCLUSIVE,
        kind=Kind.THEOREM,
        details={"error": f"{type(exc).__name__}: {exc}"},
        wall_time=time.perf_counter() - t0,
    )


def run_checks(
    names: Iterable[str] | None = None,
    profile: Profile | str = "default",
    *,
    progress: bool = False,
) -> list[Certificate]:
    """Run several checks (all by default), optionally with a tqdm progress bar."""
    specs = registry()
    selected = list(specs) if names is None else list(names)
    out: list[Certificate] = []
    it: Iterable[str] = selected
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(selected, desc="certificates", unit="check")
        it = bar
    for name in it:
        if bar is not None:
            bar.set_postfix_str(name)
        out.extend(run_check(name, profile))
    return out


def assert_expected(certs: list[Certificate]) -> None:
    """Raise ``AssertionError`` naming every certificate whose status is unexpected."""
    bad = [c for c in certs if not c.expected]
    if bad:
        raise AssertionError(
            "unexpected certificate outcome(s):\n"
            + "\n".join(
                f"  {c.summary()} details={c.details} counterexample={c.counterexample}"
                for c in bad
            )
        )
