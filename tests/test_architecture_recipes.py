"""Every ```python block of docs/architecture.md runs: the recipes for extending rfkit are code, not prose.

The blocks under one ``###`` heading run in order, in one namespace, in an empty working folder; every
registry a recipe may fill is restored afterwards, so a recipe leaves nothing behind for other tests. A block
may be skipped only by an HTML comment right above it that gives the reason:
``<!-- recipe-test: skip because ... -->``.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

#: The recipes the page must hold, each with code that runs.
RECIPES = (
    "Add an RF rule for an op",
    "Add an ERF metric",
    "Add an ERF method",
    "Add a figure",
    "Add a preset",
    "Add a CLI command",
    "Add a model source",
    "Add an attribution method",
)

_FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
_SKIP = re.compile(r"<!--\s*recipe-test:\s*skip\b(.*?)-->\s*$", re.S)


def sections(text: str) -> dict[str, list[tuple[str, str | None]]]:
    """``{heading: [(code, skip reason or None), ...]}`` for every ``##``/``###`` heading with python blocks."""
    out: dict[str, list[tuple[str, str | None]]] = {}
    heading = ""
    pos = 0
    for match in _FENCE.finditer(text):
        before = text[pos : match.start()]
        headings = re.findall(r"^#{2,3} (.+)$", before, re.M)
        heading = headings[-1].strip() if headings else heading
        skip = _SKIP.search(before.rstrip("\n") + "\n")
        out.setdefault(heading, []).append((match.group(1), skip.group(1).strip() if skip else None))
        pos = match.end()
    return out


SECTIONS = sections(PAGE.read_text(encoding="utf-8"))


def _restored_registries(stack: ExitStack) -> None:
    from rfkit.attribution.registry import registered, unregister
    from rfkit.effective.methods import ERF_METHODS
    from rfkit.effective.metric_registry import ERF_METRICS
    from rfkit.graph.registry import DEFAULT_REGISTRY
    from rfkit.models.sources import source_names, unregister_source
    from rfkit.report.figures.registry import FIGURE_TYPES
    from rfkit.report.presets import PRESETS

    for registry in (DEFAULT_REGISTRY, ERF_METHODS, ERF_METRICS, FIGURE_TYPES, PRESETS):
        stack.enter_context(registry.scoped())
    stack.callback(_drop_added, source_names, unregister_source, set(source_names()))
    stack.callback(_drop_added, registered, unregister, set(registered()))


def _drop_added(names, drop, before: set) -> None:
    """Unregister what a recipe registered in a registry without ``scoped()`` (model sources, attribution)."""
    for name in set(names()) - before:
        drop(name)


def test_the_page_has_every_recipe_and_each_has_code():
    headings = {h.split(" — ")[0] for h in re.findall(r"^### (.+)$", PAGE.read_text(encoding="utf-8"), re.M)}
    assert set(RECIPES) <= headings, sorted(set(RECIPES) - headings)
    with_code = {h.split(" — ")[0] for h in SECTIONS}
    assert set(RECIPES) <= with_code, f"recipes without a python block: {sorted(set(RECIPES) - with_code)}"


def test_skipped_blocks_say_why():
    for heading, blocks in SECTIONS.items():
        for _, reason in blocks:
            assert reason is None or len(reason) > 10, f"{heading}: a skipped block needs its reason"


def test_the_parser_finds_blocks_and_skips(tmp_path):
    text = (
        "## A\n\n```python\nx = 1\n```\n\ntext\n\n```python\ny = x\n```\n\n### B\n\n"
        "<!-- recipe-test: skip because it downloads weights -->\n```python\nimport nothing\n```\n"
    )
    assert sections(text) == {
        "A": [("x = 1\n", None), ("y = x\n", None)],
        "B": [("import nothing\n", "because it downloads weights")],
    }


@pytest.mark.parametrize("heading", list(SECTIONS), ids=lambda h: h.split(" — ")[0])
def test_recipe_runs(heading, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"recipe_{abs(hash(heading))}"}
    with ExitStack() as stack:
        _restored_registries(stack)
        for i, (code, reason) in enumerate(SECTIONS[heading]):
            if reason is not None:
                continue
            exec(compile(code, f"{PAGE.name}[{heading} #{i + 1}]", "exec"), namespace)
