"""The option objects (issue 22 item 2): the public functions are short and keyword-only, the objects carry
every option to where it acts, plain values stand for the common cases, and the maps are those computed by hand.
Also the result types (item 5): every one is a ``*Result`` with a per-layer record and ``to_frame()``."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
import torch
import torch.nn as nn

import rfkit
from rfkit.analysis.batch import analyze_many
from rfkit.errors import ArgumentError
from rfkit.report.figures.looks import FigureOptions
from rfkit_cli.options import erf_options, figure_options, image_options, runtime_options


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1))


def classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )


# ------------------------------------------------------------------------------------------ signatures
@pytest.mark.parametrize("name", ["erf", "attribute", "analyze", "prepare", "collect", "verify", "trace"])
def test_public_functions_are_short_and_keyword_only_after_the_model(name):
    params = list(inspect.signature(getattr(rfkit, name)).parameters.values())
    assert len(params) <= 12, f"rfkit.{name} takes {len(params)} parameters"
    if name in ("erf", "attribute", "analyze"):
        assert params[0].name == "model" and params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:]), name


def test_the_old_wide_calls_are_refused_in_one_line():
    with pytest.raises(TypeError, match="positional argument"):
        rfkit.erf(net(), ["2"])
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_images'"):
        rfkit.erf(net(), num_images=2)


# ------------------------------------------------------------------------------------------ the objects
def test_plain_values_stand_for_the_common_cases():
    assert rfkit.Images.of("photos/") == rfkit.Images("photos/")
    assert rfkit.Images.of(8) == rfkit.Images("sample", 8)
    assert rfkit.Runtime.of("cpu") == rfkit.Runtime(device="cpu")
    assert rfkit.Runtime.of(torch.device("cpu")).device == torch.device("cpu")
    assert rfkit.Runtime.of(None) == rfkit.Runtime()
    assert rfkit.Output.of("reports").folder == "reports"
    assert rfkit.ReportAttribution.of(["ig", "saliency"]) == rfkit.ReportAttribution(["ig", "saliency"], 4)
    assert rfkit.ReportAttribution.of(None) is None and rfkit.ERFOptions.of(None) == rfkit.ERFOptions()
    assert rfkit.Images(num_images=None).count(32) == 32 and rfkit.Images(num_images=5).count(32) == 5


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: rfkit.Images.of(True), "images=True"),
        (lambda: rfkit.Images.of(None), "images=None"),
        (lambda: rfkit.Runtime.of(3), "runtime=3: give a device"),
        (lambda: rfkit.Output.of(3), "out=3: give a folder"),
        (lambda: rfkit.ReportAttribution.of(3), "attribution=3"),
        (lambda: rfkit.ERFOptions.of({"bootstrap": 0}), "options=.*rfkit.ERFOptions"),
        (lambda: rfkit.AttributionOptions.of("ig"), "options='ig'"),
        (lambda: rfkit.Checks.of(True), "checks=True"),
        (lambda: rfkit.Runtime().replace(sede=1), "Runtime has no field 'sede'; its fields: device, batch_size"),
    ],
)
def test_a_wrong_option_object_is_one_line(make, match):
    with pytest.raises(ArgumentError, match=match) as e:
        make()
    assert "\n" not in str(e.value)


def test_option_objects_are_frozen_and_replace_one_field():
    images = rfkit.Images("noise", 4, input_size=16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        images.num_images = 8
    assert images.replace(num_images=8) == rfkit.Images("noise", 8, input_size=16) and images.num_images == 4
    assert rfkit.Runtime("cpu").replace(seed=3).seed == 3


def test_the_cli_builds_the_same_objects():
    assert image_options("noise", 4, "32 16") == rfkit.Images("noise", 4, input_size=(32, 16))
    assert runtime_options("cpu", 2, 1, 0, 5, False, False) == rfkit.Runtime("cpu", 2, 1, 0, 5)
    assert erf_options(0, 0.1) == rfkit.ERFOptions(bootstrap=0, until_stable=0.1)
    assert figure_options("paper", "replknet") == FigureOptions(style="paper", look="replknet")


# ------------------------------------------------------------------------------------------ the maps
def _hand_erf(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """DESIGN.md's ERF by hand: relu of the centre unit's channels summed, its input gradient ReLU'd, summed over
    RGB, averaged over the images."""
    x = x.clone().requires_grad_(True)
    y = model(x)
    h, w = y.shape[-2:]
    torch.relu(y[:, :, h // 2, w // 2]).sum().backward()
    return torch.relu(x.grad).sum(dim=1).mean(dim=0).double().numpy()


def test_images_and_runtime_reach_the_measurement():
    """The seed of Runtime picks the noise images (the same as prepare().images with that seed), the number and
    size of Images are used, and the map is the one computed by hand on those images."""
    model = net()
    images = rfkit.Images("noise", 3, input_size=(16, 12))
    res = rfkit.erf(model, layers=["2"], images=images, runtime=rfkit.Runtime("cpu", batch_size=2, seed=7))
    x = torch.cat(list(rfkit.prepare(model, input_size=(16, 12)).images("noise", 3, 3, seed=7)))
    assert res.num_images == 3 and res.maps["2"].shape == (16, 12)
    np.testing.assert_allclose(res.maps["2"], _hand_erf(model, x), rtol=1e-5, atol=1e-7)
    other = rfkit.erf(model, layers=["2"], images=images, runtime=rfkit.Runtime("cpu", seed=8))
    assert not np.allclose(other.maps["2"], res.maps["2"])  # another seed, other noise


def test_erf_options_reach_the_result():
    model = net()
    with torch.no_grad():  # positive weights: the centre unit fires on every image, the maps are not zero
        for p in model.parameters():
            p.abs_()
    images = rfkit.Images("noise", 2, input_size=16)
    plain = rfkit.erf(model, layers=["2"], images=images, runtime="cpu", options=rfkit.ERFOptions(metrics=False))
    assert plain.metrics == {} and plain.ci == {}
    uncropped = rfkit.erf(model, layers=["2"], images=images, runtime="cpu", options=rfkit.ERFOptions(crop=False))
    assert uncropped.crops == {} and uncropped.bootstrap["resamples"] == 0  # two images: no interval
    assert plain.maps["2"].max() > 0 and plain.crops  # the default crops the 7x7 window, exactly
    np.testing.assert_allclose(uncropped.maps["2"], plain.maps["2"], rtol=1e-6)


def test_an_int_is_that_many_sample_photographs_and_threads_are_restored():
    before = torch.get_num_threads()
    res = rfkit.erf(net(), layers=["2"], images=2, runtime=rfkit.Runtime("cpu", threads=1))
    assert res.num_images == 2 and res.images.source.startswith("sample")
    assert torch.get_num_threads() == before


def test_attribution_options_and_checks_reach_the_maps():
    model = classifier()
    images = rfkit.Images("noise", 2, input_size=8)
    res = rfkit.attribute(
        model,
        images=images,
        methods="saliency,ig,occlusion",
        target=1,
        options=rfkit.AttributionOptions(steps=8, method_options={"occlusion.window": 4}),
        checks=rfkit.Checks(faithfulness=True, faithfulness_steps=4),
        runtime=rfkit.Runtime("cpu", seed=3),
    )
    assert res.settings.steps == 8 and not res.settings.auto_steps and set(res.steps["ig"]) == {8}
    assert res.settings.options["occlusion"]["window"] == 4
    assert set(res.faithfulness) == {"saliency", "ig", "occlusion"} and res.faithfulness["ig"].shape == (2, 2)
    x = torch.from_numpy(res.images).clone().requires_grad_(True)
    model(x)[:, 1].sum().backward()  # saliency of class 1: the signed input gradient summed over RGB
    np.testing.assert_allclose(res.maps["saliency"], x.grad.sum(dim=1).numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("flag", ["channels_last", "autocast"])
def test_attribute_refuses_what_only_the_erf_does(flag):
    with pytest.raises(ArgumentError, match=f"Runtime\\({flag}=True\\) is for rfkit.erf"):
        rfkit.attribute(
            classifier(), images=rfkit.Images("noise", 1, input_size=8), runtime=rfkit.Runtime(**{flag: True})
        )


def test_analyze_takes_output_and_report_attribution(tmp_path):
    out = rfkit.Output(tmp_path, FigureOptions(style="paper"), depth=1)
    rep = rfkit.analyze(
        classifier(),
        layers=["1"],
        images=rfkit.Images("noise", 2, input_size=16),
        attribution=rfkit.ReportAttribution("saliency", num_images=1),
        options=rfkit.ERFOptions(bootstrap=0),
        out=out,
        runtime="cpu",
    )
    assert rep.folder.parent == tmp_path and rep.result.num_images == 2 and rep.attribution.num_images == 1
    assert list((rep.folder / "figures").glob("*.pdf")), "the paper style writes PDFs"
    with pytest.raises(ArgumentError, match="leave ERFOptions.metrics True"):
        rfkit.analyze(classifier(), options=rfkit.ERFOptions(metrics=False), out=tmp_path)


def test_analyze_many_refuses_a_keyword_analyze_does_not_take(tmp_path):
    with pytest.raises(ArgumentError, match="takes no keyword 'num_images'"):
        analyze_many(["resnet18"], out=tmp_path, num_images=2)


# ------------------------------------------------------------------------------------------ results
def test_every_result_type_is_named_result_and_has_a_frame():
    from rfkit.graph.productivity import ProductivityResult
    from rfkit.verification.estimate import EstimateResult

    results = [getattr(rfkit, n) for n in rfkit.__all__ if n.endswith("Result")] + [ProductivityResult, EstimateResult]
    assert len(results) == 6
    assert all(callable(getattr(r, "to_frame", None)) for r in results)
    assert callable(rfkit.RFGraph.to_frame)
