"""`rfkit analyze --attribution`: per-image contribution maps in the model's report folder, in report.md and in
the site; the saliency maps checked against input gradients computed here by hand."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

from rfkit.analysis.analyze import analyze
from rfkit.analysis.options import Output, ReportAttribution
from rfkit.effective.options import ERFOptions
from rfkit.pipeline.options import Images
from rfkit.report.site import build_site
from rfkit_cli.app import main


def classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
    )


def by_hand(net: nn.Module, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and d logit / d input summed over RGB, image by image."""
    x = torch.from_numpy(images).requires_grad_(True)
    logits = net(x)
    chosen = logits.argmax(1)
    (grad,) = torch.autograd.grad(logits.gather(1, chosen[:, None]).sum(), x)
    return chosen.numpy(), grad.sum(1).numpy()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    net = classifier()
    methods = "saliency,gradcam,hirescam,guided_gradcam"  # the registry's methods, old and new
    rep = analyze(
        net,
        layers="2",
        images=Images("noise", 2, input_size=16),
        attribution=ReportAttribution(methods, num_images=2),
        out=tmp_path_factory.mktemp("out"),
        runtime="cpu",
    )
    return net, rep


def test_the_maps_are_the_input_gradients_of_the_predicted_class(report):
    net, rep = report
    a = rep.attribution
    saliency = np.load(rep.folder / "attribution" / "maps" / "saliency.npy")
    assert saliency.shape == (2, 16, 16)
    chosen, grads = by_hand(net.eval(), a.images)
    assert [t.index for t in a.targets] == chosen.tolist()
    np.testing.assert_allclose(saliency, grads, rtol=1e-4, atol=1e-7)
    assert np.load(rep.folder / "attribution" / "maps" / "gradcam.npy").min() >= 0  # a CAM map is ReLU'd


def test_report_md_has_the_section_and_run_json_lists_the_files(report):
    _, rep = report
    text = (rep.folder / "report.md").read_text()
    section = text[text.index("## Per-image contribution maps") : text.index("## Files")]
    assert "![Per-image contribution maps](attribution/figures/grid.png)" in section
    assert "[attribution/report.md](attribution/report.md)" in section and "| Grad-CAM (`gradcam`) |" in section
    assert "| HiResCAM (`hirescam`) |" in section and "| Guided Grad-CAM (`guided_gradcam`) |" in section
    listed = json.loads((rep.folder / "run.json").read_text())["files"]
    for f in ("attribution/report.md", "attribution/figures/grid.png", "attribution/maps/saliency.npy"):
        assert f in listed and (rep.folder / f).is_file()


def test_the_site_carries_the_maps_and_builds_strict(report, tmp_path):
    _, rep = report
    copy = tmp_path / "reports" / rep.folder.name
    shutil.copytree(rep.folder, copy)
    site = build_site([tmp_path / "reports"], tmp_path / "site")
    page = site / "docs" / "models" / rep.folder.name
    assert (page / "attribution" / "figures" / "grid.png").is_file()
    assert not (page / "attribution" / "report.md").exists()  # a report's own Markdown is never copied
    text = (page / "index.md").read_text()
    assert "## Per-image contribution maps" in text and "(attribution/figures/grid.png)" in text
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=site, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (site / "site" / "models" / rep.folder.name / "attribution" / "figures" / "grid.png").is_file()


def test_the_site_does_not_follow_a_linked_attribution_folder(report, tmp_path):
    _, rep = report
    copy = tmp_path / "reports" / rep.folder.name
    shutil.copytree(rep.folder, copy)
    secret = tmp_path / "secret"
    (secret / "figures").mkdir(parents=True)
    (secret / "figures" / "grid.png").write_bytes(b"not rfkit's")
    shutil.rmtree(copy / "attribution" / "figures")
    os.symlink(secret / "figures", copy / "attribution" / "figures")
    site = build_site([tmp_path / "reports"], tmp_path / "site")
    assert not (site / "docs" / "models" / rep.folder.name / "attribution" / "figures" / "grid.png").exists()
    assert (site / "docs" / "models" / rep.folder.name / "attribution" / "maps" / "saliency.npy").is_file()


