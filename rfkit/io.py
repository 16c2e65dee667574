"""File output that never leaves a half-written file behind."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rfkit.errors import OutputError


def umask() -> int:
    """The process umask (reading it means setting it, so it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path) -> Iterator[Path]:
    """A temporary path next to ``path`` to write to; renamed onto ``path`` when the block ends without
    error, removed otherwise. A reader never sees a half-written file; the file gets the usual mode
    (``0o666`` less the umask), not the ``0o600`` of :func:`tempfile.mkstemp`. The temporary name carries
    this process's id (:func:`temp_file`), so that :func:`remove_abandoned_files` can remove what a killed
    run left.

    >>> import numpy as np, tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "m.npy"
    >>> with atomic_path(target) as tmp:
    ...     np.save(tmp, np.zeros(3))
    >>> np.load(target).shape
    (3,)
    """
    with atomic_paths([path]) as (tmp,):
        yield tmp


@contextmanager
def atomic_paths(paths) -> Iterator[list[Path]]:
    """:func:`atomic_path` for several files written together (the formats of one figure): every file is
    written to its temporary path first, and only when the block ends without error are they all renamed into
    place, so an interrupted run leaves the earlier set whole instead of a mix of new and old files.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_paths([d / "a.txt", d / "b.txt"]) as tmps:
    ...     _ = [t.write_text("new") for t in tmps]
    >>> sorted(p.name for p in d.iterdir())
    ['a.txt', 'b.txt']
    """
    paths = [Path(p) for p in paths]
    tmps: list[Path] = []
    try:
        for path in paths:
            tmps.append(temp_file(path, path.suffix or ".tmp"))
        yield list(tmps)
        for tmp in tmps:
            os.chmod(tmp, 0o666 & ~umask())
        for tmp, path in zip(tmps, paths):
            _replace(tmp, path)
    except BaseException:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        raise


def temp_file(path, suffix: str = ".tmp") -> Path:
    """A new, empty temporary file beside ``path``, named ``.<name>.tmp-<pid>-<host>-<random><suffix>``:
    hidden, and naming the process (and a hash of the machine) that writes it, so that the next run can tell
    a file a killed run left (:func:`remove_abandoned_files`) from one another run is writing."""
    path = Path(path)
    try:  # the folder (created with its parents) cannot hold one: read-only, /proc, a file in its place
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-{_host()}-", suffix=suffix)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}; choose another output path") from None
    os.close(fd)
    return Path(tmp)


def _host() -> str:
    return short_hash(socket.gethostname())


_TEMP_FILE = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-[a-z0-9_]+(?:\.[A-Za-z0-9]+)?")


def remove_abandoned_files(parent, names) -> list[Path]:
    """Remove the temporary files (:func:`temp_file`) for the files ``names`` in ``parent`` that a killed run
    left: only plain files named so, by a process of this machine that no longer runs. Returns them.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / ".fig.png.tmp-999999999-00000000-abc.png").write_bytes(b"")  # another machine's
    >>> remove_abandoned_files(d, ["fig.png"])
    []
    """
    wanted = set(names)
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP_FILE.fullmatch(p.name)
        if not (m and m["name"] in wanted and m["host"] == _host()):
            continue
        if p.is_file() and not p.is_symlink() and not alive(int(m["pid"])):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _replace(tmp: str, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except OSError as e:  # a folder of that name, a file system refusing the rename
        raise OutputError(f"cannot write {path}: {e.strerror or e}; choose another output path") from None


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and an atomic rename.

    A reader never sees a half-written file. The file gets the usual mode (``0o666`` less the umask),
    not the ``0o600`` of :func:`tempfile.mkstemp`.
    """
    return _atomic_write(path, lambda fd: os.fdopen(fd, "w", encoding=encoding, newline=""), text)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Binary counterpart of :func:`atomic_write_text` (rendered PNG or PDF files)."""
    return _atomic_write(path, lambda fd: os.fdopen(fd, "wb"), data)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (on Windows, always assumed: no safe probe)."""
    if pid == os.getpid() or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process
        return True
    return True


def _atomic_write(path, opener, data) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        with opener(os.open(tmp, os.O_WRONLY | os.O_TRUNC)) as f:
            f.write(data)
    return path


def check_writable(folder, option: str = "--out") -> Path:
    """Create ``folder`` (and its parents) and make sure a file can be written in it; returns it.

    Raises
    ------
    OutputError
        One line naming the folder, the reason and ``option`` to choose another.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".rfkit-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(
            f"cannot write to the output folder {folder}: {e.strerror or e}; choose another with {option}"
        ) from None
    return folder


