"""rfkit never loses a file it did not write, never puts live HTML or foreign files into a site, fails in one
line before the work when the output cannot be written, and prints every warning on stderr (also with -q).

The model is tests/golden/tiny_net.py (conv 3x3 s2 p1, ReLU, conv 3x3 p1 at 16x16: layer ``2`` has RF 7,
see tests/test_analyze.py); a second net with a 5x5 last conv has RF 3 + (5 - 1) * 2 = 11.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rfkit
import rfkit.effective.engine as engine
from rfkit.analysis import analyze as analyze_mod
from rfkit.errors import RFKitError
from rfkit.io import short_hash
from rfkit.report import report_folder
from rfkit.report.escape import md_code, md_text
from rfkit.report.site import SITE_MARKER
from rfkit.report.transaction import replace_folder
from rfkit_cli.app import main

GOLDEN = Path(__file__).parent / "golden"
ARGS = ["-l", "0,2", "--images", "noise", "-n", "2", "--input-size", "16", "--device", "cpu", "-q", "--trust"]
WIDE = (
    "import torch.nn as nn\n\n"
    "def build():\n"
    "    return nn.Sequential(nn.Conv2d(3, 2, 3, 2, 1), nn.ReLU(), nn.Conv2d(2, 2, 5, padding=2))\n"
)
XSS = "<img src=x onerror=alert(1)>"


def cli(capsys, *args):
    """Run ``rfkit ARGS`` in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    cap = capsys.readouterr()
    return exc.value.code or 0, cap.out, cap.err


def one_error_line(err: str, *words: str) -> str:
    lines = [x for x in err.strip().splitlines() if not x.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    shutil.copy(GOLDEN / "tiny_net.py", tmp_path / "tiny_net.py")
    monkeypatch.chdir(tmp_path)
    return "tiny_net.py:build"


@pytest.fixture
def no_measurement(monkeypatch):
    """Fail the test if the ERF is measured: the refusal must come first."""

    def measured(*a, **k):
        raise AssertionError("measured before checking the output")

    monkeypatch.setattr(engine, "erf", measured)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    """One finished report of tiny_net (copied by the site tests, never changed)."""
    root = tmp_path_factory.mktemp("report")
    shutil.copy(GOLDEN / "tiny_net.py", root / "tiny_net.py")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        rep = analyze_mod.analyze(
            "tiny_net.py:build",
            trust=True,
            layers=["0", "2"],
            images="noise",
            num_images=2,
            input_size=16,
            device="cpu",
            out=root / "out",
        )
    finally:
        os.chdir(cwd)
    return rep.folder


# ---------------------------------------------------------------------------------------------------------
# rfkit analyze -o DIR: only rfkit's own report of the same model is replaced


def _foreign_file(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "thesis.tex").write_text("my thesis")
    return folder / "thesis.tex"


def _other_models_report(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"model": "other.py:build", "model_id": "file:/x/other.py:build"}))
    return folder / "run.json"


def _plain_file(folder: Path) -> Path:
    folder.parent.mkdir(parents=True)
    folder.write_text("not a folder")
    return folder


def _symlink(folder: Path) -> Path:
    target = folder.parent.parent / "elsewhere"
    _foreign_file(target)
    folder.parent.mkdir(parents=True)
    folder.symlink_to(target, target_is_directory=True)
    return target / "thesis.tex"


@pytest.mark.parametrize(
    "make,words",
    [
        (_foreign_file, ["is not an rfkit report"]),
        (_other_models_report, ["report of another model", "file:/x/other.py:build"]),
        (_plain_file, ["is not an rfkit report"]),
        (_symlink, ["is not an rfkit report"]),
    ],
)
def test_analyze_never_replaces_what_it_did_not_write(tiny, tmp_path, capsys, no_measurement, make, words):
    kept = make(tmp_path / "out" / "tiny_net-build")
    before = kept.read_bytes()
    code, _, err = cli(capsys, "analyze", tiny, *ARGS, "--out", "out", "--stop-on-error")
    assert code == 1
    one_error_line(err, "tiny_net-build", "--out", *words)
    assert kept.read_bytes() == before


