"""``textclf plugins``: every registered prompt, backbone, describer and dataset."""

from __future__ import annotations

import typer

from textclf.cli._common import console, handle_errors, print_json

HELP = ("List every prompt template, backbone, describer and dataset with the package that "
        "provides it. Broken plugins are listed with their error.\n\nExample: textclf plugins --json")


def collect() -> list[dict]:
    """Load every plugin group and describe each entry as a row."""
    from textclf.registry import GROUPS, registry

    rows = []
    for kind in GROUPS:
        reg = registry(kind)
        for entry in reg.load_all():
            obj = entry.obj
            summary = str(getattr(obj, "summary", None) or getattr(obj, "text", "") or "")
            detail = kind[:-1]
            if kind == "backbones" and obj is not None:
                # getattr: a third-party entry point may resolve to something that is no plugin.
                detail = f"{getattr(obj, 'modality', '?')} backbone, {getattr(obj, 'dim', '?')}-d"
            rows.append({
                "name": entry.name + (":..." if getattr(obj, "takes_argument", False) else ""),
                "kind": detail,
                "package": entry.package,
                "status": entry.status if entry.status != "ok" else "ok",
                "summary": summary,
            })
    return rows


@handle_errors
def command(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List plugins."""
    from rich.markup import escape
    from rich.table import Table

    rows = collect()
    if json_out:
        print_json(rows)
        return
    table = Table(title="textclf plugins")
    for col in ("name", "kind", "package", "status", "summary"):
        table.add_column(col, overflow="fold")
    for r in rows:
        style = None if r["status"] == "ok" else "red"
        # escape: plugin summaries and error messages are not Rich markup.
        table.add_row(*(escape(r[c]) for c in ("name", "kind", "package", "status", "summary")),
                      style=style)
    console.print(table)
