"""Regenerate the status table of ``docs/theory.md`` from a ``certificates.json``.

Usage::

    python -m bkmath.checks.theory_doc certificates.json [--doc docs/theory.md] [--check]
                                       [--profile default]

The table is written between the marker comments ``<!-- BEGIN CERTIFICATE TABLE -->`` and
``<!-- END CERTIFICATE TABLE -->``; the rest of the document is left untouched. With
``--check`` nothing is written and the exit code says whether the table is up to date (0) or
not (1): it compares what a run decides — each row's certificate, kind, status, expected and
margin (as displayed) — and not the wall times, which differ on every run. Without
``--profile`` the profile annotation of the table already in the document is kept. Rows are
sorted by certificate name.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

from bkmath.certificate import Certificate

__all__ = [
    "BEGIN",
    "END",
    "load_certificates",
    "render_table",
    "update_text",
    "table_rows",
    "table_profile",
    "main",
]

BEGIN = "<!-- BEGIN CERTIFICATE TABLE -->"
END = "<!-- END CERTIFICATE TABLE -->"

_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DOC = _ROOT / "docs" / "theory.md"


def load_certificates(path: str | Path) -> list[Certificate]:
    """Read a ``certificates.json`` written by :func:`bkmath.certificate.write_report`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of certificates")
    return [Certificate.from_dict(d) for d in data]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(
    certs: list[Certificate], source: str = "certificates.json", profile: str | None = None
) -> str:
    """The markdown status table (with a one-line summary above it)."""
    status = Counter(c.status.value for c in certs)
    unexpected = sum(not c.expected for c in certs)
    run = f" (profile {profile})" if profile else ""
    lines = [
        f"Generated from `{_cell(source)}`{run} by `python -m bkmath.checks.theory_doc`: "
        f"{len(certs)} certificates — {status.get('verified', 0)} verified, "
        f"{status.get('refuted', 0)} refuted, {status.get('inconclusive', 0)} inconclusive; "
        f"**{unexpected} unexpected**.",
        "",
        "| certificate | kind | status | expected | margin | precision | time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in sorted(certs, key=lambda c: c.theorem):
        m = "—" if c.margin is None else f"{c.margin:.3g}"
        lines.append(
            f"| `{_cell(c.theorem)}` | {c.kind.value} | **{c.status.value}** | "
            f"{'yes' if c.expected else 'NO'} | {m} | {_cell(c.precision)} | "
            f"{c.wall_time:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _between_markers(text: str) -> tuple[int, int]:
    i, j = text.find(BEGIN), text.find(END)
    if i < 0 or j < 0 or j < i:
        raise ValueError(f"the document must contain {BEGIN!r} followed by {END!r}")
    return i + len(BEGIN), j


def update_text(text: str, table: str) -> str:
    """Replace what lies between the markers in ``text`` by ``table``."""
    i, j = _between_markers(text)
    return text[:i] + "\n\n" + table + "\n" + text[j:]


# the columns a run decides (certificate, kind, status, expected, margin); precision and the
# wall time are left out: the time differs on every run
_DECIDED = 5


def _split_row(line: str) -> list[str]:
    """The cells of a markdown table row (escaped pipes ``\\|`` stay inside their cell)."""
    cells = re.split(r"(?<!\\)\|", line.strip())
    return [c.strip() for c in cells[1:-1]]


def table_rows(text: str) -> list[tuple[str, ...]]:
    """The decided cells (certificate, kind, status, expected, margin as displayed) of each
    row of the status table between the markers of ``text`` (or of a table alone)."""
    if BEGIN in text or END in text:
        i, j = _between_markers(text)
        text = text[i:j]
    rows = []
    for line in text.splitlines():
        if not line.startswith("| `"):  # header, separator and summary lines
            continue
        rows.append(tuple(_split_row(line)[:_DECIDED]))
    return rows


_PROFILE = re.compile(r"^Generated from `.*?` \(profile ([^)]+)\) by", re.M)


def table_profile(text: str) -> str | None:
    """The profile named in the summary line of the table in ``text`` (None when none is)."""
    if BEGIN in text and END in text:
        i, j = _between_markers(text)
        text = text[i:j]
    m = _PROFILE.search(text)
    return m.group(1) if m else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bkmath.checks.theory_doc", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("certificates", type=Path, help="certificates.json from a certificate run")
    p.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="document to update")
    p.add_argument("--check", action="store_true", help="only report whether it is up to date")
    p.add_argument(
        "--profile",
        default=None,
        help="profile of the run, shown in the summary (default: the one the table names)",
    )
    args = p.parse_args(argv)
    certs = load_certificates(args.certificates)
    old = args.doc.read_text(encoding="utf-8")
    profile = args.profile or table_profile(old)
    table = render_table(certs, args.certificates.name, profile)
    new = update_text(old, table)
    if args.check:
        have, want = table_rows(old), table_rows(table)
        if have == want:
            print(
                f"{args.doc}: status table up to date ({len(want)} certificates; wall times "
                "not compared)"
            )
            return 0
        changed = sorted(set(have) ^ set(want), key=lambda r: r[0])
        names = list(dict.fromkeys(r[0].strip("`") for r in changed))
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        print(
            f"{args.doc}: status table OUT OF DATE ({len(have)} rows, {len(want)} "
            f"certificates; differ: {', '.join(names[:5])}{more})"
        )
        return 1
    if new != old:
        args.doc.write_text(new, encoding="utf-8")
    print(f"{args.doc}: status table from {len(certs)} certificates")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
