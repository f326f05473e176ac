"""The describing engine: ask a describer for every (class, sample), persist as results arrive.

Library code: no printing, no Typer. Progress is reported through a callback that receives
:class:`DescribeEvent` objects. Requests run concurrently (``asyncio`` with a semaphore);
every finished description is handed at once to a writer thread that rewrites the whole file
atomically (temp file + rename; marked ``complete: false`` until the last one), so a kill
loses at most the requests in flight (and any result that arrived during the last write),
never leaves an unreadable file, and a rerun asks only for what is missing.

A describer (what a :class:`~textclf.plugin_api.DescriberPlugin`'s ``make(**options)``
returns) has ``describe(class_name, prompt, sample_index) -> str``, sync or async, and
``provenance() -> dict`` (keys among ``describer``, ``model``, ``base_url``, ``temperature``,
``seed``, and ``label`` for display). Optional: ``max_samples(class_name) -> int | None`` (a
cap on distinct samples, e.g. 1 for fixed texts), ``async aclose()``, and a ``usage`` dict
attribute on the returned text (tokens the server reported; summed per class and per file). ``make`` receives
``dataset``, ``class_names``, ``model``, ``base_url``, ``temperature``, ``seed``, ``samples``,
``concurrency``, ``timeout``, ``max_retries``, ``backoff_base``, ``on_retry``, ``api_key`` and,
for ``name:ARG`` describers, ``argument``; it should accept and ignore options it does not use.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from textclf.errors import TextclfError

OFFLINE_CHOICES = "builtin, classname, random-words, file:PATH"


# --------------------------------------------------------------------------- prompts

def resolve_prompt(name: str):
    """A registered prompt template by name or alias (``"3"``, ``"type3"``)."""
    from textclf.registry import registry

    obj, _arg = registry("prompts").get(str(name))
    return obj


def custom_prompt(text: str):
    """A prompt template from inline text containing ``{class_name}`` (or the paper's ``{}``)."""
    from textclf.plugin_api import PromptTemplate

    TYPE2 = resolve_prompt("type2")  # a custom prompt asks for a paragraph, with the paper's system message

    if "{class_name}" not in text and "{}" in text:
        text = text.replace("{}", "{class_name}")
    if "{class_name}" not in text:
        raise TextclfError(f"--prompt-template '{text}' must contain {{class_name}}, "
                           f"e.g. 'Describe the shape of a {{class_name}} in one sentence.'")
    try:
        text.format(class_name="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise TextclfError(f"--prompt-template '{text}' has a placeholder other than {{class_name}} "
                           f"({type(exc).__name__}: {exc}); write literal braces as {{{{ and }}}}") from None
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return PromptTemplate(f"custom-{digest}", text, TYPE2.system, max_tokens=TYPE2.max_tokens)


def prompts_for(prompt_type: Optional[str], prompt_template: Optional[str] = None) -> list:
    """The templates a ``describe`` run covers: one, ``all`` four paper prompts, or a custom one."""
    if prompt_template is not None:
        if prompt_type is not None:
            raise TextclfError("use either --prompt-type or --prompt-template, not both")
        return [custom_prompt(prompt_template)]
    spec = (prompt_type or "1").strip()
    if spec.lower() == "all":
        return [resolve_prompt(f"type{i}") for i in range(1, 5)]
    try:
        return [resolve_prompt(spec)]
    except TextclfError:
        from textclf.registry import registry

        names = registry("prompts").names()
        aliases = [a for n in names for a in getattr(resolve_prompt(n), "aliases", ())]
        raise TextclfError(f"unknown --prompt-type '{spec}'; valid choices: "
                           f"{', '.join(sorted(aliases) + ['all'] + sorted(names))}") from None


# --------------------------------------------------------------------------- datasets

def dataset_class_names(dataset: str) -> list[str]:
    """Class names of a dataset, without loading its images when the plugin declares them."""
    from textclf.registry import registry

    plugin, arg = registry("datasets").get(dataset)
    names = plugin.class_names(arg)
    if names:
        return list(names)
    from textclf.data import load_dataset

    return list(load_dataset(dataset).class_names)


# --------------------------------------------------------------------------- describers

def make_describer(name: str, **options) -> tuple[Any, Any]:
    """Resolve a describer name (``file:PATH`` included) and build it: ``(plugin, describer)``."""
    from textclf.registry import registry

    plugin, arg = registry("describers").get(name)
    if arg is not None:
        options["argument"] = arg
    return plugin, plugin.make(**options)


def default_describer(dataset: str, prompt_names: list[str],
                      class_names: Optional[list[str]] = None) -> tuple[str, Optional[str]]:
    """The describer to use when none is named, and a one-line note when it is not ``openai``.

    Without a key: the ``builtin`` describer, when it can describe this dataset (by its name or,
    with ``class_names``, by a built-in dataset with exactly these class names) for every prompt.
    """
    if os.environ.get("OPENAI_API_KEY"):
        return "openai", None
    names = list(class_names) if class_names else dataset_class_names(dataset)
    try:
        _, describer = make_describer("builtin", dataset=dataset, class_names=names)
        for prompt in prompt_names:  # raises when the built-in set lacks this prompt
            describer.describe(names[0], resolve_prompt(prompt), 0)
        source = describer.provenance().get("source", dataset)
    except TextclfError as exc:
        raise TextclfError(f"no describer available: OPENAI_API_KEY is not set and {exc}; set OPENAI_API_KEY "
                           f"(or --api-key), give a local server with --base-url (no key needed), or pick one "
                           f"with --describer {OFFLINE_CHOICES}") from None
    from textclf.descriptions.files import safe_name

    whose = dataset if source == safe_name(dataset) else f"{source} (same class names as {dataset})"
    return "builtin", (f"OPENAI_API_KEY is not set: using the built-in {whose} descriptions "
                       f"(--describer openai with a key, --base-url for a local server, or another "
                       f"--describer, to change)")


USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "requests")


