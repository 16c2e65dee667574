"""``rfkit report DIR... --site SITE``: a self-contained mkdocs project from analysis folders.

The site has a home page (one row per model), one page per model (its ``report.md`` with every figure and
file), and a comparison page that puts the same layer role side by side across models (the final feature
map, then each stage), grouped by family like OpenERF's gallery. ``mkdocs build --strict`` builds it.

What the site may carry: only what rfkit can vouch for. A model's page is written anew from its
``run.json`` and ``metrics.json`` (checked by :mod:`rfkit.report.schema`) by the writer of ``report.md``
(:func:`rfkit.report.markdown.report_markdown`), every value escaped; a report's own Markdown is never
copied. Of the files its ``run.json`` lists, only regular files (never a symlink, never a folder walked)
that are what they claim are copied: PNG figures and NPY maps with their magic bytes, ``graph.svg`` reduced
to a drawing (:func:`rfkit.report.svg.clean_svg`). Each model goes under a sanitised folder name. A report
folder whose ``run.json`` or ``metrics.json`` is not what rfkit writes is skipped with a warning naming the
first bad value. The site folder is rfkit's once it holds ``.rfkit-site``: only then
(or when it holds neither ``docs/`` nor ``mkdocs.yml``) are they replaced.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rfkit.errors import ReportFileError, SiteError, SiteWarning
from rfkit.formatting import one_line
from rfkit.io import atomic_write_text, safe_name
from rfkit.report.escape import md_code, md_table, md_text, warning_block
from rfkit.report.figures.labels import is_random
from rfkit.report.markdown import report_markdown
from rfkit.report.report_folder import DONE_MARKER
from rfkit.report.schema import read_header, read_rows
from rfkit.report.summary import ERF_RF, RF, productivity_text, summary_row
from rfkit.report.svg import SVGError, clean_svg
from rfkit.report.transaction import folder_transaction, remove_abandoned_folders

COPIED = ("layers.csv", "erf.csv", "metrics.json", "graph.dot", "graph.svg")
SITE_MARKER = ".rfkit-site"
_FIGURE_OR_MAP = re.compile(
    r"(attribution/)?(figures/[A-Za-z0-9_.-]+\.png|maps/[A-Za-z0-9_.-]+\.npy)"
    r"|attribution/(attribution\.csv|attribution\.json)"
)
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".npy": b"\x93NUMPY"}
"""The first bytes of the binary files a site carries: a file without them is not what its name claims."""
MAX_SVG_BYTES = 64 << 20


@dataclass(frozen=True)
class Analysis:
    """A finished analysis folder, its run header and its per-layer rows (``metrics.json``).

    ``name`` is its folder in the site (``models/<name>/``): the folder's name made safe, unique.
    """

    folder: Path
    header: dict
    rows: tuple = ()
    site_name: str = ""

    @property
    def name(self) -> str:
        return self.site_name or safe_name(self.folder.name)

    @property
    def model(self) -> str:
        return self.header.get("model", self.folder.name)


def load_analysis(folder) -> Analysis:
    """The analysis in ``folder``: its ``run.json`` and ``metrics.json`` rows (optional), each checked by
    :mod:`rfkit.report.schema`.

    Raises :class:`~rfkit.errors.ReportFileError` (one line, a ``ValueError``) naming the file and its first
    value that is not what rfkit writes.
    """
    folder = Path(folder)
    header = read_header(folder / DONE_MARKER)
    rows = read_rows(folder / "metrics.json") if os.path.lexists(folder / "metrics.json") else ()
    return Analysis(folder, header, rows)


def scan_analyses(paths: Sequence) -> tuple[list[Analysis], list[str]]:
    """The finished analysis folders among ``paths`` and their children (a folder holding ``run.json``;
    children that are symlinks or hidden are not followed), each with a unique site folder name; and one
    line per folder left out because its files are not rfkit's."""
    found: dict[Path, Analysis] = {}
    skipped: list[str] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise SiteError(
                f"{p} {'is not a folder' if p.exists() else 'does not exist'}: give analysis folders "
                "written by `rfkit analyze`, or their parent"
            )
        if os.path.lexists(p / DONE_MARKER):
            candidates = [p]
        else:
            candidates = sorted(
                c for c in p.iterdir() if c.is_dir() and not c.is_symlink() and not c.name.startswith(".")
            )
        for c in candidates:
            if not os.path.lexists(c / DONE_MARKER):
                continue
            try:
                found[c.resolve()] = load_analysis(c)
            except ReportFileError as e:
                skipped.append(f"skipped {c}: {e}")
    analyses = sorted(found.values(), key=lambda a: a.name)
    used: set[str] = set()
    unique = []
    for a in analyses:
        name, n = a.name, 1
        while name in used:
            n += 1
            name = f"{a.name}-{n}"
        used.add(name)
        unique.append(Analysis(a.folder, a.header, a.rows, name))
    return unique, skipped


