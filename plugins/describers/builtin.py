"""``builtin``: descriptions written by this project for digits, fashion-mnist, cifar10 and the
synthetic test set (so the tiny preset runs every experiment offline).

They ship as package data (``builtin_descriptions/<dataset>/type{1..4}.json``, the same schema
as ``textclf describe`` writes), one per class and prompt type, so every default works offline.
They are found by dataset name, or by class names: a dataset whose classes are exactly those of
a built-in one (an ``imagefolder:`` of CIFAR-10's ten classes) uses that one's descriptions.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from textclf.descriptions.files import load_descriptions
from textclf.errors import TextclfError
from textclf.files.paths import safe_name
from textclf.plugin_api import Describer, DescriberPlugin

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin_descriptions"


def builtin_datasets() -> list[str]:
    """Datasets that have built-in descriptions."""
    if not BUILTIN_DIR.is_dir():
        return []
    return sorted(d.name for d in BUILTIN_DIR.iterdir() if d.is_dir() and any(d.glob("*.json")))


@functools.cache
def _builtin_classes(name: str) -> frozenset:
    try:
        return frozenset(
            json.loads((BUILTIN_DIR / name / "type1.json").read_text(encoding="utf-8"))[
                "class_names"
            ]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return frozenset()


def builtin_dataset_for(class_names: Optional[Sequence[str]]) -> Optional[str]:
    """The built-in dataset whose class names are exactly ``class_names`` (any order), or None."""
    if not class_names:
        return None
    wanted = frozenset(class_names)
    if len(wanted) != len(class_names):
        return None
    for name in builtin_datasets():
        if _builtin_classes(name) == wanted:
            return name
    return None


def builtin_path(
    dataset: str, prompt_name: str, class_names: Optional[Sequence[str]] = None
) -> Optional[Path]:
    """The built-in file for ``(dataset, prompt)``, or None. ``prompt_name`` may be an alias.

    With ``class_names``, a dataset without built-in descriptions of its own uses those of the
    built-in dataset with exactly these classes.
    """

    name = prompt_name
    if name.isdigit():
        name = f"type{name}"
    path = BUILTIN_DIR / safe_name(dataset) / f"{safe_name(name)}.json"
    if path.is_file():
        return path
    same = builtin_dataset_for(class_names)
    if same is not None:
        path = BUILTIN_DIR / same / f"{safe_name(name)}.json"
        return path if path.is_file() else None
    return None


class BuiltinDescriber(Describer):
    """Reads the shipped description of a class for the requested prompt type."""

    def __init__(self, dataset: str, class_names: Optional[list[str]] = None, **_options):
        path = builtin_path(dataset, "type1", class_names)
        if path is None:
            raise TextclfError(
                f"there are no built-in descriptions for dataset '{dataset}' or its class "
                f"names; built-in datasets: {', '.join(builtin_datasets())} (use --describer "
                f"openai or file:PATH for others)"
            )
        self.dataset = dataset
        self.source = path.parent.name  # the built-in set used (another dataset's, by class names)
        self.class_names = class_names
        self._files: dict[str, dict[str, list[str]]] = {}

    def _texts(self, prompt) -> dict[str, list[str]]:

        if prompt.name not in self._files:
            path = builtin_path(self.source, prompt.name)
            if path is None:
                raise TextclfError(
                    f"there are no built-in descriptions for prompt '{prompt.name}' "
                    f"(built-in prompts: type1, type2, type3, type4); use --describer "
                    f"openai for a custom prompt"
                )
            self._files[prompt.name] = dict(load_descriptions(path, self.class_names).descriptions)
        return self._files[prompt.name]

    def max_samples(self, class_name: str) -> int:
        """One shipped description per class and prompt."""
        return 1

    def describe(self, class_name: str, prompt, sample_index: int = 0) -> str:
        """The shipped description of ``class_name`` for ``prompt``."""
        texts = self._texts(prompt)
        if class_name not in texts:
            raise TextclfError(f"no built-in description of class '{class_name}' for {self.source}")
        options = texts[class_name]
        return options[sample_index % len(options)]

    def provenance(self) -> dict:
        """Provenance fields for the output file."""

        label = "builtin" if self.source == safe_name(self.dataset) else f"builtin ({self.source})"
        return {"describer": "builtin", "label": label, "source": self.source}


def _make(**options) -> BuiltinDescriber:
    return BuiltinDescriber(**options)


PLUGIN = DescriberPlugin(
    "builtin",
    "descriptions shipped with textclf for digits, fashion-mnist, cifar10 and synthetic "
    "(all four prompt types, offline)",
    _make,
)
