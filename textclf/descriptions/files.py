"""Class-description files: schema, validation on read, lookup, and offline generation.

A description file holds the texts that describe each class of one dataset for one prompt,
plus the provenance needed to trust and reproduce them (who wrote them, with which prompt,
model and settings). ``textclf describe`` writes them; ``train`` and ``ablate`` find them through
:mod:`textclf.descriptions.lookup`, which validates the schema and the exact class set.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from textclf.errors import TextclfError
from textclf.files.jsonio import read_json
from textclf.files.paths import safe_name
from textclf.files.schema_types import distinct
from textclf.validation import validate

SCHEMA_VERSION = 1
DEFAULT_ROOT = "descriptions"


class DescriptionFile(BaseModel):
    """One ``descriptions/<dataset>/<prompt>.json``: provenance plus ``{class: [texts]}``.

    ``complete`` is false while ``describe`` is still filling the file (or was killed);
    :func:`load_descriptions` refuses an incomplete file unless asked for a partial read.
    """

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    dataset: str
    class_names: list[str]
    prompt_name: str  # the slot the file fills (``type1``: what ``train --prompt-type 1`` reads)
    # What really produced the texts: the prompt an LLM answered, the sentence a control fills in,
    # or None for texts a person wrote (``file:PATH``).
    prompt_text: Optional[str]
    prompt_system: Optional[str] = None
    describer: str
    model: Optional[str] = None
    base_url: Optional[str] = None
    temperature: Optional[float] = None
    seed: Optional[int] = None
    samples: int = Field(default=1, ge=1)
    created_at: str
    updated_at: str
    textclf_version: str
    complete: bool = True
    # Tokens the LLM server reported for the requests behind these texts, summed over every run
    # that filled the file: {prompt_tokens, completion_tokens, total_tokens, requests}. Optional
    # (offline describers report none, and files written before it existed stay valid).
    usage: Optional[dict[str, int]] = None
    descriptions: dict[str, list[str]]

    @pydantic.field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            raise ValueError(
                f"unsupported schema_version {v} (this textclf reads {SCHEMA_VERSION})"
            )
        return v

    @pydantic.field_validator("class_names")
    @classmethod
    def _unique_classes(cls, v: list[str]) -> list[str]:

        if not v:
            raise ValueError("class_names is empty")
        return distinct(v)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> DescriptionFile:
        known = set(self.class_names)
        for cls_name, texts in self.descriptions.items():
            if cls_name not in known:
                raise ValueError(f"descriptions has class '{cls_name}' that is not in class_names")
            if not texts:
                raise ValueError(f"class '{cls_name}' has no descriptions")
            for i, text in enumerate(texts):
                if not text.strip():
                    raise ValueError(f"description {i + 1} of class '{cls_name}' is empty")
        if self.complete:
            missing = [c for c in self.class_names if c not in self.descriptions]
            if missing:
                raise ValueError(f"file is marked complete but misses class '{missing[0]}'")
        return self

    def missing_classes(self) -> list[str]:
        """Classes of ``class_names`` that have no description yet."""
        return [c for c in self.class_names if c not in self.descriptions]

    def to_json(self) -> dict:
        """The JSON object written to disk (descriptions in class order; no ``usage`` when none)."""
        data = self.model_dump()
        if data.get("usage") is None:
            data.pop("usage", None)  # offline describers' files stay as they were
        data["descriptions"] = {
            c: list(self.descriptions[c]) for c in self.class_names if c in self.descriptions
        }
        return data


def parse_descriptions(data, source: str = "<data>", *, partial: bool = False) -> DescriptionFile:
    """Validate an already-parsed JSON object; ``partial`` admits incomplete files."""
    if not isinstance(data, dict):
        raise TextclfError(
            f"invalid description file {source}: expected a JSON object, got {type(data).__name__}"
        )
    version = data.get("schema_version")
    if version is None:
        raise TextclfError(f"invalid description file {source}: field 'schema_version' is missing")
    if version != SCHEMA_VERSION:
        raise TextclfError(
            f"invalid description file {source}: field 'schema_version' is {version!r}; "
            f"this textclf reads schema_version {SCHEMA_VERSION}"
        )
    file = validate(DescriptionFile, data, what=f"invalid description file {source}")
    if not file.complete and not partial:
        missing = file.missing_classes()
        first = (
            f" (missing class '{missing[0]}'"
            + (f" and {len(missing) - 1} more)" if len(missing) > 1 else ")")
            if missing
            else ""
        )
        raise TextclfError(
            f"description file {source} is incomplete{first}; rerun "
            f"'textclf describe --dataset {file.dataset} --prompt-type {file.prompt_name}' "
            f"to finish it"
        )
    return file


def load_descriptions(
    path, class_names: list[str] | None = None, *, partial: bool = False
) -> DescriptionFile:
    """Read and validate a description file.

    With ``class_names`` the file must describe exactly those classes (any order); the returned
    file lists them in the order given. Every problem is a :class:`TextclfError` naming the
    class or field. ``partial=True`` (used by ``describe`` to resume) admits incomplete files.
    """

    p = Path(path)
    # Strict JSON: a class listed twice under "descriptions" must not silently keep the last texts.
    data = read_json(p, "description file")
    file = parse_descriptions(data, str(p), partial=partial)
    if class_names is not None:
        file = _match_classes(file, list(class_names), str(p), partial=partial)
    return file


def _match_classes(
    file: DescriptionFile, class_names: list[str], source: str, *, partial: bool = False
) -> DescriptionFile:
    wanted = set(class_names)
    extra = [c for c in file.class_names if c not in wanted]
    if extra:
        raise TextclfError(
            f"description file {source} has class '{extra[0]}' that the dataset does not "
            f"have (dataset classes: {', '.join(class_names)})"
        )
    if not partial:
        missing = [c for c in class_names if c not in file.descriptions]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise TextclfError(
                f"description file {source} has no description for class '{missing[0]}'{more}"
            )
    ordered = {c: file.descriptions[c] for c in class_names if c in file.descriptions}
    return file.model_copy(update={"descriptions": ordered, "class_names": list(class_names)})


def descriptions_hash(descriptions: dict[str, list[str]]) -> str:
    """SHA-256 hex digest of the canonical JSON of ``descriptions`` (sorted keys, compact)."""
    canon = json.dumps(descriptions, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def output_path(out, dataset: str, prompt_name: str, n_prompts: int = 1) -> Path:
    """Where ``describe`` writes one prompt's file: ``out`` itself when it names a ``.json`` file,
    else
    ``out/<prompt>.json`` (``out`` a folder), else :func:`default_path`. Checked before any request:
    an ``out`` that is an existing file but not ``.json`` is neither, and would fail only after the
    work."""
    if out is None:
        return default_path(dataset, prompt_name)
    out = Path(out)
    if out.suffix.lower() == ".json":
        if n_prompts > 1:
            raise TextclfError(
                f"--output {out} names one file but {n_prompts} prompts are described; "
                f"give a folder instead"
            )
        if out.is_dir():
            raise TextclfError(
                f"--output '{out}' is a folder; give a file name ending in .json, or a folder "
                f"name without .json"
            )
        return out
    for candidate in (out, *out.parents):
        if candidate.exists() or candidate.is_symlink():
            if not candidate.is_dir():
                raise TextclfError(
                    f"--output '{out}' is not a folder ('{candidate}' is a file); give a .json "
                    "file "
                    f"name or a folder for <prompt>.json files"
                )
            break
    return out / f"{safe_name(prompt_name)}.json"


def is_description_file(path) -> bool:
    """Whether ``path`` is a description file that textclf wrote (it validates as one, complete
    or not)."""
    try:
        load_descriptions(path, partial=True)
        return True
    except (TextclfError, OSError):
        return False


def default_path(dataset: str, prompt_name: str, root: str = DEFAULT_ROOT) -> Path:
    """``<root>/<dataset>/<prompt>.json`` with names made safe (``imagefolder:/a/x`` ->
    ``imagefolder-x``)."""
    return Path(root) / safe_name(dataset) / f"{safe_name(prompt_name)}.json"
