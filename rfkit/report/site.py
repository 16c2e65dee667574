"""``rfkit report DIR... --site SITE``: a self-contained mkdocs project from analysis folders.

The site has a home page (one row per model), one page per model (its ``report.md`` with every figure and
file), and a comparison page that puts the same layer role side by side across models (the final feature
map, then each stage), grouped by family like OpenERF's gallery. ``mkdocs build --strict`` builds it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rfkit.errors import RFKitError
from rfkit.io import atomic_write_text
from rfkit.report.analyze import DONE_MARKER
from rfkit.report.erf_files import layer_filename, ratio_label, rf_label

COPIED = ("report.md", "layers.csv", "erf.csv", "metrics.json", "graph.dot", "graph.svg")


class SiteError(RFKitError, ValueError):
    """No analysis folders were found, or the site folder cannot be written."""


@dataclass(frozen=True)
class Analysis:
    """A finished analysis folder and its run header."""

    folder: Path
    header: dict

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def model(self) -> str:
        return self.header.get("model", self.name)


def find_analyses(paths: Sequence) -> list[Analysis]:
    """The finished analysis folders among ``paths`` and their children (a folder holding ``run.json``)."""
    found: dict[Path, Analysis] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise SiteError(f"{p} does not exist: give analysis folders written by `rfkit analyze`, or their parent")
        candidates = [p] if (p / DONE_MARKER).is_file() else sorted(c for c in p.iterdir() if c.is_dir())
        for c in candidates:
            if (c / DONE_MARKER).is_file():
                try:
                    header = json.loads((c / DONE_MARKER).read_text())
                except (OSError, ValueError) as e:
                    raise SiteError(f"cannot read {c / DONE_MARKER}: {e}") from None
                found[c.resolve()] = Analysis(c, header)
    if not found:
        raise SiteError(f"no finished analysis (a folder with {DONE_MARKER}) in {', '.join(map(str, paths))}: "
                        "run `rfkit analyze MODEL --out DIR` first")
    return sorted(found.values(), key=lambda a: a.name)


def _copy_analysis(a: Analysis, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        if (a.folder / name).is_file():
            shutil.copy2(a.folder / name, dest / ("index.md" if name == "report.md" else name))
    for sub in ("figures", "maps"):
        if (a.folder / sub).is_dir():
            shutil.copytree(a.folder / sub, dest / sub, dirs_exist_ok=True)


def _erf_rows(a: Analysis) -> list[dict]:
    try:
        doc = json.loads((a.folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return []
    return list(doc.get("layers", {}).values())


def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return f"{v:.{digits}f}" if not v.is_integer() else str(int(v))
    return str(v)


def _home(analyses: list[Analysis], title: str) -> str:
    lines = [f"# {title}", "", f"{len(analyses)} model(s) analysed with rfkit. Each page holds the full report; "
             "[the comparison](compare.md) puts the same layers side by side.", "",
             "| model | weights | input | final layer | RF | ERF 95% | ERF/RF | productivity |",
             "|---|---|---|---|---|---|---|---|"]
    for a in analyses:
        h = a.header
        rows = _erf_rows(a)
        last = rows[-1] if rows else {}
        prod = ", ".join(f"{n} {s}" for s, n in (h.get("productivity") or {}).items() if n)
        weights = h.get("weights_kind") or h.get("weights", "")
        lines.append(
            f"| [{a.model}](models/{a.name}/index.md) | {weights} | {'×'.join(map(str, h.get('input_size', [])))} | "
            f"`{last.get('layer', '–')}` | {rf_label(last)} | "
            f"{_fmt(last.get('erf_side_h'))}×{_fmt(last.get('erf_side_w'))} | {ratio_label(last)} | {prod} |")
    random = [a.model for a in analyses if a.header.get("weights_kind") in ("random", "random-safe")]
    if random:
        lines += ["", "!!! warning \"Random weights\"", "",
                  f"    {', '.join(random)}: random weights (pretrained weights were not used). Their ERFs show "
                  "the architecture, not a trained network."]
    return "\n".join(lines) + "\n"


def _compare(analyses: list[Analysis], per_row: int = 4) -> str:
    from rfkit.report.presets import family_of

    lines = ["# Comparison", "",
             "The same layer role across models, side by side: the final feature map, then the stage outputs "
             "counted from the end (the last stage is `-1`). Each figure: the ERF on a log scale with the "
             "analytic RF box of the measured unit (each model's page states the transform and the metrics). "
             "Models are ordered by family.", ""]
    order = sorted(analyses, key=lambda a: (family_of(a.model) or "~", a.name))
    depth = max((len(_erf_rows(a)) for a in analyses), default=0)
    for role in range(1, depth + 1):
        cells = []
        for a in order:
            rows = _erf_rows(a)
            if len(rows) < role:
                continue
            row = rows[-role]
            name = layer_filename("" if row["layer"] == "<output>" else row["layer"])
            if (a.folder / "figures" / f"overlay_{name}.png").is_file():
                cells.append((a, row, f"models/{a.name}/figures/overlay_{name}.png"))
        if not cells:
            continue
        lines += [f"## {'Final feature map' if role == 1 else f'Stage {-role}'}", ""]
        for i in range(0, len(cells), per_row):
            chunk = cells[i:i + per_row]
            lines += ["| " + " | ".join(f"[{a.model}](models/{a.name}/index.md)"
                                        + (f" ({family_of(a.model)})" if family_of(a.model) else "")
                                        for a, _, _ in chunk) + " |",
                      "|" + "|".join("---" for _ in chunk) + "|",
                      "| " + " | ".join(f"![{a.model} {row['layer']}]({img})" for a, row, img in chunk) + " |",
                      "| " + " | ".join(f"`{row['layer']}`: RF {rf_label(row)}, ERF/RF {ratio_label(row)}"
                                        for _, row, _ in chunk) + " |", ""]
    return "\n".join(lines) + "\n"


def _mkdocs_yml(analyses: list[Analysis], title: str) -> str:
    nav = ["  - Home: index.md", "  - Comparison: compare.md", "  - Models:"]
    nav += [f"      - {json.dumps(a.model)}: models/{a.name}/index.md" for a in analyses]
    return "\n".join([
        f"site_name: {json.dumps(title)}",
        "theme:",
        "  name: material",
        "markdown_extensions:",
        "  - admonition",
        "  - tables",
        "  - attr_list",
        "nav:",
        *nav,
        "",
    ])


def build_site(paths: Sequence, site, title: str = "rfkit reports") -> Path:
    """Write an mkdocs project for the analyses found in ``paths`` into ``site`` (replacing its
    ``docs/`` folder and ``mkdocs.yml``). Returns ``site``. Build it with ``mkdocs build --strict`` (needs
    ``pip install "rfkit[docs]"``)."""
    analyses = find_analyses(paths)
    site = Path(site)
    docs = site / "docs"
    try:
        site.mkdir(parents=True, exist_ok=True)
        tmp = site / ".docs.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        for a in analyses:
            _copy_analysis(a, tmp / "models" / a.name)
        atomic_write_text(tmp / "index.md", _home(analyses, title))
        atomic_write_text(tmp / "compare.md", _compare(analyses))
        shutil.rmtree(docs, ignore_errors=True)
        tmp.rename(docs)
        atomic_write_text(site / "mkdocs.yml", _mkdocs_yml(analyses, title))
    except OSError as e:
        raise SiteError(f"cannot write the site to {site}: {e.strerror or e}; choose another folder") from None
    return site
