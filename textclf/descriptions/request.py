"""What a user asks ``describe`` for, checked and resolved in one place for the CLI and the Python
API.

:class:`DescribeRequest` holds every setting with its default (the CLI reads its defaults from
here); :func:`plan` validates them, picks the describer when none is named, and resolves the
prompts and the output file of each, before any request is made.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from textclf.errors import TextclfError, option

TEMPERATURE_RANGE = (0.0, 2.0)  # what OpenAI-compatible servers accept
# The openai describer's chat model when neither --model nor $TEXTCLF_LLM_MODEL names one (a current
# small chat model; the paper used gpt-3.5-turbo), and how describe and classes add state their
# defaults.
DEFAULT_LLM_MODEL = "gpt-4o-mini"
MODEL_DEFAULT_NOTE = f"$TEXTCLF_LLM_MODEL or {DEFAULT_LLM_MODEL}"
BASE_URL_DEFAULT_NOTE = "$OPENAI_BASE_URL or OpenAI's"


@dataclass
class DescribeRequest:
    """One ``describe`` call: a dataset, one or more prompts, a describer and where the files go."""

    dataset: str = "digits"
    prompt_type: Optional[str] = None  # 1|2|3|4|all or a prompt name; None: 1
    prompt_template: Optional[str] = None  # a custom prompt with {class_name}
    describer: Optional[str] = None  # None: openai with a key or a server, else builtin
    output: Optional[Path] = None  # a .json file, or a folder for <prompt>.json files
    samples: int = 1
    model: Optional[str] = None
    base_url: Optional[str] = None  # None: $OPENAI_BASE_URL, else OpenAI's
    temperature: Optional[float] = None
    seed: Optional[int] = None
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 5
    force: bool = False
    api_key: Optional[str] = field(default=None, repr=False)  # never shown, never written

    def check(self) -> DescribeRequest:
        """Every number in range (one line naming the option otherwise)."""

        def bad(name: str, value, allowed: str) -> TextclfError:
            return TextclfError(f"{option(name)} {value!r} is invalid: expected {allowed}")

        for name, value in (("samples", self.samples), ("concurrency", self.concurrency)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(name, value, "an integer >= 1")
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise bad("max_retries", self.max_retries, "an integer >= 0")
        if not (
            isinstance(self.timeout, (int, float))
            and math.isfinite(self.timeout)
            and self.timeout > 0
        ):
            raise bad("timeout", self.timeout, "a number of seconds > 0")
        low, high = TEMPERATURE_RANGE
        if self.temperature is not None and not (
            isinstance(self.temperature, (int, float)) and low <= self.temperature <= high
        ):
            raise bad("temperature", self.temperature, f"a number in [{low:g}, {high:g}]")
        return self


def server_url(base_url: Optional[str]) -> Optional[str]:
    """The OpenAI-compatible server: ``base_url``, else ``$OPENAI_BASE_URL`` (empty counts as
    unset)."""
    return base_url or os.environ.get("OPENAI_BASE_URL", "").strip() or None


def choose_describer(
    request: DescribeRequest, prompt_names: list[str], class_names: list[str]
) -> tuple[str, Optional[str]]:
    """``(describer, note)``: the one named, else ``openai`` when a key, a server, a model or a key
    flag says
    an LLM is meant (a local server needs no key), else the built-in descriptions (with a note
    saying so)."""
    from textclf.descriptions.describers import default_describer

    if request.describer:
        return request.describer, None
    llm_meant = (
        request.api_key
        or request.model
        or server_url(request.base_url)
        or os.environ.get("OPENAI_API_KEY")
    )
    if llm_meant:
        return "openai", None
    return default_describer(request.dataset, prompt_names, class_names)


def plan(request: DescribeRequest) -> tuple[list, Optional[str]]:
    """``(options, note)``: one :class:`~textclf.descriptions.engine.DescribeOptions` per prompt, in
    order,
    and a one-line note about the describer chosen (None when it was named or is an LLM)."""
    from textclf.descriptions.describers import dataset_class_names
    from textclf.descriptions.engine import DescribeOptions
    from textclf.descriptions.files import output_path
    from textclf.descriptions.prompts import prompts_for

    request.check()
    prompts = prompts_for(request.prompt_type, request.prompt_template)
    class_names = dataset_class_names(request.dataset)
    describer, note = choose_describer(request, [p.name for p in prompts], class_names)
    paths = [output_path(request.output, request.dataset, p.name, len(prompts)) for p in prompts]
    options = [
        DescribeOptions(
            dataset=request.dataset,
            class_names=class_names,
            prompt=prompt,
            describer=describer,
            out=path,
            samples=request.samples,
            model=request.model,
            base_url=server_url(request.base_url),
            temperature=request.temperature,
            seed=request.seed,
            concurrency=request.concurrency,
            timeout=request.timeout,
            max_retries=request.max_retries,
            force=request.force,
            api_key=request.api_key,
        )
        for prompt, path in zip(prompts, paths)
    ]
    return options, note


def new_class_descriptions(
    file=None,
    describer: Optional[str] = None,
    classes: Optional[list] = None,
    prompt_type: str = "1",
    model: Optional[str] = None,
    base_url: Optional[str] = None,
) -> tuple[dict, str]:
    """``({class: [texts]}, source)`` of classes to add: from a file (JSON or CSV; ``classes`` picks
    some),
    or written now by a describer for each of ``classes``. Names are distinct and without spaces
    around."""
    import tempfile

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
        from textclf.descriptions.tables import read_description_table

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
    from textclf.descriptions.engine import DescribeOptions, run_describe
    from textclf.descriptions.prompts import prompts_for

    with tempfile.TemporaryDirectory(prefix="textclf-classes-") as tmp:
        result = run_describe(
            DescribeOptions(
                dataset="added-classes",
                class_names=classes,
                prompt=prompts_for(prompt_type)[0],
                describer=describer,
                out=Path(tmp) / "new.json",
                model=model,
                base_url=server_url(base_url),
            )
        )
        return {c: list(result.file.descriptions[c]) for c in classes}, f"describer:{describer}"
