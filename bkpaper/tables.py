"""LaTeX tables for the paper, generated from ``certificates.json`` (never typed by hand).

Usage::

    python -m bkpaper.tables certificates.json > paper/generated/certificates_table.tex
    python -m bkpaper.tables certificates.json --out paper/generated

The second form writes three files:

* ``certificates_table.tex`` — one row per certificate: theorem, kind, status, whether the
  status is the expected one, margin, precision, wall time;
* ``statements.tex`` — the exact statement checked by each theorem (``description`` list), with
  its verdicts: the theory section of the paper inputs this file, so the statements in the
  paper are the ones the checks verify;
* ``certificate_numbers.tex`` — counts as ``\\bknum{cert.verified}`` etc. macros.

``certificates.json`` is written by ``pytest proofs_checks`` or ``bk certify``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

__all__ = ["load_certificates", "certificates_table", "statements_tex", "numbers_tex", "latex_text"]

# Unicode that appears in statements, mapped to pdflatex-safe LaTeX (text mode).
_UNICODE = {
    "α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\varepsilon",
    "ζ": r"\zeta", "η": r"\eta", "θ": r"\theta", "ι": r"\iota", "κ": r"\kappa",
    "λ": r"\lambda", "μ": r"\mu", "ν": r"\nu", "ξ": r"\xi", "π": r"\pi", "ρ": r"\rho",
    "σ": r"\sigma", "τ": r"\tau", "φ": r"\varphi", "ϕ": r"\phi", "χ": r"\chi", "ψ": r"\psi",
    "ω": r"\omega", "Γ": r"\Gamma", "Δ": r"\Delta", "Θ": r"\Theta", "Λ": r"\Lambda",
    "Ξ": r"\Xi", "Π": r"\Pi", "Σ": r"\Sigma", "Φ": r"\Phi", "Ψ": r"\Psi", "Ω": r"\Omega",
    "≤": r"\le", "≥": r"\ge", "≠": r"\ne", "≈": r"\approx", "∈": r"\in", "∉": r"\notin",
    "→": r"\to", "↦": r"\mapsto", "⇒": r"\Rightarrow", "⇔": r"\Leftrightarrow",
    "∞": r"\infty", "‖": r"\|", "·": r"\cdot", "×": r"\times", "±": r"\pm", "∓": r"\mp",
    "∑": r"\sum", "∏": r"\prod", "√": r"\surd", "∫": r"\int", "∬": r"\iint",
    "∂": r"\partial",
    "∇": r"\nabla", "ℓ": r"\ell", "ℝ": r"\mathbb{R}", "ℤ": r"\mathbb{Z}", "ℂ": r"\mathbb{C}",
    "ℕ": r"\mathbb{N}", "⊂": r"\subset", "⊆": r"\subseteq", "∩": r"\cap", "∪": r"\cup",
    "∀": r"\forall", "∃": r"\exists", "⟨": r"\langle", "⟩": r"\rangle", "∘": r"\circ",
    "⊗": r"\otimes", "⊕": r"\oplus", "∼": r"\sim", "≃": r"\simeq", "≡": r"\equiv",
    "≪": r"\ll", "≫": r"\gg", "∝": r"\propto", "†": r"\dagger", "⁎": r"*",
    "²": r"^{2}", "³": r"^{3}", "¹": r"^{1}", "⁰": r"^{0}", "⁴": r"^{4}", "⁻": r"^{-}",
    "⁺": r"^{+}", "ᵀ": r"^{T}", "ⁿ": r"^{n}", "₀": r"_{0}", "₁": r"_{1}", "₂": r"_{2}",
    "₃": r"_{3}", "ₙ": r"_{n}", "ₖ": r"_{k}", "ᵢ": r"_{i}", "ⱼ": r"_{j}",
    "½": r"\tfrac12", "¼": r"\tfrac14", "°": r"^{\circ}", "′": r"'", "∖": r"\setminus",
    "₋": r"_{-}", "₊": r"_{+}", "₄": r"_{4}", "₅": r"_{5}", "₆": r"_{6}", "₇": r"_{7}",
    "₈": r"_{8}", "₉": r"_{9}", "⁵": r"^{5}", "⁶": r"^{6}", "⁷": r"^{7}", "⁸": r"^{8}",
    "⁹": r"^{9}", "ᵏ": r"^{k}", "ⁱ": r"^{i}", "ₘ": r"_{m}", "ₓ": r"_{x}",
    "↓": r"\downarrow", "↑": r"\uparrow", "←": r"\leftarrow", "↔": r"\leftrightarrow",
    "⟶": r"\longrightarrow", "≲": r"\lesssim", "≳": r"\gtrsim", "⊥": r"\perp",
    "∅": r"\emptyset", "∣": r"\mid", "ℑ": r"\Im", "ℜ": r"\Re", "∆": r"\Delta",
    "µ": r"\mu", "∧": r"\wedge", "∨": r"\vee", "¬": r"\neg", "⌊": r"\lfloor",
    "⌋": r"\rfloor", "⌈": r"\lceil", "⌉": r"\rceil", "∗": r"*", "≔": r":=", "⋯": r"\cdots",
    "⋅": r"\cdot", "ϑ": r"\vartheta", "ϵ": r"\epsilon", "ς": r"\varsigma",
}
_TEXT = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
    "–": "--", "—": "---", "‘": "`", "’": "'", "“": "``", "”": "''", "…": r"\ldots{}",
    "−": r"\ensuremath{-}", "\u00a0": "~", "é": r"\'e", "ö": r'\"o', "ü": r'\"u',
    "§": r"\S{}", "á": r"\'a", "è": r"\`e", "ä": r'\"a', "ß": r"\ss{}", "•": r"\textbullet{}",
}


def latex_text(s: str) -> str:
    """Escape ``s`` for LaTeX text mode; Greek letters and math symbols become ``\\ensuremath``.

    Characters that have no mapping are written as ``[U+XXXX]`` rather than breaking pdflatex.

    >>> print(latex_text("Im z > 0, |g| ≤ 1/η"))
    Im z \\textgreater{} 0, \\textbar{}g\\textbar{} \\ensuremath{\\le} 1/\\ensuremath{\\eta}
    """
    out = []
    for ch in s:
        if ch in _TEXT:
            out.append(_TEXT[ch])
        elif ch in _UNICODE:
            out.append(r"\ensuremath{" + _UNICODE[ch] + "}")
        elif ord(ch) < 128:
            out.append(ch)
        else:
            out.append(f"[U+{ord(ch):04X}]")
    return "".join(out)


def load_certificates(path: str | Path) -> list[dict[str, Any]]:
    """Read ``certificates.json`` (a list of certificate dicts, see :mod:`bkmath.certificate`).

    Raises ``FileNotFoundError`` naming the command that writes the file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"{p} does not exist: run `pytest proofs_checks` or `bk certify` to write it"
        )
    data = json.loads(p.read_text())
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise ValueError(f"{p}: expected a JSON list of certificate objects")
    for d in data:
        for key in ("theorem", "status", "kind"):
            if key not in d:
                raise ValueError(f"{p}: certificate without {key!r}: {d}")
    return data


