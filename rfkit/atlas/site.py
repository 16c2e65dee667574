"""``rfkit atlas site``: the atlas as a static mkdocs-material site.

A home page listing every model (sortable columns and a filter box: the small script
``assets/atlas-table.js`` is copied into the site, nothing is fetched from a CDN; with measured ERFs, columns of
the final feature map's ERF at init and trained, to filter on), a page per family with the RF growth of its
members on one plot, a page per model with its RF table per stage and input size, its RF growth figure, its
ERF per stage at initialisation and trained (table and stage grids, side by side) where measured, the sizes it
cannot run at and the ``rfkit analyze`` command for the full report, and a page of what is missing from the
table (rfkit's failures apart from the sizes models cannot take and the models without trained weights). Every
name is escaped (:func:`~rfkit.report.markdown.md_text`, :func:`~rfkit.report.markdown.md_code`) and every file
name made safe; the site folder is replaced only where rfkit wrote it (the marker of ``rfkit report``'s sites).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd

from rfkit.atlas.build import GRID_KINDS, grid_file
from rfkit.atlas.table import (
    ERF_KINDS,
    FAILED,
    FAILURE_COLUMNS,
    NO_WEIGHTS,
    NOT_DEFINED,
    STATUSES,
    load,
    load_failures,
)
from rfkit.errors import AtlasError
from rfkit.io import atomic_path, atomic_write_text, safe_name, short_hash
from rfkit.report.escape import md_code, md_table, md_text
from rfkit.report.site import SITE_MARKER, SiteError, _check_site, yaml_str
from rfkit.report.transaction import folder_transaction, remove_abandoned_folders

SCRIPT = Path(__file__).parent / "assets" / "atlas-table.js"


def page_name(text: str) -> str:
    """A model's or family's file name: safe, and unique (a hash of the original name).

    >>> page_name("resnet50"), page_name("<b>")
    ('resnet50-5df9686f', 'b-d51311d0')
    """
    return f"{safe_name(text, max_len=80)}-{short_hash(text)}"


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "?"
        if math.isinf(v):
            return "global"
        return f"{v:g}"
    return str(v)


def _pair(row, prefix: str, fmt=_fmt) -> str:
    h, w = fmt(row[f"{prefix}_h"]), fmt(row[f"{prefix}_w"])
    return h if h == w else f"{h}×{w}"


def _ratio(v) -> str:
    """An ERF/RF ratio, to two decimals.

    >>> _ratio(0.909091), _ratio(float("nan"))
    ('0.91', '?')
    """
    return f"{v:.2f}" if isinstance(v, float) and math.isfinite(v) else _fmt(v)


def curve_label(source: str, model: str, several_sources: bool) -> str:
    """A curve's name in a family's figure: the model, and its source where the family spans several (timm's
    and torchvision's ``resnet50`` are two models, two curves).

    >>> curve_label("timm", "resnet50", False), curve_label("torchvision-classification", "resnet50", True)
    ('resnet50', 'resnet50 (torchvision-classification)')
    """
    return f"{model} ({source})" if several_sources else model


def _growth_figure(curves: dict[str, pd.DataFrame], path: Path, title: str) -> None:
    """RF (local paths, height axis) of each stage output in order, one line per model, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=80)
    for label, rows in curves.items():
        ax.plot(range(len(rows)), rows["rf_local_h"], marker="o", lw=1, ms=3, label=label)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("stage output (feature_info order; the final feature map last)")
    ax.set_ylabel("analytic RF, local paths (px, height)")
    ax.set_title(title, fontsize=10)
    if len(curves) <= 12:
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


#: Where the analytic tables of a model page come from (the measured rows repeat them at their size).
ANALYTIC = ("default", "requested")


