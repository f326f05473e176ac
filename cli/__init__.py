"""textclf.cli : the Typer command-line app (installed from the `cli/` folder)."""

if __name__ != "textclf.cli":  # pragma: no cover - packaging guard
    raise ImportError(
        "this folder is the package 'textclf.cli'; install textclf (pip install -e .) "
        "and import it as textclf.cli, not as 'cli'"
    )