def _num(x: Any) -> str:
    if x is None:
        return "--"
    if isinstance(x, str):
        try:
            x = float(x)
        except ValueError:
            return latex_text(x)
    xf = float(x)
    if math.isnan(xf):
        return "NaN"
    if not math.isfinite(xf):
        return f"${'' if xf > 0 else '-'}\\infty$"
    if xf == 0:
        return "$0$"
    mant, exp = f"{xf:.2e}".split("e")  # rounding decides the exponent (9.999 -> 1.00e+01)
    e = int(exp)
    if -2 <= e <= 3:
        return f"${xf:.3g}$"
    return f"${mant}\\times10^{{{e}}}$"


def _tt(name: str) -> str:
    """A breakable typewriter name: line breaks allowed after underscores and brackets."""
    t = latex_text(name).replace(r"\_", r"\_\allowbreak{}").replace("[", r"[\allowbreak{}")
    return r"\texttt{" + t + "}"


_STATUS = {
    "verified": r"\textsc{verified}",
    "refuted": r"\textbf{\textsc{refuted}}",
    "inconclusive": r"\textit{inconclusive}",
}
_KIND = {"theorem": "theorem", "seed_claim": "seed claim", "negative_control": "neg.\\ control"}


def certificates_table(certs: list[dict[str, Any]], source: str = "certificates.json") -> str:
    """A ``longtable`` of all certificates (needs ``longtable``, ``booktabs``, ``array``)."""
    rows = [
        "% generated by `python -m bkpaper.tables` from " + latex_text(source)
        + ": do not edit",
        r"\begingroup\footnotesize",
        r"\begin{longtable}{@{}>{\raggedright\arraybackslash}p{0.34\linewidth}llcr"
        r">{\raggedright\arraybackslash}p{0.17\linewidth}r@{}}",
        r"\caption{Certificates of the theorem checks (\texttt{" + latex_text(source)
        + r"}). \emph{Margin} is the signed slack (positive: the claim holds with room); "
        r"\emph{exp.} says whether the status is the expected outcome for the kind of check "
        r"(a seed claim may be verified or refuted; a negative control must be refuted).}"
        r"\label{tab:certificates}\\",
        r"\toprule",
        r"theorem & kind & status & exp. & margin & precision & time (s)\\",
        r"\midrule\endfirsthead",
        r"\toprule theorem & kind & status & exp. & margin & precision & time (s)\\"
        r"\midrule\endhead",
    ]
    for c in sorted(certs, key=lambda d: (d["theorem"], d.get("kind", ""))):
        expected = c.get("expected")
        exp = "--" if expected is None else ("yes" if expected else r"\textbf{NO}")
        rows.append(
            " & ".join(
                [
                    _tt(str(c["theorem"])),
                    _KIND.get(c["kind"], latex_text(str(c["kind"]))),
                    _STATUS.get(c["status"], latex_text(str(c["status"]))),
                    exp,
                    _num(c.get("margin")),
                    latex_text(str(c.get("precision", ""))),
                    f"{float(c['wall_time']):.2f}" if c.get("wall_time") is not None else "--",
                ]
            )
            + r"\\"
        )
    rows += [r"\bottomrule", r"\end{longtable}", r"\endgroup", ""]
    return "\n".join(rows)


