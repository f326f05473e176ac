"""The README's Python API example runs as it is and prints what the README shows (every
```python block of its "Python API" section, each followed by a ```text block of its output)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _examples() -> list[tuple[str, str]]:
    """``(code, the output shown after it)`` for every Python block of the section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```\s*\n[^`]*?```text\n(.*?)```", section, flags=re.S)


def test_the_readme_python_examples_run_and_print_what_the_readme_shows(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    examples = _examples()
    text = README.read_text(encoding="utf-8").split("## Python API", 1)[1].split("\n## ", 1)[0]
    assert examples and len(examples) == text.count("```python"), (
        "every Python block of the README's API section needs the output it prints below it"
    )
    for code, shown in examples:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
        printed = capsys.readouterr().out
        assert printed.splitlines() == shown.splitlines(), printed
    assert (tmp_path / "runs" / "api-example" / "model.onnx").is_file()


def test_to_pandas_without_pandas_says_how_to_install_it(monkeypatch):
    import sys

    import numpy as np

    from textclf.errors import TextclfError
    from textclf.predictions import Predictions

    monkeypatch.setitem(sys.modules, "pandas", None)  # as on an install without pandas
    predictions = Predictions(["a.png"], ["red", "gray"], np.array([[0.9, 0.1]]), "classifier")
    try:
        predictions.to_pandas()
    except TextclfError as exc:
        assert "pip install pandas" in str(exc) and "textclf[pandas]" in str(exc)
    else:
        raise AssertionError("to_pandas without pandas must say how to install it")
