"""textclf.exports (installed from the `exports/` folder)."""

if __name__ != "textclf.exports":  # pragma: no cover - packaging guard
    raise ImportError(
        "this folder is the package 'textclf.exports'; install textclf (pip install -e .) "
        "and import it as textclf.exports, not as 'exports'"
    )
