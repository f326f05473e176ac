"""What a user asks ``describe`` for, checked and resolved in one place for the CLI and the Python
API.

:class:`DescribeRequest` holds every setting with its default (the CLI reads its defaults from
here). :func:`plan` validates a request, picks the describer when none is named, and resolves
the prompts and the output file of each, before any request is made: it returns one resolved
request per prompt, which is what the engine (:func:`textclf.descriptions.engine.run_describe`)
runs.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from textclf.descriptions.describers import dataset_class_names, default_describer
from textclf.descriptions.files import (
    DescriptionFile,
    is_description_file,
    load_descriptions,
    output_path,
)
from textclf.descriptions.journal import replay
from textclf.descriptions.prompts import prompts_for
from textclf.errors import TextclfError, option
from textclf.files.ownership import refuse_foreign_file
from textclf.registry import registry

TEMPERATURE_RANGE = (0.0, 2.0)  # what OpenAI-compatible servers accept
# At most this many descriptions (samples x classes) per prompt and run: every one is a request
# to an LLM and stays in memory until the file is written. A million is ~1 GB and a million
# requests; anything larger is a typo (--samples 1000000000), not a plan.
MAX_DESCRIPTIONS = 1_000_000
BYTES_PER_DESCRIPTION = 1_000  # a paragraph of text, its JSON and its Python objects, roughly
# The openai describer's chat model when neither --model nor $TEXTCLF_LLM_MODEL names one (a current
# small chat model; the paper used gpt-3.5-turbo), and how describe and classes add state their
# defaults.
DEFAULT_LLM_MODEL = "gpt-4o-mini"
# The openai describer's sampling temperature when none is given (the plugin's DEFAULT_TEMPERATURE
# must equal it; tests/cli/test_cli_help.py checks).
DEFAULT_LLM_TEMPERATURE = 0.7
MODEL_DEFAULT_NOTE = f"$TEXTCLF_LLM_MODEL or {DEFAULT_LLM_MODEL}"
BASE_URL_DEFAULT_NOTE = "$OPENAI_BASE_URL or OpenAI's"


@dataclass
class DescribeRequest:
    """One ``describe`` call: a dataset, one or more prompts, a describer and where the files go.

    As a user gives it (``prompt_type`` may be ``all``, ``describer`` and ``output`` may be left
    out), or as :func:`plan` resolves it for the engine: one prompt (``prompt``), the dataset's
    ``class_names``, the describer's name, the server URL and the output ``.json`` file.
    """

    dataset: str = "digits"
    prompt_type: Optional[str] = None  # 1|2|3|4|all or a prompt name; None: DEFAULT_PROMPT_TYPE
    prompt_template: Optional[str] = None  # a custom prompt with {class_name}
    describer: Optional[str] = None  # None: openai with a key or a server, else builtin
    output: Optional[Path] = None  # a .json file, or a folder for <prompt>.json files
    samples: int = 1
    model: Optional[str] = None
    base_url: Optional[str] = None  # None: $OPENAI_BASE_URL, else OpenAI's
    temperature: Optional[float] = None  # None: the describer's (DEFAULT_LLM_TEMPERATURE)
    seed: Optional[int] = None
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 5
    force: bool = False
    api_key: Optional[str] = field(default=None, repr=False)  # never shown, never written
    backoff_base: Optional[float] = None  # first retry's wait in seconds (None: the describer's)
    # Set by plan(): the one prompt of this run (a PromptTemplate) and the dataset's classes.
    prompt: Any = None
    class_names: Optional[list[str]] = None

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

    def resolved(self) -> DescribeRequest:
        """This request, checked, when :func:`plan` has resolved it (the engine runs only those)."""
        missing = [
            name
            for name in ("prompt", "class_names", "describer", "output")
            if getattr(self, name) is None
        ]
        if missing:
            raise ValueError(
                f"DescribeRequest has no {', '.join(missing)}: resolve it with "
                "textclf.descriptions.request.plan (one request per prompt) first"
            )
        return self.check()


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


def existing_file(opts: DescribeRequest) -> Optional[DescriptionFile]:
    """The file to resume at ``opts.output`` (None: start afresh). Reads only: a file textclf did
    not write, or one it cannot resume without ``--force``, is refused here, before any request."""

    out = Path(opts.output)
    if opts.force:  # --force starts over, but replaces only what textclf wrote
        refuse_foreign_file(out, is_description_file, "choose another --output")
        return None
    if not out.exists():
        return None
    try:
        return replay(out, load_descriptions(out, list(opts.class_names), partial=True))
    except TextclfError as exc:
        if not is_description_file(out):
            raise TextclfError(
                f"'{out}' exists and was not written by textclf ({exc}); textclf never "
                f"overwrites a file it did not write: choose another --output"
            ) from None
        raise TextclfError(f"{exc}; use --force to overwrite it") from None


def _one_prompt_only(describer: str, prompts: list) -> None:
    """Refuse several prompts for a describer whose texts do not depend on the prompt: it would
    write copies of one set of texts, each file claiming another prompt."""
    if len(prompts) > 1 and not getattr(registry("describers").get(describer), "uses_prompt", True):
        raise TextclfError(
            f"describer '{describer}' does not use a prompt, so {len(prompts)} prompts would give "
            f"{len(prompts)} copies of the same texts; give one --prompt-type (it names the file "
            "train reads: 1 for type1.json)"
        )


def _not_too_many(samples: int, n_classes: int) -> None:
    """Refuse a run that could not finish: more descriptions than memory or patience allow."""
    total = samples * n_classes
    if total > MAX_DESCRIPTIONS:
        gigabytes = total * BYTES_PER_DESCRIPTION / 1e9
        raise TextclfError(
            f"{option('samples')} {samples:,} for {n_classes} classes is {total:,} descriptions "
            f"per prompt: about {gigabytes:,.0f} GB of memory and {total:,} requests to an LLM; "
            f"at most {MAX_DESCRIPTIONS:,} per run (--samples "
            f"{max(1, MAX_DESCRIPTIONS // n_classes):,} here)"
        )


def plan(request: DescribeRequest) -> tuple[list[DescribeRequest], Optional[str]]:
    """``(runs, note)``: one resolved :class:`DescribeRequest` per prompt, in order, and a one-line
    note about the describer chosen (None when it was named or is an LLM). Every output file is
    checked here, so a refusal comes before the first file is written."""

    request.check()
    prompts = prompts_for(request.prompt_type, request.prompt_template)
    class_names = dataset_class_names(request.dataset)
    describer, note = choose_describer(request, [p.name for p in prompts], class_names)
    _one_prompt_only(describer, prompts)
    _not_too_many(request.samples, len(class_names))
    runs = [
        dataclasses.replace(
            request,
            prompt=prompt,
            class_names=list(class_names),
            describer=describer,
            output=output_path(request.output, request.dataset, prompt.name, len(prompts)),
            base_url=server_url(request.base_url),
        )
        for prompt in prompts
    ]
    for run in runs:
        existing_file(run)
    return runs, note
