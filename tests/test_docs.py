"""The documentation builds with ``mkdocs build --strict`` and keeps up with the code.

Needs the ``docs`` extra (``pip install -e ".[docs]"``: mkdocs, mkdocs-material, mkdocstrings); skipped without it.
The figures come from ``docs/build_gallery.py`` and are committed, so nothing here runs a model.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

KEY_PAGES = [
    "index.html",
    "quickstart/index.html",
    "concepts/index.html",
    "erf/index.html",
    "gallery/index.html",
    "howto/cnn-vs-vit/index.html",
    "howto/low-resolution/index.html",
    "howto/paper-figure/index.html",
    "cli/index.html",
    "reference/api/index.html",
    "graph/index.html",
    "rules/index.html",
    "productivity/index.html",
    "literature/index.html",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_key_pages_exist(site):
    missing = [p for p in KEY_PAGES if not (site / p).is_file()]
    assert not missing, f"pages missing from the site: {missing}"
    assert not (site / "build_gallery.py").exists()  # a script, not part of the site


def test_api_reference_documents_the_public_api(site):
    html = (site / "reference" / "api" / "index.html").read_text()
    for name in (
        "rfkit.trace",
        "rfkit.effective.engine.erf",
        "rfkit.ERFResult",
        "rfkit.verification.estimate.estimate_rf",
        "rfkit.analysis.analyze.analyze",
        "rfkit.report.site.build_site",
        "rfkit.effective.metrics.compute_metrics",
        "rfkit.effective.metrics.area_ratios",
        "rfkit.effective.metrics.erf_rf_ratio",
        "rfkit.effective.gaussian.fit_gaussian",
        "rfkit.graph.productivity.productivity",
        "rfkit.models.weights.load_model",
    ):
        assert f'id="{name}"' in html, f"{name} is not in the API reference"


def test_api_reference_documents_every_name_of_the_rfkit_namespace(site):
    """Every function and class ``import rfkit`` lists is documented, as ``rfkit.NAME`` or in its module
    (an alias such as ``AnalyzeResult``, by the class it names)."""
    import rfkit

    html = (site / "reference" / "api" / "index.html").read_text()
    for name in set(rfkit.__all__) - {"errors", "erf", "__version__"}:
        obj = getattr(rfkit, name)
        ids = {f"rfkit.{name}", f"{obj.__module__}.{name}", f"{obj.__module__}.{obj.__qualname__}"}
        assert any(f'id="{i}"' in html for i in ids), f"rfkit.{name} is not in the API reference"


def test_gallery_figures_are_committed_and_labelled():
    text = (DOCS / "gallery.md").read_text()
    assert "Random weights" in text and "offline" in text
    images = re.findall(r"!\[[^\]]*\]\((gallery/[^)]+)\)", text)
    assert len(images) >= 6
    for rel in images:
        assert (DOCS / rel).is_file(), f"{rel}: run python docs/build_gallery.py"


def test_every_image_of_the_docs_exists():
    for page in DOCS.rglob("*.md"):
        for rel in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text()):
            if "://" not in rel:
                assert (page.parent / rel).resolve().is_file(), f"{page.relative_to(DOCS)}: missing {rel}"


def test_cli_reference_lists_every_command_and_option():
    """docs/cli.md names every command and every option of ``rfkit COMMAND --help``."""
    typer = pytest.importorskip("typer")
    from rfkit_cli.app import app

    group = typer.main.get_command(app)
    text = (DOCS / "cli.md").read_text()
    for name, command in group.commands.items():
        assert f"## `rfkit {name}`" in text, f"docs/cli.md has no section for rfkit {name}"
        section = text.split(f"## `rfkit {name}`", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("--") and opt != "--help":
                    assert opt in section, f"docs/cli.md: rfkit {name} does not mention {opt}"
