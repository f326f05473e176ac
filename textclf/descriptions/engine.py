"""The describing engine: ask a describer for every (class, sample), persist as results arrive.

Library code: no printing, no Typer. Progress is reported through a callback that receives
:class:`DescribeEvent` objects. Requests run concurrently (``asyncio`` with a semaphore);
every finished description is handed at once to a writer thread that appends it to the file's
journal (:mod:`textclf.descriptions.journal`; the file itself is written whole, atomically, at
the start, marked ``complete: false``, and at the end), so a kill loses at most the requests in
flight (and what arrived during the last flush), never leaves an unreadable file, a rerun asks
only for what is missing, and a run costs time linear in its number of descriptions.

A describer (what a :class:`~textclf.plugin_api.DescriberPlugin`'s ``make(**options)`` returns)
has ``describe(class_name, prompt, sample_index) -> str``, sync or async, and ``provenance() ->
dict`` (keys among ``describer``, ``model``, ``base_url``, ``temperature``, ``seed``, and
``label`` for display). Optional: ``max_samples(class_name) -> int | None`` (a cap on distinct
samples, e.g. 1 for fixed texts), ``async aclose()``, and a ``usage`` dict attribute on the
returned text (tokens the server reported; summed per class and per file). ``make`` receives
``dataset``, ``class_names``, ``model``, ``base_url``, ``temperature``, ``seed``, ``samples``,
``concurrency``, ``timeout``, ``max_retries``, ``backoff_base``, ``on_retry``, ``api_key`` and,
for ``name:ARG`` describers, ``argument``; it should accept and ignore options it does not use.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from textclf import __version__
from textclf.descriptions.describers import add_usage, make_describer
from textclf.descriptions.files import DescriptionFile
from textclf.descriptions.journal import JournalWriter, discard
from textclf.descriptions.request import DescribeRequest, existing_file
from textclf.errors import TextclfError


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
class DescribeResult:
    """What a run wrote: the validated file, and per class whether texts were kept or fetched."""

    path: Path
    file: DescriptionFile
    kept: dict[str, int] = field(default_factory=dict)
    fetched: dict[str, int] = field(default_factory=dict)
    source_label: str = ""
    seconds: float = 0.0
    # Tokens this run's requests used (empty: none reported)
    usage: dict[str, int] = field(default_factory=dict)
    usage_by_class: dict[str, dict[str, int]] = field(default_factory=dict)
    samples: int = 1  # distinct texts per class the describer can give, at most what was asked for

    @property
    def requests(self) -> int:
        """Descriptions fetched by this run."""
        return sum(self.fetched.values())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def recorded_prompt(prov: dict, prompt) -> tuple:
    """``(prompt_text, prompt_system)`` a file records: the describer's own when its texts do not
    come from the prompt (``provenance()`` names them), else the prompt's."""
    if "prompt_text" in prov:
        return prov["prompt_text"], prov.get("prompt_system")
    return prompt.text, prompt.system


def _identity(prov: dict, prompt, dataset: str) -> dict:
    text, system = recorded_prompt(prov, prompt)
    return {
        "dataset": dataset,
        "describer": prov.get("describer"),
        "model": prov.get("model"),
        "temperature": prov.get("temperature"),
        "seed": prov.get("seed"),
        "prompt_text": text,
        "prompt_system": system,
    }


def _check_resumable(existing, prov: dict, prompt, dataset: str, out: Path) -> None:
    mine = _identity(prov, prompt, dataset)
    theirs = {
        "dataset": existing.dataset,
        "describer": existing.describer,
        "model": existing.model,
        "temperature": existing.temperature,
        "seed": existing.seed,
        "prompt_text": existing.prompt_text,
        "prompt_system": existing.prompt_system,
    }
    for key, value in mine.items():
        if theirs[key] != value:
            raise TextclfError(
                f"{out} was written with {key} {theirs[key]!r}, this run uses {value!r}; "
                f"use --force to replace it or --output to write elsewhere"
            )


def _n_samples(desc, class_name: str, samples: int) -> int:
    limit_fn = getattr(desc, "max_samples", None)
    limit = limit_fn(class_name) if limit_fn is not None else None
    return samples if limit is None else max(1, min(samples, limit))


async def _call(fn, *args):
    out = fn(*args)
    if inspect.isawaitable(out):
        out = await out
    return out