@contextmanager
def new_folders_removed_on_failure(folder) -> Iterator[None]:
    """If the block fails, remove ``folder`` and those of its parents that did not exist when it began and
    are empty (deepest first): a run that failed before writing leaves no empty ``--out`` folder behind. A
    folder that existed before, or holds anything, stays. ``folder=None``: nothing to watch.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> try:
    ...     with new_folders_removed_on_failure(root / "a" / "b"):
    ...         _ = check_writable(root / "a" / "b")
    ...         raise ValueError("the model could not be built")
    ... except ValueError:
    ...     pass
    >>> sorted(root.iterdir()), root.is_dir()
    ([], True)
    """
    if folder is None:
        yield
        return
    folder = Path(folder).absolute()
    new = [p for p in (folder, *folder.parents) if not os.path.lexists(p)]  # deepest first
    try:
        yield
    except BaseException:
        for path in new:
            try:
                path.rmdir()  # only an empty folder: never what was written into it
            except FileNotFoundError:  # not created after all (only its parent was)
                continue
            except OSError:
                break
        raise


def short_hash(text: str, n: int = 8) -> str:
    """``n`` hex digits of the SHA-1 of ``text``: stable across runs and machines.

    >>> short_hash("/data/v1/net.py")
    '20dcbca2'
    """
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def file_sha256(path) -> str:
    """The SHA-256 of the file ``path``, in hex (read in blocks: a checkpoint of any size).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.bin"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def safe_name(text: str, fallback: str = "model", max_len: int = 100) -> str:
    """``text`` as a single file-name component: runs of characters other than ``A-Za-z0-9_.-`` become
    ``-``, leading and trailing dots and dashes are dropped (no hidden names, no ``.``/``..``), an empty result is
    ``fallback``, and a name longer than ``max_len`` is cut and ends with :func:`short_hash` of ``text``.

    >>> safe_name("torchvision:vgg16"), safe_name("../escaped"), safe_name("."), safe_name("<img src=x>")
    ('torchvision-vgg16', 'escaped', 'model', 'img-src-x')
    >>> len(safe_name("x" * 300))
    100
    """
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip(".-") or fallback
    if len(name) > max_len:
        name = f"{name[: max_len - 9]}-{short_hash(str(text))}"
    return name


def shown_path(path, cwd=None) -> str:
    """How a local file is named in what people read (figures, captions, ``report.md``, sites): relative to
    ``cwd`` (default: where rfkit runs) when it lies inside it, else its file name alone, so that no absolute
    local path (a home folder, a user name) reaches a published figure.

    >>> shown_path("/home/ann/runs/nets/my.py", cwd="/home/ann/runs"), shown_path("/tmp/w/x.pth", cwd="/home/ann")
    ('nets/my.py', 'x.pth')
    >>> shown_path("nets/my.py", cwd="/home/ann/runs")
    'nets/my.py'
    """
    base = Path(os.getcwd() if cwd is None else cwd)
    p = Path(path)
    full = p if p.is_absolute() else base / p
    try:
        return Path(os.path.normpath(full)).relative_to(os.path.normpath(base)).as_posix()
    except ValueError:
        return p.name
