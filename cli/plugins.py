"""``textclf plugins``: every registered prompt, backbone, describer and dataset."""

from __future__ import annotations

from typing import Optional

import typer

from textclf.cli._common import console, handle_errors, print_json
from textclf.cli._help import choice_parts, default_note

KINDS = ("prompts", "datasets", "backbones", "describers")  # the registry's entry-point groups

HELP = (
    "List every prompt template, backbone, describer and dataset with the package that "
    "provides it. Broken plugins are listed with their error. Backbone families "
    "(timm:<model>[.<tag>], "
    "open-clip:<arch>:<tag>) show how to name a model and the package whose models they are.\n\n"
    "Example: textclf plugins --json"
)


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
                width = (
                    "width of the model"
                    if dim == 0 and getattr(obj, "takes_argument", False)
                    else f"{dim}-d"
                )
                detail = f"{getattr(obj, 'modality', '?')} backbone, {width}"
                if family:
                    detail = f"{getattr(obj, 'modality', '?')} backbone family"
            row = {
                "group": kind,
                "name": entry.name + (":..." if getattr(obj, "takes_argument", False) else ""),
                "kind": detail,
                "package": entry.package,
                "status": entry.status if entry.status != "ok" else "ok",
                "summary": summary,
            }
            if family:  # how to name one model, and the package whose registry the names come from
                row.update(
                    usage=obj.usage,
                    models_from=_package_version(getattr(obj, "models_from", "") or "?"),
                )
            rows.append(row)
    return rows


def _package_version(package: str) -> str:
    """``"timm 1.0.31"``, or ``"timm (not installed)"``; from the package metadata, without
    importing it."""
    from importlib import metadata

    try:
        return f"{package} {metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return f"{package} (not installed)"


@handle_errors
def command(
    kind: Optional[str] = typer.Option(
        None,
        "--kind",
        metavar=choice_parts("--kind", KINDS)[0],
        help="Only this kind of plugin." + choice_parts("--kind", KINDS)[1] + default_note("all"),
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """List plugins."""
    from rich.markup import escape
    from rich.table import Table

    from textclf.errors import unknown_choice

    if kind is not None and kind not in KINDS:
        raise unknown_choice("--kind", kind, KINDS)
    rows = [r for r in collect() if kind is None or r["group"] == kind]
    if json_out:
        print_json(rows)
        return
    width = max((len(r["name"]) for r in rows), default=8)
    for group in KINDS:
        shown = [r for r in rows if r["group"] == group]
        if not shown:
            continue
        # Names stay whole (they are what users type); the description wraps in the width that is
        # left.
        table = Table(
            title=f"{group} ({len(shown)})",
            title_justify="left",
            show_header=False,
            box=None,
            padding=(0, 2, 0, 0),
        )
        table.add_column("name", no_wrap=True, min_width=width, style="bold cyan")
        table.add_column("about", ratio=1, overflow="fold")
        for r in shown:
            about = f"[dim]{escape(r['kind'])}[/]: {escape(r['summary'])}"
            if "usage" in r:
                about += escape(f"; name a model {r['usage']} ({r['models_from']})")
            if r["package"] != "textclf":
                about += escape(f" (from {r['package']})")
            if r["status"] != "ok":
                about += f" [red]{escape(r['status'])}[/]"
            table.add_row(escape(r["name"]), about)
        console.print(table)
        console.print()
