"""torchvision detectors and segmentation models: RF and ERF of every backbone stage and pyramid level, on
the tensor the detector's own transform makes; dense outputs."""

from __future__ import annotations

import numpy as np
import pytest

import rfkit
from rfkit.models.data_config import data_config_for
from rfkit.models.spec import build_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def faster_rcnn():
    return rfkit.trace("torchvision:fasterrcnn_resnet50_fpn")


def test_faster_rcnn_is_measured_on_the_transformed_tensor(faster_rcnn):
    g = faster_rcnn
    assert g.input_size == (800, 800)  # GeneralizedRCNNTransform: shorter side to min_size 800
    cfg = data_config_for(build_model("torchvision:fasterrcnn_resnet50_fpn"))
    assert cfg["input_size"] == (3, 800, 800) and cfg["mean"] == (0.485, 0.456, 0.406) and cfg["crop_pct"] == 1.0
    assert "GeneralizedRCNNTransform" in cfg["input_note"]


def test_faster_rcnn_pyramid_levels(faster_rcnn):
    g = faster_rcnn
    c5 = g["backbone.body.layer4"]
    assert c5.size == (427, 427) and c5.stride == (32, 32)  # ResNet-50's last stage
    # P5: a 1x1 lateral conv, then the 3x3 output conv at stride 32: C5's RF + 2 strides
    p5 = g["backbone[3]"]
    assert p5.stride == (32, 32) and p5.size == (427 + 2 * 32, 427 + 2 * 32)
    assert g["backbone[3]"].size == g["backbone.fpn.layer_blocks.3"].size
    # the levels are the backbone's stages, each at its stride; the extra level is a 1x1 max pool, stride 2
    model = build_model("torchvision:fasterrcnn_resnet50_fpn")
    levels = [f["module"] for f in model.feature_info]
    assert levels == ["backbone[0]", "backbone[1]", "backbone[2]", "backbone[3]", "backbone[pool]"]
    assert [g[k].stride for k in levels] == [(4, 4), (8, 8), (16, 16), (32, 32), (64, 64)]
    assert g["backbone[pool]"].size == p5.size


@pytest.mark.parametrize(
    ("name", "size", "levels"),
    [
        ("retinanet_resnet50_fpn", (800, 800), ["0", "1", "2", "p6", "p7"]),
        ("ssdlite320_mobilenet_v3_large", (320, 320), ["0", "1", "2", "3", "4", "5"]),
    ],
)
def test_other_detectors_list_their_levels(name, size, levels):
    model = build_model(f"torchvision:{name}")
    assert model.pretrained_cfg["input_size"][1:] == size
    assert [f["level"] for f in model.feature_info] == levels


def test_erf_of_every_level_through_hooks_stays_inside_its_rf():
    res = rfkit.erf(
        "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn",
        layers="stages",
        images=rfkit.Images("noise", 1, input_size=96),
        weights="random",
        runtime="cpu",
    )
    assert res.layers == ["backbone[0]", "backbone[1]", "backbone[pool]"]
    assert res.data_config["input_note"].startswith("the backbone of FasterRCNN")
    for layer in res.layers:
        info = res.rf(layer)
        assert res.maps[layer].sum() > 0
        (r0, r1), (c0, c1) = info.window_of(res.unit[layer])
        rows, cols = np.nonzero(res.maps[layer])
        assert r0 <= rows.min() and rows.max() <= r1 and c0 <= cols.min() and cols.max() <= c1


def test_segmentation_output_pixel_erf_at_the_weights_resolution():
    g = rfkit.trace("torchvision:lraspp_mobilenet_v3_large")
    assert g.input_size == (520, 520)  # the weights' transform resizes to 520, no crop
    res = rfkit.erf(
        "torchvision:lraspp_mobilenet_v3_large",
        layers=[""],
        images=rfkit.Images("noise", 1, input_size=(64, 96)),
        weights="random",
        runtime="cpu",
    )
    assert res.grid[""] == (64, 96) and res.unit[""] == (32, 48)  # an output pixel of the dense map
    assert res.maps[""].shape == (64, 96) and res.maps[""].sum() > 0
