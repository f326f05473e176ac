"""Where a run's descriptions come from: a file the user names, the file ``describe`` wrote, or the
built-in texts; and a line that says which it was.

``train --descriptions FILE`` takes whatever the one reader of description files takes
(:func:`textclf.descriptions.tables.read_description_table`): a file ``textclf describe`` wrote,
a plain JSON object ``{"class": "text"}`` or ``{"class": ["text", ...]}``, or a CSV. When nothing
is found, the error names a command that works without an API key.
"""

from __future__ import annotations

import re
from pathlib import Path

from textclf.descriptions.describers import offline_with_source
from textclf.descriptions.files import DEFAULT_ROOT, default_path
from textclf.descriptions.prompts import normalize_prompt
from textclf.descriptions.tables import match_classes, read_description_table
from textclf.errors import TextclfError
from textclf.files.jsonio import read_json


def _prompt_name_or_raw(prompt: str, dataset: str, root: str) -> str:
    try:
        return normalize_prompt(prompt)
    except TextclfError:
        # A name that is not a registered prompt may still be a file written with a custom
        # template (``custom-<hash>``); otherwise the registry's error lists the choices.
        if default_path(dataset, prompt, root).exists():
            return prompt
        raise


def prompt_list(prompt: str) -> list[str]:
    """The prompts of a ``prompt_type`` setting: one (``"3"``), several (``"1,3"``), or ``"all"``
    four."""
    text = str(prompt).strip()
    if text.lower() == "all":
        return [f"type{i}" for i in range(1, 5)]
    return [p.strip() for p in text.split(",") if p.strip()] or [text]


def resolve_ensemble(
    dataset: str,
    class_names: list[str],
    prompt: str = "type1",
    path: str | None = None,
    root: str = DEFAULT_ROOT,
) -> tuple[dict[str, list[str]], str]:
    """:func:`resolve_descriptions` for every prompt of ``prompt`` (:func:`prompt_list`), each
    class's texts joined in prompt order: a description ensemble (CuPL's prompt types x samples).
    One prompt: as it is."""
    prompts = prompt_list(prompt) if path is None else [prompt]
    parts = [resolve_descriptions(dataset, class_names, name, path, root) for name in prompts]
    if len(parts) == 1:
        return parts[0]
    joined = {c: [text for texts, _ in parts for text in texts[c]] for c in class_names}
    return joined, " + ".join(source for _, source in parts)


class MissingDescriptions(TextclfError):
    """No descriptions were found for a dataset and prompt (as against a file that is wrong)."""


def missing_descriptions(dataset: str, prompt_name: str, root: str = DEFAULT_ROOT) -> TextclfError:
    """The error for a dataset and prompt without descriptions: it names what works offline, in
    any command (train, ablate)."""
    short = prompt_name[4:] if re.fullmatch(r"type\d+", prompt_name) else prompt_name
    return MissingDescriptions(
        f"no descriptions for dataset '{dataset}' prompt '{prompt_name}'; run: textclf describe "
        f"--dataset {dataset} --prompt-type {short} --describer classname (the class names, "
        f"offline; --describer openai with OPENAI_API_KEY set asks an LLM), or write your own "
        f'as a JSON object {{"class": "text", ...}} to {default_path(dataset, prompt_name, root)}'
    )


def resolve_descriptions(
    dataset: str,
    class_names: list[str],
    prompt: str = "type1",
    path: str | None = None,
    root: str = DEFAULT_ROOT,
) -> tuple[dict[str, list[str]], str]:
    """Find and validate the descriptions for ``dataset`` and ``prompt``.

    Order: ``path`` when given; else ``<root>/<dataset>/<prompt>.json`` when it exists (either in
    any format :func:`read_description_table` reads); else the built-in descriptions of the
    dataset, or of the built-in dataset with the same class names. Returns ``(descriptions ordered
    by class_names, source)`` where ``source`` is the file path or ``builtin:<dataset>/<prompt>``.
    """
    class_names = list(class_names)
    if path is not None:
        return match_classes(read_description_table(path), class_names, str(path)), str(path)
    name = _prompt_name_or_raw(prompt, dataset, root)
    candidate = default_path(dataset, name, root)
    if candidate.exists():  # written by describe, or a user's own texts put there
        table = read_description_table(candidate)
        return match_classes(table, class_names, str(candidate)), str(candidate)
    try:  # the builtin describer: by dataset name, else by its class names
        builtin, label = offline_with_source("builtin", dataset, class_names, name)
        return builtin, f"builtin:{label}/{name}"
    except TextclfError:
        pass
    raise missing_descriptions(dataset, name, root)


def source_summary(source: str) -> str:
    """What a run's descriptions were, for a person: the file and, when it says so, the describer
    and prompt that wrote it (``descriptions/x/type1.json (classname)``); a built-in set or a
    control as they are named."""
    parts = []
    for piece in source.split(" + "):
        path = Path(piece.removesuffix(" (shuffled)"))
        if piece.startswith(("builtin:", "control:")) or not path.is_file():
            parts.append(piece)
            continue
        try:
            data = read_json(path, "description file")
        except (TextclfError, OSError):
            parts.append(piece)
            continue
        if isinstance(data, dict) and "describer" in data:
            what = f"{data['describer']}, prompt {data.get('prompt_name')}"
        else:
            what = "your texts"
        parts.append(f"{piece} ({what})")
    return " + ".join(parts)