class _Run:
    """One describe run's state: the texts kept and fetched, token usage, and the file they make."""

    def __init__(self, opts: DescribeRequest, existing, desc, emit):
        self.opts, self.existing, self.desc, self.emit = opts, existing, desc, emit
        self.prov = dict(desc.provenance())
        if existing is not None:
            _check_resumable(existing, self.prov, opts.prompt, opts.dataset, Path(opts.output))
        self.names = list(opts.class_names)
        self.texts = {
            c: list(existing.descriptions.get(c, [])) if existing else [] for c in self.names
        }
        self.kept = {c: len(self.texts[c]) for c in self.names}
        wanted = {c: _n_samples(desc, c, opts.samples) for c in self.names}
        self.plan = [(c, i) for c in self.names for i in range(len(self.texts[c]), wanted[c])]
        self.samples = max(
            max(wanted.values(), default=1), existing.samples if existing is not None else 1
        )
        self.created = existing.created_at if existing is not None else _now()
        self.new = {c: {} for c in self.names}
        self.fetched = {c: 0 for c in self.names}
        # Token usage: the file keeps the sum over every run that filled it (--force starts over).
        self.usage: dict[str, int] = {}
        self.usage_by_class: dict[str, dict[str, int]] = {}
        self.usage_before = dict(existing.usage or {}) if existing is not None else {}
        self.failed: list[BaseException] = []

    @property
    def label(self) -> str:
        return self.prov.get("label", self.prov.get("describer", ""))

    def build(self, complete: bool):
        """The description file as it stands (texts kept, then texts fetched in sample order)."""

        merged = {
            c: self.texts[c] + [self.new[c][i] for i in sorted(self.new[c])] for c in self.names
        }
        opts, prov = self.opts, self.prov
        prompt_text, prompt_system = recorded_prompt(prov, opts.prompt)
        return DescriptionFile(
            dataset=opts.dataset,
            class_names=self.names,
            prompt_name=opts.prompt.name,
            prompt_text=prompt_text,
            prompt_system=prompt_system,
            describer=prov.get("describer", opts.describer),
            model=prov.get("model"),
            base_url=prov.get("base_url"),
            temperature=prov.get("temperature"),
            seed=prov.get("seed"),
            samples=self.samples,
            created_at=self.created,
            updated_at=_now(),
            textclf_version=__version__,
            complete=complete,
            usage=add_usage(dict(self.usage_before), self.usage) or None,
            descriptions={c: t for c, t in merged.items() if t},
        )

    async def fetch(
        self, class_name: str, index: int, sem: asyncio.Semaphore, writer: JournalWriter
    ) -> None:
        """One description: asked for, checked, kept, and the file persisted at once (off the
        event loop)."""
        async with sem:
            if self.failed:  # another request failed for good: start nothing new
                return
            try:
                text = await _call(self.desc.describe, class_name, self.opts.prompt, index)
            except BaseException as exc:
                self.failed.append(exc)
                raise
        usage = getattr(text, "usage", None)
        text = str(text or "").strip()
        if not text:
            raise TextclfError(
                f"describer '{self.opts.describer}' returned an empty description "
                f"for class '{class_name}'"
            )
        self.new[class_name][index] = text
        self.fetched[class_name] += 1
        if usage:
            add_usage(self.usage, usage)
            add_usage(self.usage_by_class.setdefault(class_name, {}), usage)
        writer.add(class_name, index, text, usage)
        self.emit(
            DescribeEvent(
                "done", self.opts.prompt.name, class_name, sample=index, text=text, usage=usage
            )
        )

    async def fetch_all(self, writer: JournalWriter) -> None:
        """Every planned request, ``concurrency`` at a time; on a failure what arrived is on disk
        first."""
        sem = asyncio.Semaphore(self.opts.concurrency)
        tasks = [asyncio.ensure_future(self.fetch(c, i, sem, writer)) for c, i in self.plan]
        try:
            for fut in asyncio.as_completed(tasks):
                await fut
        except BaseException as exc:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                writer.stop()  # everything that arrived is on disk before the error propagates
            except TextclfError:
                pass  # the original error is the one to report
            # What reached the disk, not what arrived
            saved = writer.saved - sum(self.kept.values())
            if isinstance(exc, TextclfError) and saved > 0:
                raise TextclfError(
                    f"{exc} ({saved} of {len(self.plan)} descriptions saved to {self.opts.output}; "
                    f"rerun to fetch the rest)"
                ) from None
            raise


async def describe_async(
    opts: DescribeRequest, on_event: Optional[Callable[[DescribeEvent], None]] = None
) -> DescribeResult:
    """Describe every class of ``opts`` (a request :func:`~textclf.descriptions.request.plan`
    resolved) and write ``opts.output``; resumes an existing partial file."""
    started = time.perf_counter()
    emit = on_event or (lambda _e: None)
    opts.resolved()  # one prompt, its classes and file; every number in range
    existing = existing_file(opts)

    def retry_hook(class_name: str, attempt: int, delay: float, reason: str) -> None:
        emit(
            DescribeEvent(
                "retry", opts.prompt.name, class_name, attempt=attempt, delay=delay, reason=reason
            )
        )

    _, desc = make_describer(
        opts.describer,
        dataset=opts.dataset,
        class_names=list(opts.class_names),
        model=opts.model,
        base_url=opts.base_url,
        temperature=opts.temperature,
        seed=opts.seed,
        samples=opts.samples,
        concurrency=opts.concurrency,
        timeout=opts.timeout,
        max_retries=opts.max_retries,
        backoff_base=opts.backoff_base,
        on_retry=retry_hook,
        api_key=opts.api_key,
    )
    try:
        run = _Run(opts, existing, desc, emit)
        emit(
            DescribeEvent(
                "plan", opts.prompt.name, total=len(run.plan), kept=sum(run.kept.values())
            )
        )
        if not run.plan and existing is not None and existing.complete:
            discard(Path(opts.output))  # a journal a kill left after the file was complete
            return DescribeResult(
                Path(opts.output),
                existing,
                run.kept,
                run.fetched,
                run.label,
                time.perf_counter() - started,
                samples=run.samples,
            )
        writer = JournalWriter(Path(opts.output), run.build(complete=False))
        await run.fetch_all(writer)
        final = run.build(complete=True)
        writer.close(final)
        emit(DescribeEvent("finished", opts.prompt.name, total=len(run.plan)))
        return DescribeResult(
            Path(opts.output),
            final,
            run.kept,
            run.fetched,
            run.label,
            time.perf_counter() - started,
            run.usage,
            run.usage_by_class,
            run.samples,
        )
    finally:
        closer = getattr(desc, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except Exception:  # closing a client must not hide the real outcome
                pass


def run_describe(
    opts: DescribeRequest, on_event: Optional[Callable[[DescribeEvent], None]] = None
) -> DescribeResult:
    """Synchronous wrapper around :func:`describe_async`."""
    return asyncio.run(describe_async(opts, on_event))
