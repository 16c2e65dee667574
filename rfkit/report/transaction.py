"""Output folders written as one transaction: a reader sees the earlier folder whole, or the new one whole,
never a mix.

The new folder is built beside its final place under a hidden name, ``.<name>.partial-<PID>-…``, holding
rfkit's marker (:data:`PARTIAL_MARKER`: the process and machine building it), and renamed into place
when complete. A finished folder of rfkit's already there is first moved aside (``.<name>.old-<PID>-…``) and
removed once the new one is in place. An interrupted run (an exception, Ctrl-C) removes its partial folder;
one killed outright (SIGKILL, a power cut) leaves it, and the next run removes it
(:func:`remove_abandoned_folders`): only folders named so, holding rfkit's marker or a finished folder of
rfkit's, of a process of this machine that no longer runs. ``rfkit analyze`` (report folders) and
``rfkit attribute -o`` (maps folders) write this way.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rfkit.io import OutputError, alive, atomic_write_text, umask

#: The file inside a folder rfkit is building that says which process builds it (JSON: pid, host).
PARTIAL_MARKER = ".rfkit-partial"
_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<kind>partial|old)-(?P<pid>\d+)(?:-[A-Za-z0-9_]+)?")


def mark_partial(folder) -> None:
    """Put :data:`PARTIAL_MARKER` in ``folder``: rfkit builds it, in this process, on this machine."""
    atomic_write_text(Path(folder) / PARTIAL_MARKER, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))


def make_temp_dir(parent, prefix: str) -> Path:
    """A new, uniquely named folder in ``parent`` (``prefix`` + random characters) with the usual mode
    (``0o777`` less the umask, not the ``0o700`` of :func:`tempfile.mkdtemp`), to build output in and
    rename into place when complete.
    """
    path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    os.chmod(path, 0o777 & ~umask())
    return path


def abandoned(folder, pid: int) -> bool:
    """Whether ``folder`` holds rfkit's :data:`PARTIAL_MARKER` naming process ``pid`` of this machine, and
    that process no longer runs: a folder a killed run left behind."""
    try:
        mark = json.loads((Path(folder) / PARTIAL_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # not rfkit's
    return (
        isinstance(mark, dict)
        and mark.get("pid") == pid
        and mark.get("host") == socket.gethostname()
        and not alive(pid)
    )


def temp_folders(parent) -> Iterator[tuple[Path, str, str, int]]:
    """``(path, name, kind, pid)`` of each real folder in ``parent`` named like rfkit's temporary folders,
    ``.<name>.partial-<pid>-…`` (being built) or ``.<name>.old-<pid>-…`` (moved aside for its replacement)."""
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return
    for p in entries:
        m = _TEMP.fullmatch(p.name)
        if m and p.is_dir() and not p.is_symlink():
            yield p, m["name"], m["kind"], int(m["pid"])


@contextmanager
def folder_transaction(final, check: Callable[[Path], None]) -> Iterator[Path]:
    """Build the folder ``final`` in a new partial folder beside it (yielded), and rename it into place when
    the block ends without error (:func:`replace_folder`); on any error, Ctrl-C included, remove it and leave
    ``final`` as it was.

    Parameters
    ----------
    final : str or Path
    check : callable
        ``check(final)`` raises :class:`~rfkit.io.OutputError` unless the folder at ``final`` may be replaced
        (asked again at the rename, when something is there).

    Examples
    --------
    >>> import tempfile
    >>> final = Path(tempfile.mkdtemp()) / "out"
    >>> with folder_transaction(final, lambda f: None) as tmp:
    ...     _ = (tmp / "a.txt").write_text("a")
    >>> sorted(p.name for p in final.iterdir())
    ['a.txt']
    """
    final = Path(final)
    tmp = make_temp_dir(final.parent, f".{final.name}.partial-{os.getpid()}-")
    try:
        mark_partial(tmp)
        yield tmp
        (tmp / PARTIAL_MARKER).unlink()
        replace_folder(tmp, final, check)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_folder(tmp: Path, final: Path, check: Callable[[Path], None]) -> None:
    """Rename the finished ``tmp`` folder to ``final``. A folder at ``final`` that ``check`` accepts is moved
    aside and removed; if other processes finish the same folder at the same moment, each rename is atomic and
    the last one wins, none fails. Anything ``check`` refuses is left alone (its :class:`~rfkit.io.OutputError`)."""
    aside: list[Path] = []
    try:
        for _ in range(20):
            try:
                os.rename(tmp, final)
                return
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                    raise
            check(final)
            old = final.with_name(f".{final.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
            try:
                os.rename(final, old)
            except FileNotFoundError:  # another process moved it aside first
                continue
            aside.append(old)
        raise OutputError(f"could not replace {final}: other processes keep replacing it; rerun")
    except BaseException:
        if aside and not os.path.lexists(final):
            os.rename(aside.pop(), final)  # put the previous folder back
        raise
    finally:
        for old in aside:
            shutil.rmtree(old, ignore_errors=True)


def remove_abandoned_folders(parent, finished: Callable[[Path], bool], name: str | None = None) -> list[Path]:
    """Remove the temporary folders (of ``name``, or of any name) that killed runs left in ``parent`` and
    return them: a folder (``.<name>.partial-<PID>-…`` or ``.<name>.old-<PID>-…``) that holds rfkit's marker
    for process PID of this machine, or a finished folder moved aside (``.<name>.old-<PID>-…``;
    ``finished(path)``: it holds rfkit's record of a complete run), when process PID no longer runs. Nothing
    else is touched."""
    removed = []
    for p, own, kind, pid in temp_folders(parent):
        if name is not None and own != name:
            continue
        if abandoned(p, pid) or (kind == "old" and finished(p) and not alive(pid)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed
