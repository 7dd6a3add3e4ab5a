"""The import graph of the project's packages: no cycles, and the layers point one way.

The graph is built statically with :mod:`ast` from the source files of ``bkmath``, ``bkmodel``
and (when present) ``bkpaper``. Every ``import`` statement counts — at module level, inside
functions and methods, under ``if TYPE_CHECKING:`` — with relative imports resolved against
the importing module's package. ``import a.b.c`` and ``from a.b import c`` give an edge to the
deepest of ``a.b.c``, ``a.b``, ``a`` that is a module of the graph (the implicit import of the
parent packages is not an edge: a package ``__init__`` that imports its own submodules is not
a cycle). Calls such as ``importlib.import_module(name)`` with a computed name (the lazy flat
API of ``bkmath``, the ``COMMANDS`` table of ``bkmodel.cli``) are not import statements and
are not edges.

Rules checked:

(a) no cycle between modules (strongly connected components of size > 1, or self-imports);
(b) ``bkmath`` imports neither ``torch`` nor ``triton`` nor ``bkmodel`` / ``bkpaper``;
(c) ``bkmodel`` does not import ``bkpaper``.

Known cycles that another engineer is removing are listed edge by edge in
:data:`KNOWN_CYCLE_EDGES`; only those exact edges are ignored by the cycle check, and an entry
that no longer exists in the code fails the test so that the list shrinks as the work lands.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bkmath", "bkmodel", "bkpaper")

# (importer, imported) edges of known cycles that someone is removing, each with a note on
# whose work removes it, e.g. {("bkmodel.train", "bkmodel.generation"): "<who>, issue <n>"}.
# Only those exact edges are left out of the cycle check; never add a whole module or package.
# An entry whose two modules are no longer in one cycle fails test_known_cycle_edges_still_cyclic.
# Empty: the cycles found while this test was written (bkmath.operators <-> bkmath.resolvent,
# bkmodel.train <-> bkmodel.generation, the bkmath.checks registry <-> its family modules) have
# all been removed.
KNOWN_CYCLE_EDGES: dict[tuple[str, str], str] = {}

# top-level packages each of our packages must not import (rules b, c)
FORBIDDEN: dict[str, frozenset[str]] = {
    "bkmath": frozenset({"torch", "triton", "bkmodel", "bkpaper"}),
    "bkmodel": frozenset({"bkpaper"}),
}


# ------------------------------------------------------------------------------------------
# building the graph
# ------------------------------------------------------------------------------------------


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """``{dotted module name: source file}`` for every ``.py`` file of the given packages
    (those present under ``root`` as directories with an ``__init__.py``)."""
    out: dict[str, Path] = {}
    for pkg in packages:
        base = root / pkg
        if not (base / "__init__.py").is_file():
            continue
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = rel.parts
            if any(p == "__pycache__" for p in parts):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _package_of(module: str, path: Path) -> str:
    """The package against which the module's relative imports resolve."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _resolve_relative(package: str, level: int, name: str | None) -> str:
    parts = package.split(".") if package else []
    if level - 1 > len(parts):
        raise ImportError(f"relative import beyond the top-level package from {package!r}")
    base = parts[: len(parts) - (level - 1)]
    if name:
        base = base + name.split(".")
    return ".".join(base)


def imported_names(module: str, path: Path, known: Iterable[str] = ()) -> list[str]:
    """Every module name imported anywhere in the file (absolute; relative ones resolved).

    ``from X import Y`` gives ``X.Y`` when that is one of the ``known`` modules (a submodule),
    else ``X`` (``Y`` is then an attribute of ``X``).
    """
    known = set(known)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve_relative(_package_of(module, path), node.level, node.module)
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                names.append(sub if sub in known else base)
    return [n for n in names if n]


def _deepest_known(name: str, known: Mapping[str, Path]) -> str | None:
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        cand = ".".join(parts[:k])
        if cand in known:
            return cand
    return None


