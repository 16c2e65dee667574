"""No code from a YOLO yaml (issue 19): ultralytics ``eval()``s a yaml's ``activation:`` and looks its layer
names and string arguments up among its own globals and locals, so a yaml rfkit did not ship is built only
within torch.nn activations, ultralytics layers and literal arguments, unless the user trusts the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch.nn as nn

import rfkit
from rfkit.errors import CheckpointError, UntrustedFileError
from rfkit.models.spec import build_model
from rfkit.models.ultralytics import kept_global_state

with kept_global_state():
    ul = pytest.importorskip("ultralytics")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

BUNDLED = Path(ul.__file__).parent / "cfg" / "models" / "11" / "yolo11-cls.yaml"


def _yaml(path: Path, activation: str, text: str | None = None) -> Path:
    """A small classifier yaml (or ``text``) with ``activation`` as its activation line."""
    body = text or (
        "nc: 10\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 1, Conv, [32, 3, 2]]\nhead:\n"
        "  - [-1, 1, Classify, [nc]]\n"
    )
    body = re.sub(r"(?m)^activation:.*\n", "", body)
    path.write_text(f"activation: {activation}\n{body}", encoding="utf-8")
    return path


def _hostile(marker: Path) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).write_text('ran') or nn.SiLU()"


def _cli(args, capsys) -> tuple[int, list[str], str]:
    from rfkit_cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    text = capsys.readouterr()
    return exc.value.code, [ln for ln in text.err.splitlines() if ln.startswith("error:")], text.err


@pytest.mark.parametrize("command", [["graph"], ["erf", "-n", "1", "--images", "noise"]])
def test_a_hostile_activation_runs_nothing_one_line_exit_1(command, tmp_path, capsys):
    marker = tmp_path / "marker"
    spec = f"ultralytics:{_yaml(tmp_path / 'net.yaml', _hostile(marker))}"
    out = ["--out", str(tmp_path / "o")] if command[0] == "erf" else []
    code, errors, err = _cli([command[0], spec, *command[1:], *out], capsys)
    assert not marker.exists()
    assert code == 1 and len(errors) == 1, err
    assert "net.yaml" in errors[0] and "activation" in errors[0] and "--trust-checkpoint" in errors[0]
    assert "Traceback" not in err


def test_with_trust_checkpoint_the_yaml_is_built_as_ultralytics_would(tmp_path, capsys):
    spec = f"ultralytics:{_yaml(tmp_path / 'net.yaml', 'nn.ReLU() if 1 else nn.SiLU()')}"
    with pytest.raises(UntrustedFileError):
        rfkit.trace(spec, 64)
    from rfkit_cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(["graph", spec, "--input-size", "64", "-q", "--trust-checkpoint"])
    assert exc.value.code == 0 and "net.yaml: 15 nodes at input 64×64" in capsys.readouterr().out
    model = build_model(spec, device="cpu", trust=True)
    acts = {type(m.act) for m in model.modules() if hasattr(m, "act")}
    assert acts == {nn.ReLU}  # the expression was evaluated: ReLU, not ultralytics' default SiLU


def test_a_plain_user_yaml_is_built_without_the_flag(tmp_path):
    spec = f"ultralytics:{_yaml(tmp_path / 'net.yaml', 'torch.nn.LeakyReLU(0.1)')}"
    g = rfkit.trace(spec, 64)
    assert g["model.1.conv"].size == (7, 7)  # 3x3 s2, 3x3 s2: 3 + 2 * 2
    model = build_model(spec, device="cpu")
    assert {type(m.act) for m in model.modules() if hasattr(m, "act")} == {nn.LeakyReLU}


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("[-1, 1, check_requirements, ['left-pad']]", "module 'check_requirements' is not a torch.nn or"),
        ("[-1, 1, os.system, ['true']]", "module 'os.system'"),
        ("[-1, 1, TorchVision, [16, resnet18, DEFAULT]]", "TorchVision downloads weights"),
        ("[-1, 1, Conv, [16, 3, 2, d]]", "argument 'd' of Conv names a variable"),
        ("[-1, 1, nn.Upsample, [None, 2, nearest]]", None),
    ],
)
def test_every_field_ultralytics_looks_up_is_checked(row, words, tmp_path):
    text = f"nc: 10\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\n  - {row}\nhead:\n  - [-1, 1, Classify, [nc]]\n"
    spec = f"ultralytics:{_yaml(tmp_path / 'net.yaml', 'nn.SiLU()', text)}"
    if words is None:  # a torch.nn layer with plain string arguments is fine
        assert rfkit.trace(spec, 32)["model.1"].stride == (1, 1)
        return
    with pytest.raises(UntrustedFileError, match=re.escape(words)) as e:
        rfkit.trace(spec, 32)
    assert isinstance(e.value, CheckpointError) and "\n" not in str(e.value)


def test_a_modified_copy_of_a_bundled_yaml_under_its_name_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    _yaml(tmp_path / "yolo11n-cls.yaml", _hostile(marker), BUNDLED.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)  # the file, not the bundled name, is what ultralytics:yolo11n-cls.yaml means here
    with pytest.raises(UntrustedFileError, match="yolo11n-cls.yaml .* is not a yaml ultralytics ships"):
        rfkit.trace("ultralytics:yolo11n-cls.yaml", 64)
    assert not marker.exists()


def test_a_look_alike_of_the_unscaled_name_in_the_working_directory_is_not_read(tmp_path, monkeypatch):
    """ultralytics itself would read ./yolo11-cls.yaml for yolo11n-cls.yaml: rfkit reads the bundled file."""
    marker = tmp_path / "marker"
    _yaml(tmp_path / "yolo11-cls.yaml", _hostile(marker), BUNDLED.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    g = rfkit.trace("ultralytics:yolo11n-cls.yaml", 64)
    assert not marker.exists() and g["model.0"].size == (3, 3)


def test_bundled_means_inside_the_package_with_the_recorded_hash(tmp_path):
    from rfkit.models.ultralytics import is_bundled

    data = BUNDLED.read_bytes()
    copy = tmp_path / BUNDLED.name
    copy.write_bytes(data)
    assert is_bundled(BUNDLED, data)
    assert not is_bundled(copy, data)  # same bytes, elsewhere
    assert not is_bundled(BUNDLED, data + b"\n")  # the package's path, other bytes (an edited install)


def test_bundled_names_build_as_ultralytics_builds_them():
    """rfkit builds from the checked dict; ultralytics' own YOLO(name) gives the same layers and parameters."""
    for name in ("yolo11s.yaml", "yolov10n.yaml"):
        ours = build_model(f"ultralytics:{name}", device="cpu")
        with kept_global_state():
            theirs = ul.YOLO(name).model
        assert type(ours) is type(theirs), name
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters()), name


def test_every_listed_name_means_a_bundled_file_and_one_of_its_scales():
    import yaml
    from ultralytics.nn.tasks import guess_model_scale

    from rfkit.models.ultralytics import _bundled_index, bundled_yaml_names

    names = bundled_yaml_names()
    assert "yolov10n.yaml" in names and "yolov10nn.yaml" not in names  # v10's files have one scale each
    for name in names:
        path, scale = _bundled_index()[name]
        scales = yaml.safe_load(path.read_text(encoding="utf-8")).get("scales") or {}
        assert (scale in scales) if scales else scale == "", name
        if scale and scale in "nslmx" and name.startswith("yolo"):
            assert guess_model_scale(name) == scale, name  # the letter ultralytics reads from the name
