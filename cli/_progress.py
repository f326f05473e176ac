"""How long work shows up on stderr: Rich bars on a terminal, plain log lines when piped.

Implementations of :class:`textclf.runtime.progress.Reporter`:

- :class:`RichReporter`: bars that keep count, rate, ETA and the loss and validation accuracy at 80
  columns (the description is cut first);
- :class:`LogReporter`: when stderr is not a terminal (CI logs, ``2> log``), one line per epoch
  (``epoch 3/15 loss=0.136 val_acc=0.934 lr=2.9e-3 1.2s``) and a line every ~10% of other work;
- :class:`QuietReporter`: ``textclf -q`` (errors and the final result only) and ``--json`` bars.

``textclf -q`` / ``-v`` set the verbosity for the whole process (:func:`set_verbosity`).
"""

from __future__ import annotations

import functools
import math
import sys
import time

from textclf.cli._common import clear_status, err_console, status_shown

_state = {"verbosity": 0}  # -1 quiet, 0 normal, 1 verbose

# What one step of a task counts, for rates ("img/s"); tasks not listed count "it".
UNITS = {
    "features": "img",
    "read": "img",
    "predict": "img",
    "onnx": "img",
    "parity": "img",
    "epochs": "epoch",
    "cells": "cell",
    "describe": "desc",
    "bench": "round",
    "int8": "step",
}


def unit(task: str) -> str:
    """What one step of a task counts: ``parity-onnx`` counts images as ``parity`` does."""
    return UNITS.get(task) or UNITS.get(task.split("-")[0], "it")


# Live figures get short names in log lines and on bars.
FIELD_NAMES = {"val_accuracy": "val_acc"}
BAR_FIELDS = ("loss", "val_accuracy")  # the live figures a bar shows (log lines show them all)


def set_verbosity(quiet: bool = False, verbose: bool = False) -> None:
    """``-q``: errors and the final result only; ``-v``: per-epoch lines on a terminal too."""
    _state["verbosity"] = -1 if quiet else (1 if verbose else 0)


def is_quiet() -> bool:
    """Whether ``textclf -q`` was given."""
    return _state["verbosity"] < 0


def is_verbose() -> bool:
    """Whether ``textclf -v`` was given."""
    return _state["verbosity"] > 0


def note(text: str, label: str = "note", style: str = "cyan") -> None:
    """A one-line note on stderr (``note: ...``), unless ``-q``."""
    if is_quiet():
        return
    from rich.markup import escape

    err_console.print(f"[{style}]{label}:[/] {escape(text)}", highlight=False, soft_wrap=True)


def format_value(name: str, value) -> str:
    """A live figure as a log line shows it: ``loss=0.136``, ``lr=2.9e-3``, ``1.2s``."""
    if name == "seconds":
        return f"{value:.1f}s"
    label = FIELD_NAMES.get(name, name)
    if isinstance(value, float):
        if math.isnan(value):
            text = "nan"
        elif value == 0:
            text = "0"
        elif name == "lr" or (value != 0 and abs(value) < 1e-3):
            mantissa, exp = f"{value:.1e}".split("e")
            text = f"{mantissa}e{int(exp)}"
        else:
            text = f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    else:
        text = str(value)
    return f"{label}={text}"


def format_fields(fields: dict) -> str:
    """All live figures, ``seconds`` last."""
    items = [format_value(k, v) for k, v in fields.items() if k != "seconds" and v is not None]
    if fields.get("seconds") is not None:
        items.append(format_value("seconds", fields["seconds"]))
    return " ".join(items)


def _clock(seconds) -> str:
    if seconds is None or seconds != seconds or seconds == math.inf:
        return "-:--"
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _rate(per_second, unit: str) -> str:
    if not per_second:
        return f"- {unit}/s"
    if per_second < 1:
        return f"{1 / per_second:.1f}s/{unit}"
    digits = 0 if per_second >= 100 else 1
    return f"{per_second:.{digits}f} {unit}/s"


