"""How ``predict`` uses the cores: one batch per thread on one intra-op thread, or one batch on all.

Measured with ``benchmarks/predict_speed.py --sweep`` (2,000 CIFAR-10 JPEGs, the demo run's
EfficientNet-Lite0 export at 96 px) on this project's only machine, 2 shared cores; the figures
are in docs/feature-extraction.md ("Serving"). What they showed:

- decoding and preparing a batch is a small part of running it (decode 0.2 ms, prepare 0.3-0.7
  ms, run 3-4 ms per image and core), so overlapping them gains little by itself; what pays is
  keeping both cores running the model;
- ONNX Runtime's own intra-op threads on a shared machine wait at every barrier for a core
  another process holds, and spinning between runs burns CPU time (up to 1.6x the CPU of the
  same work on one thread per run). One thread per ``run`` and one batch per thread
  (:func:`textclf.runtime.parallel.ordered_map`) has no barrier: each thread decodes, prepares
  and runs its own batch, so one thread's decoding overlaps another's inference;
- batches of 16 and 64 ran at the same rate within the noise; 64 holds twice the memory (peak
  RSS about 490 MB with 2 threads, 230 MB at 16). The default stays 64 (``--batch-size``), which
  GPU providers want.

The rule for other machines (reasoned, not measured: no machine with more than 2 cores was
available): a thread per core, each on one intra-op thread, as long as there are batches for every
thread (``images / batch_size`` of at least 2-4 per thread, else lower ``--batch-size``: the last
wave of batches leaves cores idle). The Python work per image that holds the GIL (about 50 us:
the decode call, the top-k) is about 2% of a core's inference time per image here, so 16 threads
keep 16 cores busy; the memory is one batch's activations per thread. A single batch runs on ONNX
Runtime's own threads instead (its latency is what counts there), and a single image on one
thread: a cold process should start no pool, and one small image gains nothing from a second
core. Idle intra-op threads never spin: between runs the cores belong to decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

from textclf.runtime.parallel import cores


@dataclass(frozen=True)
class Plan:
    """Threads for one ``predict`` call."""

    workers: int  # threads that each take a batch from files to probabilities (0: the caller's)
    ort_threads: int  # ONNX Runtime intra-op threads per run (0: ONNX Runtime's own choice)
    spin: bool  # whether idle intra-op threads spin


def plan(images: int, batch_size: int) -> Plan:
    """The split for ``images`` images read ``batch_size`` at a time."""
    if images <= 1:
        # One image: one thread, no pool (a cold process's start is most of its cost)
        return Plan(workers=0, ort_threads=1, spin=False)
    if images <= batch_size:
        # One batch: nothing to spread; ONNX Runtime's own threads cut its latency
        return Plan(workers=0, ort_threads=0, spin=False)
    return Plan(workers=cores(), ort_threads=1, spin=False)
