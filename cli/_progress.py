"""A Rich implementation of :class:`textclf.progress.Reporter`."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from textclf.cli._common import err_console


class RichReporter:
    """Progress bars on stderr (stdout stays clean for --json)."""

    def __init__(self, enabled: bool = True):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=err_console, disable=not enabled, transient=False,
        )
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def task(self, name, total, description):
        """Start a bar."""
        self.tasks[name] = self.progress.add_task(description, total=total, info="")

    def advance(self, name, n=1, **fields):
        """Advance a bar and show its live figures."""
        if name not in self.tasks:
            return
        info = "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        self.progress.advance(self.tasks[name], n)
        if info:
            self.progress.update(self.tasks[name], info=info)

    def done(self, name):
        """Finish a bar."""
        if name in self.tasks:
            t = self.tasks[name]
            total = self.progress.tasks[t].total
            if total is not None:
                self.progress.update(t, completed=total)

    def message(self, text):
        """Print a note above the bars."""
        self.progress.console.print(f"[dim]{text}[/]", highlight=False)