def statements_tex(certs: list[dict[str, Any]]) -> str:
    """The exact statement of each checked theorem, with the verdicts of its certificates."""
    grouped: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    for c in sorted(certs, key=lambda d: d["theorem"]):
        grouped.setdefault(c["theorem"], []).append(c)
    lines = [
        "% generated by `python -m bkpaper.tables`: the statements are those of the "
        "certificates, verbatim",
        r"\begin{description}",
    ]
    for theorem, cs in grouped.items():
        statements = list(OrderedDict.fromkeys(str(c.get("statement", "")) for c in cs))
        verdicts = Counter(c["status"] for c in cs)
        kinds = sorted({_KIND.get(c["kind"], c["kind"]) for c in cs})
        verdict = ", ".join(f"{n}$\\times$ {_STATUS.get(s, s)}" for s, n in verdicts.items())
        lines.append(
            r"\item[" + _tt(theorem) + "] (" + ", ".join(kinds) + "; "
            + verdict + ") "
            + " ".join(latex_text(s) for s in statements if s)
        )
    lines += [r"\end{description}", ""]
    return "\n".join(lines)


def numbers_tex(certs: list[dict[str, Any]]) -> str:
    """``\\bknum{cert.*}`` macros: counts by status and of unexpected outcomes."""
    status = Counter(c["status"] for c in certs)
    unexpected = sum(1 for c in certs if c.get("expected") is False)
    seed_refuted = sum(
        1 for c in certs if c["kind"] == "seed_claim" and c["status"] == "refuted"
    )
    vals = {
        "total": len(certs),
        "theorems": len({c["theorem"] for c in certs}),
        "verified": status.get("verified", 0),
        "refuted": status.get("refuted", 0),
        "inconclusive": status.get("inconclusive", 0),
        "unexpected": unexpected,
        "seedrefuted": seed_refuted,
    }
    lines = ["% generated by `python -m bkpaper.tables`: do not edit",
             r"\providecommand{\bknum}[1]{\ifcsname bknum@#1\endcsname"
             r"\csname bknum@#1\endcsname\else\textbf{??#1}\fi}"]
    lines += [rf"\expandafter\def\csname bknum@cert.{k}\endcsname{{{v}}}" for k, v in vals.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m bkpaper.tables``: print the table, or write the three files with ``--out``.

    Returns the exit code (2 when ``certificates.json`` is missing or malformed).
    """
    p = argparse.ArgumentParser(
        prog="python -m bkpaper.tables",
        description="LaTeX certificate table, theorem statements and counts from "
        "certificates.json",
    )
    p.add_argument("certificates", type=Path, help="certificates.json (pytest proofs_checks / "
                   "bk certify)")
    p.add_argument("--out", type=Path, default=None,
                   help="write certificates_table.tex, statements.tex and "
                   "certificate_numbers.tex into this directory (default: print the table)")
    args = p.parse_args(argv)
    try:
        certs = load_certificates(args.certificates)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out is None:
        sys.stdout.write(certificates_table(certs, args.certificates.name))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "certificates_table.tex").write_text(
        certificates_table(certs, args.certificates.name)
    )
    (args.out / "statements.tex").write_text(statements_tex(certs))
    (args.out / "certificate_numbers.tex").write_text(numbers_tex(certs))
    print(f"wrote {len(certs)} certificates to {args.out}/certificates_table.tex, "
          "statements.tex, certificate_numbers.tex")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
