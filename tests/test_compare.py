"""The multi-model grid (rfkit.report.figures.compare, `rfkit figure`): rows of models, columns of layers at the same
depth fraction, one spatial scale and one colour scale, drawn from analysis folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import rfkit
from rfkit.report.figures import compare as C
from rfkit.report.site import find_analyses

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """tiny_net (layers 0 and 2, RF 3 and 7, at 16 px) and a wider net at 24 px (RF 3, 5, 7, 9 at depths 1..4)."""
    import torch
    import torch.nn as nn

    out = tmp_path_factory.mktemp("reports")
    shutil.copy(GOLDEN / "tiny_net.py", out / "tiny_net.py")
    rfkit.analyze(
        str(out / "tiny_net.py") + ":build",
        layers=["0", "2"],
        images=rfkit.Images("noise", 1, input_size=16),
        out=out / "out",
        runtime="cpu",
        trust=True,
    )
    torch.manual_seed(1)  # random weights: with many draws (0, 2, 4-7) some unit sees only negatives: a zero map
    deep = nn.Sequential(*[nn.Conv2d(3, 3, 3, padding=1) for _ in range(4)])
    for conv in deep:  # positive weights and bias: the centre unit's score is positive, its map never all zero
        nn.init.constant_(conv.weight, 0.1)
        nn.init.constant_(conv.bias, 1.0)
    rfkit.analyze(
        deep,
        layers=["0", "1", "2", "3"],
        images=rfkit.Images("noise", 1, input_size=24),
        out=out / "out",
        runtime="cpu",
    )
    return find_analyses([out / "out"])


def test_columns_are_layers_at_the_same_depth_fraction(reports):
    by_model = {a.model: [r["layer"] for r in a.rows] for a in reports}
    deep = next(a for a in reports if a.model == "Sequential")
    # by hand: depths 1, 2, 3, 4 of 4 -> fractions .25, .5, .75, 1: each column its own layer
    assert [r["depth_fraction"] for r in deep.rows] == [0.25, 0.5, 0.75, 1.0]
    assert C.pick_columns(deep.rows) == [("¼ depth", 0), ("½ depth", 1), ("¾ depth", 2), ("final", 3)]
    assert by_model["Sequential"] == ["0", "1", "2", "3"]


def test_grid_has_one_spatial_and_one_colour_scale(reports):
    fig = C.comparison_figure(reports, "stages")
    panels = [ax for ax in fig.axes if ax.get_subplotspec() is not None and ax.get_xticks().size == 0]
    assert len(panels) == 2 * 4
    views = {(tuple(ax.get_xlim()), tuple(ax.get_ylim())) for ax in panels}
    assert views == {((-0.5, 23.5), (23.5, -0.5))}  # the largest input's frame in every panel
    images = [i for ax in panels for i in ax.get_images()]
    assert len({id(i.norm) for i in images}) == 1 and images[0].norm.vmax == 0.0  # one colour scale
    sizes = sorted({i.get_array().shape for i in images})
    assert sizes == [(16, 16), (24, 24)]  # each map at its own input size, on the common scale
    for im in images:  # each map / its own max: every panel peaks at 1 (log 0)
        assert float(np.max(im.get_array())) == pytest.approx(0.0)
    from test_figure_layout import overlapping_texts

    assert overlapping_texts(fig) == []


def test_rfkit_figure_writes_and_never_replaces_a_foreign_file(reports, tmp_path, capsys):
    from typer.testing import CliRunner

    from rfkit_cli.app import app, main

    folders = [str(a.folder) for a in reports]
    out = tmp_path / "fig.pdf"
    r = CliRunner().invoke(app, ["figure", *folders, "--layers", "final", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes().startswith(b"%PDF") and C.owned(out)
    assert "fig.caption.md" in r.output and "fig.caption.tex" in r.output  # the wrote line names the pair
    assert (tmp_path / "fig.caption.md").is_file() and (tmp_path / "fig.caption.tex").is_file()
    r = CliRunner().invoke(app, ["figure", *folders, "--out", str(out)])  # its own file: replaced
    assert r.exit_code == 0, r.output
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"a user's figure")
    for args, message in [
        (["--out", str(mine)], "rfkit did not write it"),
        (["--layers", "middle", "--out", str(tmp_path / "x.png")], "layers 'middle': use final or stages"),
        (["--out", str(tmp_path / "x.jpg")], "must end in .png, .pdf or .svg"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(["figure", *folders, *args])
        err = capsys.readouterr().err.strip()
        assert exc.value.code == 1 and len(err.splitlines()) == 1 and message in err, err
    assert mine.read_bytes() == b"a user's figure"


def _every_choice(fractions):
    """The columns by trying every in-order choice of three layers (or none) for ¼, ½, ¾: the definition."""
    import itertools

    candidates = [None, *range(len(fractions) - 1)]
    best, best_cost = None, None
    for choice in itertools.product(candidates, repeat=3):
        chosen = [i for i in choice if i is not None]
        if any(a >= b for a, b in zip(chosen, chosen[1:])):
            continue
        if any(i is not None and abs(fractions[i] - t) > C.TOLERANCE for i, t in zip(choice, C.FRACTIONS)):
            continue
        cost = sum(C.TOLERANCE if i is None else abs(fractions[i] - t) for i, t in zip(choice, C.FRACTIONS))
        if best_cost is None or cost < best_cost:
            best, best_cost = choice, cost
    return best


def test_columns_are_the_best_in_order_choice():
    # by hand: 0.1 is within 0.2 of ¼ only; 0.4 is 0.15 from ¼ and 0.1 from ½; 0.6 is 0.1 from ½ and 0.15
    # from ¾; 0.95 is final. (0, 1, 2) costs 0.15 + 0.1 + 0.15 = 0.4, (1, 2, None) 0.15 + 0.1 + 0.2 = 0.45
    rows = [{"depth_fraction": f} for f in (0.1, 0.4, 0.6, 0.95)]
    assert C.pick_columns(rows) == [("¼ depth", 0), ("½ depth", 1), ("¾ depth", 2), ("final", 3)]
    # two layers at ½ (a tie): the first; nothing within 0.2 of ¼ or ¾: empty columns
    rows = [{"depth_fraction": f} for f in (0.5, 0.5, 1.0)]
    assert C.pick_columns(rows) == [("¼ depth", None), ("½ depth", 0), ("¾ depth", None), ("final", 2)]
    rng = np.random.default_rng(0)
    for n in range(1, 9):
        for _ in range(40):
            fractions = rng.random(n).tolist()
            if rng.random() < 0.5:
                fractions.sort()
            got = [i for _, i in C.pick_columns([{"depth_fraction": f} for f in fractions])[:3]]
            assert tuple(got) == _every_choice(fractions), fractions


def test_columns_of_5000_layers_in_well_under_a_second():
    import time

    rows = [{"depth_fraction": (i + 1) / 5000} for i in range(5000)]
    start = time.perf_counter()
    columns = C.pick_columns(rows)
    assert time.perf_counter() - start < 2  # trying every combination took minutes (main: > 300 s)
    # (i + 1) / 5000 = ¼, ½, ¾ at i = 1249, 2499, 3749
    assert columns == [("¼ depth", 1249), ("½ depth", 2499), ("¾ depth", 3749), ("final", 4999)]


def _with_rows(analysis, **changes):
    """``analysis`` with the rows of the layers named in ``changes`` updated (``{"3": {"rf_first_y": -3}}``)."""
    import dataclasses

    rows = tuple({**r, **changes.get(r["layer"], {})} for r in analysis.rows)
    return dataclasses.replace(analysis, rows=rows)


def _panels(fig) -> list:
    return [a for a in fig.axes if any(i.get_gid() == "erf-map" for i in a.get_images())]


def test_every_overhang_carries_its_own_number(reports):
    deep = next(a for a in reports if a.model == "Sequential")  # 24×24 input
    # an off-centre unit's window rows -3..28, columns -7..25: beyond the top by 3, the bottom by 28 - 23 = 5,
    # the left by 7, the right by 25 - 23 = 2
    window = {"rf_first_y": -3, "rf_last_y": 28, "rf_first_x": -7, "rf_last_x": 25, "center_y": 12.5}
    fig = C.comparison_figure([_with_rows(deep, **{"3": window})], "final")
    (ax,) = _panels(fig)
    marks = [t for t in ax.texts if t.get_gid() == "rf-extent"]
    # each arrow points at its edge: x = -0.5 (left), 23.5 (right), or y = -0.5 (top), 23.5 (bottom)
    edge = {(-0.5, "x"): "left", (23.5, "x"): "right", (-0.5, "y"): "top", (23.5, "y"): "bottom"}
    got = {}
    for t in marks:
        x, y = map(float, t.xy)
        got[edge.get((x, "x")) or edge[(y, "y")]] = t.get_text()
    assert got == {"top": "+3 px", "bottom": "+5 px", "left": "+7 px", "right": "+2 px"}


def test_the_legend_names_the_markers_drawn_and_the_caption_says_it(reports):
    from rfkit.report.figures.captions import caption_texts
    from rfkit.report.figures.layout import overflow

    deep = next(a for a in reports if a.model == "Sequential")
    window = {"rf_first_y": -3, "rf_last_y": 28, "rf_first_x": -7, "rf_last_x": 25}
    for style in ("report", "paper"):
        fig = C.comparison_figure([_with_rows(deep, **{"3": window})], "final", style=style)
        (legend,) = fig.subfigs[0].legends
        labels = [t.get_text().replace("\n", " ") for t in legend.get_texts()]
        (ax,) = _panels(fig)
        centre = any(line.get_gid() == "rf-center" for line in ax.lines)
        zoomed = any(c.get_gid() == "zoom-inset" for c in ax.child_axes)
        expected = ["analytic RF of the unit"] + ["analytic RF centre of the unit"] * centre
        expected += ["+N px: the RF goes on N px beyond that edge"] + ["zoomed inset (scale bar in px)"] * zoomed
        assert labels == expected, style
        assert overflow(fig) == (0.0, 0.0, 0.0, 0.0), style  # nothing of the legend is cut off
        caption = caption_texts(fig)[0]
        assert "solid box is the analytic receptive field" in caption
        assert "arrows at the edges give how many pixels the RF extends beyond the input" in caption
    # RF 9 of a 24 px input, centred: inside the input, so no arrow and no arrow in the legend
    fig = C.comparison_figure([deep], "final")
    labels = [t.get_text().replace("\n", " ") for t in fig.subfigs[0].legends[0].get_texts()]
    assert "analytic RF of the unit" in labels and not any(lab.startswith("+N px") for lab in labels)


def test_a_depth_without_a_layer_near_it_shows_the_nearest_layer_not_shown_elsewhere(reports):
    deep = next(a for a in reports if a.model == "Sequential")
    # depths 0.2, 0.28, 0.8, 1.0: ¼ -> layer 1 (0.03 off), ¾ -> layer 2 (0.05 off); nothing within 0.2 of ½
    # (0.28 is 0.22 off, 0.8 0.3). Filled in depth order, each layer once: ¼ -> layer 0 (0.05 off), ½ -> layer 1
    # (0.22 off: "≈"), ¾ -> layer 2; by hand, 0.05 + 0.22 + 0.05 is the least sum of the in-order choices (layer 1
    # for ¼ would leave ½ only layer 2, 0.3 off, and ¾ nothing)
    fractions = {"0": 0.2, "1": 0.28, "2": 0.8, "3": 1.0}
    faked = _with_rows(deep, **{k: {"depth_fraction": f} for k, f in fractions.items()})
    assert C.pick_columns(faked.rows)[1] == ("½ depth", None)
    fig = C.comparison_figure([faked], "stages")
    titles = [ax.get_title().replace("\n", " ") for ax in _panels(fig)]
    assert len(titles) == 4  # no grey empty panel
    assert titles[0].startswith("¼ depth 0 (20% deep)"), titles
    assert titles[1].startswith("½ depth 1 (≈ depth 0.28)"), titles
    assert titles[2].startswith("¾ depth 2 (80% deep)"), titles
    assert not [t for ax in fig.axes if "no layer near" in (t := ax.get_title())]
