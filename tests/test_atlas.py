"""The receptive-field atlas (issue 24): `rfkit atlas build` rows against rfkit.trace and hand-computed values,
resuming, failures, sharding over torchrun ranks, and `rfkit atlas query` (a restricted expression: no code runs)."""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import rfkit
from rfkit.atlas import build_atlas, load, query
from rfkit.errors import AtlasError
from rfkit.io import OutputError
from rfkit_cli.app import main


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    out = tmp_path_factory.mktemp("atlas") / "A"
    build_atlas(out, models="resnet50", sizes=[(320, 320)], timeout=120)
    return out


def _row(df, model, size, layer):
    rows = df[(df["model"] == model) & (df["input_h"] == size) & (df["layer"] == layer)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_rows_match_rfkit_trace_and_hand_computed_values(atlas):
    df = load(atlas)
    assert list(df[(df["model"] == "resnet50") & (df["input_from"] == "default")]["layer"]) == [
        "act1", "layer1", "layer2", "layer3", "layer4",
    ]  # fmt: skip
    for size in (224, 320):
        g = rfkit.trace("resnet50", input_size=size)  # traced on its own, by the public API
        for layer in ("act1", "layer2", "layer4"):
            row, info = _row(df, "resnet50", size, layer), g[layer]
            assert (row["rf_h"], row["rf_w"]) == info.size
            assert (row["rf_min_h"], row["stride_h"], row["center_h"]) == (
                info.size_min[0],
                info.stride[0],
                info.center[0],
            )
    final = _row(df, "resnet50", 224, "layer4")
    # README / DESIGN: ResNet-50's layer4 RF is 427 px at stride 32; at 224 px its centre unit (3, 3) of 7x7
    # looks at pixel 3 * 32 = 96, 15.5 px before the image centre 111.5; at 320 px unit 5 of 10: 160 vs 159.5
    assert (final["rf_h"], final["stride_h"], final["centre_offset_h"]) == (427, 32, -15.5)
    assert _row(df, "resnet50", 320, "layer4")["centre_offset_w"] == 0.5
    assert final["is_final"] and final["rf_final"] == 427 and final["stride_final"] == 32 and not final["global_final"]
    assert final["outgrows"] and not _row(df, "resnet50", 224, "layer2")["outgrows"]  # 427 > 224; 91 < 224
    lo, hi = rfkit.input_resolution_range(rfkit.trace("resnet50"))
    assert (final["input_min_h"], final["input_max_h"]) == (lo[0], hi[0])


def test_a_size_the_model_cannot_take_is_one_failure_and_a_rebuild_retries_only_on_request(tmp_path):
    build_atlas(tmp_path, models="test_convnext3", sizes=[(8, 8)])
    failures = pd.read_csv(tmp_path / "failures.csv")
    assert failures[["model", "input_size", "status"]].values.tolist() == [["test_convnext3", "8x8", "not-defined"]]
    assert "too small" in failures["reason"][0] and "32×32" in failures["reason"][0]  # the smallest it takes
    assert set(load(tmp_path)["input_h"]) == {160}  # the default size's rows stay
    seen = []
    build_atlas(tmp_path, models="test_convnext3", sizes=[(8, 8)], on_done=lambda r: seen.append(r.skipped))
    build_atlas(
        tmp_path, models="test_convnext3", sizes=[(8, 8)], retry_failed=True, on_done=lambda r: seen.append(r.skipped)
    )
    build_atlas(tmp_path, models="test_convnext3", sizes=[(32, 32)], on_done=lambda r: seen.append(r.skipped))
    assert seen == [True, False, False]  # kept; traced again on request; other sizes: traced again
    assert set(load(tmp_path)["input_h"]) == {160, 32} and pd.read_csv(tmp_path / "failures.csv").empty


def test_a_build_resumes_from_the_stored_models(atlas):
    stored = next((atlas / "models").iterdir())
    before = stored.stat().st_mtime_ns
    seen = []
    build_atlas(atlas, models="resnet50", sizes=[(320, 320)], on_done=lambda r: seen.append(r.skipped))
    assert seen == [True] and stored.stat().st_mtime_ns == before


def test_a_fixed_size_model_is_built_again_for_the_second_size(tmp_path):
    build_atlas(tmp_path / "A", models="test_vit", sizes=[(96, 96)])
    df = load(tmp_path / "A")
    assert set(df["input_h"]) == {160, 96}
    patch = _row(df, "test_vit", 96, "blocks.0")
    assert patch["is_global"] and patch["stride_h"] == 16 and patch["rf_local_h"] == 16


def test_only_an_atlas_folder_is_written_into(tmp_path):
    (tmp_path / "mine.txt").write_text("not rfkit's")
    with pytest.raises(OutputError, match="did not write"):
        build_atlas(tmp_path, models="resnet50")
    assert (tmp_path / "mine.txt").read_text() == "not rfkit's"
    with pytest.raises(AtlasError, match="no model"):
        build_atlas(tmp_path / "new", models="no_such_model*")


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('touch PWNED')",
        "model.__class__.__init__.__globals__",
        "[c for c in ().__class__.__base__.__subclasses__()]",
        "(lambda: 1)() == 1",
        "model[0] == 'r'",
        "(x := 1) == 1",
        "@os",
        "`rf` > 1",
        "open('PWNED', 'w')",
        "not " * 600 + "is_final",
        "((((" * 60 + "rf" + "))))" * 60 + " > 1",
        "no_such_column > 1",
        "rf_final",
        "rf + 1",
        "",
    ],
)
def test_a_query_runs_no_code_and_a_bad_one_is_one_line(atlas, expression, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AtlasError) as e:
        query(load(atlas), expression)
    assert "\n" not in str(e.value) and str(e.value).startswith("query") or "no column" in str(e.value)
    assert not (tmp_path / "PWNED").exists()


