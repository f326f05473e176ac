"""How a grid's rows become its summary: against the no-text control, or (a zero-shot grid)
against classname and chance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from textclf.ablation import zero_shot
from textclf.ablation.summary import markdown, summarize


@dataclass(frozen=True)
class GridReport:
    """How a grid is summarised: against no-text (default) or, for a zero-shot grid, against the
    classname
    control and ``zero_shot_chance``; ``notes`` are lines for summary.md (a control left out, and
    why)."""

    zero_shot_chance: Optional[float] = None
    notes: tuple[str, ...] = ()

    def summary(self, rows: list[dict], cells: list) -> tuple[dict, str]:
        """``(summary, summary.md text)`` of a grid's rows."""
        if self.zero_shot_chance is not None:
            summary = zero_shot.summarize(rows, cells, self.zero_shot_chance)
            text = zero_shot.markdown(summary)
        else:
            summary = summarize(rows, [c.name for c in cells])
            text = markdown(summary)
        if self.notes:
            summary["notes"] = list(self.notes)
            text += "\n" + "\n".join(self.notes) + "\n"
        return summary, text