def find_analyses(paths: Sequence, on_skip: Callable[[str], None] | None = None) -> list[Analysis]:
    """:func:`scan_analyses`, reporting each folder left out to ``on_skip`` (default: a
    :class:`SiteWarning`); :class:`SiteError` when there is no analysis, and
    :class:`~rfkit.errors.ReportFileError` (the first folder left out and why) when every one was left out."""
    analyses, skipped = scan_analyses(paths)
    if skipped and not analyses:
        more = f" (and {len(skipped) - 1} more folder(s) left out)" if len(skipped) > 1 else ""
        raise ReportFileError(f"no analysis left to show: {skipped[0]}{more}")
    for line in skipped:
        if on_skip is None:
            warnings.warn(line, SiteWarning, stacklevel=2)
        else:
            on_skip(line)
    if not analyses:
        raise SiteError(
            f"no finished analysis (a folder with {DONE_MARKER}) in {', '.join(map(str, paths))}: "
            "run `rfkit analyze MODEL --out DIR` first"
        )
    return analyses


def _report_files(a: Analysis) -> list[str]:
    """The files of ``a`` to copy, relative: those its ``run.json`` lists (reports from before that list:
    the known names and the PNG/NPY files directly in ``figures/`` and ``maps/``)."""
    listed = a.header.get("files")
    if listed is None:
        listed = list(COPIED) + [
            f"{sub}/{c.name}"
            for sub in ("figures", "maps")
            if (a.folder / sub).is_dir() and not (a.folder / sub).is_symlink()
            for c in sorted((a.folder / sub).iterdir())
        ]
    return [f for f in listed if isinstance(f, str) and (f in COPIED or _FIGURE_OR_MAP.fullmatch(f))]


def _open_regular(src: Path):
    """``src`` opened for reading if it is a regular file reached through no symlink (None otherwise)."""
    try:
        fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None  # missing, or a symlink
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        return None
    return f


def _copy_vetted(src: Path, dest: Path, rel: str) -> bool:
    """Copy ``src`` to ``dest`` if it is a regular file reached through no symlink and what its name claims
    (:data:`MAGIC`; an SVG is cleaned on the way, :func:`rfkit.report.svg.clean_svg`); whether it was copied."""
    f = _open_regular(src)
    if f is None:
        return False
    with f:
        suffix = Path(rel).suffix
        if suffix == ".svg":
            try:
                data = clean_svg(f.read(MAX_SVG_BYTES + 1)[:MAX_SVG_BYTES].decode("utf-8")).encode("utf-8")
            except (SVGError, UnicodeDecodeError):
                return False
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            return True
        magic = MAGIC.get(suffix, b"")
        if f.read(len(magic)) != magic:
            return False
        f.seek(0)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as out:
            shutil.copyfileobj(f, out)
    return True


def _copy_analysis(a: Analysis, dest: Path) -> set[str]:
    """Copy the files of ``a`` that rfkit can vouch for into ``dest``; the relative names copied."""
    dest.mkdir(parents=True, exist_ok=True)
    copied = set()
    for rel in _report_files(a):
        parents = [a.folder.joinpath(*rel.split("/")[:i]) for i in range(1, rel.count("/") + 1)]
        if any(p.is_symlink() or not p.is_dir() for p in parents):  # never through a linked folder
            continue
        if _copy_vetted(a.folder / rel, dest / rel, rel):
            copied.add(rel)
    return copied


def _page(a: Analysis, files: set[str]) -> str:
    """The model's page: :func:`rfkit.report.markdown.report_markdown` of its checked JSON, linking only the
    files copied, with the per-image contribution maps' figure and files when it has them."""
    sections = []
    grid = "attribution/figures/grid.png"
    attribution = [f for f in ("attribution/attribution.csv", "attribution/attribution.json") if f in files]
    if grid in files or attribution:
        sections = ["## Per-image contribution maps", ""]
        sections += [f"![Per-image contribution maps]({grid})", ""] if grid in files else []
        sections += [f"- [{f}]({f})" for f in attribution] + [""]
    return report_markdown(a.header, a.rows, files, sections)


