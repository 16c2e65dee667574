"""Output folders written as one transaction: a reader sees the earlier folder whole, or the new one whole,
never a mix.

The new folder is built beside its final place under a hidden name, ``.<name>.partial-<PID>-…``, holding
rfkit's marker (:data:`rfkit.io.PARTIAL_MARKER`: the process and machine building it), and renamed into place
when complete. A finished folder of rfkit's already there is first moved aside (``.<name>.old-<PID>-…``) and
removed once the new one is in place. An interrupted run (an exception, Ctrl-C) removes its partial folder;
one killed outright (SIGKILL, a power cut) leaves it, and the next run removes it
(:func:`remove_abandoned_folders`): only folders named so, holding rfkit's marker or a finished folder of
rfkit's, of a process of this machine that no longer runs. ``rfkit analyze`` (report folders) and
``rfkit attribute -o`` (maps folders) write this way.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rfkit.io import PARTIAL_MARKER, OutputError, abandoned, alive, make_temp_dir, mark_partial, temp_folders


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
    return them: a folder being built (``.<name>.partial-<PID>-…``) that holds rfkit's marker for process PID
    of this machine, or a finished folder moved aside (``.<name>.old-<PID>-…``; ``finished(path)``: it holds
    rfkit's record of a complete run), when process PID no longer runs. Nothing else is touched."""
    removed = []
    for p, own, kind, pid in temp_folders(parent):
        if name is not None and own != name:
            continue
        if abandoned(p, pid) if kind == "partial" else finished(p) and not alive(pid):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed
