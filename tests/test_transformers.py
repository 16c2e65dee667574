"""Hugging Face transformers models (issue 23 item 4): ``transformers:CLASS`` built from its default config offline,
hub ids and checkpoint folders, the image processor as data config, token layouts, and RFs checked against
hand-computed values and measured gradient support; one-line errors for what cannot be built."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch
import torch.nn as nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads it: nothing is fetched here

import rfkit  # noqa: E402
from rfkit.errors import (  # noqa: E402
    CheckpointError,
    ModelBuildError,
    ModelNotFoundError,
    UntrustedFileError,
    WeightsUnavailableError,
)
from rfkit.models.data_config import data_config_for  # noqa: E402
from rfkit.models.spec import build_model  # noqa: E402
from rfkit.models.transformers_processor import processor_data_config  # noqa: E402
from rfkit.models.weights import load_model  # noqa: E402
from rfkit.verification.measure import positive_weights, support_extent  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

#: SegFormer-B0's layout (patch embeddings 7/4, 3/2, 3/2, 3/2; efficient attention with reduction 8, 4, 2, 1;
#: Mix-FFN with a 3×3 depthwise conv; an all-MLP head that upsamples stages 2-4 to stage 1's 1/4 grid), narrow
#: and one block per stage.
SEGFORMER = (
    "transformers:SegformerForSemanticSegmentation?hidden_sizes=[8,16,32,64]&depths=[1,1,1,1]"
    "&decoder_hidden_size=16&num_attention_heads=[1,1,2,2]&num_labels=3"
)
VIT = (
    "transformers:ViTModel?image_size=32&patch_size=8&hidden_size=16&num_hidden_layers=1"
    "&num_attention_heads=2&intermediate_size=32"
)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """The hub unreachable and its cache empty, whatever the machine has."""
    pytest.importorskip("transformers")
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))


def chain(*ops):
    """The RF recurrence by hand, per axis: ops are (kernel, stride, padding); returns (size, stride, centre0)."""
    r, s, c = 1, 1, 0.0
    for k, st, p in ops:
        r, c, s = r + (k - 1) * s, c + ((k - 1) / 2 - p) * s, s * st
    return r, s, c


# --- segmentation: the ERF unit of the logits ---------------------------------------------------------


def test_segformer_logit_pixel_rf_is_the_measured_gradient_support():
    g = rfkit.trace(SEGFORMER, 256)
    logits = g[""]
    assert logits.shape == (2, 3, 64, 64) and logits.stride == (4, 4)  # the head's 1/4 grid
    # By hand, per axis, the centre pixel u = 32 of the logits through the local paths only:
    # stage 1, conv 7/4 pad 3 then the 3×3 depthwise conv at stride 4: [4u-7, 4u+7]            = [121, 135]
    # stage 2, conv 3/2 pad 1, 3×3 dw at stride 8: unit v sees [8v-19, 8v+19]; bilinear ×2 (align_corners=False)
    #   reads v = (u+½)/2-½ = 15.75, so v = 15, 16                                                = [101, 147]
    # stage 3: unit w sees [16w-43, 16w+43]; ×4 reads w = 7.625: w = 7, 8                          = [69, 171]
    # stage 4: unit z sees [32z-91, 32z+91]; ×8 reads z = 3.5625: z = 3, 4                         = [5, 219]
    assert logits.window_of((32, 32)) == ((5, 219), (5, 219))
    assert logits.center_of((32, 32)) == (112, 112)  # not the unit's stage-1 centre 4u = 128: lopsided
    assert logits.is_global  # efficient attention reads every position

    model = positive_weights(build_model(SEGFORMER, device="cpu").double(), seed=0)
    x = 0.5 + torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x.requires_grad_(True)

    def support():
        (grad,) = torch.autograd.grad(model(x)[0, :, 32, 32].sum(), x)
        return tuple(support_extent(grad))

    assert support() == ((0, 255), (0, 255))  # global, as the graph says
    with torch.no_grad():  # attention's output projections to zero: only the local paths remain
        for name, module in model.named_modules():
            if name.endswith("attention.o_proj"):
                module.weight.zero_()
                module.bias.zero_()
    assert support() == ((5, 219), (5, 219))


# --- CNNs: every addressable conv by hand --------------------------------------------------------------


def _resnet_expected() -> dict[str, tuple]:
    """HF ResNet (v1.5: the stride in the 3×3 conv) with one bottleneck per stage."""
    stem = [(7, 2, 3), (3, 2, 1)]  # embedder: conv 7/2 and max pool 3/2
    out = {"embedder": chain(*stem)}
    path = list(stem)
    for stage in range(4):
        stride = 1 if stage == 0 else 2
        name = f"encoder.stages.{stage}.layers.0"
        if stage:
            out[f"{name}.shortcut.convolution"] = chain(*path, (1, stride, 0))
        for i, op in enumerate([(1, 1, 0), (3, stride, 1), (1, 1, 0)]):
            path.append(op)
            out[f"{name}.layer.{i}.convolution"] = chain(*path)
    return out


def _convnext_expected() -> dict[str, tuple]:
    path = [(4, 4, 0)]  # the stem: conv 4/4
    out = {"embeddings": chain(*path)}
    for stage in range(4):
        if stage:
            path.append((2, 2, 0))
            out[f"encoder.stages.{stage}.downsampling_layer.1"] = chain(*path)
        path.append((7, 1, 3))
        out[f"encoder.stages.{stage}.layers.0.dwconv"] = chain(*path)
    return out


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("transformers:ResNetModel?hidden_sizes=[8,16,32,64]&depths=[1,1,1,1]&embedding_size=8", _resnet_expected()),
        ("transformers:ConvNextModel?hidden_sizes=[8,16,32,64]&depths=[1,1,1,1]", _convnext_expected()),
    ],
    ids=["resnet", "convnext"],
)
def test_cnn_conv_rfs_equal_the_hand_computed_ones(spec, expected):
    g = rfkit.trace(spec, 96)
    model = build_model(spec)
    convs = {n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n in g.module_outputs}
    stems = {n for n in expected if n in ("embedder", "embeddings")}  # recorded whole: torch.fx cannot follow them
    assert convs == set(expected) - stems
    assert stems <= set(g.untraced)
    for name, (size, stride, centre) in expected.items():
        info = g[name]
        assert (info.size, info.stride, info.center) == ((size,) * 2, (stride,) * 2, (centre,) * 2), name
    assert g.unsupported == []


TINY_VIT = "hidden_size=32&num_hidden_layers=2&num_attention_heads=2&intermediate_size=64&image_size=64&patch_size=8"


@pytest.mark.parametrize(
    "spec",
    [
        "transformers:ConvNextV2Model?hidden_sizes=[8,16,32,64]&depths=[1,1,1,1]",  # GRN: linalg.vector_norm
        f"transformers:DPTModel?{TINY_VIT}",  # embeddings.last_hidden_states: a field of a ModelOutput
        f"transformers:BeitModel?{TINY_VIT}&use_relative_position_bias=true",  # (x,) + outputs[1:]: tuples
        f"transformers:Data2VecVisionModel?{TINY_VIT}",
    ],
    ids=["convnextv2", "dpt", "beit", "data2vec"],
)
def test_families_trace_with_every_op_known(spec):
    g = rfkit.trace(spec, 64)
    assert g.unsupported == [] and not g[""].unknown and g[""].local_size is not None


def test_convnextv2_global_response_norm_is_global_as_measured():
    spec = "transformers:ConvNextV2Model?hidden_sizes=[8,16]&depths=[1,1]&num_stages=2"
    report = rfkit.verify(spec, input_size=64, estimate=False)
    assert report.ok and any(c.is_global for c in report.checks)


# --- token layouts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, prefix",
    [
        (VIT, 1),  # the class token
        (
            "transformers:Dinov2WithRegistersModel?image_size=32&patch_size=8&hidden_size=16&num_hidden_layers=1"
            "&num_attention_heads=2&num_register_tokens=4",
            5,  # the class token and 4 registers
        ),
    ],
    ids=["vit", "dinov2-registers"],
)
def test_prefix_tokens_are_dropped_and_the_centre_patch_sees_its_patch(spec, prefix):
    g = rfkit.trace(spec)
    emb = g["embeddings"]
    assert emb.shape == (2, prefix + 16, 16) and (emb.size, emb.stride, emb.center) == ((8, 8), (8, 8), (3.5, 3.5))
    tokens = g.record("embeddings").layout[1]
    assert tokens.prefix == prefix and [f.size for f in tokens.factors] == [4, 4]
    after = g["layers.0" if prefix == 1 else "encoder.layer.0"]
    assert after.is_global and after.local_size == (8, 8)
    assert g.method == "torch.fx"

    layers = ["embeddings", "layers.0" if prefix == 1 else "encoder.layer.0"]
    res = rfkit.erf(spec, layers=layers, images="noise", num_images=1, bootstrap=0, device="cpu")
    assert res.unit["embeddings"] == (2, 2)  # the centre of the 4×4 patch grid, prefix tokens dropped
    assert tuple(support_extent(torch.from_numpy(res.maps["embeddings"])[None, None])) == ((16, 23), (16, 23))
    assert tuple(support_extent(torch.from_numpy(res.maps[layers[1]])[None, None])) == ((0, 31), (0, 31))


def test_vit_at_other_sizes_built_for_it_or_interpolated():
    g = rfkit.trace(VIT, (32, 48))  # built for 32×48: a 4×6 patch grid, no interpolation (non-square)
    assert g["embeddings"].shape == (2, 1 + 4 * 6, 16)
    import transformers

    config = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    square = transformers.ViTModel(config).eval()  # as a checkpoint is: its position embeddings interpolated
    res = rfkit.erf(square, "embeddings", images="noise", num_images=1, bootstrap=0, device="cpu", input_size=(48, 64))
    assert res.unit["embeddings"] == (3, 4)  # the centre of the 6×8 grid
    assert support_extent(torch.from_numpy(res.maps["embeddings"])[None, None]) == [(24, 31), (32, 39)]


def test_swin_windows_and_shifted_windows_are_the_measured_support():
    """4×4-token windows on a 16×16 token grid: the RF of a token is its window (shifted in every second block), not
    the whole map; stage 2 merges 2×2 tokens. Each unit's analytic window, clipped to the input, is the support of
    its ERF (random init, noise)."""
    spec = "transformers:SwinModel?image_size=64&patch_size=4&embed_dim=8&depths=[2,2]&num_heads=[1,1]&window_size=4"
    g = rfkit.trace(spec, 64)
    layers = [f"encoder.layers.{s}.blocks.{b}[0]" for s in (0, 1) for b in (0, 1)]
    res = rfkit.erf(spec, layers=layers, images="noise", num_images=1, bootstrap=0, device="cpu")
    clip = [(max(lo, 0), min(hi, 63)) for lo, hi in g[layers[0]].window_of(res.unit[layers[0]])]
    assert clip == [(32, 47), (32, 47)]  # token (8, 8) in the window of tokens 8..11: pixels 32..47
    for layer in layers:
        window = [(max(lo, 0), min(hi, 63)) for lo, hi in g[layer].window_of(res.unit[layer])]
        assert support_extent(torch.from_numpy(res.maps[layer])[None, None]) == window, layer
        assert not g[layer].is_global


def test_stages_are_the_largest_module_list_then_the_decode_head():
    from rfkit.graph.layers import stage_layers

    g, model = rfkit.trace(SEGFORMER, 64), build_model(SEGFORMER)
    stages = [f"segformer.stages.{i}" for i in range(4)]
    assert stage_layers(g, model) == [*stages, "decode_head"]


def test_a_transformers_module_is_traced_by_its_own_module_names_and_left_as_found():
    import transformers

    config = transformers.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)
    hf = transformers.ConvNextModel(config).eval()
    g = rfkit.trace(hf, 64)
    assert g["encoder.stages.1.downsampling_layer.1"].stride == (8, 8)
    res = rfkit.erf(hf, layers=["encoder.stages.0"], images="noise", num_images=1, bootstrap=0, device="cpu")
    assert res.maps["encoder.stages.0"].sum() > 0
    assert type(hf) is transformers.ConvNextModel and not hf._forward_hooks
    out = hf(pixel_values=torch.zeros(1, 3, 64, 64))
    assert tuple(out.last_hidden_state.shape) == (1, 16, 8, 8)  # still its ModelOutput
    assert all(p.requires_grad for p in hf.parameters())


# --- weights, folders, preprocessing -------------------------------------------------------------------


def test_a_class_is_random_init_and_says_so():
    model, info = load_model(VIT, "auto")
    assert info.kind == "random-safe" and "transformers default" in info.description
    assert any("default config" in w and "random init" in w for w in info.warnings)
    with pytest.raises(WeightsUnavailableError, match="transformers:ORG/NAME or transformers:FOLDER"):
        load_model(VIT, "pretrained")


def _saved(folder, with_processor=True):
    import transformers

    cfg = transformers.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=5)
    model = transformers.ConvNextForImageClassification(cfg).eval()
    model.save_pretrained(folder)
    if with_processor:
        proc = {"size": {"shortest_edge": 96}, "crop_pct": 0.5, "resample": 3, "do_normalize": True}
        proc |= {"image_mean": [0.4, 0.5, 0.6], "image_std": [0.2, 0.25, 0.3], "do_rescale": True}
        (folder / "preprocessor_config.json").write_text(json.dumps({**proc, "rescale_factor": 1 / 255}))
    return model


def test_a_checkpoint_folder_loads_its_weights_and_its_processor(tmp_path):
    saved = _saved(tmp_path / "ckpt")
    model, info = load_model(f"transformers:{tmp_path / 'ckpt'}", "pretrained")
    assert info.kind == "pretrained" and info.warnings == ()
    theirs = saved.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items())
    cfg = data_config_for(model)
    assert cfg["input_size"] == (3, 96, 96) and cfg["crop_pct"] == 0.5 and cfg["interpolation"] == "bicubic"
    assert cfg["mean"] == (0.4, 0.5, 0.6) and cfg["std"] == (0.2, 0.25, 0.3)
    logits = model(torch.zeros(2, 3, 96, 96))
    assert tuple(logits.shape) == (2, 5)  # a classifier: its logits


def test_parameters_a_checkpoint_lacks_are_named(tmp_path):
    import transformers

    config = transformers.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=3)
    transformers.ConvNextModel(config).save_pretrained(tmp_path / "base")  # a backbone checkpoint
    meta = json.loads((tmp_path / "base" / "config.json").read_text())
    meta["architectures"] = ["ConvNextForImageClassification"]  # read as a classifier: its head is not in it
    (tmp_path / "base" / "config.json").write_text(json.dumps(meta))
    _, info = load_model(f"transformers:{tmp_path / 'base'}", "pretrained")
    assert info.kind == "pretrained"
    assert info.warnings == (
        "2 parameter(s) not in the checkpoint, at random init: classifier.bias, classifier.weight",
    )


def test_a_folder_without_weights_is_random_with_a_warning_or_refused(tmp_path):
    folder = tmp_path / "cfg-only"
    _saved(folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(WeightsUnavailableError, match="no weight file"):
        load_model(f"transformers:{folder}", "pretrained")
    _, info = load_model(f"transformers:{folder}", "auto")
    assert info.kind == "random-safe" and any("no weight file" in w for w in info.warnings)


class Payload:
    """Stands for code a pickle could name."""


def test_a_pickled_checkpoint_that_names_code_is_refused(tmp_path):
    folder = tmp_path / "bin"
    saved = _saved(folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()
    torch.save({**saved.state_dict(), "payload": Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"holds Python objects .*Payload.*refused") as e:
        load_model(f"transformers:{folder}", "pretrained")
    assert "\n" not in str(e.value)


def test_custom_code_is_refused_without_trust(tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    marker = tmp_path / "ran"
    (folder / "modeling_evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    config = {"model_type": "evil", "architectures": ["EvilModel"]}
    config["auto_map"] = {"AutoConfig": "modeling_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UntrustedFileError, match="custom modelling code .*trust=True"):
        rfkit.trace(f"transformers:{folder}")
    assert not marker.exists()


def test_processor_rescale_and_normalisation_fold_into_timm_mean_and_std():
    # x * (1/127.5) - 1 on 0..255 pixels is timm's (x/255 - 0.5) / 0.5
    cfg = processor_data_config({"rescale_factor": 1 / 127.5, "image_mean": [1, 1, 1], "image_std": [1, 1, 1]})
    assert cfg["mean"] == (0.5, 0.5, 0.5) and cfg["std"] == (0.5, 0.5, 0.5)
    cfg = processor_data_config({"do_normalize": False, "size": {"height": 40, "width": 60}})
    assert cfg["mean"] == (0.0,) * 3 and cfg["std"] == (1.0,) * 3 and cfg["input_size"] == (3, 40, 60)


# --- one-line errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, error, words",
    [
        ("transformers:ViTModle", ModelNotFoundError, ["unknown transformers model class", "ViTModel"]),
        ("transformers:BertModel", ModelBuildError, ["does not take images"]),
        ("transformers:CLIPModel", ModelBuildError, ["input_ids", "CLIPVisionModel"]),
        ("transformers:ViTModel?hidden_sise=32", ModelNotFoundError, ["no config field 'hidden_sise'", "hidden_size"]),
        ("transformers:ViTModel?hidden_size", ModelNotFoundError, ["KEY=VALUE"]),
        ("transformers:", ModelNotFoundError, ["transformers:CLASS"]),
        ("transformers:facebook/dinov2-small", ModelBuildError, ["HF_HUB_OFFLINE", "config.json", ":FOLDER"]),
        ("transformers:./no/such/folder", ModelNotFoundError, ["no such folder"]),
    ],
)
def test_what_cannot_be_built_is_one_line(spec, error, words):
    with pytest.raises(error) as e:
        rfkit.trace(spec)
    assert "\n" not in str(e.value) and all(w in str(e.value) for w in words), str(e.value)


def test_a_folder_that_is_no_checkpoint_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelNotFoundError, match="holds no config.json"):
        build_model(f"transformers:{tmp_path / 'empty'}")
    with pytest.raises(ModelNotFoundError, match="is a file, not a folder"):
        build_model(f"transformers:{tmp_path / 'file.txt'}")


def _cached_on_hub(folder, repo: str, cache) -> None:
    """Put the files of ``folder`` into the Hugging Face cache ``cache`` as repository ``repo``'s main revision."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("0" * 40)
    for f in folder.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())


