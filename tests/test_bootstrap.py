"""How many images are enough: the group sums an ERF run keeps, the bootstrap confidence intervals of its
metrics, the per-pixel standard error, ``until_stable``, and what the files and the report show of them."""

from __future__ import annotations

import csv
import inspect
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from typer.testing import CliRunner

import rfkit
from rfkit.effective.bootstrap import RESAMPLES, bootstrap_cis, resample_counts
from rfkit.effective.groups import GroupSums, group_capacity
from rfkit_cli.app import app


def _deep_net() -> nn.Module:
    """Five 3×3 convolutions with ReLUs: on noise the map's shape changes from image to image."""
    torch.manual_seed(1)
    layers, c = [], 3
    for _ in range(5):
        layers += [nn.Conv2d(c, 8, 3, padding=1), nn.ReLU()]
        c = 8
    return nn.Sequential(*layers)


def _switch_net() -> nn.Module:
    """A bright image (1) opens a 7×7 path to the unit besides its heavy centre pixel, a dark one (0) only the
    centre: with about half the images bright, the 6 outer rows hold about 5% of the mean map's mass (42 p of
    49 p + 400 for a fraction p of bright images), so the ERF is 1 or 3 px tall by the draw of images and
    its interval never narrows."""
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.Conv2d(2, 1, 7, padding=3, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.copy_(torch.tensor([-1.5, 10.0]))  # channel 0 open on bright images only, 1 always
        net[2].weight.zero_()
        net[2].weight[0, 0] = 1.0  # the whole 7×7 window
        net[2].weight[0, 1, 3, 3] = 400.0  # the centre only
    return net


# ------------------------------------------------------------------------------------------- group sums


def test_groups_merge_pairwise_and_do_not_depend_on_the_process():
    rng = np.random.default_rng(0)
    maps = rng.random((21, 3, 4))
    one = GroupSums(["a"], (3, 4), capacity=4, expected=21)
    for start in range(0, 21, 5):  # batches of 5
        one.add({"a": maps[start : start + 5]}, np.arange(start, min(start + 5, 21)))
    # 21 images, at most 4 groups: 8 images per group, the last holding 5
    assert one.size == 8 and one.counts.tolist() == [8, 8, 5, 0]
    np.testing.assert_allclose(one.sums["a"][1], maps[8:16].sum(axis=0))
    np.testing.assert_allclose(one.squares["a"], (maps**2).sum(axis=0))
    # two "ranks": image i on rank i % 2, summed after aligning the group size, as GroupSums.reduce does
    ranks = [GroupSums(["a"], (3, 4), capacity=4, expected=21) for _ in range(2)]
    for r, g in enumerate(ranks):
        mine = np.arange(r, 21, 2)
        for start in range(0, mine.size, 3):
            g.add({"a": maps[mine[start : start + 3]]}, mine[start : start + 3])
    size = max(g.size for g in ranks)
    for g in ranks:
        g.grow_to(size)
    np.testing.assert_allclose(ranks[0].sums["a"] + ranks[1].sums["a"], one.sums["a"])
    assert (ranks[0].counts + ranks[1].counts).tolist() == one.counts.tolist()


def test_group_memory_is_bounded():
    cap = group_capacity((224, 224), 4)
    assert cap % 2 == 0 and cap * 224 * 224 * 8 * 4 <= 256 * 2**20
    g = GroupSums(["a", "b"], (8, 8), capacity=cap, expected=50_000)
    assert g.sums["a"].shape == (cap, 8, 8)  # not 50,000 maps
    assert group_capacity((1024, 1024), 4) == 16  # at least 16 groups, even for huge maps


def test_sem_is_the_standard_error_of_the_per_image_maps():
    rng = np.random.default_rng(3)
    maps = rng.gamma(2.0, size=(9, 5, 6))
    g = GroupSums(["a"], (5, 6), capacity=4, expected=9)
    g.add({"a": maps}, np.arange(9))
    np.testing.assert_allclose(g.sem("a"), maps.std(axis=0, ddof=1) / np.sqrt(9), rtol=1e-9)


# ------------------------------------------------------------------------------------------- intervals


def _point_masses(values, shape=(9, 9)) -> GroupSums:
    """One group per image, image i a single pixel of value ``values[i]`` at the centre."""
    maps = np.zeros((len(values), *shape))
    maps[:, shape[0] // 2, shape[1] // 2] = values
    g = GroupSums(["a"], shape, capacity=64, expected=len(values))
    g.add({"a": maps}, np.arange(len(values)))
    return g


def test_total_mass_interval_is_the_percentile_bootstrap_of_the_mean():
    values = np.array([1.0, 2.0, 2.5, 4.0, 7.0, 0.5, 3.0, 9.0, 1.5, 2.0, 6.0, 0.2])
    g = _point_masses(values)
    ci = bootstrap_cis(g, {"a": (4, 4)}, {"a": (5, 5)}, resamples=2000, seed=7)["a"]
    # by hand: the same draws, the mean of the drawn values, its 2.5th and 97.5th percentiles
    w = resample_counts(len(values), 2000, seed=7)
    by_hand = np.percentile(w @ values / len(values), [2.5, 97.5])
    np.testing.assert_allclose(ci["total_mass"], by_hand, rtol=1e-12)
    # and the same as scipy's percentile bootstrap of the mean, up to the Monte-Carlo error of other draws
    scipy_stats = pytest.importorskip("scipy.stats")
    ref = scipy_stats.bootstrap((values,), np.mean, n_resamples=2000, method="percentile", random_state=1)
    low, high = ref.confidence_interval
    spread = values.std() / np.sqrt(len(values))
    assert abs(ci["total_mass"][0] - low) < 0.25 * spread and abs(ci["total_mass"][1] - high) < 0.25 * spread
    # a point mass at the centre: the ERF is one pixel in every resample
    assert ci["erf_side_h"] == (1.0, 1.0) and ci["r50"] == (0.0, 0.0)
    assert "height" not in ci and "gauss_sigma_y" not in ci and "n_warnings" not in ci


def test_intervals_shrink_with_more_images_and_hold_the_value():
    net = _deep_net()
    kwargs = dict(layers=["8"], images="noise", input_size=24, device="cpu", batch_size=16)
    few = rfkit.erf(net, num_images=8, **kwargs)
    many = rfkit.erf(net, num_images=32, **kwargs)
    for column in ("total_mass", "centroid_dy", "centroid_dx"):
        (lo8, hi8), (lo32, hi32) = few.ci["8"][column], many.ci["8"][column]
        assert hi32 - lo32 < hi8 - lo8, column
    for res in (few, many):
        row = res.metrics["8"].as_dict()
        for column in ("total_mass", "erf_rf_ratio_h", "erf_rf_ratio_w", "r50"):
            low, high = res.ci["8"][column]
            assert low <= row[column] <= high, column
    assert few.bootstrap == {"resamples": RESAMPLES, "groups": 8, "sources_per_group": 1, "seed": 0}
    assert few.sem["8"].shape == (24, 24) and few.sem["8"].max() > 0
    curve = many.convergence["8"]  # the ERF size in pixels, the interval from 8 independent images on
    assert curve.images[0] == 2 and curve.images[-1] == 32 and curve.rf == (11.0, 11.0)
    assert curve.value[-1] == pytest.approx(many.metrics["8"].erf_rf.side)
    assert np.isnan(curve.low[0]).all() and np.isfinite(curve.low[-1]).all()


def test_intervals_are_seeded():
    net = _deep_net()
    kwargs = dict(layers=["8"], images="noise", num_images=8, input_size=24, device="cpu")
    a, b = rfkit.erf(net, **kwargs), rfkit.erf(net, **kwargs)
    assert a.ci == b.ci
    c = bootstrap_cis(_point_masses(np.arange(1.0, 9.0)), {"a": (4, 4)}, {"a": (5, 5)}, seed=1)
    assert c["a"]["total_mass"][0] < c["a"]["total_mass"][1]
    d = bootstrap_cis(_point_masses(np.arange(1.0, 9.0)), {"a": (4, 4)}, {"a": (5, 5)}, seed=2)
    assert c["a"]["total_mass"] != d["a"]["total_mass"]


def test_bootstrap_zero_turns_the_intervals_off():
    res = rfkit.erf(_deep_net(), layers=["8"], images="noise", num_images=4, input_size=24, device="cpu", bootstrap=0)
    assert res.ci == {} and res.convergence == {} and res.bootstrap["resamples"] == 0
    assert res.sem["8"].max() > 0  # the standard error costs nothing: always there
    from rfkit.effective.engine import erf
    from rfkit_cli.analyze_cmd import analyze_command
    from rfkit_cli.erf_cmd import erf_command

    for command in (erf, erf_command, analyze_command):  # one default everywhere
        assert inspect.signature(command).parameters["bootstrap"].default == RESAMPLES


@pytest.mark.parametrize(("kwargs", "match"), [({"bootstrap": -1}, "bootstrap"), ({"until_stable": 0}, "until_stable")])
def test_bad_options_are_one_line(kwargs, match):
    with pytest.raises(rfkit.RFKitError, match=match) as e:
        rfkit.erf(_deep_net(), layers=["8"], images="noise", num_images=2, input_size=24, device="cpu", **kwargs)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------- until_stable


def test_until_stable_stops_at_the_minimum_on_identical_images():
    image = torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    res = rfkit.erf(
        _deep_net(), layers=["4", "8"], images=image.repeat(32, 1, 1, 1), num_images=32, input_size=24,
        device="cpu", batch_size=4, until_stable=0.01,
    )  # fmt: skip
    assert res.num_images == 8  # zero-width intervals, but never fewer than 8 images
    assert "stopped after 8 of 32 images" in res.stopped
    assert not any("asked for" in w for w in res.warnings)  # the rule stopped the stream, not a short source


def test_until_stable_runs_to_n_on_a_hard_case():
    bright = torch.tensor([1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1], dtype=torch.float32)
    images = bright.view(-1, 1, 1, 1) * torch.ones(16, 3, 15, 15)
    with pytest.warns(UserWarning, match="not stable after all 16 images"):
        res = rfkit.erf(
            _switch_net(), layers=["2"], images=images, num_images=16, input_size=15, device="cpu", batch_size=4,
            until_stable=0.01,
        )  # fmt: skip
    assert res.num_images == 16 and "not stable" in res.stopped
    low, high = res.ci["2"]["erf_rf_ratio_h"]
    assert high - low > 0.2  # 1 px or 7 px wide, by the draw of bright and dark images


# ------------------------------------------------------------------------------------------- files, report


def test_cli_writes_intervals_standard_errors_and_the_figure(tmp_path):
    (tmp_path / "net.py").write_text(
        "import torch\nimport torch.nn as nn\n\n\ndef build():\n    torch.manual_seed(1)\n    layers, c = [], 3\n"
        "    for _ in range(5):\n        layers += [nn.Conv2d(c, 8, 3, padding=1), nn.ReLU()]\n        c = 8\n"
        "    return nn.Sequential(*layers)\n"
    )
    out = tmp_path / "out"
    args = [
        "erf",
        f"{tmp_path / 'net.py'}:build",
        "--trust",
        "-l",
        "8",
        "--images",
        "noise",
        "-n",
        "8",
        "--input-size",
        "24",
    ]
    run = CliRunner().invoke(app, [*args, "--device", "cpu", "-o", str(out), "-q"])
    assert run.exit_code == 0, run.output
    row = next(csv.DictReader((out / "erf.csv").open()))
    assert float(row["erf_rf_ratio_h_ci_low"]) <= float(row["erf_rf_ratio_h"]) <= float(row["erf_rf_ratio_h_ci_high"])
    layer = json.loads((out / "metrics.json").read_text())
    assert layer["run"]["bootstrap"]["resamples"] == RESAMPLES and "after all 8 images" in layer["run"]["stopped"]
    assert layer["layers"]["8"]["total_mass_ci_low"] < layer["layers"]["8"]["total_mass_ci_high"]
    assert np.load(out / "maps" / "8.sem.npy").shape == (24, 24)
    assert (out / "figures" / "convergence.png").stat().st_size > 0
    # rerun without intervals: no CI columns, and the figure of the earlier run (rfkit's own) is gone
    run = CliRunner().invoke(app, [*args, "--device", "cpu", "-o", str(out), "-q", "--bootstrap", "0"])
    assert run.exit_code == 0, run.output
    assert not any(k.endswith("_ci_low") for k in next(csv.DictReader((out / "erf.csv").open())))
    assert not (out / "figures" / "convergence.png").exists()


def test_cli_refuses_a_zero_tolerance_in_one_line(capsys):
    from rfkit_cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(["erf", "resnet18", "--images", "noise", "-n", "2", "--device", "cpu", "--until-stable", "0"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "until_stable must be a number > 0" in err[-1]


def test_report_shows_intervals_and_links_the_figure(tmp_path):
    from rfkit.analysis.analyze import analyze

    rep = analyze(_deep_net(), layers=["4", "8"], images="noise", num_images=8, input_size=24, device="cpu",
                  out=tmp_path)  # fmt: skip
    text = (rep.folder / "report.md").read_text()
    assert "### How many images are enough" in text
    low, high = rep.result.ci["8"]["r50"]
    assert "| `8` |" in text and f"[{low:.1f}, {high:.1f}]" in text
    assert "![ERF size in pixels against images seen, with 95% bands](figures/convergence.png)" in text
    assert (rep.folder / "figures" / "convergence.png").is_file()
    assert (rep.folder / "maps" / "8.sem.npy").is_file()
    assert inspect.signature(analyze).parameters["bootstrap"].default == RESAMPLES