def test_queries_select_the_rows_pandas_selects():
    df = pd.DataFrame(
        {"model": list("abcd"), "rf": [100.0, 900.0, math.inf, 850.0], "stride": [32, 32, 16, 8], "g": [0, 1, 1, 0],
         "family": ["resnet", "vit", "vit", "convnext"], "is_global": [False, False, True, False]}
    )  # fmt: skip
    for expression, expected in [
        ("rf >= 800 and stride == 32", ["b"]),
        ("rf >= 800 or stride == 32", ["a", "b", "c", "d"]),
        ("not is_global and rf > 800", ["b", "d"]),
        ("family in ['vit', 'convnext'] and stride < 32", ["c", "d"]),
        ("family not in ['vit']", ["a", "d"]),
        ("rf / stride > 50", ["c", "d"]),
        ("100 < rf <= 900", ["b", "d"]),
        ("-stride == -8", ["d"]),
    ]:
        assert query(df, expression)["model"].tolist() == expected, expression
        assert df.query(expression, engine="python")["model"].tolist() == expected  # same meaning as pandas


def test_the_cli_builds_and_queries_an_atlas(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["atlas", "build", "--models", "test_resnet", "--input-size", "96", "--out", str(tmp_path / "A")])
    assert e.value.code in (0, None)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["atlas", "query", "rf_final >= 160 and stride_final == 32", "--atlas", str(tmp_path / "A"), "--csv",
              "--columns", "model,input_h,layer,rf_h,stride_h"])  # fmt: skip
    assert e.value.code in (0, None)
    out = capsys.readouterr().out
    g = rfkit.trace("test_resnet")
    assert out.splitlines() == [
        "model,input_h,layer,rf_h,stride_h",
        f"test_resnet,160,layer4,{g['layer4'].size[0]},32",
    ]
    with pytest.raises(SystemExit) as e:
        main(["atlas", "query", "rf_final >= 1", "--atlas", str(tmp_path / "A"), "--input-size", "96", "--csv"])
    assert e.value.code in (0, None) and ",96,96," in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["atlas", "query", "exec('1')", "--atlas", str(tmp_path / "A")])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1 and "function call is not allowed" in err


def test_two_torchrun_ranks_share_the_models_and_rank_0_writes_one_table(tmp_path):
    """Five models on two ranks, each traced by one; test_resnet's trained ERF (a weight file given) measured by
    its rank alone (no images shared with a rank measuring another model): the rows of one process."""
    import timm
    import torch

    from rfkit.atlas import ErfTrained

    (tmp_path / "w").mkdir()
    torch.save(timm.create_model("test_resnet").state_dict(), tmp_path / "w" / "test_resnet.pth")
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
         "rfkit_cli.app", "atlas", "build", "--models", "test_[er]*", "--out", "A", "--erf-trained", "--no-hub",
         "--weights-dir", "w", "--trained-images", "2"],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("no trained weights: test_efficientnet") == 4  # one line each, --no-hub and no file
    df = load(tmp_path / "A")
    trained = df[df["input_from"] == "erf_trained"]
    assert set(trained["model"]) == {"test_resnet"} and len(trained) == 5
    how = ErfTrained(num_images=2, weights=(("test_resnet", str(tmp_path / "w" / "test_resnet.pth")),), hub=False)
    build_atlas(tmp_path / "B", models="test_resnet", sizes=[], erf_trained=how, recycle=None)  # one process
    alone = load(tmp_path / "B")
    alone = alone[alone["input_from"] == "erf_trained"]
    for column in ("erf_side_h", "erf_side_w", "r90"):
        assert trained[column].tolist() == pytest.approx(alone[column].tolist(), rel=1e-6), column
    models = sorted(set(df["model"]))
    assert models == [
        "test_efficientnet",
        "test_efficientnet_evos",
        "test_efficientnet_gn",
        "test_efficientnet_ln",
        "test_resnet",
    ]
    for m in models:  # each model traced by one rank: one line each
        assert run.stdout.count(f"{m}: ") == 1
    analytic = df[df["input_from"] == "default"]
    assert _row(analytic, "test_resnet", 160, "layer4")["rf_h"] == rfkit.trace("test_resnet")["layer4"].size[0]