def _erf_section(rows: pd.DataFrame, grids: dict[str, str]) -> list[str]:
    """The ERF of each stage at initialisation and trained (the kinds measured): a table of the ERF side beside
    the analytic RF, then the stage grids side by side, each named by its weights."""
    kinds = [k for k in ERF_KINDS if (rows["input_from"] == k).any()]
    if not kinds:
        return []
    lines = ["## ERF per stage", ""]
    measured = {k: rows[rows["input_from"] == k].set_index("layer") for k in kinds}
    for k in kinds:
        at = measured[k].iloc[0]
        lines.append(
            f"- {ERF_KINDS[k]}: {md_text(at['erf_weights'])}, at {at['input_h']}×{at['input_w']} px"
            + (
                f"; warnings: {md_text(' | '.join(sorted(set(measured[k]['erf_warnings']) - {''})))}"
                if (measured[k]["erf_warnings"] != "").any()
                else ""
            )  # fmt: skip
        )
    layers = list(dict.fromkeys(layer for k in kinds for layer in measured[k].index))
    header = ["layer"] + [h for k in kinds for h in (f"RF ({ERF_KINDS[k]})", f"ERF {ERF_KINDS[k]}", "ERF / RF")]
    table = []
    for layer in layers:
        cells = [md_code(layer)]
        for k in kinds:
            r = measured[k].loc[layer] if layer in measured[k].index else None
            measured_cells = (
                [_pair(r, "rf"), _pair(r, "erf_side"), _pair(r, "erf_rf_ratio", _ratio)] if r is not None else []
            )
            cells += measured_cells or ["–"] * 3
        table.append(cells)
    lines += ["", *md_table(header, table), ""]
    shown = [(k, grids[k]) for k in kinds if k in grids]
    if shown:
        lines += [
            "ERF maps (log scale; the box: the analytic RF of the centre unit):",
            "",
            " ".join(f"![ERF {ERF_KINDS[k]}]({png}){{ width=49% }}" for k, png in shown),
            "",
        ]
    return lines


def _gaps_section(gaps: pd.DataFrame) -> list[str]:
    """The sizes a model cannot run at, rfkit's failures on it and its missing trained weights, by status."""
    lines = []
    titles = {NOT_DEFINED: "Not defined at", FAILED: "rfkit failed at", NO_WEIGHTS: "No trained ERF"}
    for status in STATUSES:
        for _, f in gaps[gaps["status"] == status].iterrows():
            lines.append(f"- {titles[status]} {md_text(f['input_size'])}: {md_text(f['reason'])}")
    return ["## Not in the table", "", *lines, ""] if lines else []


def _model_page(
    model: str, rows: pd.DataFrame, figure: str, family_page: str, grids: dict | None = None, gaps=None
) -> str:
    first = rows.iloc[0]
    lines = [
        f"# {md_text(model)}",
        "",
        f"Source {md_text(first['source'])}, family [{md_text(first['family'])}](../families/{family_page}.md). "
        f"The full report (ERF, productivity, figures): {md_code('rfkit analyze ' + model)}.",
        "",
        f"![RF growth of {md_text(model)}]({figure})",
        "",
    ]
    analytic = rows[rows["input_from"].isin(ANALYTIC)]
    for (h, w), at in analytic.groupby(["input_h", "input_w"], sort=False):
        head = at.iloc[0]
        lines += [
            f"## At {h}×{w} px",
            "",
            f"Input resolution range {_pair(head, 'input_min')} to {_pair(head, 'input_max')} px; "
            f"unproductive layers: {int(head['unproductive'])}"
            + (f" ({md_text(head['unproductive_layers'])})" if head["unproductive"] else "")
            + ".",
            "",
        ]
        table = [
            [
                md_code(r["layer"]) + (" (final)" if r["is_final"] else ""),
                _pair(r, "rf"),
                _pair(r, "rf_min"),
                _pair(r, "rf_local"),
                _pair(r, "stride"),
                _pair(r, "centre_offset"),
                md_text(", ".join(f for f in ("is_global", "misaligned", "approximate", "periodic") if r[f])),
                md_text(r["status"]),
            ]
            for _, r in at.iterrows()
        ]
        header = ["layer", "RF", "min RF", "local RF", "stride", "centre offset", "flags", "status"]
        lines += md_table(header, table) + [""]
    lines += _erf_section(rows, grids or {})
    if gaps is not None:
        lines += _gaps_section(gaps)
    return "\n".join(lines)


