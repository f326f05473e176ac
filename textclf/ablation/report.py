"""How a grid's rows become its summary: against the no-text control, or (a zero-shot grid)
against classname and chance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from textclf.ablation import zero_shot
from textclf.ablation.summary import markdown, summarize


@dataclass(frozen=True)
class GridReport:
    """How a grid is summarised: against no-text (default); for a zero-shot grid, against the
    classname control and ``zero_shot_chance``; for the paper audit, step by step along
    ``audit`` (:class:`textclf.ablation.audit.Step`). ``notes`` are lines for summary.md (a
    control or step left out, and why)."""

    zero_shot_chance: Optional[float] = None
    notes: tuple[str, ...] = ()
    audit: tuple = ()

    @property
    def compares_no_text(self) -> bool:
        """Whether every cell is paired against the no-text control (added when missing)."""
        return self.zero_shot_chance is None and not self.audit

    @property
    def figure(self) -> Optional[str]:
        """The grid's figure: forest.png, waterfall.png, or none (zero-shot grids)."""
        return "waterfall" if self.audit else "forest" if self.compares_no_text else None

    def before_start(self, configs: dict) -> list[str]:
        """Lines to say before the first cell trains: the estimated cost of every cell that
        streams images (the paper audit's BatchNorm-in-train-mode cells)."""
        if not self.audit:
            return []
        from textclf.ablation.stream_cost import stream_cost_lines

        return stream_cost_lines(configs)

    def summary(self, rows: list[dict], cells: list) -> tuple[dict, str]:
        """``(summary, summary.md text)`` of a grid's rows."""
        if self.audit:
            from textclf.ablation import audit_report

            summary = audit_report.audit_summary(rows, self.audit)
            summary["notes"] = list(self.notes)
            return summary, audit_report.markdown(summary, self.notes)
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
