"""Provenance columns on every CSV rfkit writes, and `rfkit collect` / `rfkit.collect`.

The net (``tiny_cls``) is tests/golden/tiny_net.py with a classifier head: conv 3x3 s2 p1 -> ReLU -> conv 3x3
p1 (unit weights, bias 100: the ReLU never clips) -> global pooling -> linear. Layer ``2``'s ERF does not
depend on the images: its map is 12 * outer(a, a), a = (1, 1, 2, 1, 2, 1, 1) (tests/test_analyze.py), total
mass 12 * 9² = 972. The checkpoint doubles every conv weight (and bias), so its map is 2 · 2 = 4 times that:
3888. Layer ``2``'s node: RF 7, centre 0, effective padding (7 - 1) / 2 - 0 = 3.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import rfkit
from rfkit.report.collect import CollectError, CollectWarning, collect, collected_by_rfkit
from rfkit.report.provenance import COLUMNS, provenance
from rfkit_cli.app import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NET = """
import torch.nn as nn


def build():
    net = nn.Sequential(
        nn.Conv2d(3, 2, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3),
    )
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.ones_(m.weight)
            nn.init.constant_(m.bias, 100.0)
    return net
"""
RUN = {"layers": ["0", "2"], "images": rfkit.Images("noise", 2, input_size=16), "runtime": "cpu", "trust": True}
MASS = 12 * 9**2  # layer 2's ERF total mass with unit weights


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two analyses of one net: random init, and a checkpoint (with contribution maps and an `rfkit erf`
    folder); the run's time window and the checkpoint's SHA-256 computed here."""
    root = tmp_path_factory.mktemp("prov")
    (root / "tiny_cls.py").write_text(NET)
    spec = f"{root / 'tiny_cls.py'}:build"  # an absolute path: no cell may repeat it
    ns: dict = {}
    exec(NET, ns)  # noqa: S102 - the net above, to save its checkpoint
    net = ns["build"]()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(2)
                m.bias.mul_(2)
    ckpt = root / "ck.pth"
    torch.save(net.state_dict(), ckpt)
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rfkit.analyze(spec, weights="random", out=root / "runs" / "random", **RUN)
    rep = rfkit.analyze(
        spec, weights=str(ckpt), out=root / "runs" / "ckpt", attribution=rfkit.ReportAttribution("saliency", 1), **RUN
    )
    from rfkit.report.erf_files import save_erf

    save_erf(rep.result, root / "erf_out")
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    return {"root": root, "report": rep.folder, "sha": sha, "window": (start, end)}


def no_absolute_path(frame: pd.DataFrame, root: Path) -> bool:
    return not frame.astype(str).apply(lambda col: col.str.contains(str(root), regex=False)).any().any()


def test_concatenated_runs_are_told_apart_by_their_weights(runs):
    frame = rfkit.collect(runs["root"] / "runs")  # the parent: its report folders are found
    assert tuple(frame.columns[: len(COLUMNS)]) == COLUMNS and frame.columns[len(COLUMNS)] == "report"
    assert len(frame) == 4 and frame.attrs["skipped"] == [] and frame.attrs["reports"] == 2
    random, ckpt = (frame[frame.weights == w].set_index("layer") for w in ("random", "checkpoint"))
    assert random.weights_source.str.startswith("random init").all() and (random.weights_sha256 == "").all()
    assert (ckpt.weights_source == "ck.pth").all()
    assert (ckpt.weights_sha256 == runs["sha"][:16]).all()  # hashlib, here, over the file's bytes
    assert random.loc["2", "total_mass"] == pytest.approx(MASS, rel=1e-5)
    assert ckpt.loc["2", "total_mass"] == pytest.approx(4 * MASS, rel=1e-5)  # the checkpoint was the one used
    for part in (random, ckpt):
        assert part.report.str.match(r"runs/(random|ckpt)/tiny_cls-build-[0-9a-f]{8}$").all()
        assert (part.model == "tiny_cls.py:build").all() and (part.model_name == "tiny_cls.py:build").all()
    # the node's analytic columns of layers.csv joined to the ERF row
    assert ckpt.loc["2", ["rf_h", "center_h", "padding_h", "rf_min_w"]].tolist() == [7, 0, 3, 7]
    assert "Conv2d" in ckpt.loc["2", "op"]
    assert no_absolute_path(frame, runs["root"])


def expected(runs, kind: str, erf: bool = True) -> dict:
    """The provenance of the checkpoint run, by hand (``erf``: an ERF file; else contribution maps, of
    ``attribution_images`` = 1 image)."""
    return {
        "model": "tiny_cls.py:build",
        "model_name": "tiny_cls.py:build",
        "weights": "checkpoint",
        "weights_source": "ck.pth",
        "weights_sha256": runs["sha"][:16],
        "input_h": 16,
        "input_w": 16,
        "erf_method": "replknet" if erf else "",
        "images": "noise",
        "n_images": 2 if erf else 1,
        "n_sources": 2 if erf else 1,
        "rfkit_version": rfkit.__version__,
        "seed": 0,
    }


