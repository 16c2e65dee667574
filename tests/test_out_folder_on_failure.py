"""A failed ``rfkit erf`` / ``rfkit attribute`` run leaves no empty ``--out`` folder behind (issue 19): the folders
the run created are removed when it fails before writing, and a folder that existed before is kept."""

from __future__ import annotations

import pytest

from rfkit_cli.app import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NET = (
    "import torch.nn as nn\n\n\ndef build():\n"
    "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))\n"
)
ARGS = {
    "erf": ["--images", "noise", "-n", "1", "--input-size", "16", "-q"],
    "attribute": ["--images", "noise", "-n", "1", "--input-size", "16", "-q"],
}


def _run(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize("command", list(ARGS))
def test_a_failed_run_removes_the_folders_it_created(command, tmp_path, capsys):
    (tmp_path / "net.py").write_text(NET)
    out = tmp_path / "new" / "out"
    code, err = _run(capsys, command, f"{tmp_path / 'net.py'}:build", *ARGS[command], "-o", out)  # no --trust
    assert code == 1 and "Python code" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.py"]  # neither new/ nor new/out/ is left


@pytest.mark.parametrize("command", list(ARGS))
def test_a_failed_run_keeps_a_folder_that_existed(command, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    code, err = _run(capsys, command, "no_such_model_xyz", *ARGS[command], "-o", out)
    assert code == 1 and "unknown model" in err
    assert out.is_dir() and not any(out.iterdir())


@pytest.mark.parametrize("command", list(ARGS))
def test_a_successful_run_writes_its_folder(command, tmp_path, capsys):
    (tmp_path / "net.py").write_text(NET)
    out = tmp_path / "new" / "out"
    code, err = _run(capsys, command, f"{tmp_path / 'net.py'}:build", "--trust", *ARGS[command], "-o", out)
    assert code in (0, None), err
    assert (out / ("erf.csv" if command == "erf" else "attribution.csv")).is_file()
