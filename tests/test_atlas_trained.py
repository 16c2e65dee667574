"""Trained ERFs in the atlas (issue 24, item 1): `rfkit atlas build --erf-trained` with weights given in a folder or
a mapping file, or the pretrained weights where they can be had; rows against rfkit.erf on the same model, weights,
images and layer; a model without weights is one line, its analytic rows whole; resuming; the site's grids and
list columns."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import rfkit
from rfkit.atlas import ErfAtInit, ErfTrained, build_atlas, load, load_failures, weights_table
from rfkit.errors import AtlasError
from rfkit.models.init_traps import make_safe
from rfkit_cli.app import main

STAGES = ["act1", "layer1", "layer2", "layer3", "layer4"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three photographs of different sizes (rfkit resizes and crops them as the model's data config says)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(180, 200), (160, 160), (210, 170)]):
        smooth = rng.random((h // 10 + 1, w // 10 + 1, 3))
        picture = np.kron(smooth, np.ones((10, 10, 1)))[:h, :w]  # blocks: a photo's large-scale structure
        Image.fromarray((picture * 255).astype(np.uint8)).save(folder / f"p{i}.png")
    return folder


def trained_weights(path, name: str = "test_resnet", seed: int = 1):
    """Weights of ``name`` that are not its init: random, the zero-init traps neutralised, every norm's running
    statistics and scale moved (as training moves them), saved as safetensors or with torch.save."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = timm.create_model(name)
    make_safe(model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if str(path).endswith(".safetensors"):
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    trained_weights(folder / "test_resnet.safetensors")
    return folder


@pytest.fixture(scope="module")
def atlas(tmp_path_factory, photos, weights):
    out = tmp_path_factory.mktemp("atlas") / "A"
    how = ErfTrained(images=str(photos), num_images=3, weights=weights_table(weights), hub=False)
    build_atlas(out, models="test_resnet", sizes=[], erf_trained=how, erf_init=ErfAtInit((64, 64), 2), recycle=None)
    return out


def test_trained_rows_equal_rfkit_erf_on_the_same_weights_images_and_layer(atlas, photos, weights):
    df = load(atlas)
    trained = df[df["input_from"] == "erf_trained"].set_index("layer")
    default = df[df["input_from"] == "default"].set_index("layer")
    assert list(trained.index) == STAGES and set(trained["input_h"]) == {160}  # test_resnet's default size
    file = weights / "test_resnet.safetensors"
    digest = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    assert set(trained["erf_weights"]) == {f"test_resnet.safetensors sha256:{digest}, 3 images from {photos.name}"}
    for layer in ("layer1", "layer3", "layer4"):  # measured again here, one layer at a time, by the public API
        res = rfkit.erf("test_resnet", layers=layer, images=rfkit.Images(str(photos), 3), weights=str(file),
                        options=rfkit.ERFOptions(bootstrap=0), runtime="cpu")  # fmt: skip
        m, row = res.metrics[layer].as_dict(), trained.loc[layer]
        assert (row["erf_side_h"], row["erf_side_w"]) == (m["erf_side_h"], m["erf_side_w"])
        for column in ("erf_rf_ratio_h", "erf_rf_ratio_w", "erf_mass", "r50", "r90"):
            assert row[column] == pytest.approx(m[column], rel=1e-6), column
        g = rfkit.trace("test_resnet")  # the analytic columns: those of the default size, as traced alone
        assert (
            (row["rf_h"], row["stride_w"])
            == (g[layer].size[0], g[layer].stride[1])
            == (
                default.loc[layer, "rf_h"],
                default.loc[layer, "stride_w"],
            )
        )
    assert trained["erf_side_h"].iloc[-1] > trained["erf_side_h"].iloc[0]  # trained: the ERF grows with depth


def test_trained_and_init_erfs_differ_and_say_which_weights(atlas):
    df = load(atlas)
    init = df[df["input_from"] == "erf_init"]
    assert set(init["erf_weights"]) == {"random-safe init, 2 noise images"} and set(init["input_h"]) == {64}
    grids = sorted(p.name.split(".", 1)[1] for p in (atlas / "models").glob("*.png"))
    assert grids == ["erf_init.png", "erf_trained.png"]
    assert load_failures(atlas).empty


def test_weights_are_found_by_name_in_a_folder_or_a_mapping_file(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("a.pth", "a.bin", "b.pt", "c.txt"):
        (tmp_path / "d" / name).write_bytes(b"")
    (tmp_path / "w" / "sub").mkdir(parents=True)
    (tmp_path / "w" / "sub" / "x.safetensors").write_bytes(b"")
    (tmp_path / "map.json").write_text(json.dumps({"b": "w/sub/x.safetensors"}))
    table = dict(weights_table(tmp_path / "d", tmp_path / "map.json"))
    assert table == {
        "a": str((tmp_path / "d" / "a.pth").resolve()),
        "b": str((tmp_path / "w/sub/x.safetensors").resolve()),
    }
    for bad, match in [
        ({"b": "nope.pth"}, "does not exist"),
        (["b"], "one JSON object"),
        ({"b": 3}, "one JSON object"),
    ]:
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(AtlasError, match=match) as e:
            weights_table(None, tmp_path / "bad.json")
        assert "\n" not in str(e.value)
    with pytest.raises(AtlasError, match="not a folder"):
        weights_table(tmp_path / "missing")


def _offline(monkeypatch, tmp_path):
    """No network and an empty Hugging Face cache: no pretrained weights can be had."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-torch-hub"))


def test_a_model_without_weights_is_one_line_and_its_analytic_rows_stay(tmp_path, photos, weights, monkeypatch, capsys):
    """test_resnet has a file; test_efficientnet none, and offline with an empty cache its pretrained weights
    cannot be had: one line on stderr, a no-weights row of failures.csv, its analytic rows whole, exit 0. A
    rebuild keeps both; a replaced weight file is measured again."""
    _offline(monkeypatch, tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["atlas", "build", "--models", "test_[er]*[st]net", "--input-size", "96", "--out", str(tmp_path / "A"),
              "--erf-trained", "--weights-dir", str(weights), "--images", str(photos),
              "--trained-images", "2"])  # fmt: skip
    assert e.value.code in (0, None)
    out, err = capsys.readouterr()
    err = err.splitlines()
    assert len(err) == 1 and err[0].startswith("no trained weights: test_efficientnet at erf-trained 160x160: "), err
    assert "cache" in err[0] or "no pretrained weights" in err[0]
    assert "test_resnet: 15 rows" in out  # 5 stages at 160 and 96 px, and trained at 160
    seen = []
    build_atlas(tmp_path / "A", models="test_[er]*[st]net", sizes=[(96, 96)], erf_trained=_how(weights, photos),
                on_done=lambda r: seen.append((r.model.name, r.skipped)))  # fmt: skip
    assert sorted(seen) == [("test_efficientnet", True), ("test_resnet", True)]
    df = load(tmp_path / "A")
    eff = df[df["model"] == "test_efficientnet"]
    assert set(eff["input_from"]) == {"default", "requested"}  # its analytic rows, at both sizes, whole
    g = rfkit.trace("test_efficientnet", input_size=96)
    final = eff[(eff["input_h"] == 96) & eff["is_final"]].iloc[0]
    assert final["rf_h"] == g[final["layer"]].size[0]
    failures = load_failures(tmp_path / "A")
    assert failures[["model", "input_size", "status"]].values.tolist() == [
        ["test_efficientnet", "erf-trained 160x160", "no-weights"]
    ]
    trained_weights(weights / "test_resnet.safetensors", seed=2)  # replaced: measured again, the other kept
    seen.clear()
    build_atlas(tmp_path / "A", models="test_[er]*[st]net", sizes=[(96, 96)], erf_trained=_how(weights, photos),
                on_done=lambda r: seen.append((r.model.name, r.skipped)))  # fmt: skip
    assert sorted(seen) == [("test_efficientnet", True), ("test_resnet", False)]


def _how(weights, photos) -> ErfTrained:
    from rfkit.atlas.measured import images_option

    return ErfTrained(images=images_option(photos), num_images=2, weights=weights_table(weights))  # as the CLI


def test_a_file_that_holds_code_or_does_not_fit_is_refused_in_one_line(tmp_path, photos, monkeypatch):
    """A pickle naming code is not loaded (tensors only, as load_checkpoint reads every checkpoint), and the
    code does not run; a state_dict of another model is named as not fitting. Both: no-weights, rows whole."""
    _offline(monkeypatch, tmp_path)

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "PWNED"), "w"))

    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": Payload()}, tmp_path / "code.pth")
    trained_weights(tmp_path / "other.pth", name="test_efficientnet")
    (tmp_path / "map.json").write_text(json.dumps({"test_resnet": "code.pth", "test_convnext": "other.pth"}))
    how = ErfTrained(images=str(photos), num_images=2, weights=weights_table(None, tmp_path / "map.json"), hub=False)
    build_atlas(tmp_path / "A", models="test_[rc]*[tn]", sizes=[], erf_trained=how, recycle=None)
    failures = load_failures(tmp_path / "A").set_index("model")
    assert not (tmp_path / "PWNED").exists()
    assert set(failures["status"]) == {"no-weights"}
    assert "refused" in failures.loc["test_resnet", "reason"] and "code.pth" in failures.loc["test_resnet", "reason"]
    assert "does not fit" in failures.loc["test_convnext", "reason"]
    assert "no weight file given" in failures.loc["test_coatnet", "reason"]  # --no-hub and no file
    df = load(tmp_path / "A")
    assert set(df["input_from"]) == {"default"} and set(df["model"]) == {"test_resnet", "test_convnext", "test_coatnet"}


def test_the_site_shows_the_trained_grid_beside_the_init_one_and_the_list_filters_on_it(atlas, tmp_path):
    from rfkit.atlas.site import build_atlas_site, write_atlas_site

    site = build_atlas_site(atlas, tmp_path / "S")
    docs = site / "docs"
    page = next(docs.glob("models/*.md")).read_text()
    stem = next(docs.glob("models/*.md")).stem
    grids = f"![ERF at initialisation]({stem}.erf_init.png){{ width=49% }} ![ERF trained]({stem}.erf_trained.png)"
    assert grids in page
    assert (docs / "models" / f"{stem}.erf_trained.png").read_bytes() == next(
        (atlas / "models").glob("*.erf_trained.png")
    ).read_bytes()
    df = load(atlas)
    trained = df[df["input_from"] == "erf_trained"].set_index("layer")
    side = trained.loc["layer4", ["erf_side_h", "erf_side_w"]].tolist()
    shown = f"{side[0]:g}" if side[0] == side[1] else f"{side[0]:g}×{side[1]:g}"
    assert re.search(rf"\| `layer4` \| [^|]+ \| [^|]+ \| [^|]+ \| [^|]+ \| {re.escape(shown)} \|", page), page
    home = (docs / "index.md").read_text()
    header = next(line for line in home.splitlines() if line.startswith("| model"))
    assert header.endswith("| erf_init | erf_trained |")
    row = next(line for line in home.splitlines() if line.startswith("| [test_resnet]"))
    assert row.endswith(f"| {shown} |")
    # a model without a measured ERF shows dashes, which `erf_trained>=1` leaves out
    extra = df[df["input_from"] == "default"].assign(model="no_erf_model")
    write_atlas_site(pd.concat([df, extra]), tmp_path / "T")
    home = (tmp_path / "T" / "docs" / "index.md").read_text()
    assert next(line for line in home.splitlines() if "no_erf_model" in line).endswith("| – | – |")