HOSTILE = "<img src=x onerror=alert(1)> [a](javascript:x) | ../../x"


def test_the_site_escapes_names_and_lists_every_model(atlas, tmp_path):
    from rfkit.atlas.site import write_atlas_site

    df = load(atlas)
    df["model"] = df["model"].replace("resnet50", HOSTILE)
    df["family"] = "../" + df["family"]
    site = write_atlas_site(df, tmp_path / "S")
    docs = site / "docs"
    files = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*") if p.is_file())
    assert all(p.count("/") <= 1 and ".." not in p.split("/") for p in files), files  # safe names, inside docs/
    assert "atlas-table.js" in files and "mkdocs.yml" in (site / "mkdocs.yml").name
    home = (docs / "index.md").read_text()
    assert "<img" not in home and "&lt;img src=x onerror=alert(1)&gt;" in home and "\\[a\\](javascript:x) \\|" in home
    page = next(docs.glob("models/*.md")).read_text()
    assert "<img" not in re.sub("`[^`]*`", "", page)  # only inside code spans, which Markdown shows verbatim
    assert "| `layer4` (final) | 427 | 11 | 427 | 32 | -15.5 |" in page  # 224 px: see above
    assert "## At 320×320 px" in page and "| `layer4` (final) | 427 | 11 | 427 | 32 | 0.5 |" in page
    assert (docs / "families").is_dir() and len(list(docs.glob("families/*.png"))) == 1


def test_the_site_replaces_only_its_own_folder(atlas, tmp_path):
    from rfkit.atlas.site import build_atlas_site
    from rfkit.report.site import SiteError

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("mine")
    with pytest.raises(SiteError, match="did not write"):
        build_atlas_site(atlas, tmp_path)
    assert (tmp_path / "docs" / "index.md").read_text() == "mine"


def test_the_site_builds_with_mkdocs_strict(atlas, tmp_path):
    pytest.importorskip("material")
    main_ = pytest.importorskip("mkdocs.__main__")
    del main_
    with pytest.raises(SystemExit) as e:
        main(["atlas", "site", "--atlas", str(atlas), "--site", str(tmp_path / "S")])
    assert e.value.code in (0, None)
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(tmp_path / "S" / "mkdocs.yml")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    html = (tmp_path / "S" / "site" / "index.html").read_text()
    assert "atlas-table.js" in html and "resnet50" in html and "fonts.googleapis" not in html
    assert (tmp_path / "S" / "site" / "atlas-table.js").read_text() == (
        Path(rfkit.atlas.__file__).parent / "assets" / "atlas-table.js"
    ).read_text()


def test_a_model_without_feature_info_is_cut_where_its_stride_changes(tmp_path):
    """torchvision's resnet18 has no feature_info: its stages are the last module output of each stride, up to
    layer4 (its 1x1 avgpool is the head, not a stage); RF 7 + 2 * 2 = 11 after the max pool is not a stage end."""
    build_atlas(tmp_path, sources=("torchvision",), models="resnet18", sizes=[])
    df = load(tmp_path)
    g = rfkit.trace("torchvision:resnet18")
    assert df["layer"].tolist() == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert df["rf_h"].tolist() == [g[n].size[0] for n in df["layer"]] and df["rf_h"].tolist()[0] == 7  # 7x7 stem
    assert df["stride_h"].tolist() == [2, 4, 8, 16, 32] and df["is_final"].tolist() == [False] * 4 + [True]