def add_usage(total: dict, usage: Optional[dict]) -> dict:
    """Add one request's (or one file's) token usage to ``total`` in place; returns ``total``."""
    for key in USAGE_KEYS:
        value = (usage or {}).get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
    return total


# --------------------------------------------------------------------------- engine

@dataclass
class DescribeEvent:
    """Progress report. ``kind`` is ``plan`` (``total`` requests to make, ``kept`` texts already
    on disk), ``done`` (one description arrived for ``class_name``/``sample``), ``retry``
    (``attempt``, ``delay`` seconds, ``reason``) or ``finished``."""

    kind: str
    prompt: str = ""
    class_name: Optional[str] = None
    sample: Optional[int] = None
    total: int = 0
    kept: int = 0
    attempt: int = 0
    delay: float = 0.0
    reason: str = ""
    text: str = ""
    usage: Optional[dict] = None  # ``done``: tokens the server reported for this description


@dataclass
class DescribeOptions:
    """One ``describe`` run: one dataset, one prompt, one output file."""

    dataset: str
    class_names: list[str]
    prompt: Any  # PromptTemplate
    describer: str
    out: Path
    samples: int = 1
    model: Optional[str] = None
    base_url: Optional[str] = None
    temperature: Optional[float] = None
    seed: Optional[int] = None
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 5
    backoff_base: Optional[float] = None
    force: bool = False
    api_key: Optional[str] = field(default=None, repr=False)  # never shown, never written


@dataclass
class DescribeResult:
    """What a run wrote: the validated file, and per class whether texts were kept or fetched."""

    path: Path
    file: Any  # DescriptionFile
    kept: dict[str, int] = field(default_factory=dict)
    fetched: dict[str, int] = field(default_factory=dict)
    source_label: str = ""
    seconds: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)  # tokens this run's requests used (empty: none reported)
    usage_by_class: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        """Descriptions fetched by this run."""
        return sum(self.fetched.values())


