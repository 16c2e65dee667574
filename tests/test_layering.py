"""The package's rooms import each other only downward, and never through the ``rfkit`` facade.

The order (DESIGN.md): the core (errors, formatting, io, validate, version) → models → graph → pipeline →
erf / attribution / verification (siblings: none imports another) → report → analysis / atlas (siblings);
``rfkit_cli`` sits above the package and nothing in it imports the CLI. Every import of every module counts,
also those inside functions and ``TYPE_CHECKING`` blocks: a function-level import is a dependency all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rfkit"

RANK = {
    "errors": 0,
    "formatting": 0,
    "io": 0,
    "validate": 0,
    "version": 0,
    "models": 1,
    "graph": 2,
    "pipeline": 3,
    "erf": 4,
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
