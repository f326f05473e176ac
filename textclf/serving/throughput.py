"""How ``predict`` splits the cores between decoding and ONNX Runtime, chosen by measurement.

Measured with ``benchmarks/predict_speed.py`` (2,000 CIFAR-10 JPEGs, the demo run's
EfficientNet-Lite0 export at 96 px) on this project's 2-core machine; the figures are in
docs/feature-extraction.md ("Serving"). What they showed:

- ONNX Runtime keeps every core busy with its own intra-op threads; a decode worker beside them
  costs little, because decoding and preparing a batch is a small fraction of running it
  (decode 0.2 ms, prepare 0.1 ms, run 3-4 ms per image and core here);
- spinning intra-op threads burn the cores the decode worker needs between runs: with spinning
  off, CPU time falls and wall time does not rise;
- batches of 32 or more amortise ``session.run``'s fixed cost; larger ones gain nothing.

The rule for other machines (not measured: no machine with more than 2 cores was available):
decoding's share of the work is ``d = decode / (decode + run)`` per image; give the decode pool
``ceil(cores * d)`` threads, at least 1, and ONNX Runtime every core (its threads sleep while
they wait, so the pool's work fits in between). With this model's ``d`` of about 0.1, that is 1
worker up to 10 cores and 2 on 16; small models on large photos (``d`` up to 0.5: a 3,000 px
JPEG decodes in 20-40 ms even drafted) want up to half the cores, which :data:`DECODE_SHARE`
caps.
"""

from __future__ import annotations

from dataclasses import dataclass

from textclf.runtime.parallel import cores

DECODE_SHARE = 0.1  # decode / (decode + run) per image, measured (module docstring)
MAX_DECODE_SHARE = 0.5
# Fewer images than this go through the calling thread alone: a pool would not start in time.
POOL_FROM = 2


@dataclass(frozen=True)
class Plan:
    """Threads for one ``predict`` call."""

    workers: int  # decode threads working ahead of the model (0: decode on the calling thread)
    ort_threads: int  # ONNX Runtime intra-op threads (0: ONNX Runtime's own choice)
    spin: bool  # whether idle intra-op threads spin


def plan(images: int, batch_size: int) -> Plan:
    """The split for ``images`` images read ``batch_size`` at a time."""
    if images < POOL_FROM or images <= batch_size:
        # One batch: nothing to overlap; ONNX Runtime's own threads cut its latency
        return Plan(workers=0, ort_threads=0, spin=True)
    # Many batches: a thread per core, each a batch from file to prediction on one intra-op thread
    return Plan(workers=cores(), ort_threads=1, spin=False)