def test_analyze_replaces_its_own_report_of_the_same_model(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(capsys, "analyze", tiny, *ARGS, "--out", out)[0] == 0
    (out / "tiny_net-build" / "stale.txt").write_text("left by the first run")
    run = json.loads((out / "tiny_net-build" / "run.json").read_text())
    assert run["model_id"] == f"file:{(tmp_path / 'tiny_net.py').resolve()}:build"
    assert "report.md" in run["files"] and "maps/2.npy" in run["files"] and "run.json" not in run["files"]
    assert cli(capsys, "analyze", tiny, *ARGS, "--out", out)[0] == 0
    assert not (out / "tiny_net-build" / "stale.txt").exists() and (out / "tiny_net-build" / "run.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["tiny_net-build"]


def test_same_file_name_and_factory_get_two_folders_and_skip_existing_compares_the_spec(tiny, tmp_path, capsys):
    for v, text in (("v1", (GOLDEN / "tiny_net.py").read_text()), ("v2", WIDE)):
        (tmp_path / v).mkdir()
        (tmp_path / v / "net.py").write_text(text)
    v1, v2 = "v1/net.py:build", "v2/net.py:build"
    f1 = "net-build-" + short_hash(str((tmp_path / "v1" / "net.py").resolve()))
    f2 = "net-build-" + short_hash(str((tmp_path / "v2" / "net.py").resolve()))
    assert f1 != f2
    assert cli(capsys, "analyze", v1, *ARGS, "--out", "out")[0] == 0
    first = (tmp_path / "out" / f1 / "run.json").stat().st_mtime_ns
    code, out, err = cli(capsys, "analyze", v1, v2, *ARGS, "--out", "out", "--skip-existing")
    assert code == 0, err
    assert f"skipped {v1}" in err and f"done {v2}" in err  # v2 is not skipped because of v1's report
    assert (tmp_path / "out" / f1 / "run.json").stat().st_mtime_ns == first
    for folder, spec, rf in ((f1, v1, 7), (f2, v2, 11)):  # layer 2: 3 + (3 - 1) * 2 = 7, 3 + (5 - 1) * 2 = 11
        assert json.loads((tmp_path / "out" / folder / "run.json").read_text())["model"] == spec
        erf = pd.read_csv(tmp_path / "out" / folder / "erf.csv", dtype={"layer": str}).set_index("layer")
        assert erf.loc["2", "rf_h"] == rf


@pytest.mark.parametrize(
    "cls_name,folder", [("../escaped", "escaped"), (".", "model"), ("..", "model"), ("a/../../b", "a-..-..-b")]
)
def test_module_class_names_are_sanitised(tmp_path, cls_name, folder):
    import torch.nn as nn

    net = type(cls_name, (nn.Sequential,), {})(nn.Conv2d(3, 2, 3, padding=1))
    out = tmp_path / "out"
    rep = rfkit.analyze(net, layers=["0"], images="noise", num_images=1, input_size=8, device="cpu", out=out)
    assert rep.folder == out / folder and (out / folder / "run.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing written beside --out
    assert sorted(p.name for p in out.iterdir()) == [folder]


# ---------------------------------------------------------------------------------------------------------
# a killed run, two runs at once


def test_stale_partial_folders_of_killed_runs_are_removed(tiny, tmp_path, capsys):
    """A run killed (SIGKILL) while writing leaves its partial folder; the next run removes it, and only
    rfkit's own temporary folders whose process is gone."""
    code = (
        "import os, signal, sys\n"
        "import rfkit.analysis.analyze as a\n"
        "a.write_figures = lambda *args: os.kill(os.getpid(), signal.SIGKILL)\n"
        "a.analyze('tiny_net.py:build', layers=['0', '2'], images='noise', num_images=2, input_size=16,"
        " device='cpu', out='out', trust=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, stderr
    dead = proc.pid
    out = tmp_path / "out"
    killed = [p for p in out.iterdir() if p.name.startswith(f".tiny_net-build.partial-{dead}-")]
    assert len(killed) == 1 and (killed[0] / "layers.csv").is_file()

    marker = json.dumps({"pid": dead, "host": socket.gethostname()})
    old_style = out / f".other.partial-{dead}"  # the name rfkit used before the random suffix
    old_style.mkdir()
    (old_style / ".rfkit-partial").write_text(marker)
    aside = out / f".other.old-{dead}-ab12"  # an old report moved aside, then killed
    aside.mkdir()
    (aside / "run.json").write_text(json.dumps({"model": "other", "model_id": "timm:other"}))
    keep = {
        out / f".x.partial-{dead}-zz": None,  # no marker: not rfkit's
        out / f".y.partial-{os.getppid()}-zz": json.dumps({"pid": os.getppid(), "host": socket.gethostname()}),
        out / f".z.partial-{dead}-zz": json.dumps({"pid": dead, "host": "another-machine"}),
    }
    for folder, text in keep.items():
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
        if text:
            (folder / ".rfkit-partial").write_text(text)

    assert cli(capsys, "analyze", tiny, *ARGS, "--out", out)[0] == 0
    assert not killed[0].exists() and not old_style.exists() and not aside.exists()
    assert all((folder / "notes.txt").is_file() for folder in keep)
    assert (out / "tiny_net-build" / "run.json").is_file()


def _finished(tmp_path: Path, i: int) -> Path:
    folder = tmp_path / f".net.partial-{os.getpid()}-{i}"
    folder.mkdir()
    (folder / "run.json").write_text(
        json.dumps({"model": "net.py:build", "model_id": "file:/n/net.py:build", "writer": i})
    )
    return folder


def test_two_processes_finishing_the_same_report_both_succeed(tmp_path, monkeypatch):
    """Each finishing run renames its folder into place; whoever comes second replaces the first, none fails
    (threads stand in for processes: the same renames race)."""
    monkeypatch.setattr(report_folder, "model_id", lambda model: "file:/n/net.py:build")
    final = tmp_path / "net-build"
    for round_ in range(15):
        tmps = [_finished(tmp_path, 10 * round_ + k) for k in range(3)]
        barrier = threading.Barrier(len(tmps))
        errors = []

        def finish(tmp, barrier=barrier, errors=errors):
            barrier.wait()
            try:
                replace_folder(tmp, final, lambda f: report_folder.check_target(f, "net.py:build"))
            except BaseException as e:  # noqa: BLE001 - recorded, asserted below
                errors.append(e)

        threads = [threading.Thread(target=finish, args=(t,)) for t in tmps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert json.loads((final / "run.json").read_text())["writer"] in {10 * round_ + k for k in range(3)}
        assert sorted(p.name for p in tmp_path.iterdir()) == ["net-build"]  # no partial or old folder left


# ---------------------------------------------------------------------------------------------------------
# rfkit erf -o DIR: only its own files, never into a finished report, checked before measuring


NET = (
    "import torch.nn as nn\n\n"
    "def build():\n"
    "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 5, padding=2))\n"
)


@pytest.fixture
def net(tmp_path):
    (tmp_path / "net.py").write_text(NET)
    return f"{tmp_path / 'net.py'}:build"


ERF = ["--images", "noise", "-n", "1", "--input-size", "12", "--device", "cpu", "-q", "--trust"]


def test_erf_out_keeps_foreign_files_and_removes_only_its_own_stale_maps(net, tmp_path, capsys):
    out = tmp_path / "erfout"
    (out / "maps").mkdir(parents=True)
    np.save(out / "maps" / "mine.npy", np.arange(3))
    (out / "notes.md").write_text("my notes")
    assert cli(capsys, "erf", net, "-l", "0,2", *ERF, "--out", out)[0] == 0
    assert sorted(p.name for p in (out / "maps").iterdir()) == ["0.npy", "0.sem.npy", "2.npy", "2.sem.npy", "mine.npy"]
    assert json.loads((out / ".rfkit-erf.json").read_text())["files"] == [
        "erf.csv",
        "figures/panels.caption.md",
        "figures/panels.caption.tex",
        "figures/panels.png",
        "maps/0.npy",
        "maps/0.sem.npy",
        "maps/2.npy",
        "maps/2.sem.npy",
        "metrics.json",
    ]
    assert cli(capsys, "erf", net, "-l", "2", *ERF, "--out", out)[0] == 0  # layer 0's maps are now stale
    assert sorted(p.name for p in (out / "maps").iterdir()) == ["2.npy", "2.sem.npy", "mine.npy"]
    np.testing.assert_array_equal(np.load(out / "maps" / "mine.npy"), np.arange(3))
    assert (out / "notes.md").read_text() == "my notes"


@pytest.mark.parametrize("name", ["erf.csv", "metrics.json", "maps/2.npy"])
def test_erf_out_does_not_overwrite_a_file_it_did_not_write(net, tmp_path, capsys, no_measurement, name):
    out = tmp_path / "erfout"
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    (out / name).write_text("the user's")
    code, _, err = cli(capsys, "erf", net, "-l", "2", *ERF, "--out", out)
    assert code == 1
    one_error_line(err, name, "rfkit did not write", "--out")
    assert (out / name).read_text() == "the user's"


@pytest.mark.parametrize("inside", [".", "maps"])
def test_erf_out_refuses_a_finished_analyze_report(net, tmp_path, capsys, no_measurement, report_dir, inside):
    folder = tmp_path / "report"
    shutil.copytree(report_dir, folder)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    code, _, err = cli(capsys, "erf", net, *ERF, "--out", folder / inside)
    assert code == 1
    one_error_line(err, "finished `rfkit analyze` report", "--out")
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("target", ["/proc/rfkit-x", "file", "file/sub"])
def test_erf_out_unwritable_fails_before_measuring(net, tmp_path, capsys, no_measurement, target):
    (tmp_path / "file").write_text("x")
    out = target if target.startswith("/") else tmp_path / target
    code, _, err = cli(capsys, "erf", net, *ERF, "--out", out)
    assert code == 1
    one_error_line(err, "cannot write to the output folder", str(out), "--out")
    assert (tmp_path / "file").read_text() == "x"


# ---------------------------------------------------------------------------------------------------------
# rfkit report --site DIR: only rfkit's own site is replaced


@pytest.mark.parametrize("foreign", [["docs/index.md"], ["mkdocs.yml"], ["docs/index.md", "mkdocs.yml"]])
def test_site_never_replaces_a_project_it_did_not_write(report_dir, tmp_path, capsys, foreign):
    site = tmp_path / "project"
    for rel in foreign:
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(f"my {rel}")
    code, _, err = cli(capsys, "report", report_dir, "--site", site)
    assert code == 1
    one_error_line(err, str(site), "did not write", "--site")
    for rel in foreign:
        assert (site / rel).read_text() == f"my {rel}"
    assert not (site / SITE_MARKER).exists()


def test_site_replaces_its_own_docs(report_dir, tmp_path, capsys):
    site = tmp_path / "site"
    site.mkdir()
    (site / "notes.txt").write_text("kept")
    assert cli(capsys, "report", report_dir, "--site", site)[0] == 0
    assert (site / SITE_MARKER).is_file() and (site / "docs" / "models" / "tiny_net-build" / "index.md").is_file()
    (site / "docs" / "old.md").write_text("from the first build")
    assert cli(capsys, "report", report_dir, "--site", site, "--title", "Second")[0] == 0
    assert not (site / "docs" / "old.md").exists() and 'site_name: "Second"' in (site / "mkdocs.yml").read_text()
    assert (site / "notes.txt").read_text() == "kept"
    assert sorted(p.name for p in site.iterdir()) == [SITE_MARKER, "docs", "mkdocs.yml", "notes.txt"]


def test_site_removes_what_a_killed_report_left_and_nothing_else(report_dir, tmp_path, capsys):
    site = tmp_path / "site"
    assert cli(capsys, "report", report_dir, "--site", site)[0] == 0
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # a process that has ended: its pid is free
    child.wait()
    dead, alive = child.pid, os.getppid()
    left = {  # (folder, marker) -> removed?
        (f".docs.partial-{dead}-ab", json.dumps({"pid": dead, "host": socket.gethostname()})): True,
        (f".docs.old-{dead}-cd", json.dumps({"pid": dead, "host": socket.gethostname()})): True,
        (f".docs.partial-{dead}-ef", None): False,  # no marker: not rfkit's
        (f".docs.partial-{alive}-gh", json.dumps({"pid": alive, "host": socket.gethostname()})): False,
        (f".docs.partial-{dead}-ij", json.dumps({"pid": dead, "host": "another-machine"})): False,
        (f".other.partial-{dead}-kl", json.dumps({"pid": dead, "host": socket.gethostname()})): False,
    }
    for (name, marker), _ in left.items():
        (site / name / "docs").mkdir(parents=True)
        (site / name / "docs" / "index.md").write_text("x")
        if marker:
            (site / name / ".rfkit-partial").write_text(marker)
    assert cli(capsys, "report", report_dir, "--site", site)[0] == 0
    for (name, _), removed in left.items():
        assert (site / name).exists() != removed, name
    assert not (site / "docs" / ".rfkit-partial").exists()
    assert not [
        p
        for p in site.iterdir()
        if p.name.startswith(".docs.") and (p / ".rfkit-partial").exists() and str(os.getpid()) in p.name
    ]


# ---------------------------------------------------------------------------------------------------------
# the site carries no live HTML and no file that is not a report's


def test_md_text_and_md_code_keep_html_and_markdown_as_text():
    assert md_text(XSS) == "&lt;img src=x onerror=alert(1)&gt;"
    assert md_text("[a](javascript:b)") == "\\[a\\](javascript:b)"
    assert md_text("x {: onclick=y}") == "x \\{: onclick=y\\}"
    assert md_text("a|b\nc") == "a\\|b c"
    assert md_text("resnet50.a1_in1k _x_") == "resnet50.a1_in1k \\_x\\_"
    assert md_code("a`b") == "`` a`b ``" and md_code(XSS) == f"`{XSS}`"


def _build(site: Path) -> str:
    """mkdocs build --strict in ``site``; all the HTML it wrote, as one string."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q"],
        cwd=site,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr
    return "\n".join(p.read_text(encoding="utf-8") for p in (site / "site").rglob("*.html"))


def test_names_from_users_and_the_file_system_are_escaped_in_the_built_site(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    spec_dir = tmp_path / XSS / "[link](javascript:alert(2))"
    spec_dir.mkdir(parents=True)
    shutil.copy(GOLDEN / "tiny_net.py", spec_dir / "net.py")
    images = tmp_path / "<img src=y onerror=alert(3)>"
    images.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(images / name)
    (images / "<b onmouseover=alert(4)>.jpg").write_bytes(b"not a jpeg")
    args = [a if a != "noise" else str(images) for a in ARGS]
    code, _, err = cli(capsys, "analyze", f"{spec_dir}/net.py:build", *args, "--out", "out")
    assert code == 0, err
    (report,) = [p for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")]
    assert report.name.startswith("net-build-")
    renamed = tmp_path / "out" / "<img src=z onerror=alert(5)>"  # a report folder renamed by its user
    report.rename(renamed)
    md = (renamed / "report.md").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in md and "&lt;b onmouseover=alert(4)&gt;" in md

    code, _, err = cli(capsys, "report", "out", "--site", "site", "--title", "<script>alert(6)</script>")
    assert code == 0, err
    page = tmp_path / "site" / "docs" / "models" / "img-src-z-onerror-alert-5" / "index.md"
    assert page.is_file()
    built = _build(tmp_path / "site")
    for live in ("<img src=x", "<img src=y", "<img src=z", "<b onmouseover", "<script>alert(6)", 'href="javascript:'):
        assert live not in built, live
    assert "&lt;img src=x onerror=alert(1)&gt;" in built and "&lt;script&gt;alert(6)&lt;/script&gt;" in built
    # the site name and navigation titles: look-alikes, because mkdocs shows them unescaped
    assert "‹script›alert(6)‹/script›" in built and "‹img src=x onerror=alert(1)›" in built


def _link_file(folder: Path, secret: Path) -> None:
    (folder / "figures" / "overlay_2.png").unlink()
    (folder / "figures" / "overlay_2.png").symlink_to(secret)


def _link_folder(folder: Path, secret: Path) -> None:
    shutil.rmtree(folder / "maps")
    (folder / "maps").symlink_to(secret.parent, target_is_directory=True)


def _link_report(folder: Path, secret: Path) -> None:
    (folder / "report.md").unlink()
    (folder / "report.md").symlink_to(secret)


def _list_outside(folder: Path, secret: Path) -> None:
    run = json.loads((folder / "run.json").read_text())
    run["files"] += ["../../secrets/secret.npy", str(secret), "figures/../../../secrets/secret.npy"]
    (folder / "run.json").write_text(json.dumps(run))


@pytest.mark.parametrize("tamper", [_link_file, _link_folder, _link_report, _list_outside])
def test_site_copies_only_regular_files_of_the_report(report_dir, tmp_path, capsys, tamper):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    secret = secrets / "secret.npy"
    secret.write_text("password")
    folder = tmp_path / "out" / "tiny_net-build"
    shutil.copytree(report_dir, folder)
    tamper(folder, secret)
    code, _, err = cli(capsys, "report", tmp_path / "out", "--site", tmp_path / "site")
    assert code == 0, err
    docs = tmp_path / "site" / "docs"
    copied = [p for p in docs.rglob("*")]
    assert not [p for p in copied if p.is_symlink()]
    assert not [p for p in copied if p.is_file() and p.read_bytes() == b"password"]
    assert not (tmp_path / "site" / "secrets").exists() and not (docs / "secrets").exists()
    assert (docs / "models" / "tiny_net-build" / "figures" / "stages.png").is_file()  # the rest is there


@pytest.mark.parametrize(
    "name,text",
    [
        ("run.json", "[1, 2]"),
        ("run.json", '"a string"'),
        ("run.json", '{"model": 5}'),
        ("run.json", '{"input_size": "16x16"}'),
        ("run.json", "{not json"),
        ("metrics.json", "[]"),
        ("metrics.json", '{"layers": [1]}'),
        ("metrics.json", '{"layers": {"2": 5}}'),
        ("metrics.json", '{"layers": {"2": {"layer": 2}}}'),
    ],
)
def test_a_report_with_json_of_the_wrong_type_is_skipped_with_one_warning(report_dir, tmp_path, capsys, name, text):
    shutil.copytree(report_dir, tmp_path / "out" / "good")
    shutil.copytree(report_dir, tmp_path / "out" / "bad")
    (tmp_path / "out" / "bad" / name).write_text(text)
    code, _, err = cli(capsys, "report", tmp_path / "out", "--site", tmp_path / "site")
    assert code == 0, err
    warns = err.strip().splitlines()
    assert len(warns) == 1 and warns[0].startswith("warning: skipped ") and str(tmp_path / "out" / "bad") in warns[0]
    assert name in warns[0]
    models = tmp_path / "site" / "docs" / "models"
    assert sorted(p.name for p in models.iterdir()) == ["good"]


# ---------------------------------------------------------------------------------------------------------
# one clear line


@pytest.mark.parametrize(
    "resolution,exc",
    [
        (0, "InputTooSmallError"),
        (-4, "InputTooSmallError"),
        ((16, 0), "InputTooSmallError"),
        (16.5, "InputSizeError"),
        ("16", "InputSizeError"),
        (True, "InputSizeError"),
        ((16, 16, 16), "InputSizeError"),
    ],
)
def test_analyze_rejects_a_bad_resolution_before_measuring(tmp_path, no_measurement, resolution, exc):
    import torch.nn as nn

    with pytest.raises(RFKitError) as e:
        rfkit.analyze(
            nn.Conv2d(3, 2, 3),
            images="noise",
            num_images=1,
            input_size=(16, 16),
            resolution=resolution,
            device="cpu",
            out=tmp_path / "out",
        )
    assert type(e.value).__name__ == exc
    assert "\n" not in str(e.value) and "resolution" in str(e.value)


def test_analyze_rejects_a_resolution_with_the_wrong_number_of_axes(tmp_path):
    import torch.nn as nn

    with pytest.raises(RFKitError, match=r"resolution \(16, 16, 16\) has 3 axes; the graph has 2"):
        rfkit.analyze(
            nn.Conv2d(3, 2, 3),
            images="noise",
            num_images=1,
            input_size=16,
            resolution=(16, 16, 16),
            device="cpu",
            out=tmp_path / "out",
        )
    assert not [p for p in (tmp_path / "out").iterdir()]  # nothing written


def test_cli_resolution_zero_is_one_line_and_exit_1(tiny, capsys, no_measurement):
    code, _, err = cli(capsys, "analyze", tiny, *ARGS, "--resolution", "0", "--out", "out", "--stop-on-error")
    assert code == 1
    one_error_line(err, "resolution", "positive")


# ---------------------------------------------------------------------------------------------------------
# nothing silent


@pytest.fixture
def offline(monkeypatch):
    import rfkit.models.weights as wts

    monkeypatch.setattr(wts, "_unreachable", lambda url, timeout=None: "cannot reach huggingface.co (test)")


@pytest.mark.parametrize("command", ["analyze", "erf"])
def test_random_weights_fallback_warns_once_on_stderr_with_quiet(tmp_path, capsys, offline, command):
    out = tmp_path / "out"
    code, stdout, err = cli(
        capsys,
        command,
        "test_resnet",
        "--images",
        "noise",
        "-n",
        "1",
        "--input-size",
        "32",
        "--device",
        "cpu",
        "-q",
        "--out",
        out,
    )
    assert code == 0, err
    fallback = [line for line in err.splitlines() if "unavailable" in line]
    assert len(fallback) == 1 and fallback[0].startswith("warning: pretrained weights for test_resnet unavailable")
    assert "random-safe" in fallback[0] and "unavailable" not in stdout
    assert len(set(err.splitlines())) == len(err.splitlines())  # each warning once


@pytest.mark.parametrize("command", ["analyze", "erf"])
def test_every_result_warning_is_printed_once_with_quiet(tiny, tmp_path, capsys, command):
    from PIL import Image

    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(images / name)
    (images / "a_broken.jpg").write_bytes(b"not a jpeg")  # read between a.png and b.png
    args = [a if a != "noise" else str(images) for a in ARGS]
    code, _, err = cli(capsys, command, tiny, *args, "--out", tmp_path / "out")
    assert code == 0, err
    warned = [x for x in err.strip().splitlines() if x.startswith("warning: ")]
    assert len([x for x in warned if "unreadable image file(s) skipped" in x and "a_broken.jpg" in x]) == 1
    assert len(set(warned)) == len(warned)
    others = " ".join(x for x in err.strip().splitlines() if not x.startswith("warning: "))
    assert "unreadable" not in others and "dot" not in others  # each warning whole on its one line
    assert others.startswith(f"done {tiny}") if command == "analyze" else others == ""


def test_a_model_whose_folder_cannot_be_named_fails_alone_in_a_batch(tiny, tmp_path, capsys):
    os.symlink(tmp_path / "loop", tmp_path / "loop")  # resolving loop/net.py never ends
    code, out, err = cli(capsys, "analyze", "loop/net.py:build", "tiny_net.py:build", *ARGS, "--out", "out")
    assert code == 1
    assert "failed loop/net.py:build: cannot resolve the model file loop/net.py" in err
    assert "done tiny_net.py:build" in err and (tmp_path / "out" / "tiny_net-build" / "run.json").is_file()
    assert "Traceback" not in err and "internal error" not in err