def test_an_unknown_method_is_one_line_before_any_measurement(tmp_path, capsys, monkeypatch):
    import rfkit.effective.engine as engine

    monkeypatch.setattr(engine, "erf", lambda *a, **k: pytest.fail("measured before checking the methods"))
    with pytest.raises(SystemExit) as e:
        main(["analyze", "test_resnet", "--attribution", "saliency,gradcma", "-o", str(tmp_path), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 1 and len(err) == 1 and "gradcma" in err[0] and "gradcam" in err[0], err
    assert not any(tmp_path.iterdir())


def test_the_paper_style_reaches_the_attribution_grid(tmp_path):
    from rfkit.report.figures.looks import FigureOptions

    rep = analyze(
        classifier(),
        layers="2",
        images=Images("noise", 2, input_size=16),
        attribution=ReportAttribution("saliency", num_images=1),
        out=Output(tmp_path, figures=FigureOptions("paper")),
        runtime="cpu",
    )
    listed = json.loads((rep.folder / "run.json").read_text())["files"]
    for ext in ("png", "pdf", "svg"):
        assert (
            f"attribution/figures/grid.{ext}" in listed
            and (rep.folder / "attribution/figures" / f"grid.{ext}").is_file()
        )
    assert json.loads((rep.folder / "attribution" / "attribution.json").read_text())["figure"]["style"] == "paper"


def test_normalise_column_puts_each_method_on_one_scale_over_its_images(tmp_path):
    from rfkit.report.figures.looks import FigureOptions

    options = FigureOptions(attribution_normalise="column")
    rep = analyze(
        classifier(),
        layers="2",
        images=Images("noise", 2, input_size=16),
        options=ERFOptions(bootstrap=0),
        attribution=ReportAttribution("saliency", num_images=2),
        out=Output(tmp_path, figures=options),
        runtime="cpu",
    )
    figure = json.loads((rep.folder / "attribution" / "attribution.json").read_text())["figure"]
    saliency = np.abs(np.load(rep.folder / "attribution" / "maps" / "saliency.npy"))
    by_hand = float(np.percentile(saliency, 99.0))  # over both images: one scale for the column
    own = [float(np.percentile(m, 99.0)) for m in saliency]
    assert own[0] != pytest.approx(own[1], rel=1e-3)  # the two images differ, so the check can fail
    assert figure["normalise"] == "column"
    assert np.asarray(figure["scales"]).ravel().tolist() == pytest.approx([by_hand, by_hand], rel=1e-5)
    assert "one scale per method" in json.loads((rep.folder / "run.json").read_text())["figures"]


def test_analyze_normalise_reaches_the_figure_options(monkeypatch):
    import rfkit.analysis.batch as batch

    seen = {}
    monkeypatch.setattr(batch, "analyze_many", lambda names, **kw: seen.update(kw))
    for args, expected in ((["--normalise", "column"], "column"), ([], "image")):  # default: rfkit attribute's
        with pytest.raises(SystemExit) as e:
            main(["analyze", "test_resnet", "--attribution", "saliency", *args, "-q"])
        assert e.value.code in (0, None) and seen["out"].figures.attribution_normalise == expected


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--attribution", "saliency", "--normalise", "row"], ("'row'", "image", "column")),
        (["--normalise", "column"], ("--normalise", "--attribution")),
    ],
)
def test_analyze_normalise_errors_are_one_line_before_any_measurement(args, words, tmp_path, capsys, monkeypatch):
    import rfkit.analysis.batch as batch

    monkeypatch.setattr(batch, "analyze_many", lambda *a, **k: pytest.fail("ran before checking --normalise"))
    with pytest.raises(SystemExit) as e:
        main(["analyze", "test_resnet", *args, "-o", str(tmp_path), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 1 and len(err) == 1 and all(w in err[0] for w in words), err
