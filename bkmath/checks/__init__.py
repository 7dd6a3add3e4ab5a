"""Theorem checks: plain functions ``check_<name>(profile) -> list[Certificate]``.

One module per theorem family, named like its test in ``proofs_checks/``
(``bkmath/checks/schatten.py`` ↔ ``proofs_checks/test_schatten.py``): ``resolvent``,
``birman_schwinger``, ``determinant``, ``schatten``, ``scattering``, ``limiting_absorption``,
``resonances``, ``continuum``, ``breit_wigner``, ``clark``, ``mfunction``,
``line_resonances``, ``mourre``,
``primes``. A check's name is its
function's name without ``check_``, its description the first paragraph of its docstring::

    def check_herglotz(profile: Profile) -> list[Certificate]:
        \"\"\"Herglotz bounds Im G > 0, |G| <= 1/Im z for real symmetric H\"\"\"
        n = profile.pick(quick=50, default=200, thorough=2000)
        ...

``pytest proofs_checks`` imports the check functions it runs
(``from bkmath.checks.schatten import check_schatten``); :func:`all_checks` lists every check
in report order for ``bk certify`` and docs/theory.md — add a new check there and give it a
test in ``proofs_checks/``. The family modules import :class:`Profile` from
:mod:`bkmath.checks.profile`, never this package (which imports them). :func:`run_check`
turns an exception inside a check into an unexpected certificate, so the report and the test
suite can never disagree.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from bkmath.certificate import Certificate, Kind, Status
from bkmath.checks.profile import CheckFn, Profile

__all__ = [
    "Profile",
    "CheckFn",
    "CheckSpec",
    "all_checks",
    "registry",
    "run_check",
    "run_checks",
    "assert_expected",
]


@dataclasses.dataclass(frozen=True)
class CheckSpec:
    """A check function with its name, description and defining module."""

    name: str
    description: str
    func: CheckFn
    module: str

    @classmethod
    def of(cls, func: CheckFn) -> CheckSpec:
        doc = inspect.getdoc(func) or ""
        description = " ".join(doc.split("\n\n")[0].split())
        return cls(func.__name__.removeprefix("check_"), description, func, func.__module__)


@contextmanager
def _check_module(module: str, out: list[CheckFn]) -> Iterator[None]:
    """Run the ``with`` body (importing ``module`` and listing its checks in ``out``); if it
    raises, list in their place one check that reports the error."""
    try:
        yield
    except Exception as exc:  # reported by the stand-in check, never hidden
        out.append(_import_failure(module, exc))


def _import_failure(module: str, exc: Exception) -> CheckFn:
    """A stand-in check for a module that could not be imported: one ``inconclusive``
    certificate of kind ``theorem`` (hence unexpected) carrying the error."""
    error = f"{type(exc).__name__}: {exc}"
    short = module.rsplit(".", 1)[-1]

    def check(profile: Profile) -> list[Certificate]:
        return [
            Certificate(
                theorem=short,
                statement=f"check module {module} could not be imported",
                status=Status.INCONCLUSIVE,
                kind=Kind.THEOREM,
                details={"error": error},
            )
        ]

    check.__name__ = check.__qualname__ = f"check_{short}"
    check.__module__ = module
    check.__doc__ = f"IMPORT ERROR: {error}"
    check.import_error = error  # type: ignore[attr-defined]
    return check


def all_checks() -> list[CheckFn]:
    """Every theorem check, in report order (``bk certify``, docs/theory.md's table).

    The check modules are imported on the first call. A module that cannot be imported is
    listed as one stand-in check (attribute ``import_error``) whose certificate reports the
    error as an unexpected outcome; the other modules' checks still run.
    """
    out: list[CheckFn] = []
    with _check_module("bkmath.checks.resolvent", out):
        from bkmath.checks import resolvent

        out += [
            resolvent.check_free_resolvent,
            resolvent.check_resolvent_identity,
            resolvent.check_herglotz,
            resolvent.check_resolvent_diagonal_mpmath,
        ]
    with _check_module("bkmath.checks.dissipative", out):
        from bkmath.checks import dissipative

        out += [dissipative.check_dissipative_herglotz, dissipative.check_green_resolvent]
    with _check_module("bkmath.checks.birman_schwinger", out):
        from bkmath.checks import birman_schwinger

        out += [birman_schwinger.check_birman_schwinger]
    with _check_module("bkmath.checks.determinant", out):
        from bkmath.checks import determinant

        out += [determinant.check_determinant]
    with _check_module("bkmath.checks.schatten", out):
        from bkmath.checks import schatten

        out += [schatten.check_schatten]
    with _check_module("bkmath.checks.scattering", out):
        from bkmath.checks import scattering

        out += [scattering.check_scattering]
    with _check_module("bkmath.checks.limiting_absorption", out):
        from bkmath.checks import limiting_absorption

        out += [limiting_absorption.check_limiting_absorption]
    with _check_module("bkmath.checks.resonances", out):
        from bkmath.checks import resonances

        out += [resonances.check_resonances]
    with _check_module("bkmath.checks.continuum", out):
        from bkmath.checks import continuum

        out += [continuum.check_continuum]
    with _check_module("bkmath.checks.breit_wigner", out):
        from bkmath.checks import breit_wigner

        out += [breit_wigner.check_breit_wigner]
    with _check_module("bkmath.checks.clark", out):
        from bkmath.checks import clark

        out += [clark.check_clark]
    with _check_module("bkmath.checks.mfunction", out):
        from bkmath.checks import mfunction

        out += [mfunction.check_mfunction]
    with _check_module("bkmath.checks.line_resonances", out):
        from bkmath.checks import line_resonances

        out += [line_resonances.check_line_resonances]
    with _check_module("bkmath.checks.mourre", out):
        from bkmath.checks import mourre

        out += [
            mourre.check_mourre_commutator_identity,
            mourre.check_seed_commutator_identity,
            mourre.check_mourre_estimate,
        ]
    with _check_module("bkmath.checks.primes", out):
        from bkmath.checks import primes

        out += [primes.check_explicit_formula, primes.check_prime_bump_pairing]
    return out


def registry() -> dict[str, CheckSpec]:
    """The checks of :func:`all_checks` by name, in report order (for ``bk certify --only``
    and ``--list``, and lookups by name)."""
    specs = [CheckSpec.of(f) for f in all_checks()]
    return {s.name: s for s in specs}


def run_check(check: CheckFn | str, profile: Profile | str = "default") -> list[Certificate]:
    """Run one check (a check function, or the name of one in :func:`registry`) and return
    its certificates.

    An exception inside a check is not swallowed into a pass: it becomes an
    ``inconclusive`` certificate of kind ``theorem`` (hence unexpected) carrying the error.
    A check that returns no certificate is an error (``RuntimeError``).
    """
    prof = profile if isinstance(profile, Profile) else Profile(profile)
    if isinstance(check, str):
        specs = registry()
        if check not in specs:
            raise ValueError(f"unknown check {check!r}; known: {sorted(specs)}")
        spec = specs[check]
    else:
        spec = CheckSpec.of(check)
    t0 = time.perf_counter()
    try:
        certs = spec.func(prof)
    except Exception as exc:  # reported, not hidden
        return [_error_certificate(spec, exc, t0)]
    if not certs:
        raise RuntimeError(f"check {spec.name!r} returned no certificate")
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
    checks: Iterable[CheckFn | str] | None = None,
    profile: Profile | str = "default",
    *,
    progress: bool = False,
) -> list[Certificate]:
    """Run several checks (all of :func:`all_checks` by default), optionally with a tqdm
    progress bar."""
    selected = all_checks() if checks is None else list(checks)
    out: list[Certificate] = []
    it: Iterable[CheckFn | str] = selected
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(selected, desc="certificates", unit="check")
        it = bar
    try:
        for check in it:
            if bar is not None:
                bar.set_postfix_str(check if isinstance(check, str) else CheckSpec.of(check).name)
            out.extend(run_check(check, profile))
    finally:  # also on Ctrl-C: the bar's line is finished before the caller's message
        if bar is not None:
            bar.close()
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
