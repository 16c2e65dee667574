"""Figures are read at the size they are shown: every figure type, for a layer whose RF is far larger than the
input, one whose RF is tiny and a ViT layer, shows data across its panels (not empty space around them), zooms
in on a tiny RF, and has no two texts on top of each other (measured with matplotlib's renderer)."""

from __future__ import annotations

import itertools

import matplotlib
import numpy as np
import pytest

import rfkit
from rfkit.report import figures as F

INPUT = 48


@pytest.fixture(scope="module")
def cnn():
    """Layer ``0``: a 3x3 conv (RF 3 in a 48 px input: tiny); layer ``4``: after a stride-2 conv and dilated
    convs, RF 3 + 2 + 2 (8 + 16 + 32) = 117 > 48, centred on pixel 24 (unit 12 of 24): pixels -34..82."""
    import torch.nn as nn

    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.Conv2d(4, 4, 3, padding=4, dilation=4),
        nn.Conv2d(4, 4, 3, padding=8, dilation=8),
        nn.Conv2d(4, 4, 3, padding=16, dilation=16),
    )
    res = rfkit.erf(net, layers=["0", "4"], images=rfkit.Images("noise", 2, input_size=INPUT), runtime="cpu")
    assert res.rf("0").size == (3, 3) and res.rf("4").size == (117, 117)
    return res


@pytest.fixture(scope="module")
def vit():

    return rfkit.erf(
        "test_vit",
        layers="stages",
        images=rfkit.Images("noise", 1),
        weights="random",
        runtime="cpu",
    )


def visible_texts(fig) -> list:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    out = []
    for t in fig.findobj(matplotlib.text.Text):
        if not t.get_visible() or not t.get_text().strip() or (t.axes is not None and not t.axes.get_visible()):
            continue
        box = t.get_window_extent(renderer)
        if box.width > 0 and box.height > 0:
            out.append((t, box))
    return out


