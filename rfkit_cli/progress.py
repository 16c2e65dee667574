"""Progress on stderr: rich's live bars on a terminal, plain lines anywhere else (a CI log, ``nohup``, a pipe),
so that a run of minutes is never silent; nothing with ``--quiet``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import Progress

from rfkit_cli.console import stderr_console

STEP = 0.1
"""A plain-line task prints a line each time it passes another tenth of its total."""


def elapsed(seconds: float) -> str:
    """``12 s``, ``2 min 05 s``.

    >>> elapsed(12.4), elapsed(125)
    ('12 s', '2 min 05 s')
    """
    seconds = int(round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


@dataclass
class _Task:
    description: str
    total: float | None
    visible: bool
    started: float
    completed: float = 0.0
    shown: int = field(default=0)  # tenths of the total already printed


class LineProgress:
    """The part of :class:`rich.progress.Progress` the commands use, printing one plain line per step: a task
    when it starts, each tenth of its total (``resnet50: images 16/32 (50%), 12 s``), and each new
    description (``resnet50: writing the report``)."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic):
        self.console = console
        self._clock = clock
        self._tasks: dict[int, _Task] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Nothing to take down: every line is already printed."""

    def add_task(self, description: str, total: float | None = None, visible: bool = True, **_) -> int:
        task_id = len(self._tasks)
        self._tasks[task_id] = _Task(description, total, visible, self._clock())
        if visible:
            self._print(description + (f": 0/{total:g}" if total else ""))
        return task_id

    def update(self, task_id: int, description: str | None = None, **_) -> None:
        task = self._tasks[task_id]
        if description is not None and description != task.description:
            task.description = description
            if task.visible:
                self._print(f"{description} ({elapsed(self._clock() - task.started)})")

    def advance(self, task_id: int, advance: float = 1) -> None:
        task = self._tasks[task_id]
        task.completed += advance
        if not task.visible or not task.total:
            return
        tenths = min(int(task.completed / task.total / STEP + 1e-9), round(1 / STEP))
        if tenths > task.shown:
            task.shown = tenths
            share = task.completed / task.total
            self._print(
                f"{task.description}: {task.completed:g}/{task.total:g} ({share:.0%}), "
                f"{elapsed(self._clock() - task.started)}"
            )

    def remove_task(self, task_id: int) -> None:
        self._tasks[task_id].visible = False

    def _print(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def progress_display(quiet: bool = False, *columns, console: Console | None = None) -> Progress | LineProgress:
    """Where a command shows its progress: nothing with ``quiet``, rich's bars (with ``columns``) when stderr
    is a terminal, else :class:`LineProgress`."""
    console = console or stderr_console()
    if quiet:
        return Progress(console=console, disable=True)
    if console.is_terminal:
        return Progress(*columns, console=console, transient=True)
    return LineProgress(console)
