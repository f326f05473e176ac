"""``textclf plugins``: every registered prompt, backbone, describer and dataset."""

from __future__ import annotations

from typing import Optional

import typer

from textclf.cli._common import console, handle_errors, print_json
from textclf.cli._help import choice_parts, default_note
from textclf.errors import unknown_choice
from textclf.plugin_api import Family
from textclf.registry import GROUPS, registry

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

    rows = []
    for kind in GROUPS:
        reg = registry(kind)
        for entry in reg.load_all():
            obj = entry.obj
            family = isinstance(obj, Family)
            row = {
                "group": kind,
                "name": entry.name + (":..." if family else ""),
                "kind": _kind(kind, obj, family),
                "package": entry.package,
                "status": entry.status,
                "summary": str(getattr(obj, "summary", None) or getattr(obj, "text", "") or ""),
            }
            usage = getattr(obj, "usage", None)
            if kind == "backbones" and isinstance(usage, str):
                # How to name one model, and the package whose registry the names come from.
                row.update(
                    usage=usage,
                    models_from=_package_version(getattr(obj, "models_from", "") or "?"),
                )
            rows.append(row)
    return rows


def _kind(kind: str, obj, family: bool) -> str:
    """``prompt``, ``dataset``...; for a backbone its modality and width (or that it is a
    family)."""
    if kind != "backbones" or obj is None:
        return kind[:-1]
    # getattr: a third-party entry point may resolve to something that is no plugin.
    modality = getattr(obj, "modality", "?")
    if family:
        # A family that says how to name a model lists as a family; hf:<model id> has no fixed
        # width, and says so instead of a number.
        if isinstance(getattr(obj, "usage", None), str):
            return f"{modality} backbone family"
        return f"{modality} backbone, width of the model"
    return f"{modality} backbone, {getattr(obj, 'dim', '?')}-d"


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