def test_every_csv_rfkit_writes_has_the_provenance_columns(runs):
    found = {}
    for top in (runs["report"], runs["root"] / "erf_out"):
        for path in sorted(top.rglob("*.csv")):
            found[path.relative_to(top.parent).as_posix()] = pd.read_csv(path, keep_default_na=False)
    names = {k.split("/", 1)[1] for k in found}
    assert names == {"layers.csv", "erf.csv", "attribution/attribution.csv"}
    start, end = runs["window"]
    for name, frame in found.items():
        assert tuple(frame.columns[: len(COLUMNS)]) == COLUMNS, name
        want = expected(runs, "", erf=not name.endswith("attribution.csv"))
        for column, value in want.items():
            assert (frame[column] == value).all(), (name, column, frame[column].unique())
        assert frame.finished.nunique() == 1 and start <= frame.finished[0] <= end, name
        assert no_absolute_path(frame, runs["root"]), name


def test_the_report_columns_equal_those_of_its_run_record(runs):
    header = json.loads((runs["report"] / "run.json").read_text())
    assert header["weights_file"] == "ck.pth" and header["weights_sha256"] == runs["sha"]
    erf = pd.read_csv(runs["report"] / "erf.csv", keep_default_na=False)
    row = erf.iloc[0][list(COLUMNS)].to_dict()
    assert row == {k: "" if v is None else v for k, v in provenance(header).items()}


SAMPLE = "sample (scikit-image: astronaut, chelsea, coffee; 5 seeded crop/flip views (seed 0))"


@pytest.mark.parametrize(
    "header, column, value",
    [
        ({"images": SAMPLE, "num_images": 8}, "n_sources", 3),  # crops and flips of a photo are one source
        ({"images": "sample (scikit-image: astronaut, chelsea)", "num_images": 2}, "images", "sample photos"),
        ({"images": "dir /home/me/photos/val (recursive)"}, "images", "val"),
        ({"images": "noise (seed 4)", "num_images": 6}, "n_sources", 6),
        ({"images": "dir x (recursive)", "num_images": 6, "bootstrap": {"sources": 2}}, "n_sources", 2),
        (
            {"model": "resnet50", "weights_kind": "pretrained", "weights_tag": "resnet50.a1_in1k"},
            "model_name",
            "resnet50.a1_in1k",
        ),
        ({"model": "ultralytics:/w/runs/best.pt"}, "model", "ultralytics:best.pt"),
        # a run.json from before weights_file: the checkpoint's name from the description, never its folder
        ({"weights_kind": "checkpoint", "weights": "checkpoint /home/me/ck.pth ['model']"}, "weights_source", "ck.pth"),
        ({"bootstrap": {"seed": 7}}, "seed", 7),  # before the header kept the seed
    ],
)
def test_provenance_of_a_run_record(header, column, value):
    assert provenance(header)[column] == value


# --- collect: hand-made report folders --------------------------------------------------------------------
def fake_report(folder: Path, model: str = "net.py:build", weights: str = "random", **run) -> Path:
    """A minimal report: run.json, erf.csv (one layer), layers.csv (its node and the input)."""
    folder.mkdir(parents=True)
    header = {
        "model": model,
        "weights": f"{weights} weights",
        "weights_kind": weights,
        "images": "noise (seed 0)",
        "num_images": 4,
        "input_size": [32, 32],
        "method": "replknet",
        "rfkit_version": "0.1.0",
        "finished": "2025-01-01T00:00:00Z",
        "seed": 0,
        **run,
    }
    (folder / "run.json").write_text(json.dumps(header))
    (folder / "erf.csv").write_text("layer,node,rf_h,total_mass\n2,_2,7,972.0\n")
    (folder / "layers.csv").write_text("node,op,rf_h,padding_h\ninput_1,input,1,0\n_2,conv,7,3\n")
    return folder


NOT_OURS = "it is not what rfkit writes (rerun `rfkit analyze`)"  # rfkit.report.schema's closing words