def build_graph(
    files: Mapping[str, Path],
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(internal, external)``: the edges between modules of ``files`` (a module importing
    itself is not an edge), and for each module the top-level names of everything it imports
    (ours and third-party alike)."""
    internal: dict[str, set[str]] = {m: set() for m in files}
    external: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        for name in imported_names(module, path, files):
            external[module].add(name.split(".")[0])
            target = _deepest_known(name, files)
            if target is not None and target != module:
                internal[module].add(target)
    return internal, external


# ------------------------------------------------------------------------------------------
# cycles
# ------------------------------------------------------------------------------------------


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node, or with a self-loop (Tarjan,
    iterative); each sorted, the list sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    sccs: list[list[str]] = []
    counter = 0
    nodes = set(graph) | {t for ts in graph.values() for t in ts}
    succ = {n: sorted(graph.get(n, ())) for n in nodes}
    for root in sorted(nodes):
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for j in range(i, len(succ[node])):
                nxt = succ[node][j]
                if nxt not in index:
                    work.append((node, j + 1))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1 or node in succ[node]:
                    sccs.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(sccs)


def _without(graph: Mapping[str, set[str]], edges: Iterable[tuple[str, str]]) -> dict:
    drop = set(edges)
    return {m: {t for t in ts if (m, t) not in drop} for m, ts in graph.items()}


# ------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    files = module_files(ROOT, PACKAGES)
    assert "bkmath" in files and "bkmodel" in files, "packages not found"
    return build_graph(files)


def test_no_import_cycles(graph):
    internal, _ = graph
    cycles = find_cycles(_without(internal, KNOWN_CYCLE_EDGES))
    assert not cycles, "import cycles (module sets that import each other):\n" + "\n".join(
        "  " + " <-> ".join(c) for c in cycles
    )


def test_known_cycle_edges_still_cyclic(graph):
    internal, _ = graph
    in_cycle = {m: i for i, comp in enumerate(find_cycles(internal)) for m in comp}
    stale = [
        f"{a} -> {b} ({why})"
        for (a, b), why in KNOWN_CYCLE_EDGES.items()
        if b not in internal.get(a, ()) or a not in in_cycle or in_cycle.get(b) != in_cycle[a]
    ]
    assert not stale, "remove from KNOWN_CYCLE_EDGES, no longer a cycle:\n" + "\n".join(stale)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layering(graph, package):
    _, external = graph
    bad = sorted(
        f"{m} imports {name}"
        for m, names in external.items()
        if m == package or m.startswith(package + ".")
        for name in names & FORBIDDEN[package]
    )
    assert not bad, f"{package} must not import {sorted(FORBIDDEN[package])}:\n" + "\n".join(bad)


class TestDetector:
    """Negative controls: the detector finds what it must find."""

    def test_finds_cycle_in_synthetic_graph(self):
        g = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"d"}}
        assert find_cycles(g) == [["a", "b", "c"], ["e"]]

    def test_acyclic_graph(self):
        assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []

    def test_two_cycles_sharing_nothing(self):
        g = {"a": {"b"}, "b": {"a"}, "x": {"y"}, "y": {"z"}, "z": {"x"}, "b2": {"a"}}
        assert find_cycles(g) == [["a", "b"], ["x", "y", "z"]]

    def test_long_chain_no_recursion_limit(self):
        n = 5000
        g = {f"m{i}": {f"m{i + 1}"} for i in range(n)}
        assert find_cycles(g) == []
        g[f"m{n}"] = {"m0"}
        (cycle,) = find_cycles(g)
        assert len(cycle) == n + 1

    def test_function_level_and_relative_imports(self, tmp_path):
        pkg = tmp_path / "pkgx"
        (pkg / "sub").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "low.py").write_text("def f():\n    from .sub import high\n    return high\n")
        (pkg / "sub" / "__init__.py").write_text("from . import high\n")
        (pkg / "sub" / "high.py").write_text("from ..low import f\nimport numpy as np\n")
        (pkg / "side.py").write_text("import pkgx.low\n")
        files = module_files(tmp_path, ["pkgx", "absent_pkg"])
        assert set(files) == {"pkgx", "pkgx.low", "pkgx.side", "pkgx.sub", "pkgx.sub.high"}
        internal, external = build_graph(files)
        assert internal["pkgx.low"] == {"pkgx.sub.high"}
        assert internal["pkgx.sub.high"] == {"pkgx.low"}
        assert internal["pkgx.sub"] == {"pkgx.sub.high"}
        assert internal["pkgx.side"] == {"pkgx.low"}
        assert "numpy" in external["pkgx.sub.high"]
        assert find_cycles(internal) == [["pkgx.low", "pkgx.sub.high"]]

    def test_allow_list_drops_only_the_named_edge(self):
        g = {"a": {"b"}, "b": {"a", "c"}, "c": {"b"}}
        assert find_cycles(_without(g, [("a", "b")])) == [["b", "c"]]
        assert find_cycles(_without(g, [("a", "b"), ("c", "b")])) == []
        assert find_cycles(_without(g, [("a", "c")])) == [["a", "b", "c"]]


class TestMovedNames:
    """Regression guards of the low-floor restructuring (issue 12, part 4): every name callers
    used before the move resolves to the same object after it."""

    def test_free_resolvents_from_resolvent(self):
        import bkmath
        import bkmath.free
        import bkmath.resolvent

        for name in ("lattice_w", "free_resolvent", "free_resolvent_continuum"):
            assert getattr(bkmath.resolvent, name) is getattr(bkmath.free, name)
            assert getattr(bkmath, name) is getattr(bkmath.free, name)

    def test_primes_names(self):
        import bkmath.explicit_formula
        import bkmath.primes

        for name in bkmath.primes.__all__:
            obj = getattr(bkmath.primes, name)
            if name in bkmath.explicit_formula.__all__:
                assert obj is getattr(bkmath.explicit_formula, name)
        assert set(bkmath.explicit_formula.__all__) <= set(bkmath.primes.__all__)
        with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
            bkmath.primes.nonexistent  # noqa: B018

    def test_kernel_names(self):
        from bkmath import _kernels

        for name in _kernels.__all__ + ["_n_threads", "_rd_left_real"]:
            assert callable(getattr(_kernels, name))