@functools.cache
def _columns() -> tuple:
    """The bar's columns (Rich's progress module loads only when a bar is drawn: a command that
    draws none, such as predict on a few images, starts without it)."""
    from rich.progress import ProgressColumn
    from rich.table import Column
    from rich.text import Text

    class _Description(ProgressColumn):
        """The task's description: the first thing cut (with an ellipsis) when narrow."""

        def render(self, task):
            return Text(task.description, style="bold", no_wrap=True, overflow="ellipsis")

        def get_table_column(self):
            return Column(no_wrap=False, overflow="ellipsis", min_width=8)

    class _Rate(ProgressColumn):
        """``180 img/s``, or ``1.2s/epoch`` for slow steps."""

        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text(_rate(speed, task.fields.get("unit", "it")), style="progress.data.speed")

        def get_table_column(self):
            return Column(no_wrap=True)

    class _Times(ProgressColumn):
        """Elapsed time and ETA (``0:07 eta 0:27``); the elapsed time alone once finished."""

        def render(self, task):
            elapsed = task.finished_time if task.finished else task.elapsed
            if task.finished or task.total is None:
                return Text(_clock(elapsed), style="progress.elapsed")
            return Text(
                f"{_clock(elapsed)} eta {_clock(task.time_remaining)}", style="progress.remaining"
            )

        def get_table_column(self):
            return Column(no_wrap=True)

    class _Info(ProgressColumn):
        """The live figures a bar keeps (the loss and the validation accuracy): never cut; the
        description is."""

        def render(self, task):
            return Text(task.fields.get("info", ""), style="dim", no_wrap=True)

        def get_table_column(self):
            return Column(no_wrap=True)

    return _Description, _Rate, _Times, _Info