class _ShortcutBlock(torch.nn.Module):
    """A residual block that halves the grid: a strided 1x1 shortcut beside a 1x1 conv then a strided 3x3 (the
    stride changes inside the block, and the shortcut's output is a module output of its own)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.proj = torch.nn.Conv2d(c, c, 1, 2)
        self.f = torch.nn.Sequential(torch.nn.Conv2d(c, c, 1), torch.nn.Conv2d(c, c, 3, 2, 1))

    def forward(self, x):
        return self.proj(x) + self.f(x)


def test_stages_by_stride_are_whole_blocks_not_a_shortcut_or_the_next_blocks_first_conv():
    """torchvision's RegNets and MobileNetV2 change stride inside a block: the stage outputs are the blocks
    (RF by hand: stem 3 at stride 2; each block adds 3x3 at the input stride: 3 + 2*2 = 7 at 4, 7 + 2*4 = 15 at
    8), never the shortcut projection (stride 4, RF 3, on a side path) or the first 1x1 conv of a block."""
    from rfkit.atlas.rows import graph_rows

    trunk = torch.nn.Sequential(_ShortcutBlock(4), _ShortcutBlock(4))
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, 2, 1), trunk)
    rows = graph_rows(rfkit.trace(net, input_size=32), net)
    assert [(r["layer"], r["rf"], r["stride"]) for r in rows] == [("0", 3, 2), ("1.0", 7, 4), ("1", 15, 8)]


def test_a_named_stage_ending_in_an_identity_module_is_a_row():
    """A stage that timm's feature_info names keeps its row when its last module is an Identity (a byobnet
    stage of regnetz: 52 timm models had only their stem and final rows): RF 3 then 3 + 2*2 = 7."""
    from rfkit.atlas.rows import graph_rows

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, 2, 1),
        torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, 2, 1), torch.nn.Identity()),
        torch.nn.Conv2d(4, 4, 3, 2, 1),
    )
    net.feature_info = [{"module": "0"}, {"module": "1"}, {"module": "2"}]
    rows = graph_rows(rfkit.trace(net, input_size=32), net)
    assert [(r["layer"], r["rf"], r["stride"]) for r in rows] == [("0", 3, 2), ("1", 7, 4), ("2", 15, 8)]


def test_the_erf_at_init_is_measured_on_request_and_flagged(tmp_path):
    from rfkit.atlas.build import ErfAtInit

    build_atlas(tmp_path, models="test_resnet", sizes=[], erf_init=ErfAtInit((64, 64), 2))
    df = load(tmp_path)
    erf = df[df["input_from"] == "erf_init"]
    g = rfkit.trace("test_resnet", input_size=64)
    assert erf["layer"].tolist() == ["act1", "layer1", "layer2", "layer3", "layer4"] and set(erf["input_h"]) == {64}
    assert erf["rf_h"].tolist() == [g[n].size[0] for n in erf["layer"]]
    assert set(erf["erf_weights"]) == {"random-safe init, 2 noise images"}
    # the gradient of a unit reaches only its RF and the image; the ERF's box is centred on its centre of mass,
    # not on the RF window's pixels, so it may reach one pixel past the window on each side
    assert ((erf["erf_side_h"] > 0) & (erf["erf_side_h"] <= erf["rf_h"].clip(upper=64) + 2)).all()
    assert erf["erf_side_h"].is_monotonic_increasing and erf["erf_side_h"].iloc[-1] < 64  # grows, stays local
    assert df[df["input_from"] == "default"]["erf_side_h"].isna().all()  # the analytic rows are not measured
    assert (df["unproductive_layers"] == "").all() and df["erf_warnings"].dtype != float


def test_a_model_that_kills_its_process_is_one_failure_and_the_next_ones_are_traced(tmp_path, monkeypatch):
    import rfkit.atlas.build as build

    real = build.analyse_model

    def dying(m, *args, **kwargs):
        if m.name == "test_convnext2":
            os._exit(9)  # a segfault, the OOM killer: the forked child is gone without a word
        return real(m, *args, **kwargs)

    monkeypatch.setattr(build, "analyse_model", dying)
    seen = []
    build_atlas(tmp_path, models="test_convnext*", sizes=[], recycle=25, on_done=lambda r: seen.append(r.model.name))
    failures = pd.read_csv(tmp_path / "failures.csv")
    assert failures["model"].tolist() == ["test_convnext2"] and "exit code 9" in failures["reason"][0]
    assert sorted(set(load(tmp_path)["model"])) == ["test_convnext", "test_convnext3"]
    assert seen == ["test_convnext", "test_convnext2", "test_convnext3"]


def test_the_table_is_also_parquet_and_load_reads_either(tmp_path, monkeypatch):
    """With pyarrow the build writes atlas.parquet beside atlas.csv (the same rows, renamed into place together:
    no temporary file stays), load() gives the same frame from either, and a rebuild without pyarrow removes
    the Parquet file it would otherwise leave older than the CSV."""
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed (pip install 'rfkit[atlas]')")
    import csv

    import rfkit.atlas.table as table

    out = tmp_path / "A"
    build_atlas(out, models="test_resnet", sizes=[(96, 96)], recycle=None)
    assert sorted(p.name for p in out.iterdir()) == [
        ".rfkit-atlas",
        "atlas.csv",
        "atlas.parquet",
        "failures.csv",
        "models",
    ]
    raw = pq.read_table(out / "atlas.parquet").to_pylist()  # read by pyarrow itself
    with open(out / "atlas.csv", newline="") as f:
        rows = list(csv.DictReader(f))  # and by the csv module
    assert len(raw) == len(rows) == 10  # 5 stages (act1, layer1..4) at 160 and 96 px
    for size in (160, 96):
        g = rfkit.trace("test_resnet", input_size=size)
        at = [r for r in raw if r["input_h"] == size]
        assert [r["layer"] for r in at] == ["act1", "layer1", "layer2", "layer3", "layer4"]
        assert [(r["rf_h"], r["stride_w"]) for r in at] == [
            (g[r["layer"]].size[0], g[r["layer"]].stride[1]) for r in at
        ]
    assert [r["layer"] for r in raw] == [r["layer"] for r in rows]
    assert [float(r["rf_min_h"]) for r in raw] == [float(r["rf_min_h"]) for r in rows]
    from_parquet, from_csv = load(out), load(out / "atlas.csv")
    pd.testing.assert_frame_equal(from_parquet, from_csv)
    pd.testing.assert_frame_equal(load(out / "atlas.parquet"), from_csv)
    assert from_parquet["is_final"].dtype == bool and (from_parquet["unproductive_layers"] == "").all()
    gz = tmp_path / "atlas.csv.gz"  # as the docs publish it
    gz.write_bytes(gzip.compress((out / "atlas.csv").read_bytes()))
    pd.testing.assert_frame_equal(load(gz), from_csv)
    stored = [json.loads(p.read_text()) for p in (out / "models").iterdir()]
    assert all(0 < d["cpu_seconds"] for d in stored)  # each model's CPU time beside its wall time

    monkeypatch.setattr(table, "has_pyarrow", lambda: False)  # (pandas itself holds pyarrow once loaded)
    build_atlas(out, models="test_resnet", sizes=[(96, 96)], recycle=None)  # resumes: the stored models, no trace
    assert not (out / "atlas.parquet").exists()
    pd.testing.assert_frame_equal(load(out), from_csv)
    (out / "atlas.csv").rename(out / "other.csv")
    (tmp_path / "B").mkdir()
    (tmp_path / "B" / "atlas.parquet").write_bytes(b"PAR1")
    with pytest.raises(AtlasError, match=r"pyarrow is not installed: pip install 'rfkit\[atlas\]'"):
        load(tmp_path / "B")


def test_a_table_that_is_not_an_atlas_is_one_line(tmp_path):
    pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install 'rfkit[atlas]')")
    (tmp_path / "atlas.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(AtlasError, match="cannot be read as an atlas table") as e:
        load(tmp_path)
    assert "\n" not in str(e.value)
    pd.DataFrame({"model": ["a"]}).to_parquet(tmp_path / "atlas.parquet")
    with pytest.raises(AtlasError, match="not an atlas table"):
        load(tmp_path / "atlas.parquet")


def test_a_family_spanning_two_sources_draws_each_member(tmp_path, monkeypatch):
    """timm's and torchvision's resnet18 are both of family 'resnet': its figure has two curves, named with
    their source (they were one dict key, one curve, before)."""
    import rfkit.atlas.site as site

    build_atlas(tmp_path / "A", sources=("timm", "torchvision"), models="resnet18", sizes=[], recycle=None)
    drawn = {}
    monkeypatch.setattr(site, "_growth_figure", lambda curves, path, title: drawn.setdefault(title, curves))
    site.build_atlas_site(tmp_path / "A", tmp_path / "S")
    assert sorted(drawn["resnet"]) == ["resnet18 (timm)", "resnet18 (torchvision-classification)"]
    for curve in drawn["resnet"].values():  # the same architecture: 7x7 stem, then 43, 99, 211, 435
        assert curve["rf_local_h"].tolist() == [7, 43, 99, 211, 435]