def _link(a: Analysis) -> str:
    return f"[{md_text(a.model)}](models/{a.name}/index.md)"


def _home(analyses: list[Analysis], title: str) -> str:
    """The home page: one short row per model (the details are on its page), and which used random weights."""
    lines = [
        f"# {md_text(title)}",
        "",
        f"{len(analyses)} model(s) analysed with rfkit. Each page holds the full report; "
        "[the comparison](compare.md) puts the same layers side by side.",
        "",
    ]
    rows = []
    for a in analyses:
        h = a.header
        last = summary_row(a.rows[-1]) if a.rows else {}
        final = f"{md_code(last['layer'])}: {md_text(last[RF])}" if last else "–"
        weights = h.get("weights_kind") or h.get("weights", "")
        prod = productivity_text(h.get("productivity") or {})
        rows.append([_link(a), md_text(weights), final, md_text(last.get(ERF_RF, "–")), md_text(prod)])
    lines += md_table(["model", "weights", "final layer: RF", ERF_RF, "productivity"], rows)
    random = [md_text(a.model) for a in analyses if is_random(a.header.get("weights_kind"))]
    if random:
        lines += [""] + warning_block(
            "Random weights",
            [
                f"{', '.join(random)}: random weights (pretrained weights were not used). Their ERFs show the "
                "architecture, not a trained network."
            ],
        )
    return "\n".join(lines) + "\n"


COMPARE_ROWS = 8
"""Models per comparison figure (more make another figure)."""


def _compare(analyses: list[Analysis], docs: Path) -> str:
    """The comparison page: multi-model grids (:mod:`rfkit.report.figures.compare`) drawn into ``docs/figures/``,
    the final feature maps of every model, then each family by depth; and the final layers as a table."""
    from rfkit.report.figures.compare import save_comparison
    from rfkit.report.presets import family_of

    lines = [
        "# Comparison",
        "",
        "Rows are models, columns layers: in each figure every panel has the same spatial scale (the input "
        "frame, in input pixels) and the same colour scale (each ERF map divided by its own maximum, log scale), "
        "with the analytic RF box of the measured unit and arrows where it goes beyond the input. The layers "
        "are compared at the same depth: the measured layer nearest ¼, ½ and ¾ of the model's depth in spatial "
        "layers, then its final measured layer. Each model's page has the numbers.",
        "",
        "## Final feature maps",
        "",
    ]
    order = sorted(analyses, key=lambda a: (family_of(a.model) or "~", a.name))
    for i in range(0, len(order), COMPARE_ROWS):
        name = f"figures/compare_final_{i // COMPARE_ROWS + 1}.png"
        save_comparison(order[i : i + COMPARE_ROWS], docs / name, "final")
        lines += [f"![Final feature maps of {len(order[i : i + COMPARE_ROWS])} models]({name})", ""]
    lines += md_table(
        ["model", "final layer: RF", ERF_RF],
        [[_link(a), *_final_cells(a)] for a in order],
    )
    families: dict[str, list[Analysis]] = {}
    for a in order:
        families.setdefault(family_of(a.model) or "other", []).append(a)
    for family, members in families.items():
        lines += ["", f"## By depth: {md_text(family)}", ""]
        for i in range(0, len(members), COMPARE_ROWS):
            name = f"figures/compare_{safe_name(family)}_{i // COMPARE_ROWS + 1}.png"
            save_comparison(members[i : i + COMPARE_ROWS], docs / name, "stages")
            lines += [f"![ERF at ¼, ½, ¾ of the depth and the final layer: {md_text(family)}]({name})", ""]
    return "\n".join(lines) + "\n"


def _final_cells(a: Analysis) -> list[str]:
    """The final layer of an analysis and its RF, and its ERF/RF, as Markdown cells."""
    if not a.rows:
        return ["–", "–"]
    cells = summary_row(a.rows[-1])
    return [f"{md_code(a.rows[-1]['layer'])}: {md_text(cells[RF])}", md_text(cells[ERF_RF])]


_LOOKALIKE = str.maketrans({"<": "‹", ">": "›", "&": "＆", '"': "”", "'": "’"})


