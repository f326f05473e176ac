"""Batches spread over threads come back in order, with few held at a time (issue 31)."""

from __future__ import annotations

import threading
import time

from textclf.runtime.parallel import ordered_map


def test_ordered_map_keeps_the_order_runs_in_threads_and_stays_ahead_by_little():
    started, names = [], set()

    def work(i):
        started.append(i)
        names.add(threading.current_thread().name)
        time.sleep(0.01 * (i % 3))
        return i * i

    items = list(range(12))
    results = ordered_map(work, items, 3)
    assert next(results) == 0
    assert len(started) <= 1 + 3 + 1  # the first, and at most workers + 1 ahead of the caller
    assert [0, *results] == [i * i for i in items]
    assert len(names) > 1 and all(n.startswith("textclf-batch") for n in names)
    assert list(ordered_map(work, items, 0)) == [i * i for i in items]