def test_a_hub_checkpoint_in_the_cache_loads_offline(tmp_path):
    from huggingface_hub import constants

    saved = _saved(tmp_path / "ckpt")
    _cached_on_hub(tmp_path / "ckpt", "someone/tiny-convnext", tmp_path / "empty-hf-cache")
    assert constants.HF_HUB_CACHE == str(tmp_path / "empty-hf-cache")
    model, info = load_model("transformers:someone/tiny-convnext", "auto")
    assert info.kind == "pretrained" and info.tag == "someone/tiny-convnext"
    theirs = saved.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items())
    assert data_config_for(model)["input_size"] == (3, 96, 96)
    for f in (tmp_path / "empty-hf-cache").rglob("*.safetensors"):  # only the config left: random init, said so
        f.unlink()
    _, info = load_model("transformers:someone/tiny-convnext", "auto")
    assert info.kind == "random-safe" and any("HF_HUB_OFFLINE is set" in w for w in info.warnings)


def test_a_hub_checkpoint_offline_is_unavailable_in_one_line():
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE is set.*local Hugging Face cache"):
        load_model("transformers:facebook/dinov2-small", "pretrained")


def test_without_transformers_installed(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers raises ImportError
    with pytest.raises(ModelBuildError, match=r"pip install 'rfkit\[transformers\]'"):
        build_model("transformers:ViTModel")
    code, err = _cli(["graph", "transformers:ViTModel"], capsys)
    assert code == 1 and len(err) == 1 and "rfkit[transformers]" in err[0]


def _cli(args, capsys) -> tuple[int, list[str]]:
    from rfkit_cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    text = capsys.readouterr()
    assert "Traceback" not in text.err
    return exc.value.code, [ln for ln in text.err.splitlines() if ln.strip()]


def test_cli_one_line_errors_and_the_vision_classes(capsys):
    code, err = _cli(["graph", "transformers:SegformerForSemanticSegmentaton"], capsys)
    assert code == 1 and len(err) == 1 and "SegformerForSemanticSegmentation" in err[0]
    with pytest.raises(SystemExit) as exc:
        from rfkit_cli.app import main

        main(["list-models", "Segformer*", "--source", "transformers"])
    out = capsys.readouterr().out.split()
    assert exc.value.code in (0, None)
    assert "transformers:SegformerForSemanticSegmentation" in out
    assert all(n.startswith("transformers:Segformer") for n in out)
