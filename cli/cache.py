"""``textclf cache``: ``ls`` (entries, sizes, what made them), ``prune`` and ``clear`` the
feature cache."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.cli._common import console, err_console, handle_errors, print_json
from textclf.cli._help import TextclfTyper
from textclf.cli._options import library_option
from textclf.cli._tables import Column, fitted_table
from textclf.data import cache_admin
from textclf.data.cache_admin import clear as do_clear
from textclf.data.cache_admin import human_age, scan
from textclf.data.cache_admin import prune as do_prune
from textclf.errors import TextclfError
from textclf.runtime.memory import human_bytes

KEY_CHARS = 8  # of an entry's key, as git shortens a hash (--json gives it whole)

app = TextclfTyper(
    help="See and clean the image-feature cache ($TEXTCLF_CACHE, default ~/.cache/textclf).\n\n"
    "Example: textclf cache ls && textclf cache prune --older-than 30",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _root(function):
    """``--cache-dir``, the ``root`` of the library's ``function``."""
    return library_option(
        function,
        "root",
        "--cache-dir",
        help="Cache folder.",
        note="$TEXTCLF_CACHE or ~/.cache/textclf",
    )


@app.command(
    "ls",
    help="List the cached feature arrays: size, age, state, and the backbone, dataset and "
    "split that made each.\n\nExample: textclf cache ls --json",
)
@handle_errors
def ls(
    root: Optional[Path] = _root(cache_admin.scan),
    verify: bool = library_option(
        cache_admin.scan,
        "verify",
        "--verify",
        help="Also check every array's checksum (reads them all).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the entries as JSON."),
) -> None:
    """List cache entries."""
    import time

    from rich.markup import escape

    found = scan(root, verify=verify)
    if json_out:
        print_json(
            {
                "root": str(found.root),
                "bytes": found.bytes,
                "entries": [e.to_dict() for e in found.entries],
                "foreign_files": [str(p) for p in found.foreign],
                "datasets_bytes": found.datasets_bytes,
                "temp_files": [t.to_dict() for t in found.temps],
            }
        )
        return
    now = time.time()
    from rich import box

    console.print(f"feature cache: {escape(str(found.root / 'features'))}", highlight=False)
    # Nothing cut or split at 80 columns: what made an entry wraps at its spaces, over two or
    # three lines; the figures and the state stay whole (cli/_tables.py).
    rows = []
    for e in found.entries:
        where = f"{e.info.get('dataset') or '?'} / {e.info.get('split') or '?'}" if e.info else "?"
        backbone = e.info.get("backbone") or "?"
        if e.info.get("image_size"):
            backbone += f" @{e.info['image_size']}px"
        if e.info.get("runtime", "torch-cpu") != "torch-cpu":
            backbone += f" ({e.info['runtime']})"
        state = "ok" if e.status == "ok" else e.status  # the problem itself: under the table
        rows.append(
            [
                e.key[:KEY_CHARS],
                f"{backbone}\n{where}",
                str(e.info.get("images") or "-"),
                human_bytes(e.bytes),
                human_age(now - e.modified),
                state,
            ]
        )
    columns = [
        Column("key", "number"),
        Column("backbone / data", "name", separators=" :", fallback="@-"),
        *(Column(h, "number", justify="right") for h in ("images", "size", "age")),
        Column("state", "number"),
    ]
    table = fitted_table("", columns, rows, console.width, box=box.SIMPLE_HEAD, pad_edge=False)
    console.print(table)
    for e in found.entries:
        if e.status != "ok" and e.problem:
            console.print(
                f"{e.key[:KEY_CHARS]}: {e.status}: {e.problem}", highlight=False, markup=False
            )
    bad = sum(e.status != "ok" for e in found.entries)
    console.print(
        f"{len(found.entries)} entries, {human_bytes(found.bytes)}"
        + (f"; {bad} damaged or unfinished (textclf cache prune removes them)" if bad else ""),
        highlight=False,
    )
    if found.datasets_bytes:
        console.print(
            f"downloaded datasets: {human_bytes(found.datasets_bytes)} in "
            f"{found.root / 'datasets'} "
            f"(not touched by prune or clear)",
            highlight=False,
            markup=False,
        )
    if found.foreign:
        console.print(
            f"{len(found.foreign)} other files in the folder are not textclf's and are left alone",
            highlight=False,
        )
    if found.temps:
        stale = [t for t in found.temps if t.stale]
        console.print(
            f"{len(found.temps)} temp files of interrupted writes "
            f"({human_bytes(sum(t.bytes for t in found.temps))}), {len(stale)} of them over an "
            "hour old (textclf cache prune removes those): "
            + ", ".join(str(t.path.relative_to(found.root)) for t in found.temps[:3])
            + (" ..." if len(found.temps) > 3 else ""),
            highlight=False,
            markup=False,
        )