def test_collect_lists_bad_folders_and_returns_the_rest(tmp_path):
    top = tmp_path / "reports"
    fake_report(top / "good")
    fake_report(top / "more" / "deep", weights="pretrained")
    fake_report(top / "count", num_images="many")
    fake_report(top / "sizes", input_size=[32, -1])
    fake_report(top / "json").joinpath("run.json").write_text("{not json")
    fake_report(top / "nocsv").joinpath("erf.csv").unlink()
    fake_report(top / "binary").joinpath("erf.csv").write_bytes(b"\xff\xfe\x00garbage\x00")
    (top / "notes").mkdir()
    (top / ".git").mkdir()  # hidden: not rfkit's, not listed
    (top / ".old.partial-999999-ab").mkdir()  # a report being written, or left by a killed run
    with pytest.warns(CollectWarning) as caught:
        frame = collect([top, tmp_path / "missing"])
    assert sorted(frame.report) == ["reports/good", "reports/more/deep"]
    assert frame.set_index("report").loc["reports/more/deep", "weights"] == "pretrained"
    assert frame.padding_h.tolist() == [3, 3] and frame.total_mass.tolist() == [972.0, 972.0]
    reasons = {Path(s.folder).name: s.reason for s in frame.attrs["skipped"]}
    assert reasons == {
        "count": f"{top.resolve() / 'count' / 'run.json'}: num_images: 'many' where an integer goes; {NOT_OURS}",
        "sizes": f"{top.resolve() / 'sizes' / 'run.json'}: input_size[1]: -1 is below 1; {NOT_OURS}",
        "json": reasons["json"],
        "nocsv": "erf.csv is missing",
        "binary": reasons["binary"],
        "notes": "not a report folder (no run.json in it or below)",
        ".old.partial-999999-ab": "a report rfkit is still writing, or one a killed run left unfinished",
        "missing": "does not exist",
    }
    assert "run.json: not JSON" in reasons["json"] and reasons["binary"].startswith("cannot read erf.csv")
    assert len(caught) == len(reasons) and all("\n" not in str(w.message) for w in caught)


def test_collect_does_not_follow_symbolic_links(tmp_path):
    fake_report(tmp_path / "elsewhere" / "r")
    (tmp_path / "top").mkdir()
    fake_report(tmp_path / "top" / "own")
    os.symlink(tmp_path / "elsewhere", tmp_path / "top" / "link")
    frame = collect(tmp_path / "top", on_skip=lambda s: None)
    assert frame.report.tolist() == ["top/own"]
    assert [(s.folder.name, s.reason.split(",")[0]) for s in frame.attrs["skipped"]] == [("link", "a symbolic link")]


def test_collect_of_nothing_readable_is_one_line_naming_each_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CollectError) as e:
        collect([tmp_path / "empty", tmp_path / "missing"])
    msg = str(e.value)
    assert "\n" not in msg and "empty: not a report folder" in msg and "missing: does not exist" in msg


# --- rfkit collect ------------------------------------------------------------------------------------
def cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["collect", *map(str, args)])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_cli_collect_writes_the_table_and_lists_skipped_folders_on_stderr(tmp_path, capsys):
    fake_report(tmp_path / "r" / "a")
    fake_report(tmp_path / "r" / "b", model="torchvision:resnet18")
    (tmp_path / "r" / "junk").mkdir()
    code, out, err = cli(capsys, tmp_path / "r", "-o", tmp_path / "all.csv")
    assert code == 0 and "wrote 2 row(s) of 2 report(s), 2 model(s)" in out
    assert (
        err.strip() == f"warning: skipped {tmp_path / 'r' / 'junk'}: not a report folder (no run.json in it or below)"
    )
    table = pd.read_csv(tmp_path / "all.csv")
    assert table.model_name.tolist() == ["net.py:build", "torchvision:resnet18"] and collected_by_rfkit(
        tmp_path / "all.csv"
    )
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    code, out, err = cli(capsys, tmp_path / "r" / "a", "-o", tmp_path / "all.csv")  # rfkit's own file: replaced
    assert code == 0 and len(pd.read_csv(tmp_path / "all.csv")) == 1 and err == ""
    code, out, err = cli(capsys, tmp_path / "r" / "a")  # no -o: the CSV on stdout
    assert code == 0 and out.splitlines()[0].startswith(",".join(COLUMNS) + ",report,layer")


@pytest.mark.parametrize("case", ["no report", "user's file", "missing"])
def test_cli_collect_bad_input_is_one_line_exit_1(tmp_path, capsys, case):
    fake_report(tmp_path / "r")
    (tmp_path / "empty").mkdir()
    mine = tmp_path / "mine.csv"
    mine.write_text("my,own\n1,2\n")
    args = {
        "no report": ([tmp_path / "empty"], "no report to collect"),
        "user's file": ([tmp_path / "r", "-o", mine], "rfkit collect did not write it"),
        "missing": ([tmp_path / "nowhere"], "does not exist"),
    }[case]
    code, out, err = cli(capsys, *args[0])
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert args[1] in err and "internal error" not in err
    assert mine.read_text() == "my,own\n1,2\n"


def test_graph_csv_has_the_provenance_columns_without_weights(tmp_path, capsys):
    (tmp_path / "tiny_cls.py").write_text(NET)
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "graph",
                f"{tmp_path / 'tiny_cls.py'}:build",
                "--trust",
                "--input-size",
                "16",
                "-q",
                "--csv",
                str(tmp_path / "g.csv"),
            ]
        )
    assert exc.value.code == 0, capsys.readouterr()
    frame = pd.read_csv(tmp_path / "g.csv", keep_default_na=False)
    assert tuple(frame.columns[: len(COLUMNS)]) == COLUMNS and frame.columns[len(COLUMNS)] == "node"
    row = frame.iloc[0]
    assert (row.model, row.weights, row.input_h, row.input_w, row.n_images) == ("tiny_cls.py:build", "", 16, 16, "")
    assert row.weights_source.startswith("none") and no_absolute_path(frame, tmp_path)
