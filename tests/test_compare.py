"""The multi-model grid (rfkit.report.compare, `rfkit figure`): rows of models, columns of layers at the same
depth fraction, one spatial scale and one colour scale, drawn from analysis folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rfkit.report import compare as C
from rfkit.report.site import find_analyses

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """tiny_net (layers 0 and 2, RF 3 and 7, at 16 px) and a wider net at 24 px (RF 3, 5, 7, 9 at depths 1..4)."""
    import torch
    import torch.nn as nn

    import rfkit

    out = tmp_path_factory.mktemp("reports")
    shutil.copy(GOLDEN / "tiny_net.py", out / "tiny_net.py")
    kw = dict(images="noise", num_images=1, device="cpu", out=out / "out")
    rfkit.analyze(str(out / "tiny_net.py") + ":build", layers=["0", "2"], input_size=16, trust=True, **kw)
    torch.manual_seed(1)  # random weights: with many draws (0, 2, 4-7) some unit sees only negatives: a zero map
    deep = nn.Sequential(*[nn.Conv2d(3, 3, 3, padding=1) for _ in range(4)])
    for conv in deep:  # positive weights and bias: the centre unit's score is positive, its map never all zero
        nn.init.constant_(conv.weight, 0.1)
        nn.init.constant_(conv.bias, 1.0)
    rfkit.analyze(deep, layers=["0", "1", "2", "3"], input_size=24, **kw)
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
