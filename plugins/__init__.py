"""textclf.plugins (installed from the `plugins/` folder)."""

if __name__ != "textclf.plugins":  # pragma: no cover - packaging guard
    raise ImportError(
        "this folder is the package 'textclf.plugins'; install textclf (pip install -e .) "
        "and import it as textclf.plugins, not as 'plugins'"
    )
