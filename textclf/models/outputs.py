"""The served model's named outputs: the one contract between the module that export traces
(:mod:`textclf.models.serving`), the ONNX graph, and everything that reads them.

Torch-free on purpose: ``textclf predict`` on an exported model, ``eval --onnx`` and the Python
API's exported models read outputs by these names without importing torch.

- ``logits`` / ``probabilities`` (N, C): the classification head over the C trained classes;
- ``embedding`` (N, P): the projected image embedding;
- ``text_logits`` (N, V): ``cos(embedding, class text embedding) / temperature - gamma * seen``
  over the vocabulary (trained classes, then classes known by description);
- ``text_probabilities`` (N, V): their softmax;
- ``ensemble_probabilities`` (N, V): the mean of both heads' probabilities.
"""

from __future__ import annotations

from typing import NamedTuple


class ServedOutputs(NamedTuple):
    """The six outputs of the served model, by name (tensors, or numpy arrays once collected)."""

    logits: object
    probabilities: object
    embedding: object
    text_logits: object
    text_probabilities: object
    ensemble_probabilities: object


OUTPUT_NAMES: tuple[str, ...] = ServedOutputs._fields
# The output each prediction head reads.
HEAD_OUTPUTS = {
    "classifier": "probabilities",
    "text": "text_probabilities",
    "ensemble": "ensemble_probabilities",
}
