"""The report folder of a model: its name (:func:`folder_name`), who owns it (:func:`model_id`, kept in
``run.json``), whether it holds a finished analysis (:data:`DONE_MARKER`), whether a new report may replace
it (:func:`check_target`), and the removal of what killed runs left beside it (:func:`remove_stale`).

``run.json`` is written last into a report folder: a folder holding it is a finished analysis. Only a finished
report of the same model is ever replaced: a folder that is not rfkit's, or holds another model's report, is
left alone with an :class:`~rfkit.io.OutputError`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rfkit.errors import ModelNotFoundError
from rfkit.formatting import one_line
from rfkit.io import OutputError, safe_name, short_hash
from rfkit.models.sources import get_source
from rfkit.models.spec import parse_spec
from rfkit.report.transaction import remove_abandoned_folders

#: The file that makes a folder a finished ``rfkit analyze`` report (written last).
DONE_MARKER = "run.json"


def resolved_file(path) -> Path:
    """The absolute, symlink-free path of a model file; a path that cannot be resolved (a symlink loop) is a
    :class:`~rfkit.errors.ModelNotFoundError`."""
    try:
        return Path(path or "").expanduser().resolve()
    except (OSError, RuntimeError) as e:
        raise ModelNotFoundError(f"cannot resolve the model file {path}: {e}") from None


def folder_name(model) -> str:
    """The report folder of a model, unique per model spec and safe as one path component.

    - a timm name: the name (``resnet50.a1_in1k``); ``torchvision:NAME``: ``torchvision-NAME``;
    - ``FILE.py:FACTORY``: ``<file stem>-<factory>`` when the file is in the current folder, else followed by
      ``-`` and 8 hex digits of the SHA-1 of the file's resolved path (:func:`rfkit.io.short_hash`), so that
      ``v1/net.py:build`` and ``v2/net.py:build`` get two folders;
    - a module: its class name.

    Every name goes through :func:`rfkit.io.safe_name`: characters other than ``A-Za-z0-9_.-`` become
    ``-`` and leading dots are dropped, so no name points outside ``--out`` or hides itself.

    >>> folder_name("resnet50.a1_in1k"), folder_name("torchvision:vgg16"), folder_name("my.py:build")
    ('resnet50.a1_in1k', 'torchvision-vgg16', 'my-build')
    >>> from pathlib import Path
    >>> from rfkit.io import short_hash
    >>> folder_name("nets/my.py:build") == "my-build-" + short_hash(str(Path("nets/my.py").resolve()))
    True
    >>> import torch.nn as nn
    >>> folder_name(type("../escaped", (nn.Module,), {})()), folder_name(type(".", (nn.Module,), {})())
    ('escaped', 'model')
    """
    if not isinstance(model, str):
        return safe_name(type(model).__name__)

    spec = parse_spec(model)
    if spec.path is not None:  # a file's model: its stem, and where it lives unless here
        path = resolved_file(spec.path)
        text = f"{path.stem}-{spec.name}"
        if path.parent != Path.cwd().resolve():
            text += f"-{short_hash(str(path))}"
    else:  # SOURCE-NAME, or NAME for the source of bare names (timm)
        text = get_source(spec.source).spec_text(spec).replace(":", "-", 1)
    return safe_name(text)


def model_id(model) -> str:
    """What makes two runs "the same model" (kept in ``run.json`` as ``model_id``): the source and name of
    a spec, the resolved file and factory of a ``FILE.py:FACTORY`` spec, the class (module and qualified
    name) of a module.

    >>> model_id("resnet50"), model_id("timm:resnet50"), model_id("torchvision:vgg16")
    ('timm:resnet50', 'timm:resnet50', 'torchvision:vgg16')
    >>> import torch.nn as nn
    >>> model_id(nn.Conv2d(1, 1, 1))
    'module:torch.nn.modules.conv.Conv2d'
    """
    if not isinstance(model, str):
        cls = type(model)
        return f"module:{cls.__module__}.{cls.__qualname__}"

    spec = parse_spec(model)
    if spec.path is not None:
        return f"{spec.source}:{resolved_file(spec.path)}:{spec.name}"
    return f"{spec.source}:{spec.name}"


def report_owner(folder) -> str | None:
    """The :func:`model_id` of the finished report in ``folder``; None when ``folder`` holds none (no
    ``run.json``, a symlink, or one that is not rfkit's)."""
    path = Path(folder) / DONE_MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    if isinstance(header.get("model_id"), str):
        return header["model_id"]
    return model_id(header["model"]) if isinstance(header.get("model"), str) else None  # before model_id


def is_complete(folder, model=None) -> bool:
    """Whether ``folder`` holds a finished analysis (of ``model``, when given: :func:`model_id` compares)."""
    owner = report_owner(folder)
    return owner is not None and (model is None or owner == model_id(model))


def check_target(folder, model) -> None:
    """Raise :class:`OutputError` unless ``folder`` may receive ``model``'s report: it does not exist, is
    an empty folder, or holds a finished report of the same model (which is then replaced).

    A folder that another process renames while it is being looked at is looked at again.
    """
    folder = Path(folder)
    for _ in range(10):
        try:
            before = os.lstat(folder)
        except FileNotFoundError:
            return
        try:
            return _check_target(folder, model)
        except (OutputError, FileNotFoundError):
            try:
                after = os.lstat(folder)
            except FileNotFoundError:
                continue
            if (after.st_ino, after.st_dev) == (before.st_ino, before.st_dev):
                raise
    raise OutputError(f"{folder} keeps changing (other rfkit runs writing it?); rerun")


def _check_target(folder: Path, model) -> None:
    if folder.is_dir() and not folder.is_symlink():
        if not any(folder.iterdir()):
            return
        owner = report_owner(folder)
        if owner == model_id(model):
            return
        if owner is not None:
            raise OutputError(
                f"{folder} holds the report of another model ({one_line(owner, 200)}); rfkit does not "
                "replace it: choose another --out, or move that folder away"
            )
    raise OutputError(
        f"{folder} exists and is not an rfkit report (no {DONE_MARKER}); rfkit does not replace it: "
        "choose another --out, or move it away"
    )


def remove_stale(out) -> list[Path]:
    """Remove the temporary folders that killed runs left in ``out`` and return them: a report being
    written (``.<name>.partial-<PID>-…``, holding rfkit's ``.rfkit-partial`` marker) or an old report
    moved aside (``.<name>.old-<PID>-…``, holding ``run.json``), only when process PID is no longer running
    on this machine (:func:`rfkit.report.transaction.remove_abandoned_folders`). Nothing else is touched."""
    return remove_abandoned_folders(out, lambda folder: report_owner(folder) is not None)
