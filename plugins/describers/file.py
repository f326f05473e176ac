"""``file:PATH``: import a user's descriptions from JSON or CSV.

Accepted formats:
- a description file written by ``textclf describe`` (any prompt);
- a JSON object ``{"class": "text"}`` or ``{"class": ["text", ...]}``;
- a CSV with a header naming a ``class`` column and a ``description`` (or ``text``) column,
  or two columns without a header; several rows for one class give several samples.
The file must describe exactly the dataset's classes: a missing or unknown class is an error.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Optional

from textclf.descriptions.tables import read_description_table
from textclf.errors import TextclfError
from textclf.plugin_api import Describer, DescriberPlugin
from textclf.plugins.families import ArgumentFamily

SUMMARY = "import class descriptions from a JSON or CSV file (file:PATH)"


class FileDescriber(Describer):
    """Hands out the imported texts, checked against the dataset's classes."""

    def __init__(self, argument: str, class_names: Optional[list[str]] = None, **_options):
        self.path = argument
        table = read_description_table(argument)
        for cls_name, texts in table.items():
            if not texts or not all(t.strip() for t in texts):
                raise TextclfError(f"{argument}: the description of class '{cls_name}' is empty")
        if class_names is not None:
            extra = [c for c in table if c not in class_names]
            if extra:
                raise TextclfError(
                    f"{argument} has class '{extra[0]}' that the dataset does not have "
                    f"(dataset classes: {', '.join(class_names)})"
                )
            missing = [c for c in class_names if c not in table]
            if missing:
                more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                raise TextclfError(f"{argument} has no description for class '{missing[0]}'{more}")
        self.table = table

    def max_samples(self, class_name: str) -> int:
        """As many samples as the file has for this class."""
        return len(self.table.get(class_name, [""]))

    def describe(self, class_name: str, prompt=None, sample_index: int = 0) -> str:
        """The imported text number ``sample_index`` of ``class_name``."""
        if class_name not in self.table:
            raise TextclfError(f"{self.path} has no description for class '{class_name}'")
        texts = self.table[class_name]
        return texts[sample_index % len(texts)].strip()

    def provenance(self) -> dict:
        """Provenance fields for the output file."""
        return {"describer": f"file:{self.path}", "label": f"file {Path(self.path).name}"}


def describer(path: str) -> DescriberPlugin:
    """The describer that hands out the texts of ``path``."""
    return DescriberPlugin(f"file:{path}", SUMMARY, partial(FileDescriber, path))


PLUGIN = ArgumentFamily("file", SUMMARY, describer)