#: The class of the element around each table the atlas script (:data:`SCRIPT`) makes sortable and filterable.
TABLE_CLASS = "rfkit-atlas"

#: The columns of the model list: a row per model at its default input size, its final feature map.
LIST_HEADER = [
    "model",
    "source",
    "family",
    "input",
    "rf",
    "local_rf",
    "stride",
    "input_min",
    "input_max",
    "unproductive",
]


def interactive(table: list[str]) -> list[str]:
    """The Markdown ``table`` lines inside the element the atlas script looks for (``md_in_html``).

    >>> interactive(["| a |", "|---|", "| 1 |"])[0]
    '<div class="rfkit-atlas" markdown>'
    """
    return [f'<div class="{TABLE_CLASS}" markdown>', "", *table, "", "</div>"]


def erf_finals(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The final feature map's measured rows of each kind present in ``df`` (:data:`ERF_KINDS`), indexed by
    (source, model)."""
    out = {}
    for kind in ERF_KINDS:
        rows = df[(df["input_from"] == kind) & df["is_final"]]
        if not rows.empty:
            out[kind] = rows.set_index(["source", "model"])
    return out


def model_list(finals: pd.DataFrame, model_link=None, family_link=None, erfs: dict | None = None) -> list[str]:
    """The lines of the sortable, filterable list of ``finals`` (the final rows at the default size): model,
    source, family, input size, RF (``global`` where infinite), local RF, stride, input resolution range and
    unproductive layers; with ``erfs`` (:func:`erf_finals`), the final feature map's ERF side of each kind
    measured (``erf_init``, ``erf_trained``: ``–`` where not measured, so ``erf_trained>=1`` keeps the models
    with a trained ERF). ``model_link(source, model)`` and ``family_link(family)`` give each name's page."""
    erfs = erfs or {}

    def name(text, link):
        return f"[{md_text(text)}]({link})" if link else md_text(text)

    def erf(kind, r):
        key = (r["source"], r["model"])
        return _pair(erfs[kind].loc[key], "erf_side") if key in erfs[kind].index else "–"

    rows = [
        [
            name(r["model"], model_link and model_link(r["source"], r["model"])),
            md_text(r["source"]),
            name(r["family"], family_link and family_link(r["family"])),
            f"{r['input_h']}×{r['input_w']}",
            _pair(r, "rf"),
            _pair(r, "rf_local"),
            _pair(r, "stride"),
            _pair(r, "input_min"),
            _pair(r, "input_max"),
            str(int(r["unproductive"])),
            *(erf(kind, r) for kind in erfs),
        ]
        for _, r in finals.iterrows()
    ]
    return interactive(md_table(LIST_HEADER + list(erfs), rows))


#: Front matter of a page whose table needs the whole width: mkdocs-material hides its side bars.
WIDE_PAGE = ["---", "hide:", "  - navigation", "  - toc", "---", ""]

#: What the list shows, and how to use it (the atlas site's home page and the docs' atlas page).
LIST_HELP = (
    "the analytic RF of the final feature map (`global` where attention, global pooling or a gate reaches it; "
    "the local RF keeps the convolutions' size), its stride, the input resolution range and the layers that are "
    "unproductive at that size. Click a column to sort; type words or `rf>=800` in the box to filter."
)


#: What the ERF columns of the list hold, where there are any.
ERF_HELP = (
    "`erf_init` and `erf_trained`: the side (px) of the final feature map's ERF at initialisation and with trained "
    "weights, `–` where it was not measured (`erf_trained>=1` keeps the models with a trained ERF)."
)


def _home(finals: pd.DataFrame, pages: dict, families: dict, erfs: dict, gaps: int) -> str:
    table = model_list(finals, lambda s, m: f"models/{pages[(s, m)]}.md", lambda f: f"families/{families[f]}.md", erfs)
    intro = f"{len(finals)} models at their default input size: {LIST_HELP}" + (f" {ERF_HELP}" if erfs else "")
    entries = f"{gaps} entr{'y' if gaps == 1 else 'ies'}"
    missing = [f"What is not in the table, and why: [{entries}](missing.md).", ""] if gaps else []
    return "\n".join([*WIDE_PAGE, "# Receptive-field atlas", "", intro, "", *missing, *table, ""])


#: The sections of the page of what is missing, by status.
MISSING_SECTIONS = {
    FAILED: (
        "rfkit failures",
        "rfkit could not trace or measure the model at this size (a bug, an op without a rule, a timeout); "
        "`rfkit atlas build --retry-failed` runs them again.",
    ),
    NOT_DEFINED: (
        "Not defined at this size",
        "The model itself cannot run at this input size: its own forward pass raises there (run on the meta "
        "device, as the atlas traces it), e.g. a patch that does not divide the input or an attention bias of a "
        "fixed grid. The reason is the model's own error.",
    ),
    NO_WEIGHTS: (
        "No trained weights",
        "No weight file was given and no pretrained weights could be loaded (offline and not in the cache, or "
        "none published), or the file given does not fit: the model's trained ERF is not measured, its analytic "
        "rows are whole.",
    ),
}


def _missing_page(gaps: pd.DataFrame, pages: dict) -> str:
    lines = ["# Not in the table", ""]
    for status, (title, what) in MISSING_SECTIONS.items():
        at = gaps[gaps["status"] == status]
        lines += [f"## {title} ({len(at)})", "", what, ""]
        rows = [
            [
                f"[{md_text(f['model'])}](models/{pages[key]}.md)" if (key := (f["source"], f["model"])) in pages
                else md_text(f["model"]),
                md_text(f["source"]),
                md_text(f["input_size"]),
                md_text(f["reason"]),
            ]
            for _, f in at.iterrows()
        ]  # fmt: skip
        if rows:
            lines += [*interactive(md_table(["model", "source", "size", "reason"], rows)), ""]
    return "\n".join(lines)


def _family_page(family: str, members: pd.DataFrame, pages: dict, figure: str) -> str:
    rows = [
        [
            f"[{md_text(r['model'])}](../models/{pages[(r['source'], r['model'])]}.md)",
            _pair(r, "rf"),
            _pair(r, "stride"),
        ]
        for _, r in members.iterrows()
    ]
    return "\n".join(
        [
            f"# {md_text(family)}",
            "",
            f"![RF growth of {md_text(family)}]({figure})",
            "",
            *interactive(md_table(["model", "rf", "stride"], rows)),
            "",
        ]
    )


def _mkdocs_yml(title: str, missing: bool = False) -> str:
    return "\n".join(
        [
            f"site_name: {yaml_str(title)}",
            "theme:",
            "  name: material",
            "  font: false",  # no Google Fonts request: the site works offline and asks no third party
            "extra_javascript:",
            "  - atlas-table.js",
            "markdown_extensions:",
            "  - tables",
            "  - md_in_html",
            "  - attr_list",
            "nav:",
            "  - Atlas: index.md",
            "  - Families: families/index.md",
            *(["  - Not in the table: missing.md"] if missing else []),
            "",
        ]
    )


def write_atlas_site(
    df: pd.DataFrame, site, title: str = "rfkit receptive-field atlas", gaps: pd.DataFrame | None = None, grids=None
) -> Path:
    """Write the mkdocs project of the atlas table ``df`` (:func:`~rfkit.atlas.table.load`) into ``site``;
    ``gaps`` is its ``failures.csv`` (:func:`~rfkit.atlas.table.load_failures`), ``grids(source, model, kind)``
    the stage grid figure of a model's measured ERF (None where there is none)."""
    site = Path(site)
    gaps = pd.DataFrame(columns=FAILURE_COLUMNS) if gaps is None else gaps
    defaults = df[df["input_from"] == "default"]
    finals = defaults[defaults["is_final"]]
    pages = {k: page_name(f"{k[0]}:{k[1]}") for k in zip(df["source"], df["model"])}
    families = {f: page_name(f) for f in df["family"]}
    try:
        site.mkdir(parents=True, exist_ok=True)
        _check_site(site)
        atomic_write_text(
            site / SITE_MARKER,
            "This folder was written by `rfkit atlas site`: it replaces docs/ and mkdocs.yml here.\n",
        )
        remove_abandoned_folders(site, lambda p: (p / "index.md").is_file(), "docs")
        with folder_transaction(site / "docs", lambda folder: None) as tmp:
            shutil.copyfile(SCRIPT, tmp / SCRIPT.name)
            for (source, model), rows in df.groupby(["source", "model"], sort=True):
                name = pages[(source, model)]
                stages = rows[rows["input_from"] == "default"]
                _growth_figure({model: stages}, tmp / "models" / f"{name}.png", model)
                shown = {}
                for kind in GRID_KINDS:
                    png = grids(source, model, kind) if grids and (rows["input_from"] == kind).any() else None
                    if png is not None and png.is_file():
                        shutil.copyfile(png, tmp / "models" / f"{name}.{kind}.png")
                        shown[kind] = f"{name}.{kind}.png"
                mine = gaps[(gaps["source"] == source) & (gaps["model"] == model)]
                page = _model_page(model, rows, f"{name}.png", families[rows.iloc[0]["family"]], shown, mine)
                atomic_write_text(tmp / "models" / f"{name}.md", page)
            family_links = []
            for family, members in finals.groupby("family", sort=True):
                name = families[family]
                curves = {
                    curve_label(s, m, members["source"].nunique() > 1): defaults[
                        (defaults["model"] == m) & (defaults["source"] == s)
                    ]
                    for s, m in zip(members["source"], members["model"])
                }
                _growth_figure(curves, tmp / "families" / f"{name}.png", family)
                atomic_write_text(tmp / "families" / f"{name}.md", _family_page(family, members, pages, f"{name}.png"))
                family_links.append(f"- [{md_text(family)}]({name}.md) ({len(members)} models)")
            atomic_write_text(tmp / "families" / "index.md", "\n".join(["# Families", "", *family_links, ""]))
            atomic_write_text(tmp / "index.md", _home(finals, pages, families, erf_finals(df), len(gaps)))
            if len(gaps):
                atomic_write_text(tmp / "missing.md", _missing_page(gaps, pages))
        atomic_write_text(site / "mkdocs.yml", _mkdocs_yml(title, bool(len(gaps))))
    except OSError as e:
        raise SiteError(f"cannot write the site to {site}: {e.strerror or e}; choose another folder") from None
    return site


def build_atlas_site(atlas="rfkit-atlas", site="rfkit-atlas-site", title: str = "rfkit receptive-field atlas") -> Path:
    """The static site of the atlas folder ``atlas`` (:func:`~rfkit.atlas.table.load`), written into ``site``
    (``mkdocs build`` it; ``docs/`` and ``mkdocs.yml`` there are replaced only when rfkit wrote them).

    Raises
    ------
    AtlasError
        No atlas at ``atlas``.
    SiteError
        ``site`` holds a ``docs/`` or ``mkdocs.yml`` rfkit did not write, or cannot be written.
    """
    df = load(atlas)
    if df.empty:
        raise AtlasError(f"the atlas at {atlas} has no rows; build it first with `rfkit atlas build`")
    folder = Path(atlas) if Path(atlas).is_dir() else Path(atlas).parent
    grids = lambda source, model, kind: grid_file(folder, source, model, kind)  # noqa: E731
    return write_atlas_site(df, site, title, load_failures(atlas), grids)