def yaml_str(text) -> str:
    """``text`` as a YAML double-quoted scalar for the site name and navigation titles, on one line.

    mkdocs-material puts these into pages unescaped, into attributes, and through Jinja's ``striptags``
    (which turns ``&lt;`` back into ``<``): no escaping is safe in all three, so the characters that matter
    to HTML are replaced by look-alikes (``‹ › ＆ ” ’``).

    >>> print(yaml_str('<img src=x onerror="a(1)"> & b'))
    "‹img src=x onerror=”a(1)”› ＆ b"
    >>> print(yaml_str(chr(92)))
    "\\\\"
    """
    text = one_line(text).translate(_LOOKALIKE)
    return '"' + text.replace("\\", "\\\\") + '"'


def _mkdocs_yml(analyses: list[Analysis], title: str) -> str:
    nav = ["  - Home: index.md", "  - Comparison: compare.md", "  - Models:"]
    nav += [f"      - {yaml_str(a.model)}: models/{a.name}/index.md" for a in analyses]
    return "\n".join(
        [
            f"site_name: {yaml_str(title)}",
            "theme:",
            "  name: material",
            "  font: false  # the system's fonts: no request to Google Fonts, so the site works offline",
            "markdown_extensions:",
            "  - admonition",
            "  - tables",
            "  - attr_list",
            "nav:",
            *nav,
            "",
        ]
    )


def _check_site(site: Path) -> None:
    """Refuse (:class:`SiteError`) to replace a ``docs/`` or ``mkdocs.yml`` that rfkit did not write: the
    site folder must hold rfkit's marker, or neither of them; and neither may be a symlink."""
    docs, yml, marker = site / "docs", site / "mkdocs.yml", site / SITE_MARKER
    for p in (docs, yml, marker):
        if p.is_symlink():
            raise SiteError(f"{p} is a symlink; rfkit does not replace it: choose another --site folder")
    if os.path.lexists(docs) and not docs.is_dir():
        raise SiteError(f"{docs} is not a folder; rfkit does not replace it: choose another --site folder")
    if not marker.is_file() and (os.path.lexists(docs) or os.path.lexists(yml)):
        raise SiteError(
            f"{site} already holds docs/ or mkdocs.yml that rfkit did not write (no {SITE_MARKER}); "
            "rfkit does not replace them: choose another --site folder"
        )


def write_site(analyses: Sequence[Analysis], site, title: str = "rfkit reports") -> Path:
    """Write the mkdocs project for ``analyses`` into ``site``: ``docs/``, ``mkdocs.yml`` and the marker
    ``.rfkit-site``. The new ``docs/`` is built beside the old one and swapped in when complete
    (:func:`rfkit.report.transaction.folder_transaction`)."""
    site = Path(site)
    docs = site / "docs"
    try:
        site.mkdir(parents=True, exist_ok=True)
        _check_site(site)
        atomic_write_text(
            site / SITE_MARKER, "This folder was written by `rfkit report`: it replaces docs/ and mkdocs.yml here.\n"
        )
        remove_abandoned_folders(site, lambda p: (p / "index.md").is_file(), "docs")  # what a killed run left
        with folder_transaction(docs, lambda folder: None) as tmp:  # _check_site: rfkit's docs/, or none
            for a in analyses:
                copied = _copy_analysis(a, tmp / "models" / a.name)
                atomic_write_text(tmp / "models" / a.name / "index.md", _page(a, copied))
            atomic_write_text(tmp / "index.md", _home(list(analyses), title))
            atomic_write_text(tmp / "compare.md", _compare(list(analyses), tmp))
        atomic_write_text(site / "mkdocs.yml", _mkdocs_yml(list(analyses), title))
    except OSError as e:
        raise SiteError(f"cannot write the site to {site}: {e.strerror or e}; choose another folder") from None
    return site


def build_site(paths: Sequence, site, title: str = "rfkit reports") -> Path:
    """Write an mkdocs project for the analyses found in ``paths`` into ``site``: :func:`find_analyses`
    (a folder whose files are not rfkit's is skipped with a :class:`SiteWarning`), then :func:`write_site`.

    ``site``'s ``docs/`` and ``mkdocs.yml`` are replaced only when rfkit wrote them (the marker
    ``.rfkit-site``) or when neither exists; otherwise :class:`SiteError`. Returns ``site``. Build it with
    ``mkdocs build --strict`` (needs ``pip install "rfkit[docs]"``).
    """
    return write_site(find_analyses(paths), site, title)