def overlapping_texts(fig, tolerance: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of texts whose boxes overlap by more than ``tolerance`` pixels in both directions."""
    pairs = []
    for (a, ba), (b, bb) in itertools.combinations(visible_texts(fig), 2):
        dx = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
        dy = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
        if dx > tolerance and dy > tolerance:
            pairs.append((a.get_text(), b.get_text()))
    return pairs


def data_share(ax) -> float:
    """The share of the panel's view that the ERF map covers."""
    im = next(i for i in ax.get_images() if i.get_gid() == "erf-map" or i.get_gid() is None)
    x0, x1, y0, y1 = im.get_extent()
    (vx0, vx1), (vy0, vy1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    w = max(0.0, min(vx1, max(x0, x1)) - max(vx0, min(x0, x1)))
    h = max(0.0, min(vy1, max(y0, y1)) - max(vy0, min(y0, y1)))
    return w * h / ((vx1 - vx0) * (vy1 - vy0))


def map_panels(fig) -> list:
    return [a for a in fig.axes if any(i.get_gid() == "erf-map" for i in a.get_images())]


@pytest.fixture(autouse=True)
def _closed():
    import matplotlib.pyplot as plt

    yield
    assert plt.get_fignums() == []


@pytest.mark.parametrize("layer", ["0", "4"])
def test_overlay_of_a_tiny_and_a_huge_rf(cnn, layer):
    fig = F.overlay_figure(cnn, layer)
    assert overlapping_texts(fig) == []
    panels = map_panels(fig)
    assert all(data_share(ax) > 0.99 for ax in panels)  # the data fills every panel
    if layer == "0":  # RF 3 in 48 px: a zoomed panel, the RF box at least a quarter of it, a scale bar
        assert len(panels) == 2
        zoom = panels[1]
        box = next(p for p in zoom.patches if p.get_width() == 3)
        assert box.get_width() / abs(np.diff(zoom.get_xlim())[0]) >= 1 / 4
        assert any(c.get_gid() == "scale-bar" for c in zoom.get_children())
    else:  # pixels -34..82 of 0..47: the input fills the panel; the arrows say how far the RF goes on
        assert len(panels) == 1
        marks = {c.get_text(): c.xy for c in panels[0].texts if c.get_gid() == "rf-extent"}
        assert len(marks) == 2 and marks["+34 px"] in ((24.0, -0.5), (-0.5, 24.0))
        assert (
            sorted(t.get_text() for t in panels[0].texts if t.get_gid() == "rf-extent")
            == ["+34 px"] * 2 + ["+35 px"] * 2
        )


def test_overlay_of_a_vit_layer(vit):
    """test_vit's final layer is global, its local paths see one 16 px patch of the 160 px input: the input fills
    its panel, and a zoomed panel (filled too) shows the patch, its dashed box whole."""
    fig = F.overlay_figure(vit, vit.layers[-1])
    assert overlapping_texts(fig) == []
    assert [round(data_share(ax), 2) for ax in map_panels(fig)] == [1.0, 1.0]
    (y0, y1), (x0, x1) = vit.rf(vit.layers[-1]).window_of(tuple(vit.unit[vit.layers[-1]]))
    assert (y1 - y0 + 1, x1 - x0 + 1) == (16, 16)
    zoom = map_panels(fig)[1]
    (vx0, vx1), (vy0, vy1) = sorted(zoom.get_xlim()), sorted(zoom.get_ylim())
    assert vx0 <= x0 - 0.5 and x1 + 0.5 <= vx1 and vy0 <= y0 - 0.5 and y1 + 0.5 <= vy1
    box = next(p for p in zoom.patches if p.get_linestyle() != "solid")  # dashed: the local paths
    assert (box.get_x(), box.get_width()) == (x0 - 0.5, 16)


def test_stage_grids(cnn, vit):
    for res in (cnn, vit):
        fig = F.stage_grid_figure(res)
        assert overlapping_texts(fig) == []
        assert all(data_share(ax) > 0.99 for ax in map_panels(fig))
    fig = F.stage_grid_figure(cnn)
    tiny = map_panels(fig)[0]
    assert [c.get_gid() for c in tiny.child_axes] == ["zoom-inset"]  # the tiny RF gets a zoomed inset
    huge = map_panels(fig)[1]
    assert len([t for t in huge.texts if t.get_gid() == "rf-extent"]) == 4  # the clipped RF box gets its cues


def test_stage_grid_rows_are_balanced(vit):
    n = len(vit.layers)
    fig = F.stage_grid_figure(vit, max_cols=4)
    rows = {}
    for ax in map_panels(fig):
        rows.setdefault(round(ax.get_position().y0, 3), []).append(ax)
    sizes = sorted(len(r) for r in rows.values())
    assert sum(sizes) == n and sizes[-1] - sizes[0] <= 1  # 5 panels: 3 + 2, never 4 + 1


def test_growth_figures(cnn, vit):
    for res in (cnn, vit):
        fig = F.rf_growth_figure(res.graph, res)
        assert overlapping_texts(fig) == []
        title = fig.texts[0] if fig.texts else fig.subfigs[0]._suptitle
        fig_box = fig.bbox
        box = title.get_window_extent(fig.canvas.get_renderer())
        assert box.x0 >= fig_box.x0 and box.x1 <= fig_box.x1  # the title stays inside the figure


def test_growth_names_layers_at_one_depth_once():
    """A conv and the ReLU after it are at one depth: one line, one label ("1, 2")."""
    import torch.nn as nn

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    res = rfkit.erf(
        net,
        layers=["1", "2", "3"],
        images=rfkit.Images("noise", 1, input_size=32),
        runtime="cpu",
    )
    fig = F.rf_growth_figure(res.graph, res)
    (names,) = fig.axes[0].child_axes
    assert [t.get_text() for t in names.get_xticklabels()] == ["1, 2", "3"]
    assert len([line for line in fig.axes[0].lines if line.get_gid() == "measured-layer"]) == 2
    assert overlapping_texts(fig) == []


# ------------------------------------------------------------------------------------ paper style, looks


@pytest.mark.parametrize("kind", ["overlay", "stages", "growth"])
def test_paper_figures_are_column_wide_with_fonts_of_7pt_and_no_footer(cnn, kind, tmp_path):
    draw = {
        "overlay": lambda: F.overlay_figure(cnn, "0", style="paper"),  # with its zoomed panel
        "stages": lambda: F.stage_grid_figure(cnn, style="paper"),
        "growth": lambda: F.rf_growth_figure(cnn.graph, cnn, style="paper"),
    }[kind]
    fig = draw()
    width = {"overlay": 3.3, "stages": 6.9, "growth": 3.3}[kind]
    assert fig.get_size_inches()[0] == pytest.approx(width)
    sizes = {t.get_text(): t.get_fontsize() for t, _ in visible_texts(fig)}
    assert sizes and min(sizes.values()) >= 7, {k: v for k, v in sizes.items() if v < 7}
    assert not [t for t in fig.findobj(matplotlib.text.Text) if t.get_gid() == "footer"]
    assert overlapping_texts(fig) == []
    assert all(data_share(ax) > 0.99 for ax in map_panels(fig))
    paths = F.save_figure(fig, [tmp_path / "f.png", tmp_path / "f.pdf", tmp_path / "f.svg"])
    svg = paths[2].read_text()
    assert "weights: as given" in svg and "rfkit" in svg  # the provenance is in the file's metadata
    assert "weights: as given".encode("utf-16-be") in paths[1].read_bytes()  # PDF Subject (UTF-16: "×")
    from PIL import Image

    with Image.open(paths[0]) as img:  # kept at the column width (not cropped), at 300 dpi
        assert "weights: as given" in img.info["Description"] and img.info["Software"].startswith("rfkit")
        assert img.size[0] == round(width * 300)


def test_looks_draw_each_tools_transform_and_colours():
    from rfkit.report.figures.looks import LOOKS

    m = np.zeros((16, 16))
    m[8, 8], m[8, 9], m[7, 8] = 99.0, 9.0, 0.0
    # by hand: RepLKNet log10(m + 1) / max -> 1, 0.5; OpenERF min-max -> 1, 9/99
    assert LOOKS["replknet"].display(m)[8, 8:10].tolist() == [1.0, 0.5]
    assert LOOKS["openerf"].display(m)[8, 8:10].tolist() == pytest.approx([1.0, 9 / 99])
    assert LOOKS["rfkit"].display(m)[8, 8:10].tolist() == pytest.approx([0.0, np.log10(9 / 99)])
    assert LOOKS["openerf"].colormap().name == "plasma"
    greens = LOOKS["replknet"].colormap()  # RdYlGn from its middle, as seaborn's heatmap(center=0) draws [0, 1]
    assert greens(0.0)[1] > greens(0.0)[2] and greens(1.0)[1] > 2 * greens(1.0)[0]  # yellow to green


@pytest.mark.parametrize("look", ["replknet", "openerf"])
def test_a_look_colours_every_panel_and_names_its_transform(cnn, look):
    from rfkit.report.figures.looks import LOOKS

    fig = F.stage_grid_figure(cnn, look=look, shared=False)
    images = [i for ax in map_panels(fig) for i in ax.get_images() if i.get_gid() == "erf-map"]
    for im, layer in zip(images, cnn.layers):
        np.testing.assert_allclose(im.get_array(), LOOKS[look].display(cnn.maps[layer]))
        assert im.get_cmap().name == LOOKS[look].colormap().name
    assert (images[0].norm.vmin, images[0].norm.vmax) == (0.0, 1.0)
    assert (
        {"replknet": "RepLKNet", "openerf": "OpenERF"}[look] in fig._suptitle.get_text()
        if hasattr(fig, "_suptitle") and fig._suptitle
        else any({"replknet": "RepLKNet", "openerf": "OpenERF"}[look] in t.get_text() for t, _ in visible_texts(fig))
    )
    assert overlapping_texts(fig) == []


def test_write_figures_in_paper_style_writes_every_format(cnn, tmp_path):
    files = F.write_figures(tmp_path, cnn, F.FigureOptions(style="paper", look="openerf"))
    stems = {"overlay_0", "overlay_4", "stages", "rf_growth", "convergence"}  # convergence: 2 or more images
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{s}{e}" for s in stems for e in (".png", ".pdf", ".svg", ".caption.md", ".caption.tex")
    )
    assert files["stages"].name == "stages.png" and files["stages.pdf"].name == "stages.pdf"


def test_analyze_style_look_and_full_rf_from_the_command_line(tmp_path, monkeypatch, capsys):
    import shutil
    from pathlib import Path

    from typer.testing import CliRunner

    from rfkit_cli.app import app, main, normalise_argv

    golden = Path(__file__).parent / "golden"
    shutil.copy(golden / "tiny_net.py", tmp_path / "tiny_net.py")
    monkeypatch.chdir(tmp_path)
    args = ["analyze", "tiny_net.py:build", "--trust", "-l", "2", "--images", "noise", "-n", "1", "--input-size", "16"]
    args += ["--device", "cpu", "-q", "--out", "out"]
    r = CliRunner().invoke(app, normalise_argv([*args, "--style", "paper", "--look", "openerf", "--full-rf"]))
    assert r.exit_code == 0, r.output
    figures = tmp_path / "out" / "tiny_net-build" / "figures"
    assert {p.suffix for p in figures.iterdir()} == {".png", ".pdf", ".svg", ".md", ".tex"}  # and the captions
    report = (tmp_path / "out" / "tiny_net-build" / "report.md").read_text()
    assert "| figures | paper style (PNG, PDF, SVG); look: (ERF - min) / (max - min) of each map, plasma (OpenERF)" in (
        report
    )
    with pytest.raises(SystemExit) as exc:
        main([*args, "--look", "jet"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 1 and err == "error: look 'jet': use rfkit, replknet or openerf"
