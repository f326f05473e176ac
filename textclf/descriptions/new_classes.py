"""Descriptions of classes to add to a trained model (``textclf classes add``): read from a file,
or written now by a describer.

Its own module because it runs the engine on a request: :mod:`textclf.descriptions.request`
stays below the engine, which runs the requests it resolves.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

from textclf.descriptions.engine import run_describe
from textclf.descriptions.prompts import DEFAULT_PROMPT_TYPE, prompts_for
from textclf.descriptions.request import DescribeRequest, server_url
from textclf.descriptions.tables import read_description_table
from textclf.errors import TextclfError, option


def new_class_descriptions(
    file=None,
    describer: Optional[str] = None,
    classes: Optional[list] = None,
    prompt_type: str = DEFAULT_PROMPT_TYPE,
    model: Optional[str] = None,
    base_url: Optional[str] = None,
) -> tuple[dict, str]:
    """``({class: [texts]}, source)`` of classes to add: from a file (JSON or CSV; ``classes``
    picks some), or written now by a describer for each of ``classes``. Names are distinct and
    without spaces around."""
    classes = [str(c) for c in (classes or [])]
    padded = [c for c in classes if c != c.strip() or not c.strip()]
    if padded:
        raise TextclfError(
            f"class {padded[0]!r} has spaces around its name (or none); write it as "
            f"{padded[0].strip()!r}"
        )
    twice = sorted({c for c in classes if classes.count(c) > 1})
    if twice:
        raise TextclfError(f"class '{twice[0]}' is given twice; give each class to add once")
    if file is not None:
        if describer is not None:
            raise TextclfError(
                "give either a descriptions file or a describer with classes, not both"
            )
        table = read_description_table(file)
        unknown = [c for c in classes if c not in table]
        if unknown:
            raise TextclfError(f"{file} has no description for class '{unknown[0]}'")
        return ({c: table[c] for c in classes} if classes else table), str(file)
    if describer is None or not classes:
        raise TextclfError(
            f"no descriptions: give a file ({option('descriptions')}), or a describer "
            f"({option('describer')}) and the classes to describe"
        )
    with tempfile.TemporaryDirectory(prefix="textclf-classes-") as tmp:
        result = run_describe(
            DescribeRequest(
                dataset="added-classes",
                class_names=classes,
                prompt=prompts_for(prompt_type)[0],
                describer=describer,
                output=Path(tmp) / "new.json",
                model=model,
                base_url=server_url(base_url),
            )
        )
        return {c: list(result.file.descriptions[c]) for c in classes}, f"describer:{describer}"
