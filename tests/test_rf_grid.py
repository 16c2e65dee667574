"""The RF grid figure: the boxes drawn are the hand-computed RF windows of the units, and each unit's measured
ERF covers exactly its window (clipped to the input)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from matplotlib.legend import Legend

from rfkit.effective.unit_grid import grid_units, unit_grid
from rfkit.errors import ArgumentError, LayerError
from rfkit.report.figures.rf_grid import rf_grid_figure, save_rf_grid

SIZE = 16


def two_convs() -> nn.Module:
    """Two 3×3 convs, stride 2, padding 1, all weights 1, no bias: every path from a pixel to a unit has a
    positive weight, so a unit's input gradient is non-zero exactly on the pixels it sees.

    By hand, per axis: conv 1 unit i sees pixels 2i-1 .. 2i+1; conv 2 unit j sees conv-1 units 2j-1 .. 2j+1,
    so pixels 4j-3 .. 4j+3: RF 7, stride 4, centre 4j. A 16 px input gives a 4-unit grid."""
    net = nn.Sequential(nn.Conv2d(3, 2, 3, 2, 1, bias=False), nn.Conv2d(2, 2, 3, 2, 1, bias=False))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
    return net


def hand_window(unit):
    return tuple((4 * j - 3, 4 * j + 3) for j in unit)


CORNERS = [(0, 0), (0, 3), (2, 2), (3, 0), (3, 3)]


@pytest.fixture(scope="module")
def measured():
    x = 0.5 + torch.rand((1, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(0))
    return unit_grid(two_convs(), "1", image=x, input_size=SIZE, device="cpu")


def test_grid_units_corners_and_lattice():
    assert grid_units((4, 4)) == CORNERS
    assert grid_units((4, 6), 2) == [(0, 0), (0, 5), (3, 0), (3, 5)]
    assert grid_units((9, 9), 3) == [(a, b) for a in (0, 4, 8) for b in (0, 4, 8)]
    assert grid_units((5, 5), 1) == [(2, 2)]
    assert grid_units((2, 2), 5) == [(0, 0), (0, 1), (1, 0), (1, 1)]  # a lattice finer than the grid


def test_windows_and_centres_are_the_hand_computed_ones(measured):
    assert measured.units == tuple(CORNERS) and measured.grid == (4, 4)
    assert measured.size == (7, 7) and measured.stride == (4, 4)
    assert measured.windows == tuple(hand_window(u) for u in CORNERS)
    assert measured.centers == tuple((4.0 * a, 4.0 * b) for a, b in CORNERS)


def test_drawn_boxes_are_the_hand_windows(measured):
    fig = rf_grid_figure(measured)
    patches = {p.get_gid(): p for p in fig.axes[0].patches}
    for i, unit in enumerate(CORNERS):
        (y0, y1), (x0, x1) = hand_window(unit)
        box = patches[f"rf-box-{i}"]
        assert box.get_xy() == (x0 - 0.5, y0 - 0.5) and (box.get_width(), box.get_height()) == (7, 7)
        outside = y0 < 0 or x0 < 0 or y1 > SIZE - 1 or x1 > SIZE - 1
        assert box.get_linestyle() == ("--" if outside else "-")
        inside = patches.get(f"rf-box-in-{i}")
        assert (inside is not None) == outside
        if outside:  # its part inside the input, solid
            cy0, cx0, cy1, cx1 = max(y0, 0), max(x0, 0), min(y1, SIZE - 1), min(x1, SIZE - 1)
            assert inside.get_xy() == (cx0 - 0.5, cy0 - 0.5)
            assert (inside.get_width(), inside.get_height()) == (cx1 - cx0 + 1, cy1 - cy0 + 1)
    # unit (0, 0) reaches 3 px above and left of the input: the axes grow to it, the rest is hatched
    x_lo, x_hi = fig.axes[0].get_xlim()
    assert x_lo < -3.5 and x_hi == SIZE - 0.5
    assert patches["outside-input"].get_hatch() == "////"
    centres = next(c for c in fig.axes[0].collections if c.get_gid() == "rf-centres")
    assert centres.get_offsets().tolist() == [[4.0 * b, 4.0 * a] for a, b in CORNERS]  # (x, y)
    erf = next(im for im in fig.axes[0].images if im.get_gid() == "erf-map").get_array()
    seen = np.zeros((SIZE, SIZE), bool)
    for window in measured.windows:
        (y0, y1), (x0, x1) = [(max(lo, 0), min(hi, SIZE - 1)) for lo, hi in window]
        seen[y0 : y1 + 1, x0 : x1 + 1] = True
    assert (~np.ma.getmaskarray(erf) == seen).all()  # the ERFs shown where some unit sees, transparent elsewhere
    labels = [t.get_text() for legend in fig.findobj(Legend) for t in legend.get_texts()]
    assert "unit (0, 0): RF rows -3…3, cols -3…3" in labels and "outside the input" in labels


def test_each_units_erf_support_is_its_clipped_window(measured):
    for unit, window, m in zip(measured.units, measured.windows, measured.maps):
        rows, cols = np.nonzero(m > 0)
        want = [(max(lo, 0), min(hi, SIZE - 1)) for lo, hi in window]
        assert (rows.min(), rows.max()) == want[0], unit
        assert (cols.min(), cols.max()) == want[1], unit
        assert (m > 0).sum() == (want[0][1] - want[0][0] + 1) * (want[1][1] - want[1][0] + 1)  # every pixel in it


def test_saved_in_paper_style(measured, tmp_path):
    written = save_rf_grid(measured, tmp_path / "paper.pdf", style="paper")
    assert sorted(p.suffix for p in written) == [".pdf", ".png", ".svg"]
    assert (tmp_path / "paper.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_analytic_only_draws_no_erf():
    grid = unit_grid(two_convs(), "1", image="noise", units=2, input_size=SIZE, measure=False)
    assert grid.maps is None and grid.units == ((0, 0), (0, 3), (3, 0), (3, 3))
    fig = rf_grid_figure(grid)
    assert not [im for im in fig.axes[0].images if im.get_gid() == "erf-map"]


@pytest.mark.parametrize("units", ["many", 0, 17, "3.5", True])
def test_bad_units_are_one_line(units):
    with pytest.raises(ArgumentError, match="units must be 'corners' or a lattice side"):
        unit_grid(two_convs(), "1", units=units, input_size=SIZE, measure=False)


def test_layer_without_a_grid_is_refused():
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(LayerError):
        unit_grid(net, "2", input_size=SIZE, measure=False)


NET = (
    "import torch.nn as nn\n\n"
    "def net():\n"
    "    return nn.Sequential(nn.Conv2d(3, 2, 3, 2, 1), nn.Conv2d(2, 2, 3, 2, 1))\n"
)


def run_cli(capsys, *args) -> tuple[int, str, str]:
    from rfkit_cli.app import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_cli_writes_the_figure(capsys, tmp_path):
    (tmp_path / "net.py").write_text(NET)
    out = tmp_path / "grid.png"
    args = ("rf-grid", f"{tmp_path / 'net.py'}:net", "--trust", "-l", "1", "--input-size", SIZE, "--no-erf", "-o", out)
    code, stdout, _ = run_cli(capsys, *args, "--units", "2")
    assert code in (0, None) and out.read_bytes()[:4] == b"\x89PNG"
    assert "4 unit(s) of 1" in stdout
    md, tex = (tmp_path / "grid.caption.md").read_text(), (tmp_path / "grid.caption.tex").read_text()
    assert "grid.caption.md" in stdout and "grid.caption.tex" in stdout  # the wrote line names them
    # by hand (two_convs' rule, 16 px input): layer 1 has a 4x4 grid, RF 7 px, stride 4
    assert "4 units of layer 1" in md and "a 4×4 grid of units; RF 7×7 px, stride 4×4 px" in md
    assert "ERF" not in md.split("Model")[0]  # --no-erf: no measured map to describe
    assert "\\caption{" in tex and "4$\\times$4 grid" in tex


@pytest.mark.parametrize(
    ("extra", "names"),
    [(["--units", "lots"], ["units", "corners"]), (["--style", "poster"], ["poster"]), (["-l", "nope"], ["nope"])],
)
def test_cli_bad_input_is_one_line(capsys, tmp_path, extra, names):
    (tmp_path / "net.py").write_text(NET)
    args = ["rf-grid", f"{tmp_path / 'net.py'}:net", "--trust", "-l", "1", "--input-size", SIZE]
    args += ["-o", tmp_path / "g.png"]
    code, stdout, stderr = run_cli(capsys, *args, *extra)
    errors = [line for line in (stdout + stderr).splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "Traceback" not in stderr, stdout + stderr
    assert all(n in errors[0] for n in names), errors


def test_cli_leaves_a_foreign_file_alone(capsys, tmp_path):
    (tmp_path / "net.py").write_text(NET)
    theirs = tmp_path / "figure.png"
    theirs.write_bytes(b"someone's figure")
    code, stdout, stderr = run_cli(capsys, "rf-grid", f"{tmp_path / 'net.py'}:net", "--trust", "-l", "1", "-o", theirs)
    assert code == 1 and "rfkit did not write it" in stdout + stderr
    assert theirs.read_bytes() == b"someone's figure"
