"""Keeping a describe run's texts on disk as they arrive, in time linear in their number.

The description file (``type1.json``) is written whole at the start of a run (``complete: false``,
with the texts kept from an earlier run) and at its end; every description that arrives in between
is appended as one JSON line to a journal beside it (``type1.json.journal``) by a background
thread, a batch at a time, and flushed to disk. Rewriting the whole file per description, as
before, cost O(n) per text and O(n^2) per run (3,000 samples: a minute).

A killed run leaves the partial file and its journal; the next run replays the journal onto the
file (:func:`replay`) and asks only for what is still missing. The journal's first line names the
texts per class of the file it extends, so a journal that no longer matches its file (the run was
killed after rewriting the file, or the file was replaced) is never replayed twice: it is ignored
and overwritten. Readers other than ``describe`` see the partial file and refuse it as unfinished.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Optional

from textclf.descriptions.describers import add_usage
from textclf.descriptions.files import DescriptionFile
from textclf.errors import TextclfError
from textclf.files.atomic import write_json, write_text

FORMAT = "textclf-describe-journal"


def journal_path(out: Path) -> Path:
    """Where the journal of description file ``out`` lives: beside it, ``<name>.journal``."""
    return out.with_name(out.name + ".journal")


def _header(path: Path) -> Optional[dict]:
    """The journal's first line when it is textclf's journal, else None."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = json.loads(fh.readline())
    except (OSError, ValueError):
        return None
    return first if isinstance(first, dict) and first.get("format") == FORMAT else None


def _counts(file: DescriptionFile) -> dict[str, int]:
    return {c: len(file.descriptions.get(c, [])) for c in file.class_names}


def replay(out: Path, file: DescriptionFile) -> DescriptionFile:
    """``file`` (the partial description file at ``out``) with the texts of its journal appended
    in sample order, when the journal extends exactly this file; ``file`` as it is otherwise. A
    last line cut short by a kill is left out."""
    path = journal_path(out)
    header = _header(path)
    if file.complete or header is None or header.get("base") != _counts(file):
        return file
    arrived: dict[str, dict[int, str]] = {c: {} for c in file.class_names}
    usage = dict(file.usage or {})
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        try:
            record = json.loads(line)
            name, sample, text = record["class"], int(record["sample"]), str(record["text"])
        except (ValueError, KeyError, TypeError):
            continue  # the line a kill cut short
        if name in arrived and text.strip():
            arrived[name][sample] = text
            add_usage(usage, record.get("usage"))
    merged = {
        c: list(file.descriptions.get(c, [])) + [arrived[c][i] for i in sorted(arrived[c])]
        for c in file.class_names
    }
    return file.model_copy(
        update={
            "descriptions": {c: texts for c, texts in merged.items() if texts},
            "usage": usage or None,
        }
    )


def discard(out: Path) -> None:
    """Remove the journal of ``out`` when there is one and it is textclf's."""
    path = journal_path(out)
    if _header(path) is not None:
        path.unlink(missing_ok=True)


class JournalWriter:
    """Writes a run's description file at its start and end, and every description in between
    to the journal, from one background thread (the event loop only hands records over).

    ``add`` queues one record; the thread appends what is queued as one batch and flushes it.
    ``close(final)`` writes what is queued, then the final file, then removes the journal, so
    every description that arrived before it is on disk afterwards.
    """

    def __init__(self, out: Path, start: DescriptionFile):
        self.out, self.path, self.start = out, journal_path(out), start
        self.saved = sum(_counts(start).values())  # texts on disk (the file's and the journal's)
        self.error: Optional[BaseException] = None
        self._pending: list[str] = []
        self._closed = False
        self._fh = None  # opened with the first description: a run that gets none writes nothing
        self._cond = threading.Condition()
        self._thread = threading.Thread(
            target=self._run, name="textclf-describe-journal", daemon=True
        )
        self._thread.start()

    def add(self, class_name: str, sample: int, text: str, usage: Optional[dict]) -> None:
        """Queue one description for the journal."""
        if self.error is not None:
            raise TextclfError(f"cannot write {self.path}: {self.error}")
        record = {"class": class_name, "sample": sample, "text": text}
        if usage:
            record["usage"] = usage
        with self._cond:
            self._pending.append(json.dumps(record, ensure_ascii=False))
            self._cond.notify()

    def _open(self):
        """The file as the run starts, then the journal's header (which names it), whole."""
        if self.path.exists() and _header(self.path) is None:
            raise TextclfError(
                f"'{self.path}' exists and was not written by textclf; textclf never overwrites "
                "a file it did not write: move it, or choose another --output"
            )
        write_json(self.out, self.start.to_json())
        header = {"format": FORMAT, "file": self.out.name, "base": _counts(self.start)}
        write_text(self.path, json.dumps(header) + "\n")
        return open(self.path, "a", encoding="utf-8")

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._pending and not self._closed:
                        self._cond.wait()
                    batch, self._pending = self._pending, []
                    if not batch and self._closed:
                        return
                try:
                    self._fh = self._fh or self._open()
                    self._fh.write("".join(line + "\n" for line in batch))
                    self._fh.flush()
                    os.fsync(self._fh.fileno())
                    self.saved += len(batch)
                except Exception as exc:  # reported on the next add / close
                    self.error = exc
        finally:
            if self._fh is not None:
                self._fh.close()

    def stop(self) -> None:
        """Write what is queued and stop the thread (the journal stays, for a rerun to replay)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        if self.error is not None:
            raise TextclfError(f"cannot write {self.path}: {self.error}")

    def close(self, final: DescriptionFile) -> None:
        """Write what is queued, then the complete file; then the journal is no longer needed."""
        self.stop()
        write_json(self.out, final.to_json())
        self.path.unlink(missing_ok=True)
