"""``textclf plugins``: every registered prompt, backbone, describer and dataset."""

from __future__ import annotations

import typer

from textclf.cli._common import console, handle_errors, print_json

HELP = ("List every prompt template, backbone, describer and dataset with the package that "
        "provides it. Broken plugins are listed with their error. Backbone families (timm:<model>[.<tag>], "
        "open-clip:<arch>:<tag>) show how to name a model and the package whose models they are.\n\n"
        "Example: textclf plugins --json")


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
            family = kind == "backbones" and isinstance(getattr(obj, "usage", None), str)
            if kind == "backbones" and obj is not None:
                # getattr: a third-party entry point may resolve to something that is no plugin.
                dim = getattr(obj, "dim", "?")
                # dim 0: the width depends on the model named in the argument (hf:<model id>).
                width = "width of the model" if dim == 0 and getattr(obj, "takes_argument", False) else f"{dim}-d"
                detail = f"{getattr(obj, 'modality', '?')} backbone, {width}"
                if family:
                    detail = f"{getattr(obj, 'modality', '?')} backbone family"
            row = {
                "name": entry.name + (":..." if getattr(obj, "takes_argument", False) else ""),
                "kind": detail,
                "package": entry.package,
                "status": entry.status if entry.status != "ok" else "ok",
                "summary": summary,
            }
            if family:  # how to name one model, and the package whose registry the names come from
                row.update(usage=obj.usage, models_from=_package_version(getattr(obj, "models_from", "") or "?"))
            rows.append(row)
    return rows


def _package_version(package: str) -> str:
    """``"timm 1.0.31"``, or ``"timm (not installed)"``; from the package metadata, without importing it."""
    from importlib import metadata

    try:
        return f"{package} {metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return f"{package} (not installed)"


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
    # Names stay whole (they are what users type); the summary takes the width that is left.
    table.add_column("name", no_wrap=True, overflow="fold")
    for col in ("kind", "package", "status"):
        table.add_column(col, overflow="fold")
    table.add_column("summary", overflow="fold", ratio=1)
    for r in rows:
        style = None if r["status"] == "ok" else "red"
        summary = r["summary"] + (f"; name a model {r['usage']} ({r['models_from']})" if "usage" in r else "")
        # escape: plugin summaries and error messages are not Rich markup.
        table.add_row(*(escape(r[c]) for c in ("name", "kind", "package", "status")), escape(summary),
                      style=style)
    console.print(table)