class _Writer:
    """Persists snapshots of the output file from one background thread, newest first.

    The event loop hands over a snapshot and goes on serving requests; the thread writes it
    atomically (temp file + fsync + rename). Snapshots that arrive during a write are
    coalesced: only the newest is written next. ``close`` writes what is pending and waits,
    so every description that arrived before it is on disk afterwards.
    """

    def __init__(self, path: Path):
        self.path = path
        self._cond = threading.Condition()
        self._pending: Optional[dict] = None
        self._closed = False
        self.saved = 0  # descriptions of the newest snapshot on disk
        self.error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="textclf-describe-writer", daemon=True)
        self._thread.start()

    def submit(self, data: dict) -> None:
        """Hand over a snapshot (``{"descriptions": {class: [texts]}, ...}``) to be written next."""
        if self.error is not None:
            raise TextclfError(f"cannot write {self.path}: {self.error}")
        with self._cond:
            self._pending = data
            self._cond.notify()

    def _run(self) -> None:
        from textclf.atomic import write_json

        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                data, self._pending = self._pending, None
            try:
                write_json(self.path, data)
                self.saved = sum(len(t) for t in data.get("descriptions", {}).values())
            except Exception as exc:  # reported on the next submit / close
                self.error = exc

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        if self.error is not None:
            raise TextclfError(f"cannot write {self.path}: {self.error}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _identity(prov: dict, prompt, dataset: str) -> dict:
    return {"dataset": dataset, "describer": prov.get("describer"), "model": prov.get("model"),
            "temperature": prov.get("temperature"), "seed": prov.get("seed"),
            "prompt_text": prompt.text, "prompt_system": prompt.system}


def _check_resumable(existing, prov: dict, prompt, dataset: str, out: Path) -> None:
    mine = _identity(prov, prompt, dataset)
    theirs = {"dataset": existing.dataset, "describer": existing.describer, "model": existing.model,
              "temperature": existing.temperature, "seed": existing.seed,
              "prompt_text": existing.prompt_text,
              "prompt_system": existing.prompt_system}
    for key, value in mine.items():
        if theirs[key] != value:
            raise TextclfError(f"{out} was written with {key} {theirs[key]!r}, this run uses {value!r}; "
                               f"use --force to replace it or --out to write elsewhere")


def _n_samples(desc, class_name: str, samples: int) -> int:
    limit_fn = getattr(desc, "max_samples", None)
    limit = limit_fn(class_name) if limit_fn is not None else None
    return samples if limit is None else max(1, min(samples, limit))


async def _call(fn, *args):
    out = fn(*args)
    if inspect.isawaitable(out):
        out = await out
    return out


async def describe_async(opts: DescribeOptions,
                         on_event: Optional[Callable[[DescribeEvent], None]] = None) -> DescribeResult:
    """Describe every class of ``opts`` and write ``opts.out``; resumes an existing partial file."""
    from textclf import __version__
    from textclf.descriptions.files import DescriptionFile, is_description_file, load_descriptions

    started = time.perf_counter()
    emit = on_event or (lambda _e: None)
    prompt = opts.prompt
    if opts.samples < 1:
        raise TextclfError(f"--samples must be at least 1, got {opts.samples}")
    if opts.concurrency < 1:
        raise TextclfError(f"--concurrency must be at least 1, got {opts.concurrency}")
    class_names = list(opts.class_names)
    out = Path(opts.out)

    existing = None
    if out.exists() and not opts.force:
        try:
            existing = load_descriptions(out, class_names, partial=True)
        except TextclfError as exc:
            if not is_description_file(out):
                raise TextclfError(f"'{out}' exists and was not written by textclf ({exc}); textclf never "
                                   f"overwrites a file it did not write: choose another --output") from None
            raise TextclfError(f"{exc}; use --force to overwrite it") from None
    elif opts.force:  # --force replaces only what textclf wrote
        from textclf.ownership import refuse_foreign_file

        refuse_foreign_file(out, is_description_file, "choose another --output")

    def retry_hook(class_name: str, attempt: int, delay: float, reason: str) -> None:
        emit(DescribeEvent("retry", prompt.name, class_name, attempt=attempt, delay=delay, reason=reason))

    plugin, desc = make_describer(
        opts.describer, dataset=opts.dataset, class_names=class_names, model=opts.model,
        base_url=opts.base_url, temperature=opts.temperature, seed=opts.seed, samples=opts.samples,
        concurrency=opts.concurrency, timeout=opts.timeout, max_retries=opts.max_retries,
        backoff_base=opts.backoff_base, on_retry=retry_hook, api_key=opts.api_key)
    try:
        prov = dict(desc.provenance())
        if existing is not None:
            _check_resumable(existing, prov, prompt, opts.dataset, out)
        texts: dict[str, list[str]] = {c: list(existing.descriptions.get(c, [])) if existing else []
                                       for c in class_names}
        kept = {c: len(texts[c]) for c in class_names}
        wanted = {c: _n_samples(desc, c, opts.samples) for c in class_names}
        plan = [(c, i) for c in class_names for i in range(len(texts[c]), wanted[c])]
        created = existing.created_at if existing is not None else _now()
        samples_field = max(max(wanted.values(), default=1), existing.samples if existing is not None else 1)
        emit(DescribeEvent("plan", prompt.name, total=len(plan), kept=sum(kept.values())))

        new_texts: dict[str, dict[int, str]] = {c: {} for c in class_names}
        # Token usage: the file keeps the sum over every run that filled it (--force starts over).
        usage_run: dict[str, int] = {}
        usage_by_class: dict[str, dict[str, int]] = {}
        usage_before = dict(existing.usage or {}) if existing is not None else {}

        def build(complete: bool) -> DescriptionFile:
            desc_map = {}
            for c in class_names:
                merged = texts[c] + [new_texts[c][i] for i in sorted(new_texts[c])]
                if merged:
                    desc_map[c] = merged
            return DescriptionFile(
                dataset=opts.dataset, class_names=class_names, prompt_name=prompt.name,
                prompt_text=prompt.text, prompt_system=prompt.system,
                describer=prov.get("describer", opts.describer), model=prov.get("model"),
                base_url=prov.get("base_url"), temperature=prov.get("temperature"),
                seed=prov.get("seed"), samples=samples_field, created_at=created, updated_at=_now(),
                textclf_version=__version__, complete=complete,
                usage=add_usage(dict(usage_before), usage_run) or None, descriptions=desc_map)

        if not plan and existing is not None and existing.complete:
            return DescribeResult(out, existing, kept, {c: 0 for c in class_names},
                                  prov.get("label", prov.get("describer", "")),
                                  time.perf_counter() - started)

        sem = asyncio.Semaphore(opts.concurrency)
        fetched = {c: 0 for c in class_names}

        failed: list[BaseException] = []

        async def one(class_name: str, index: int) -> None:
            async with sem:
                if failed:  # another request failed for good: start nothing new
                    return
                try:
                    text = await _call(desc.describe, class_name, prompt, index)
                except BaseException as exc:
                    failed.append(exc)
                    raise
            usage = getattr(text, "usage", None)
            text = str(text or "").strip()
            if not text:
                raise TextclfError(f"describer '{opts.describer}' returned an empty description "
                                   f"for class '{class_name}'")
            new_texts[class_name][index] = text
            fetched[class_name] += 1
            if usage:
                add_usage(usage_run, usage)
                add_usage(usage_by_class.setdefault(class_name, {}), usage)
            writer.submit(build(complete=False).to_json())  # persisted at once, off the event loop
            emit(DescribeEvent("done", prompt.name, class_name, sample=index, text=text, usage=usage))

        writer = _Writer(out)
        tasks = [asyncio.ensure_future(one(c, i)) for c, i in plan]
        try:
            for fut in asyncio.as_completed(tasks):
                await fut
        except BaseException as exc:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                writer.close()  # everything that arrived is on disk before the error propagates
            except TextclfError:
                pass  # the original error is the one to report
            done = writer.saved - sum(kept.values())  # what reached the disk, not what arrived
            if isinstance(exc, TextclfError) and done > 0:
                raise TextclfError(f"{exc} ({done} of {len(plan)} descriptions saved to {out}; "
                                   f"rerun to fetch the rest)") from None
            raise
        final = build(complete=True)
        writer.submit(final.to_json())
        writer.close()
        emit(DescribeEvent("finished", prompt.name, total=len(plan)))
        return DescribeResult(out, final, kept, fetched, prov.get("label", prov.get("describer", "")),
                              time.perf_counter() - started, usage_run, usage_by_class)
    finally:
        closer = getattr(desc, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except Exception:  # closing a client must not hide the real outcome
                pass


def run_describe(opts: DescribeOptions,
                 on_event: Optional[Callable[[DescribeEvent], None]] = None) -> DescribeResult:
    """Synchronous wrapper around :func:`describe_async`."""
    return asyncio.run(describe_async(opts, on_event))
