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

from textclf.descriptions.tables import match_classes, read_description_table
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
        self.table = table if class_names is None else match_classes(table, class_names, argument)

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
        """Provenance fields for the output file: no prompt (the texts are the file's, whatever
        prompt the run was given)."""
        return {
            "describer": f"file:{self.path}",
            "label": f"file {Path(self.path).name}",
            "prompt_text": None,
            "prompt_system": None,
        }


def describer(path: str) -> DescriberPlugin:
    """The describer that hands out the texts of ``path``."""
    return DescriberPlugin(f"file:{path}", SUMMARY, partial(FileDescriber, path), uses_prompt=False)


PLUGIN = ArgumentFamily("file", SUMMARY, describer)
