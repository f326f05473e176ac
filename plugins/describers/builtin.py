"""``builtin``: descriptions written by this project for digits, fashion-mnist and cifar10.

They ship as package data (``builtin_descriptions/<dataset>/type{1..4}.json``, the same schema
as ``textclf describe`` writes), one per class and prompt type, so every default works offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from textclf.errors import TextclfError
from textclf.plugin_api import DescriberBase, DescriberPlugin

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin_descriptions"


def builtin_datasets() -> list[str]:
    """Datasets that have built-in descriptions."""
    if not BUILTIN_DIR.is_dir():
        return []
    return sorted(d.name for d in BUILTIN_DIR.iterdir() if d.is_dir() and any(d.glob("*.json")))


def builtin_path(dataset: str, prompt_name: str) -> Optional[Path]:
    """The built-in file for ``(dataset, prompt)``, or None. ``prompt_name`` may be an alias."""
    from textclf.descriptions import safe_name

    name = prompt_name
    if name.isdigit():
        name = f"type{name}"
    path = BUILTIN_DIR / safe_name(dataset) / f"{safe_name(name)}.json"
    return path if path.is_file() else None


class BuiltinDescriber(DescriberBase):
    """Reads the shipped description of a class for the requested prompt type."""

    def __init__(self, dataset: str, class_names: Optional[list[str]] = None, **_options):
        if builtin_path(dataset, "type1") is None:
            raise TextclfError(f"there are no built-in descriptions for dataset '{dataset}'; built-in "
                               f"datasets: {', '.join(builtin_datasets())} (use --describer openai or "
                               f"file:PATH for others)")
        self.dataset = dataset
        self.class_names = class_names
        self._files: dict[str, dict[str, list[str]]] = {}

    def _texts(self, prompt) -> dict[str, list[str]]:
        from textclf.descriptions import load_descriptions

        if prompt.name not in self._files:
            path = builtin_path(self.dataset, prompt.name)
            if path is None:
                raise TextclfError(f"there are no built-in descriptions for prompt '{prompt.name}' "
                                   f"(built-in prompts: type1, type2, type3, type4); use --describer "
                                   f"openai for a custom prompt")
            self._files[prompt.name] = dict(load_descriptions(path, self.class_names).descriptions)
        return self._files[prompt.name]

    def max_samples(self, class_name: str) -> int:
        """One shipped description per class and prompt."""
        return 1

    def describe(self, class_name: str, prompt, sample_index: int = 0) -> str:
        """The shipped description of ``class_name`` for ``prompt``."""
        texts = self._texts(prompt)
        if class_name not in texts:
            raise TextclfError(f"no built-in description of class '{class_name}' for {self.dataset}")
        options = texts[class_name]
        return options[sample_index % len(options)]

    def provenance(self) -> dict:
        """Provenance fields for the output file."""
        return {"describer": "builtin", "label": "builtin"}


def _make(**options) -> BuiltinDescriber:
    return BuiltinDescriber(**options)


PLUGIN = DescriberPlugin("builtin", "descriptions shipped with textclf for digits, fashion-mnist and cifar10 "
                         "(all four prompt types, offline)", _make)
