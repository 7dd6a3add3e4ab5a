"""pytest plumbing for the certificate suite.

Every test here imports the check functions it runs from their module of
:mod:`bkmath.checks` (``from bkmath.checks.schatten import check_schatten``) and obtains
certificates through the ``certify`` fixture, which runs a check function and records its
certificates. At the end of the session the certificates are written to
``certificates.json`` and ``certificates.md`` (directory set by ``--certificates-dir`` or
``$BK_CERT_DIR``, default: the current directory), and the terminal summary names the two
files. Works under pytest-xdist: each worker writes a part file, the controller merges them.

``pytest proofs_checks --thorough`` runs the thorough profile.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bkmath.certificate import Certificate, write_report
from bkmath.checks import CheckFn, Profile, run_check

_COLLECTED: list[Certificate] = []
_WRITTEN: list[tuple[Path, Path, int]] = []  # (json, md, count) written by this session


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--thorough", action="store_true", help="run the thorough profile")
    parser.addoption(
        "--certificates-dir",
        default=os.environ.get("BK_CERT_DIR", "."),
        help="where certificates.json / certificates.md are written",
    )


@pytest.fixture(scope="session")
def profile(request: pytest.FixtureRequest) -> Profile:
    return Profile("thorough" if request.config.getoption("--thorough") else "default")


@pytest.fixture
def certify(profile: Profile):
    """``certify(check_fn)`` runs the check function ``check_fn`` at the session's profile
    (through :func:`bkmath.checks.run_check`: an exception becomes an unexpected certificate),
    records and returns its certificates."""

    def run(check: CheckFn) -> list[Certificate]:
        certs = run_check(check, profile)
        _COLLECTED.extend(certs)
        return certs

    return run


def _outdir(config: pytest.Config) -> Path:
    return Path(config.getoption("--certificates-dir"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    outdir = _outdir(config)
    worker = getattr(config, "workerinput", None)
    if worker is not None:  # xdist worker: write a part file for the controller
        if _COLLECTED:
            part = outdir / f".certificates.{worker['workerid']}.json"
            part.parent.mkdir(parents=True, exist_ok=True)
            part.write_text(json.dumps([c.to_dict() for c in _COLLECTED]))
        return
    certs = list(_COLLECTED)
    for part in sorted(outdir.glob(".certificates.*.json")):
        certs.extend(Certificate.from_dict(d) for d in json.loads(part.read_text()))
        part.unlink()
    if certs:
        certs.sort(key=lambda c: c.theorem)
        js, md = outdir / "certificates.json", outdir / "certificates.md"
        write_report(certs, js, md)
        _WRITTEN.append((js, md, len(certs)))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Say where the certificate report went (runs after :func:`pytest_sessionfinish`)."""
    for js, md, n in _WRITTEN:
        terminalreporter.write_sep("-", "certificate report")
        terminalreporter.write_line(f"{n} certificates written to {js.resolve()} and "
                                    f"{md.resolve()} (set --certificates-dir or $BK_CERT_DIR)")
