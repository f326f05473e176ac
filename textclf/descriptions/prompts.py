"""The prompts describers are asked with: the registered ones by name or alias, and custom
templates."""

from __future__ import annotations

import hashlib
from typing import Optional

from textclf.errors import TextclfError
from textclf.plugin_api import PromptTemplate
from textclf.registry import registry

DEFAULT_PROMPT_TYPE = "1"  # the paper's type 1 prompt, when neither a type nor a template is given


def resolve_prompt(name: str):
    """A registered prompt template by name or alias (``"3"``, ``"type3"``)."""

    return registry("prompts").get(str(name))


def custom_prompt(text: str):
    """A prompt template from inline text containing ``{class_name}`` (or the paper's ``{}``)."""

    # A custom prompt asks for a paragraph, with the paper's system message
    TYPE2 = resolve_prompt("type2")

    if "{class_name}" not in text and "{}" in text:
        text = text.replace("{}", "{class_name}")
    if "{class_name}" not in text:
        raise TextclfError(
            f"--prompt-template '{text}' must contain {{class_name}}, "
            f"e.g. 'Describe the shape of a {{class_name}} in one sentence.'"
        )
    try:
        text.format(class_name="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise TextclfError(
            f"--prompt-template '{text}' has a placeholder other than {{class_name}} "
            f"({type(exc).__name__}: {exc}); write literal braces as {{{{ and }}}}"
        ) from None
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return PromptTemplate(f"custom-{digest}", text, TYPE2.system, max_tokens=TYPE2.max_tokens)


def prompts_for(prompt_type: Optional[str], prompt_template: Optional[str] = None) -> list:
    """The templates a ``describe`` run covers: one, ``all`` four paper prompts, or a custom one."""
    if prompt_template is not None:
        if prompt_type is not None:
            raise TextclfError("use either --prompt-type or --prompt-template, not both")
        return [custom_prompt(prompt_template)]
    spec = (prompt_type or DEFAULT_PROMPT_TYPE).strip()
    if spec.lower() == "all":
        return [resolve_prompt(f"type{i}") for i in range(1, 5)]
    try:
        return [resolve_prompt(spec)]
    except TextclfError:
        names = registry("prompts").names()
        aliases = [a for n in names for a in getattr(resolve_prompt(n), "aliases", ())]
        raise TextclfError(
            f"unknown --prompt-type '{spec}'; valid choices: "
            f"{', '.join(sorted(aliases) + ['all'] + sorted(names))}"
        ) from None


def normalize_prompt(prompt: str) -> str:
    """The registry name of a prompt given by name or alias (``"3"`` -> ``"type3"``)."""
    return resolve_prompt(prompt).name