def _report(result, verb: str, json_out: bool) -> None:
    from rich.markup import escape

    if json_out:
        print_json(result.to_dict())
        return
    action = "would remove" if result.dry_run else verb
    console.print(
        f"{action} {len(result.removed)} entries ({human_bytes(result.bytes)})", highlight=False
    )
    for e in result.removed:
        what = (
            f"{e.info.get('backbone')} {e.info.get('dataset')}/{e.info.get('split')}"
            if e.info
            else e.status
        )
        console.print(
            f"  {e.key[:KEY_CHARS]}  {escape(what)}  {human_bytes(e.bytes)}"
            + (f"  ({escape(e.problem)})" if e.problem else ""),
            highlight=False,
        )
    for e, why in result.skipped:
        err_console.print(f"[yellow]skipped[/] {e.key[:KEY_CHARS]}: {escape(why)}", highlight=False)
    if result.temps:
        console.print(
            f"{'would remove' if result.dry_run else 'removed'} {len(result.temps)} temp files "
            f"of interrupted writes ({human_bytes(sum(t.bytes for t in result.temps))})",
            highlight=False,
        )
    if result.foreign:
        console.print(f"kept {len(result.foreign)} files that are not textclf's", highlight=False)


@app.command(
    "prune",
    help="Remove damaged, orphaned and unfinished entries, and with --older-than also "
    "entries filled more than DAYS ago.\n\nExample: textclf cache prune --older-than 30 "
    "--dry-run",
)
@handle_errors
def prune(
    older_than_days: Optional[float] = library_option(
        cache_admin.prune,
        "older_than_days",
        "--older-than",
        metavar="DAYS",
        help="Also remove entries filled more than DAYS days ago.",
        note="keep every valid entry",
    ),
    dry_run: bool = library_option(
        cache_admin.prune, "dry_run", "--dry-run", help="Only list what would be removed."
    ),
    verify: bool = library_option(
        cache_admin.prune,
        "verify",
        "--verify",
        help="Find damage by checksum too (reads every array).",
    ),
    root: Optional[Path] = _root(cache_admin.prune),
    json_out: bool = typer.Option(False, "--json", help="Print what was removed as JSON."),
) -> None:
    """Prune the cache."""

    _report(
        do_prune(root, older_than_days=older_than_days, dry_run=dry_run, verify=verify),
        "removed",
        json_out,
    )


@app.command(
    "clear",
    help="Remove every cached feature array (textclf's own files only; downloaded "
    "datasets are kept). Asks first unless --yes.\n\nExample: textclf cache clear --yes",
)
@handle_errors
def clear(
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    dry_run: bool = library_option(
        cache_admin.clear, "dry_run", "--dry-run", help="Only list what would be removed."
    ),
    root: Optional[Path] = _root(cache_admin.clear),
    json_out: bool = typer.Option(False, "--json", help="Print what was removed as JSON."),
) -> None:
    """Clear the cache."""

    if not yes and not dry_run:
        found = scan(root)
        if not found.entries and not any(t.stale for t in found.temps):
            console.print(
                f"the cache at {found.root / 'features'} is empty", highlight=False, markup=False
            )
            return
        try:
            ok = typer.confirm(
                f"Remove {len(found.entries)} cache entries ({human_bytes(found.bytes)}) "
                f"from {found.root / 'features'}?",
                default=False,
                err=True,
            )
        except typer.Abort:  # no answer at all (stdin closed)
            raise TextclfError(
                "textclf cache clear needs a confirmation; answer y, or pass --yes"
            ) from None
        if not ok:
            err_console.print("nothing removed", highlight=False)
            return
    _report(do_clear(root, dry_run=dry_run), "removed", json_out)
