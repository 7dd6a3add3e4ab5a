"""The documentation's executable parts that the Sphinx doctest builder does not run.

* every ``>>>`` example in the docstring of a module shown by the API reference
  (``docs/api/*.rst`` and the ``_API`` tables) runs with ``doctest.testmod`` in its module's
  namespace — the Sphinx builder would run them without the module's globals;
* every public name of the ``_API`` tables resolves to an object of its module;
* the docstring hook of ``docs/_ext/bkapi.py`` escapes ``|`` in prose only.

The HTML build and the tutorial doctests themselves run in ``make docs``.
"""

from __future__ import annotations

import doctest
import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import bkapi  # noqa: E402


def _documented_modules() -> list[str]:
    """The modules the API reference shows: ``_API`` modules, ``automodule`` directives and
    every public module the ``bk-modules`` directive walks."""
    import pkgutil

    mods: set[str] = set()
    for name in ("bkmath", "bkmodel"):
        pkg = importlib.import_module(name)
        mods.update(pkg._API.values())
        mods.update(
            m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=name + ".")
            if not any(part.startswith("_") for part in m.name.split("."))
            and m.name.split(".")[-1] not in bkapi._SKIP_MODULES
        )
    for rst in (ROOT / "docs" / "api").glob("*.rst"):
        mods.update(re.findall(r"^\.\. automodule:: ([\w.]+)", rst.read_text(), re.M))
    return sorted(mods)


@pytest.mark.parametrize("module", _documented_modules())
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module(module)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(mod, optionflags=flags, verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {module} failed"


@pytest.mark.parametrize("package", ["bkmath", "bkmodel"])
def test_api_table_resolves(package: str) -> None:
    pkg = importlib.import_module(package)
    missing = []
    for name, module in pkg._API.items():
        obj = getattr(importlib.import_module(module), name, None)
        if obj is None or isinstance(obj, type(sys)):
            missing.append(f"{name} ({module})")
    assert not missing, f"{package}._API lists names its modules do not define: {missing}"


class TestEscapeBars:
    def test_prose_escaped(self) -> None:
        lines = ["K = |V|^{1/2} R0 |V|^{1/2} with |w| < 1."]
        bkapi.escape_docstring_bars(lines)
        assert lines == [r"K = \|V\|^{1/2} R0 \|V\|^{1/2} with \|w\| < 1."]

    def test_inline_literals_and_roles_untouched(self) -> None:
        lines = ["see ``|x|`` and :math:`|x|` but |y|"]
        bkapi.escape_docstring_bars(lines)
        assert lines == [r"see ``|x|`` and :math:`|x|` but \|y\|"]

    def test_code_untouched(self) -> None:
        lines = [
            "Example::",
            "",
            "    a | b",
            "",
            ".. math:: |z|",
            "   |z|^2",
            "",
            ">>> print('| a |')",
            "| a |",
            "",
            "after |x|",
        ]
        expected = list(lines)
        expected[-1] = r"after \|x\|"
        bkapi.escape_docstring_bars(lines)
        assert lines == expected

    def test_already_escaped(self) -> None:
        lines = [r"\|V\| stays"]
        bkapi.escape_docstring_bars(lines)
        assert lines == [r"\|V\| stays"]
