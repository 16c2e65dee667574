"""Every model ``rfkit list-models --ultralytics`` prints builds and measures (issue 19); a model that cannot be
built here (a TorchVision layer downloading weights, offline) is left out with its reason on stderr.

The walk over every yaml file (each at its smallest scale: the scales of one file differ in widths and repeats,
not in ops) and the ERF of one model per family are marked ``slow``; ``benchmarks/ultralytics_coverage.py`` builds
and measures every name."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import rfkit
from rfkit.graph.layers import default_layer
from rfkit.models.spec import build_model
from rfkit.models.ultralytics import kept_global_state

with kept_global_state():
    pytest.importorskip("ultralytics")
from rfkit.models.ultralytics import _bundled_index, bundled_yaml_names, unavailable_reason  # noqa: E402
from rfkit_cli.app import main  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _one_per_file() -> list[str]:
    """The smallest scale of each bundled yaml file (n before s, m, l, x; a one-scale file by its name)."""
    order = {letter: i for i, letter in enumerate("nsmlx")}
    best: dict = {}
    for name, (path, letter) in _bundled_index().items():
        if path not in best or order.get(letter, 9) < order.get(best[path][1], 9):
            best[path] = (name, letter)
    return sorted(name for name, _ in best.values())


FILES = _one_per_file()
#: One model per family and task, for a one-image ERF.
FAMILIES = [
    "yolov3-tiny.yaml",
    "yolov5n.yaml",
    "yolov6n.yaml",
    "yolov8n.yaml",
    "yolov9t.yaml",
    "yolov10n.yaml",
    "yolo11n.yaml",
    "yolo12n.yaml",
    "yolo26n.yaml",
    "yolo26n-p6.yaml",
    "yoloe-11n.yaml",
    "rtdetr-l.yaml",
    "yolov8n-worldv2.yaml",
    "yolo11n-cls.yaml",
    "yolo11n-seg.yaml",
    "yolo11n-pose.yaml",
    "yolo11n-obb.yaml",
]


def _listing(capsys) -> tuple[list[str], list[str]]:
    with pytest.raises(SystemExit) as exc:
        main(["list-models", "--ultralytics", "yolo*"])
    out = capsys.readouterr()
    assert exc.value.code in (0, None), out.err
    listed = [line for line in out.out.splitlines() if line.startswith("ultralytics:")]
    left = [line for line in out.err.splitlines() if line.startswith("left out ")]
    return listed, left


def test_the_list_leaves_out_only_models_that_download_and_says_why(capsys):
    listed, left = _listing(capsys)
    bundled = [f"ultralytics:{n}" for n in bundled_yaml_names() if n.startswith("yolo")]
    left_names = [line.split()[2].rstrip(":") for line in left]
    assert sorted(listed + left_names) == sorted(bundled) and len(bundled) > 200
    for name, line in zip(left_names, left):
        path = _bundled_index()[name.split(":", 1)[1]][0]
        assert "TorchVision" in path.read_text() and "torch hub cache" in line  # a layer that downloads weights


def _family(name: str) -> str:
    """yolov8n-p6.yaml -> yolov8, yolo11n-cls.yaml -> yolo11, yoloe-v8s.yaml -> yoloe, rtdetr-l.yaml -> rtdetr."""
    return re.match(r"yoloe|yolov\d+|yolo\d+|rtdetr", name).group()


def test_the_erf_families_cover_every_file_family():
    assert {_family(n) for n in FILES} == {_family(n) for n in FAMILIES}


@pytest.mark.slow
@pytest.mark.parametrize("name", FILES)
def test_every_yaml_file_traces_with_an_rf_for_its_default_layer(name):
    if unavailable_reason(name):  # left out of the list, as the test above checks
        return
    g = rfkit.trace(f"ultralytics:{name}", input_size=64)
    layer = default_layer(g, build_model(f"ultralytics:{name}"))
    assert g.method != "hooks", g.incomplete  # torch.fx or make_fx followed the forward
    assert not g[layer].unknown and all(s >= 3 or math.isinf(s) for s in g[layer].size)


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_one_image_erf_of_the_default_layer_of_each_family(name):
    res = rfkit.erf(
        f"ultralytics:{name}",
        images=rfkit.Images("noise", 1, input_size=64),
        options=rfkit.ERFOptions(bootstrap=0),
        runtime="cpu",
    )
    (layer,) = res.layers
    m = res.maps[layer]
    assert m.shape == (64, 64) and np.isfinite(m).all() and m.sum() > 0
    info = res.rf(layer)
    if not info.is_global:  # the gradient cannot reach beyond the unit's theoretical RF
        rows, cols = np.nonzero(m)
        for ax, idx in enumerate((rows, cols)):
            centre, half = info.center_of(res.unit[layer])[ax], (info.size[ax] - 1) / 2
            assert centre - half <= idx.min() and idx.max() <= centre + half


def test_a_model_built_on_meta_has_the_graph_of_one_built_on_the_cpu():
    from rfkit.models.spec import meta_copy

    on_meta = rfkit.trace("ultralytics:yolov3-tiny.yaml", input_size=64)
    cpu = build_model("ultralytics:yolov3-tiny.yaml", device="cpu")
    on_cpu = rfkit.trace(meta_copy(cpu), input_size=64)
    assert list(on_meta) == list(on_cpu) and all(on_meta[k] == on_cpu[k] for k in on_meta)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "cls"), [("yoloe-v8n.yaml", "YOLOEModel"), ("yolov8n-world.yaml", "WorldModel")])
def test_prompted_models_run_as_ultralytics_runs_them_and_trace_with_torch_fx(name, cls):
    """YOLOEModel.predict and WorldModel.predict branch on a traced value (the class embeddings' or text
    features' batch): rfkit's predict always expands them, which gives ultralytics' own output (a batch of 2:
    the expansion matters), and torch.fx follows it."""
    import torch
    from ultralytics.nn import tasks

    model = build_model(f"ultralytics:{name}", device="cpu")
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(x), getattr(tasks, cls).predict(model, x)
    ours, theirs = (o[0] if isinstance(o, (tuple, list)) else o for o in (ours, theirs))
    assert torch.equal(ours, theirs)
    g = rfkit.trace(model, input_size=64)
    assert g.method == "torch.fx" and not g[default_layer(g, model)].unknown
