"""The package's rooms import each other only downward, never through the ``rfkit`` facade, and no modules
import each other in a circle.

The order (DESIGN.md): the core (errors, io, registry, validate, version) → models → graph → pipeline →
effective / attribution / verification (siblings: none imports another) → report; ``rfkit_cli`` sits above the
package and nothing in it imports the CLI. Every import of every module counts, also those inside functions
and ``TYPE_CHECKING`` blocks: a function-level import is a dependency all the same.

Cycles: the imports a module runs when it is loaded (its module-level ones, outside ``TYPE_CHECKING``) must
not lead back to it, inside a package or across packages (the rank order already rules out most of the latter).
Imports inside functions may still close a circle (they run later); ``test_function_level_cycles_are_known``
lists those that do, so that a new one is a decision, not an accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rfkit"

RANK = {
    "errors": 0,
    "formatting": 0,
    "io": 0,
    "registry": 0,
    "validate": 0,
    "version": 0,
    "models": 1,
    "graph": 2,
    "pipeline": 3,
    "effective": 4,
    "attribution": 4,
    "verification": 4,
    "report": 5,
    "analysis": 6,
    "atlas": 6,
}


def _module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) of every import in ``path`` (a module of the package at ``root``);
    relative imports made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out.append((node.lineno, module, [a.name for a in node.names]))
    return out


def _stage(module: str) -> str | None:
    """The room of an rfkit module: its first component below ``rfkit`` (None for the facade itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_room_has_a_rank():
    rooms = {_stage(_module_name(p)) for p in MODULES}
    assert rooms <= set(RANK), f"rooms without a rank in this test: {sorted(rooms - set(RANK))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_go_downward_and_never_through_the_facade(path):
    source = _module_name(path)
    here = _stage(source)
    bad = []
    for line, module, names in _imports(path):
        if module == "rfkit":  # `import rfkit` / `from rfkit import x`: re-entering through the facade
            bad.append(f"line {line}: {'from rfkit import ' + ', '.join(names) if names else 'import rfkit'}")
            continue
        if module.startswith("rfkit_cli"):
            bad.append(f"line {line}: imports the CLI ({module})")
            continue
        if not module.startswith("rfkit."):
            continue
        there = _stage(module)
        if there == here:
            continue
        if RANK[there] > RANK[here]:
            bad.append(f"line {line}: {here} (rank {RANK[here]}) imports {module} (rank {RANK[there]}), upward")
        elif RANK[there] == RANK[here] and RANK[here] > 0:  # the core's modules use each other
            bad.append(f"line {line}: {here} imports its sibling {module}")
    assert not bad, f"{source}:\n" + "\n".join(bad)


def test_the_checker_sees_what_it_must_refuse(tmp_path):
    """The import walk finds function-level, relative and facade imports (so an empty result above means
    something)."""
    bad = tmp_path / "rfkit" / "graph" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "import rfkit\nfrom rfkit import validate\n\ndef f():\n    from ..erf import engine\n"
        "    from . import layers\n    import rfkit.report.dot\n",
        encoding="utf-8",
    )
    found = [(module, names) for _, module, names in _imports(bad, tmp_path / "rfkit")]
    assert found == [
        ("rfkit", []),
        ("rfkit", ["validate"]),
        ("rfkit.erf", ["engine"]),
        ("rfkit.graph", ["layers"]),
        ("rfkit.report.dot", []),
    ]


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _load_time_imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str, list[str]]]:
    """The imports of ``path`` that run when it is loaded: module level, also inside ``if``/``try`` blocks,
    but not under ``if TYPE_CHECKING`` nor inside functions or classes."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = []

    def visit(body):
        for node in body:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                visit(getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                out.extend((node.lineno, alias.name, []) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                out.append((node.lineno, module, [a.name for a in node.names]))

    visit(tree.body)
    return out


def import_graph(root: Path = PACKAGE, function_level: bool = False) -> nx.DiGraph:
    """Modules of the package at ``root`` -> the modules they import (``from a import b`` counts as importing
    ``a.b`` when that is a module, else ``a``); load-time imports only, unless ``function_level``."""
    modules = {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    g = nx.DiGraph()
    g.add_nodes_from(modules)
    for name, path in modules.items():
        found = _imports(path, root) if function_level else _load_time_imports(path, root)
        for _, module, names in found:
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            if len(targets) < len(names) or not names:
                targets.append(module)
            g.add_edges_from((name, t) for t in targets if t in modules and t != name)
    return g


def _cycles(g: nx.DiGraph) -> list[list[str]]:
    return sorted(sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1)


def test_no_module_imports_itself_in_a_circle_at_load_time():
    cycles = _cycles(import_graph())
    assert not cycles, "load-time import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


#: The groups of modules whose function-level imports close a circle today (none at load time).
KNOWN_FUNCTION_LEVEL_CYCLES = 2


def test_function_level_cycles_are_known():
    """Counting imports inside functions too, the circles of today: the models' spec/weights/detection/
    ultralytics/data_config and the conv/pool/resample handlers (report/'s circle went with issue 22's rooms:
    report/figures/, rfkit/analysis/, report_folder.py); a new circle must be a decision."""
    cycles = _cycles(import_graph(function_level=True))
    assert len(cycles) <= KNOWN_FUNCTION_LEVEL_CYCLES, "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_sees_a_circle(tmp_path):
    """A load-time circle is found (also through a ``try`` block); one closed inside a function or under
    ``TYPE_CHECKING`` is not, though the function-level graph has the former."""
    pkg = tmp_path / "rfkit" / "graph"
    pkg.mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from rfkit.graph import b\n",
        "b.py": "try:\n    from . import a\nexcept ImportError:\n    pass\n",
        "c.py": "def f():\n    from rfkit.graph import e\n",
        "e.py": "import rfkit.graph.c\n",
        "d.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from rfkit.graph.t import T\n",
        "t.py": "from rfkit.graph.d import D\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text, encoding="utf-8")
    (tmp_path / "rfkit" / "__init__.py").write_text("", encoding="utf-8")
    root = tmp_path / "rfkit"
    assert _cycles(import_graph(root)) == [["rfkit.graph.a", "rfkit.graph.b"]]
    assert ["rfkit.graph.c", "rfkit.graph.e"] in _cycles(import_graph(root, function_level=True))


def _bound_names(init: Path) -> set[str]:
    """The names a package's ``__init__.py`` binds at module level (imports, assignments, defs)."""
    tree = ast.parse(init.read_text(encoding="utf-8"), str(init))
    names = set()
    package = _module_name(init)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == package:  # ``from P import m``: the module itself
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def test_no_module_is_shadowed_by_a_name_of_its_package():
    """``rfkit.graph.trace`` was a module and, after ``from rfkit.graph.trace import trace`` in the package, the
    function: ``import rfkit.graph.trace as m`` then gave a module, ``rfkit.graph.trace`` a function. No package
    may bind a name that is also one of its modules, and the facade's lazy names (``rfkit.erf``, a function)
    are no module of ``rfkit`` either."""
    import inspect

    import rfkit

    shadowed = []
    for init in PACKAGE.rglob("__init__.py"):
        children = {p.stem for p in init.parent.glob("*.py") if p.name != "__init__.py"}
        children |= {p.name for p in init.parent.iterdir() if (p / "__init__.py").is_file()}
        if init.parent == PACKAGE:  # the facade's names, except modules offered as such (rfkit.errors)
            names = {n for n in rfkit.__all__ if not inspect.ismodule(getattr(rfkit, n))}
        else:
            names = _bound_names(init)
        shadowed += [f"{_module_name(init)}.{n}" for n in sorted(set(names) & children)]
    assert not shadowed, f"names that shadow a module: {shadowed}"


def test_rfkit_erf_is_a_plain_function_and_no_package_is_callable():
    import inspect

    import rfkit

    assert inspect.isfunction(rfkit.erf) and rfkit.erf.__module__ == "rfkit.effective.engine"
    callable_packages = [str(p) for p in PACKAGE.rglob("__init__.py") if "__class__ =" in p.read_text(encoding="utf-8")]
    assert not callable_packages
