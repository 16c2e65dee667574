"""`rfkit.verify` and `rfkit verify`: agreement on real models, and a wrong rule is caught."""

from __future__ import annotations

import pytest
import torch.nn as nn
from typer.testing import CliRunner

import rfkit
from rfkit.graph.handlers import neutral
from rfkit.graph.registry import DEFAULT_REGISTRY
from rfkit_cli.app import app, normalise_argv


@pytest.mark.parametrize(
    "model, size",
    [
        ("test_resnet", 64),
        ("test_convnext", 64),
        ("test_efficientnet", 64),
        ("test_vit", None),
        ("torchvision:vgg11", 64),
        ("torchvision:mobilenet_v3_small", 64),
    ],
)
def test_verify_passes_on_real_models(model, size):
    report = rfkit.verify(model, input_size=size)
    assert report.ok, report.failures
    assert len(report.checks) >= 3
    assert {c.kind for c in report.checks} == {"centre", "next", "corner"}


def test_swaps_are_reported():
    report = rfkit.verify("torchvision:mobilenet_v3_small", input_size=64, layers=["features.1"])
    assert any("Hardswish measured as identity" in n for n in report.notes)
    report = rfkit.verify("torchvision:vgg11", input_size=64, layers=["features.3"])
    assert any("MaxPool2d measured as average pooling" in n for n in report.notes)


def test_a_wrong_rule_is_caught(monkeypatch):
    monkeypatch.setitem(DEFAULT_REGISTRY.modules, nn.Conv2d, neutral.neutral)  # pretend convs see one pixel
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    report = rfkit.verify(net, input_size=16, layers=["2"])
    assert not report.ok
    bad = report.failures[0]
    assert bad.analytic == ((8, 8), (8, 8)) and bad.measured == ((6, 10), (6, 10))


def test_cli_verify_exit_codes(monkeypatch):
    runner = CliRunner()
    r = runner.invoke(app, normalise_argv(["verify", "test_resnet", "--input-size", "64", "-l", "layer1,layer2"]))
    assert r.exit_code == 0, r.output
    assert "layer2" in r.output and "units agree" in r.output
    monkeypatch.setitem(DEFAULT_REGISTRY.modules, nn.Conv2d, neutral.neutral)
    r = runner.invoke(app, normalise_argv(["verify", "test_resnet", "--input-size", "64", "-l", "layer1"]))
    assert r.exit_code == 1 and "mismatch" in r.output
