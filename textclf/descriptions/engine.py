"""The describing engine: ask a describer for every (class, sample), persist as results arrive.

Library code: no printing, no Typer. Progress is reported through a callback that receives
:class:`DescribeEvent` objects. Requests run concurrently (``asyncio`` with a semaphore);
every finished description is handed at once to a writer thread that rewrites the whole file
atomically (temp file + rename; marked ``complete: false`` until the last one), so a kill
loses at most the requests in flight (and any result that arrived during the last write),
never leaves an unreadable file, and a rerun asks only for what is missing.

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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from textclf import __version__
from textclf.descriptions.describers import add_usage, make_describer
from textclf.descriptions.files import DescriptionFile, is_description_file, load_descriptions
from textclf.descriptions.request import DescribeRequest
from textclf.errors import TextclfError
from textclf.files.atomic import write_json
from textclf.files.ownership import refuse_foreign_file


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
        self._thread = threading.Thread(
            target=self._run, name="textclf-describe-writer", daemon=True
        )
        self._thread.start()

    def submit(self, data: dict) -> None:
        """Hand over a snapshot (``{"descriptions": {class: [texts]}, ...}``) to be written next."""
        if self.error is not None:
            raise TextclfError(f"cannot write {self.path}: {self.error}")
        with self._cond:
            self._pending = data
            self._cond.notify()

    def _run(self) -> None:

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
    return {
        "dataset": dataset,
        "describer": prov.get("describer"),
        "model": prov.get("model"),
        "temperature": prov.get("temperature"),
        "seed": prov.get("seed"),
        "prompt_text": prompt.text,
        "prompt_system": prompt.system,
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


def _existing_file(opts: DescribeRequest):
    """The file to resume (None: start afresh); a file textclf did not write is never replaced."""

    out = Path(opts.output)
    if opts.force:  # --force starts over, but replaces only what textclf wrote
        refuse_foreign_file(out, is_description_file, "choose another --output")
        return None
    if not out.exists():
        return None
    try:
        return load_descriptions(out, list(opts.class_names), partial=True)
    except TextclfError as exc:
        if not is_description_file(out):
            raise TextclfError(
                f"'{out}' exists and was not written by textclf ({exc}); textclf never "
                f"overwrites a file it did not write: choose another --output"
            ) from None
        raise TextclfError(f"{exc}; use --force to overwrite it") from None


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
        return DescriptionFile(
            dataset=opts.dataset,
            class_names=self.names,
            prompt_name=opts.prompt.name,
            prompt_text=opts.prompt.text,
            prompt_system=opts.prompt.system,
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
        self, class_name: str, index: int, sem: asyncio.Semaphore, writer: _Writer
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
        writer.submit(self.build(complete=False).to_json())
        self.emit(
            DescribeEvent(
                "done", self.opts.prompt.name, class_name, sample=index, text=text, usage=usage
            )
        )

    async def fetch_all(self, writer: _Writer) -> None:
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
                writer.close()  # everything that arrived is on disk before the error propagates
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
    existing = _existing_file(opts)

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
            return DescribeResult(
                Path(opts.output),
                existing,
                run.kept,
                run.fetched,
                run.label,
                time.perf_counter() - started,
                samples=run.samples,
            )
        writer = _Writer(Path(opts.output))
        await run.fetch_all(writer)
        final = run.build(complete=True)
        writer.submit(final.to_json())
        writer.close()
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
