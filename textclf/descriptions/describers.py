"""Describers by name: build one, pick the default, and run an offline one synchronously
(ablation controls)."""

from __future__ import annotations

from typing import Any, Optional

from textclf.descriptions.prompts import resolve_prompt
from textclf.errors import TextclfError
from textclf.files.paths import safe_name
from textclf.registry import registry

OFFLINE_CHOICES = "builtin, classname, random-words, file:PATH"
# What works for any dataset without a key or a network: the user's own texts, or the class names.
OWN_TEXTS_HINT = (
    'write your own descriptions as JSON ({"class": "text", ...}) and use --describer '
    'file:my.json, or use --describer classname ("a photo of a {class}.", offline)'
)


def _first_clause(exc: Exception) -> str:
    """An error's statement without its own advice (what follows the first ``;`` or ``(``)."""
    return str(exc).split(";")[0].split(" (")[0].strip()


def dataset_class_names(dataset: str) -> list[str]:
    """Class names of a dataset, without loading its images when the plugin declares them."""

    names = registry("datasets").get(dataset).class_names()
    if names:
        return list(names)
    from textclf.data.loading import load_dataset

    return list(load_dataset(dataset).class_names)


def make_describer(name: str, **options) -> tuple[Any, Any]:
    """Resolve a describer name (``file:PATH`` included) and build it: ``(plugin, describer)``."""

    plugin = registry("describers").get(name)
    return plugin, plugin.make(**options)


def default_describer(
    dataset: str, prompt_names: list[str], class_names: Optional[list[str]] = None
) -> tuple[str, Optional[str]]:
    """The built-in describer when no LLM is configured, and a one-line note saying so.

    It is used when it can describe this dataset (by its name or, with ``class_names``, by a
    built-in dataset with exactly these class names) for every prompt; otherwise the error says
    how to choose.
    """
    names = list(class_names) if class_names else dataset_class_names(dataset)
    try:
        _, describer = make_describer("builtin", dataset=dataset, class_names=names)
        for prompt in prompt_names:  # raises when the built-in set lacks this prompt
            describer.describe(names[0], resolve_prompt(prompt), 0)
        source = describer.provenance().get("source", dataset)
    except TextclfError as exc:
        raise TextclfError(
            f"no describer available: OPENAI_API_KEY is not set and {_first_clause(exc)}; "
            f"{OWN_TEXTS_HINT}, or set OPENAI_API_KEY (a local server: --base-url, no key needed)"
        ) from None
    whose = dataset if source == safe_name(dataset) else f"{source} (same class names as {dataset})"
    return "builtin", (
        f"OPENAI_API_KEY is not set: using the built-in {whose} descriptions "
        f"(--describer openai with a key, --base-url for a local server, or another "
        f"--describer, to change)"
    )


USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "requests")


def add_usage(total: dict, usage: Optional[dict]) -> dict:
    """Add one request's (or one file's) token usage to ``total`` in place; returns ``total``."""
    for key in USAGE_KEYS:
        value = (usage or {}).get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
    return total


def offline_descriptions(
    describer: str,
    dataset: str,
    class_names: list[str],
    prompt: str = "type1",
    seed: int = 0,
    samples: int = 1,
) -> dict[str, list[str]]:
    """Generate descriptions synchronously with an offline describer.

    ``describer`` is ``builtin``, ``classname``, ``random-words`` or ``file:PATH`` (or any
    installed plugin that declares itself offline). Used by ``textclf ablate`` for controls.
    """
    return offline_with_source(describer, dataset, class_names, prompt, seed, samples)[0]


def offline_with_source(
    describer: str,
    dataset: str,
    class_names: list[str],
    prompt: str = "type1",
    seed: int = 0,
    samples: int = 1,
) -> tuple[dict[str, list[str]], str]:
    """:func:`offline_descriptions` and the describer's source label (e.g. the built-in set it
    used)."""
    import inspect

    template = resolve_prompt(prompt)
    plugin, desc = make_describer(
        describer, dataset=dataset, class_names=list(class_names), seed=seed, samples=samples
    )
    if not plugin.offline:
        raise TextclfError(
            f"describer '{describer}' needs a network service; offline choices: "
            f"builtin, classname, random-words, file:PATH"
        )
    out: dict[str, list[str]] = {}
    for cls_name in class_names:
        limit = desc.max_samples(cls_name)
        n = samples if limit is None else max(1, min(samples, limit))
        texts = []
        for i in range(n):
            text = desc.describe(cls_name, template, i)
            if inspect.isawaitable(text):
                raise TextclfError(f"describer '{describer}' is asynchronous; use textclf describe")
            texts.append(str(text).strip())
        out[cls_name] = texts
    return out, str(desc.provenance().get("source", safe_name(dataset)))
