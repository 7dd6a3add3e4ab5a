"""``bk certify``: run the theorem checks and print the certificate table.

Runs every check of :func:`bkmath.checks.all_checks` (the same check functions as
``pytest proofs_checks``) in report order with a tqdm progress bar, prints one row per
certificate (theorem, kind, status, margin, time) and, with ``--out DIR``, writes
``DIR/certificates.json`` and ``DIR/certificates.md``.

Exit code: 0 when every certificate has an expected outcome (a *refuted seed claim* and a
*refuted negative control* are expected: they are reported, not errors); 1 when some
certificate is unexpected (a theorem not verified, a negative control not refuted, a seed
claim inconclusive, a check that raised, or a check module that could not be imported); 2
for a usage error (unknown check name); 130 when interrupted (Ctrl-C): one line on stderr and
nothing written to ``--out``, so a partial run never looks like a complete report.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bkmath import checks
from bkmath.certificate import Certificate, Status, write_report
from bkmath.checks import Profile, run_checks

__all__ = ["configure_parser", "run", "format_table"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        choices=("quick", "default", "thorough"),
        default="default",
        help="sizes and precisions: quick (seconds), default (the pytest run), thorough",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        default=None,
        help="run only these checks (names as in --list)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="write DIR/certificates.json and DIR/certificates.md",
    )
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


LEGEND = """\
!        unexpected outcome (a theorem not verified, a negative control not refuted, ...):
         exit code 1, each one named after the summary line
margin   signed slack of the claim: > 0 it holds with room, < 0 it fails
refuted  the claim fails on the counterexample recorded in its certificate; the expected
         outcome of a negative_control (a check built to fail) and a reported result for a
         seed_claim (a claim of the seed documents under test)"""


def _fmt_margin(c: Certificate) -> str:
    return "—" if c.margin is None else f"{c.margin:.3g}"


def format_table(certs: list[Certificate]) -> str:
    """Plain-text table: theorem / kind / status / margin / time, unexpected rows marked ``!``
    (the first column, headed ``!``), then the :data:`LEGEND`."""
    rows = [("!", "theorem", "kind", "status", "margin", "time (s)")]
    for c in certs:
        rows.append(
            (
                " " if c.expected else "!",
                c.theorem,
                c.kind.value,
                c.status.value,
                _fmt_margin(c),
                f"{c.wall_time:.2f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, r in enumerate(rows):
        lines.append(
            "  ".join(
                cell.rjust(w) if i >= 4 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n\n" + LEGEND


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        if out is None:
            where = ""
        elif getattr(args, "_writing", False):  # between the two atomic writes
            where = f"; the report in {out} may be incomplete"
        else:
            where = f"; nothing written to {out}"
        print(f"bk certify: interrupted{where}", file=sys.stderr, flush=True)
        return 130


def _run(args: argparse.Namespace) -> int:
    specs = checks.registry()
    broken = [s for s in specs.values() if hasattr(s.func, "import_error")]
    if args.list:
        for name, spec in specs.items():
            print(f"{name:32s} {spec.description}")
        return 1 if broken else 0
    names = list(specs) if args.only is None else list(args.only)
    unknown = [n for n in names if n not in specs]
    if unknown:
        print(
            f"bk certify: unknown check(s) {unknown}; known: {sorted(specs)}",
            file=sys.stderr,
        )
        return 2
    profile = Profile(args.profile)
    t0 = time.perf_counter()
    certs = run_checks([specs[n].func for n in names], profile, progress=not args.no_progress)
    total = time.perf_counter() - t0
    print(format_table(certs))
    bad = [c for c in certs if not c.expected]
    counts = {s.value: sum(c.status is s for c in certs) for s in Status}
    print(
        f"\n{len(certs)} certificates from {len(names)} checks in {total:.1f} s "
        f"(profile {profile.name}): "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f"; {len(bad)} unexpected"
    )
    for c in bad:
        why = c.details.get("error") if c.details else None
        print(f"  UNEXPECTED {c.summary()}" + (f" — {why}" if why else ""))
    if args.out is not None:
        out = Path(args.out)
        args._writing = True
        write_report(certs, out / "certificates.json", out / "certificates.md")
        print(f"wrote {out / 'certificates.json'} and {out / 'certificates.md'}")
    return 1 if bad else 0
