"""The plain types a plugin returns: a :class:`Dataset` and its :class:`Split` s, and the
:class:`Preprocessing` an image backbone declares, with the choices and normalisation constants it
is built from (one home for each).

They live in the base, below ``data`` and ``models``, so that the plugin contract
(:mod:`textclf.plugin_api`) names them without importing either; ``textclf.data`` re-exports them.

A split holds either decoded uint8 images in memory (N, H, W, 3) or a list of file paths (image
folders, decoded by the one decoder, :mod:`textclf.files.image_decoder`). Both hand out uint8 RGB
arrays, so preprocessing follows from the backbone alone.

:class:`Preprocessing` is its own schema: a backbone's declaration (checked when it is built), a
run's ``run.json`` and an exported model's ``textclf.preprocessing`` metadata (checked on read,
by pydantic, against the dataclass's own field types) all go through it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Annotated, Literal, Optional

import pydantic
from pydantic import ConfigDict, Field, Strict

from textclf.errors import TextclfError
from textclf.splits import check_split
from textclf.validation import problem, validate

if TYPE_CHECKING:
    import numpy as np

# ---- datasets -----------------------------------------------------------------------------------


@dataclass
class Split:
    """One split of a dataset: images (array or paths) and integer labels."""

    labels: np.ndarray
    images: Optional[np.ndarray] = None  # uint8 (N, H, W, 3)
    paths: Optional[list[str]] = None
    _fingerprint: Optional[str] = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    def pil(self, index: int):
        """Image ``index`` as an RGB PIL image (decoded in full: no JPEG draft)."""
        from PIL import Image

        return Image.fromarray(
            self.images[index] if self.images is not None else self._decode(index, None)
        )

    def read(self, indices: Sequence[int], draft_size: Optional[int] = None):
        """uint8 RGB images ``indices``: an (N, H, W, 3) array, or a list of (H, W, 3) arrays for
        files.

        File images keep their own sizes: preprocessing resizes each one on its own. ``draft_size``
        lets JPEG files decode at a reduced scale
        (:func:`textclf.files.image_decoder.decode_image`); a model's paths pass
        :func:`textclf.files.image_decoder.draft_size` of its preprocessing.
        """
        import numpy as np  # numpy on first use: the CLI reads these types without loading it

        idx = np.asarray(indices, dtype=np.int64)
        if self.images is not None:
            return np.ascontiguousarray(self.images[idx])
        return [self._decode(int(i), draft_size) for i in idx]

    def _decode(self, index: int, draft_size: Optional[int]) -> np.ndarray:
        """File ``index`` through the one decoder; an unreadable file is a one-line error naming
        it."""
        from textclf.files.image_decoder import decode_image  # numpy and Pillow on first use

        try:
            return decode_image(self.paths[index], draft_size)
        except TextclfError as exc:
            raise TextclfError(f"image '{self.paths[index]}': {exc}") from None

    def subset(self, indices: Sequence[int]) -> Split:
        """A new split with only ``indices`` (order kept)."""
        import numpy as np

        idx = np.asarray(indices, dtype=np.int64)
        return Split(
            labels=self.labels[idx],
            images=None if self.images is None else self.images[idx],
            paths=None if self.paths is None else [self.paths[i] for i in idx],
        )

    def fingerprint(self) -> str:
        """A content hash of the images (pixels, or file bytes) and labels (a feature-cache key
        part)."""
        if self._fingerprint is None:
            import numpy as np

            h = hashlib.blake2b(digest_size=16)
            h.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
            if self.images is not None:
                h.update(str(self.images.shape).encode())
                h.update(np.ascontiguousarray(self.images).tobytes())
            else:
                # The bytes of every file, not its size and mtime: `cp -p` and `rsync -t` replace
                # contents but keep both, and stale features would then be served silently.
                for p in self.paths or []:
                    h.update(f"{p}\0".encode())
                    with open(p, "rb") as fh:
                        for chunk in iter(lambda: fh.read(1 << 20), b""):
                            h.update(chunk)
                    h.update(b"\n")
            self._fingerprint = h.hexdigest()
        return self._fingerprint


@dataclass
class Dataset:
    """A named dataset: class names plus train and test splits."""

    name: str
    class_names: list[str]
    train: Split
    test: Split
    warnings: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.class_names)

    def split(self, name: str) -> Split:
        """The split called ``name`` (train or test)."""
        return getattr(self, check_split(name))


# ---- preprocessing ------------------------------------------------------------------------------

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
RESIZE_MODES = ("squash", "shortest-side")  # see textclf.data.preprocessing for what each does
# Normalisation constants (mean, std per RGB channel, on pixels scaled to [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's (open_clip's default)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TF_LITE_MEAN = (127.0 / 255,) * 3  # TF-Lite's uint8 convention, (x - 127) / 128
TF_LITE_STD = (128.0 / 255,) * 3

# Scalars are strict: "224" or true where a number belongs is a damaged record, not a conversion.
# Containers are not: JSON has lists where the dataclass has tuples.
_Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]
_Positive = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]


@dataclass(frozen=True)
class Preprocessing:
    """What a backbone expects of an image (saved with every run and exported model).

    Built in code, its fields are checked against their types (a one-line :class:`TextclfError`);
    read from a file, :meth:`from_dict` checks the record, and pydantic models that hold one
    (``run.json``'s, the ONNX metadata's) validate it by these same types.
    """

    # Extra keys are ignored: the ONNX metadata adds ``in_graph``; newer writers may add more.
    __pydantic_config__ = ConfigDict(extra="ignore")

    input_size: Annotated[int, Strict(), Field(ge=1, le=16384)]
    mean: tuple[_Finite, _Finite, _Finite]
    std: tuple[_Positive, _Positive, _Positive]
    interpolation: Literal[INTERPOLATIONS] = "bilinear"
    resize: Literal[RESIZE_MODES] = "squash"
    crop_pct: Annotated[float, Strict(), Field(gt=0, le=1)] = 1.0
    channels: Literal["RGB"] = "RGB"

    def __post_init__(self):
        # Each field through its own type: this checks a declaration made in code and turns lists
        # into tuples and ints into floats (a record read by pydantic arrives here checked already).
        for name, adapter in _field_adapters().items():
            try:
                value = adapter.validate_python(getattr(self, name))
            except pydantic.ValidationError as exc:
                found = problem(exc)
                where = name if not exc.errors()[0]["loc"] else f"{name}.{found.key}"
                raise TextclfError(f"preprocessing: {where}: {found.reason}{found.got}") from None
            object.__setattr__(self, name, value)

    def with_size(self, input_size: int | None) -> Preprocessing:
        """The same preprocessing at another input size (``None``: unchanged)."""
        return self if input_size is None else replace(self, input_size=int(input_size))

    @property
    def resize_size(self) -> int:
        """The short side before the centre crop (``shortest-side``), or the input size
        (``squash``)."""
        if self.resize == "squash":
            return self.input_size
        return math.floor(self.input_size / self.crop_pct)

    def to_dict(self) -> dict:
        """Plain JSON values (for run.json and ONNX metadata)."""
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @classmethod
    def from_dict(cls, data: dict, source: str = "preprocessing") -> Preprocessing:
        """Read :meth:`to_dict` output back; anything else is a one-line error naming ``source``
        and the key."""
        if not isinstance(data, dict):
            raise TextclfError(f"{source} is not a preprocessing record")
        return validate(_record_adapter(), data, what=source)


@functools.cache
def _record_adapter() -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(Preprocessing)


@functools.cache
def _field_adapters() -> dict[str, pydantic.TypeAdapter]:
    hints = typing.get_type_hints(Preprocessing, include_extras=True)
    return {f.name: pydantic.TypeAdapter(hints[f.name]) for f in dataclasses.fields(Preprocessing)}
