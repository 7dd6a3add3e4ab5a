"""Sphinx directives that generate the API reference and the CLI page from the code itself.

``.. bk-api:: bkmath`` documents every public name of a package's lazy ``_API`` table
(``bkmath._API``, ``bkmodel._API``), grouped by the submodule that defines it, with autodoc
(so the text is the docstrings). A name listed in ``_API`` that cannot be imported is a
warning, hence a failed build under ``-W``: the table and the code can never disagree.

``.. bk-cli::`` renders ``bk --help`` and ``bk COMMAND --help`` for every command of
``bkmodel.cli.COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
from collections import defaultdict

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)


class BkApiDirective(SphinxDirective):
    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        package = self.arguments[0]
        pkg = importlib.import_module(package)
        table: dict[str, str] = pkg._API
        by_module: dict[str, list[str]] = defaultdict(list)
        for name, module in table.items():
            by_module[module].append(name)
        lines: list[str] = []
        # summary table
        lines += [".. list-table::", "   :header-rows: 1", "   :widths: 30 70", ""]
        lines += ["   * - name", "     - summary"]
        body: list[str] = []
        for module in sorted(by_module):
            try:
                mod = importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001 - reported as a build warning
                logger.warning(
                    "bk-api: %s._API lists %s from %s, which cannot be imported: %s: %s",
                    package, by_module[module], module, type(exc).__name__, exc,
                    location=self.get_location(),
                )
                continue
            body += [module, "-" * len(module), "", f".. currentmodule:: {module}", ""]
            for name in by_module[module]:
                obj = getattr(mod, name, None)
                if obj is None:
                    logger.warning(
                        "bk-api: %s._API lists %r but %s does not define it",
                        package, name, module, location=self.get_location(),
                    )
                    continue
                doc = inspect.getdoc(obj) or ""
                first = doc.strip().split("\n\n")[0].replace("\n", " ") if doc else ""
                first = _escape_bars(first.replace("*", "\\*"))
                role = "class" if inspect.isclass(obj) else "func"
                lines += [f"   * - :py:{role}:`{package}.{name} <{module}.{name}>`",
                          f"     - {first}" if first else "     -"]
                directive = "autoclass" if inspect.isclass(obj) else "autofunction"
                body += [f".. {directive}:: {module}.{name}", ""]
                if directive == "autoclass":
                    body += ["   :members:", ""]
        lines += ["", *body]
        container = nodes.container()
        nested_parse_with_titles(self.state, StringList(lines, source=f"<bk-api {package}>"),
                                 container)
        return container.children


class BkModulesDirective(SphinxDirective):
    """``.. bk-modules:: bkmath``: every public module of a package, with the names of its
    ``__all__`` that it defines, except those already documented from the ``_API`` table.

    Private modules (``_name``) and the command-line modules are skipped (the CLI page shows
    the commands). A module that cannot be imported is a warning.
    """

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        import pkgutil

        package = self.arguments[0]
        pkg = importlib.import_module(package)
        in_api = {(module, name) for name, module in pkg._API.items()}
        names = sorted(
            m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=package + ".")
            if not any(part.startswith("_") for part in m.name.split("."))
        )
        lines: list[str] = []
        for module in names:
            if module.split(".")[-1] in _SKIP_MODULES:
                continue
            try:
                mod = importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001 - reported as a build warning
                logger.warning("bk-modules: cannot import %s: %s: %s", module,
                               type(exc).__name__, exc, location=self.get_location())
                continue
            public = [
                n for n in getattr(mod, "__all__", [])
                if (module, n) not in in_api
                and getattr(getattr(mod, n, None), "__module__", None) == module
                and (inspect.isclass(getattr(mod, n)) or inspect.isfunction(getattr(mod, n)))
            ]
            # The module docstring's first paragraph as plain text (every punctuation mark
            # escaped: it is prose for help(), not reStructuredText); the members follow with
            # their full docstrings.
            doc = inspect.getdoc(mod) or ""
            summary = " ".join(doc.strip().split("\n\n")[0].split())
            lines += [module, "~" * len(module), "", f".. module:: {module}", "   :no-index:", ""]
            if summary:
                lines += [_plain(summary), ""]
            for n in public:
                obj = getattr(mod, n)
                if inspect.isclass(obj):
                    lines += [f".. autoclass:: {module}.{n}", "   :members:", ""]
                else:
                    lines += [f".. autofunction:: {module}.{n}", ""]
        container = nodes.container()
        nested_parse_with_titles(self.state, StringList(lines, source=f"<bk-modules {package}>"),
                                 container)
        return container.children


def _plain(text: str) -> str:
    """``text`` as a literal reStructuredText paragraph: every non-alphanumeric character
    is backslash-escaped, so no inline markup can start."""
    return "".join(c if c.isalnum() or c.isspace() else "\\" + c for c in text)


#: Modules that only hold a command-line entry point or check registrations (shown elsewhere).
_SKIP_MODULES = {"cli", "demo", "theory_doc"}


class BkCliDirective(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        from bkmodel import cli

        out: list[nodes.Node] = []
        top = cli._top_parser()
        top.prog = "bk"
        out.append(nodes.literal_block(text=_help(top)))
        for name, (module_name, help_) in cli.COMMANDS.items():
            section = nodes.section(ids=[f"bk-{name}"])
            section += nodes.title(text=f"bk {name}")
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # noqa: BLE001 - reported as a build warning
                logger.warning("bk-cli: command %r: cannot import %s: %s: %s", name,
                               module_name, type(exc).__name__, exc,
                               location=self.get_location())
                continue
            parser = argparse.ArgumentParser(prog=f"bk {name}", description=help_)
            module.configure_parser(parser)
            section += nodes.literal_block(text=_help(parser))
            out.append(section)
        return out


def _help(parser: argparse.ArgumentParser) -> str:
    import os

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "96"
    try:
        return parser.format_help()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def setup(app):  # noqa: ANN001, ANN201
    app.add_directive("bk-api", BkApiDirective)
    app.add_directive("bk-cli", BkCliDirective)
    app.add_directive("bk-modules", BkModulesDirective)
    app.connect("autodoc-process-docstring", _process_docstring)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


# --------------------------------------------------------------------------------------
# Plain-text mathematics in docstrings
# --------------------------------------------------------------------------------------
# The docstrings are written for ``help()`` as much as for Sphinx: they use plain notation
# such as ``|V|^{1/2}`` or ``|w| < 1``. In reStructuredText ``|...|`` is a substitution
# reference, so such prose would fail the ``-W`` build (or vanish). This hook escapes the
# bars of *prose* lines only; code (doctest blocks, literal blocks after ``::``, ``.. math::``
# and other directive bodies) and inline literals/roles are left untouched.

_INLINE = re.compile(r"(``.*?``|:[a-zA-Z:]+:`[^`]*`|`[^`]*`_?)")


def _escape_bars(text: str) -> str:
    parts = _INLINE.split(text)
    for i in range(0, len(parts), 2):  # even indices: outside inline literals/roles
        parts[i] = re.sub(r"(?<!\\)\|", r"\\|", parts[i])
    return "".join(parts)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def escape_docstring_bars(lines: list[str]) -> None:
    """Escape ``|`` in prose lines of a docstring (in place)."""
    code_indent: int | None = None  # inside a literal/directive block indented deeper
    in_doctest = False
    pending_literal: int | None = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if in_doctest:
            if not stripped:
                in_doctest = False
            continue
        if code_indent is not None:
            if stripped and _indent(line) <= code_indent:
                code_indent = None
            else:
                continue
        if pending_literal is not None and stripped:
            if _indent(line) > pending_literal:
                code_indent = pending_literal
                pending_literal = None
                continue
            pending_literal = None
        if stripped.startswith(">>>"):
            in_doctest = True
            continue
        if stripped.startswith(".. "):  # a directive: its indented body is not prose
            code_indent = _indent(line)
            continue
        if stripped.startswith(("+-", "+=", "=", "|")) and set(stripped) <= set("+-=| "):
            continue  # table rules
        if stripped.endswith("::"):
            pending_literal = _indent(line)
        if "|" in line:
            lines[i] = _escape_bars(line)


def _process_docstring(app, what, name, obj, options, lines):  # noqa: ANN001, ARG001
    escape_docstring_bars(lines)