class RichReporter:
    """Progress bars on stderr (stdout stays clean for --json and tables)."""

    def __init__(
        self, enabled: bool = True, verbose: bool = False, transient_on_error: bool = False
    ):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress
        from rich.table import Column

        _Description, _Rate, _Times, _Info = _columns()
        width = err_console.width
        self.transient_on_error = transient_on_error
        self.progress = Progress(
            _Description(),
            BarColumn(bar_width=max(8, min(30, width // 8))),
            MofNCompleteColumn(table_column=Column(no_wrap=True)),
            _Rate(),
            _Times(),
            _Info(),
            console=err_console,
            disable=not enabled,
            transient=False,
        )
        self.tasks: dict[str, int] = {}
        self._lines = None
        if verbose:  # -v: each epoch's line is also kept above the bars
            self._lines = LogReporter(err_console)
            self._lines.printer = self.progress.console.print

    def __enter__(self):
        clear_status()
        self.progress.start()
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None and self.transient_on_error:
            self.progress.live.transient = True  # the error line alone, no half-filled bar
        self.progress.stop()

    def task(self, name, total, description):
        """Start a bar."""
        self.tasks[name] = self.progress.add_task(
            description, total=total, info="", unit=unit(name)
        )
        if self._lines is not None:
            self._lines.task(name, total, description)

    def advance(self, name, n=1, **fields):
        """Advance a bar and show its live figures."""
        if name not in self.tasks:
            return
        self.progress.advance(self.tasks[name], n)
        # On the bar: what a line of 80 columns can keep whole; -v lines and history.csv have the
        # rest.
        info = format_fields({k: v for k, v in fields.items() if k in BAR_FIELDS})
        if info:
            self.progress.update(self.tasks[name], info=info)
        if self._lines is not None and name == "epochs":
            self._lines.advance(name, n, **fields)

    def done(self, name):
        """Finish a bar."""
        if name in self.tasks:
            t = self.tasks[name]
            total = self.progress.tasks[t].total
            if total is not None:
                self.progress.update(t, completed=total)

    def message(self, text):
        """Print a note above the bars."""
        from rich.markup import escape

        self.progress.console.print(f"[dim]{escape(text)}[/]", highlight=False)


class LogReporter:
    """Plain lines on stderr for logs: one per epoch, one every ~10% of other work, but no more
    often than every :attr:`MIN_SECONDS` (twelve instant descriptions made ten lines), and a
    closing line that says when nothing had to be computed (a cache hit is no 10,000 img/s)."""

    STEP = 10  # report other tasks every 10 percent
    MIN_SECONDS = 2.0  # ... of at least this much work since the last line

    def __init__(self, console=None):
        self.console = console or err_console
        self.printer = None
        self.tasks: dict[str, dict] = {}
        self.clock = time.perf_counter

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def _print(self, text: str) -> None:
        if self.printer is not None:
            self.printer(text, highlight=False, markup=False, soft_wrap=True)
            return
        # One write per line: lines from parallel workers or a tee never interleave mid-line.
        stream = self.console.file if self.console is not None else sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def task(self, name, total, description):
        """Remember a task; its lines come with its progress."""
        self.tasks[name] = {
            "total": total,
            "description": description,
            "done": 0,
            "next": self.STEP,  # percent
            "start": self.clock(),
            "last": self.clock(),
            "quiet_start": 0,
        }

    def advance(self, name, n=1, **fields):
        """An epoch line, or a line when the task crosses the next 10%."""
        t = self.tasks.get(name)
        if t is None:
            return
        t["done"] += n
        total = t["total"]
        if name == "epochs":
            if fields:  # a resume's catch-up advance carries no figures: not an epoch of this run
                self._print(f"epoch {t['done']}/{total} {format_fields(fields)}".rstrip())
            else:
                t["start"] = self.clock()
                t["quiet_start"] = t["done"]
            return
        if not total:
            return
        fraction = t["done"] / total
        # Integers: no rounding drift
        if t["done"] * 100 >= t["next"] * total and t["done"] < total:
            while t["next"] * total <= t["done"] * 100:
                t["next"] += self.STEP
            if self.clock() - t["last"] < self.MIN_SECONDS:
                return
            t["last"] = self.clock()
            elapsed = self.clock() - t["start"]
            rate = (t["done"] - t["quiet_start"]) / elapsed if elapsed > 0 else 0
            extra = f" {format_fields(fields)}" if fields else ""
            eta = (total - t["done"]) / rate if rate else None
            self._print(
                f"{t['description']}: {fraction:.0%} {t['done']}/{total} "
                f"{_rate(rate, unit(name))} eta {_clock(eta)}{extra}"
            )

    def done(self, name):
        """A closing line for tasks other than epochs (their lines said it all)."""
        t = self.tasks.pop(name, None)
        if t is None or name == "epochs":
            return
        elapsed = self.clock() - t["start"]
        count = t["total"] if t["total"] is not None else t["done"]
        if count and not t["done"]:  # finished without a step: it was there already
            what = "from the cache" if name == "features" else "already done"
            self._print(f"{t['description']}: {what}, nothing computed")
            return
        rate = (count - t["quiet_start"]) / elapsed if elapsed > 0 else 0
        self._print(
            f"{t['description']}: done {count} in {elapsed:.1f}s ({_rate(rate, unit(name))})"
        )

    def message(self, text):
        """A note, as its own line."""
        self._print(text)


class QuietReporter:
    """Shows nothing (``-q``); with ``messages=True`` still prints notes (``--json``)."""

    def __init__(self, messages: bool = False):
        self.messages = messages

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def task(self, name, total, description):
        """Ignored."""

    def advance(self, name, n=1, **fields):
        """Ignored."""

    def done(self, name):
        """Ignored."""

    def message(self, text):
        """Printed only when notes are wanted."""
        if self.messages:
            from rich.markup import escape

            err_console.print(f"[dim]{escape(text)}[/]", highlight=False, soft_wrap=True)


def starting(what: str = "loading models", enabled: bool = True) -> None:
    """Say at once that work has begun (before the seconds of imports and model loading), on a
    terminal:
    a line that the first progress bar, the result or an error replaces (:func:`clear_status`). Logs
    get
    nothing: their first progress line comes with the work, and an error stays the only line."""
    if is_quiet() or not enabled or not stderr_is_terminal():
        return
    err_console.print(f"[dim]{what}...[/]", end="\r", highlight=False)
    status_shown()


def stderr_is_terminal() -> bool:
    """Whether stderr is an interactive terminal (bars) or a pipe/file (log lines)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def reporter(enabled: bool = True, transient_on_error: bool = False):
    """The reporter for this process: bars, log lines, or nothing.

    ``enabled=False`` (a command printing ``--json``) drops bars and lines but keeps notes;
    ``-q`` drops everything. ``transient_on_error``: bars vanish when the work fails.
    """
    if is_quiet():
        return QuietReporter()
    if not enabled:
        return QuietReporter(messages=True)
    if stderr_is_terminal():
        return RichReporter(verbose=is_verbose(), transient_on_error=transient_on_error)
    return LogReporter()
