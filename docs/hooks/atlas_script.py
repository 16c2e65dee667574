"""mkdocs hook: the atlas script (``rfkit/atlas/assets/atlas-table.js``), which makes the list of docs/atlas-models.md
sortable and filterable, is served from rfkit's package at ``assets/atlas-table.js``: one copy of it, the one the
atlas sites get (it acts only on tables inside an element of class ``rfkit-atlas``)."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

SCRIPT = Path(__file__).resolve().parents[2] / "rfkit" / "atlas" / "assets" / "atlas-table.js"


def on_files(files, config):  # noqa: ARG001 - mkdocs' hook signature
    files.append(File.generated(config, "assets/atlas-table.js", abs_src_path=str(SCRIPT)))
    return files
