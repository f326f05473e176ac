"""A minimal installed distribution on disk, for plugin tests (importlib.metadata scans
sys.path)."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path


def write_dist(
    root: Path, dist_name: str, module: str, source: str, entry_points: dict[str, dict[str, str]]
) -> None:
    """Write a minimal installed distribution (dist-info + one module) under ``root``."""
    info = root / f"{dist_name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
    lines = []
    for group, eps in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {module}:{attr}" for name, attr in eps.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    (root / f"{module}.py").write_text(textwrap.dedent(source))


@contextlib.contextmanager
def installed_at(root: Path, monkeypatch) -> Iterator[Path]:
    """The distributions under ``root`` installed (on ``sys.path``), ``root`` the working folder
    and textclf's cache inside it, the plugin registry reloaded on entry and on exit."""
    from textclf import registry

    monkeypatch.syspath_prepend(str(root))
    monkeypatch.chdir(root)
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))
    registry.reset()
    try:
        yield root
    finally:
        registry.reset()
