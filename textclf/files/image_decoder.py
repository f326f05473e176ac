"""The one image decoder: every path that turns an image into pixels goes through here.

It sits in the base (beside the files textclf reads) because a plugin's
:class:`~textclf.datatypes.Split` of image files reads them through it, and the base imports
nothing above it; :mod:`textclf.data.decode` re-exports it.

Training and evaluation (:meth:`textclf.datatypes.Split.read`), ``textclf predict``, the
Python API (``Run.predict``) and ``textclf export samples`` all call :func:`decode_image` (a
file) or :func:`to_rgb_array` (a PIL image or an array), so one image gives the same uint8
(H, W, 3) RGB pixels everywhere. The rules, in order:

1. **First frame.** An animated GIF, PNG (APNG) or WebP is read as its first frame.
2. **EXIF orientation** is applied (:func:`PIL.ImageOps.exif_transpose`), as a photo viewer,
   torchvision's ``decode_image(..., apply_exif_orientation=True)`` and timm's loaders do: a
   phone photo taken upright is upright whatever its sensor's orientation.
3. **Every Pillow mode to 8-bit RGB, by its real depth:**
   - ``1`` (bilevel): 0 and 255; ``L``: grey repeated over R, G, B;
   - ``I;16``, ``I;16L``, ``I;16B``, ``I;16N`` (16-bit, e.g. 16-bit PNG and TIFF): ``v >> 8``
     (``convert("RGB")`` clips them to 255, so such images used to read as white);
   - ``I`` (32-bit signed integer): negative values clip to 0, then ``v >> (bits - 8)``, with
     ``bits`` the smallest of 8, 16 or 32 that holds the image's largest value (the mode says
     nothing of the real depth: a 32-bit TIFF often carries 12- or 16-bit samples);
   - ``F`` (32-bit float): values in [0, 1] are scaled by 255; any other range is stretched
     from its minimum to its maximum onto 0-255; NaN and inf become 0 (a constant image
     outside [0, 1] has no range and reads as 0);
   - transparency (``RGBA``, ``LA``, ``PA``, premultiplied ``RGBa``/``La``, palette images
     with a transparent index) is **composited onto white**, as the image looks on a white
     page: dropping alpha instead (what ``convert("RGB")`` does) shows whatever colour the
     invisible pixels happen to hold, usually black;
   - ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, ``RGBX`` and palette images: Pillow's conversion.
4. **JPEG draft** (only when the caller gives ``draft_size``): libjpeg decodes at 1/2, 1/4 or
   1/8 scale, the smallest that still leaves both sides >= ``draft_size`` (Pillow's
   :meth:`~PIL.Image.Image.draft`). It is faster, and it changes pixels: the DCT-domain downscale
   (with its own chroma upsampling) is not a full decode followed by the antialiased resize.
   Measured on 3840 x 2562 photos with EfficientNet-Lite0 (relative L2 distance of the features
   to a full decode's; decode speed on one core, full decode 21-23 img/s):

   ============================  =============  ==============  =============
   draft down to                 96 px: diff    224 px: diff    speed
   ============================  =============  ==============  =============
   the input size (1x)           5.0%           9.0%            2.5-2.7x
   2x the input size             5.0%           3.7%            2.2-2.6x
   4x the input size (used)      2.2%           0.4%            1.6-2.4x
   ============================  =============  ==============  =============

   (500 x 375 images drafted to 1x at 96 px: 9-25%; the two runtimes differ by 1e-5.) So the
   model paths draft only to :data:`DRAFT_MARGIN` times the model's resize size
   (:func:`draft_size`): a JPEG at least 8x the model's size on both sides decodes at a reduced
   scale and still shrinks 4x or more in the antialiased resize; smaller ones decode in full,
   exactly as any decoder gives them. Every textclf path that decodes files for a model passes
   that size (training, eval, ``eval --onnx``, the parity check, int8 calibration, ``predict``,
   ``Run.predict``), and the feature-cache key of a file-based split records the decoder
   (:data:`DECODER`). Other formats ignore ``draft_size``.

Unreadable, corrupt, truncated or too-large files are a one-line :class:`TextclfError`.
"""

from __future__ import annotations

import os
import stat
import struct
from typing import Optional

import numpy as np

from textclf.errors import TextclfError
from textclf.files.image_files import special_kind_of_mode

# Recorded in the feature-cache key of file-based splits: bump when decoded pixels change.
DRAFT_MARGIN = 4  # JPEGs decode at reduced scale down to 4x the model's resize size (table above)
DECODER = {"decoder": 2, "jpeg_draft": DRAFT_MARGIN}
_ORIENTATION = 0x0112  # the EXIF tag
_TRANSPARENT = ("RGBA", "LA", "PA", "RGBa", "La")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def draft_size(prep) -> int:
    """The JPEG draft size for a model's :class:`~textclf.datatypes.Preprocessing`:
    :data:`DRAFT_MARGIN` times the side its resize starts from (the input size for ``squash``, the
    short side before the centre crop for ``shortest-side``), so a drafted image still shrinks by
    at least that factor in the antialiased resize."""
    return DRAFT_MARGIN * int(prep.resize_size)


def decode_image(source, draft_size: Optional[int] = None) -> np.ndarray:
    """An image file (a path, or a binary file object) as a writable uint8 (H, W, 3) RGB array.

    ``draft_size``: let JPEG decode at a reduced scale whose sides stay >= it (see the module
    docstring). Errors are one-line :class:`TextclfError`\\ s: ``no such file``, ``is a
    directory``, ``not an image PIL can read``, ``too large to decode``, ``corrupt or truncated``.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, (str, os.PathLike)):
        try:  # one stat says all (a folder of 2,000 JPEGs made three each)
            mode = os.stat(source).st_mode
        except (FileNotFoundError, NotADirectoryError):
            raise TextclfError("no such file") from None
        except OSError as exc:  # a name too long, a loop of links
            raise TextclfError(f"cannot read it: {exc.strerror or exc}") from None
        except ValueError as exc:  # a NUL byte in the name
            raise TextclfError(f"cannot read it: {exc}") from None
        if stat.S_ISDIR(mode):
            raise TextclfError("is a directory, not an image")
        what = special_kind_of_mode(mode)
        if what is not None:  # opening a named pipe would wait for a writer forever
            raise TextclfError(f"{what}, not a regular file; not opened")
    try:
        with Image.open(source) as im:
            if getattr(im, "is_animated", False):
                im.seek(0)  # the first frame
            if draft_size and im.format == "JPEG":
                im.draft(im.mode, (int(draft_size), int(draft_size)))
            im.load()
            arr = to_rgb_array(im)
    except UnidentifiedImageError:
        raise TextclfError("not an image PIL can read") from None
    except (Image.DecompressionBombError, MemoryError) as exc:
        raise TextclfError(
            f"too large to decode ({type(exc).__name__}: {str(exc)[:120]}); resize it first"
        ) from None
    except TextclfError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, TypeError) as exc:
        raise TextclfError(
            f"corrupt or truncated image ({type(exc).__name__}: {str(exc)[:120]})"
        ) from None
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise TextclfError(f"unusable image shape {arr.shape}")
    return arr


def to_rgb_array(image) -> np.ndarray:
    """A PIL image (any mode; EXIF orientation applied) or an array as a writable uint8 (H, W, 3)
    RGB array.

    Arrays follow :func:`array_image` (the Python API's rules: a value range is never guessed).
    """
    if isinstance(image, np.ndarray):
        return array_image(image)
    return _from_pil(_oriented(image))


def _oriented(im):
    """``im`` turned upright by its EXIF orientation (itself when it has none)."""
    try:
        orientation = im.getexif().get(_ORIENTATION, 1)
    except Exception:  # unreadable EXIF: the pixels are still good, keep them as stored
        return im
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        from PIL import ImageOps

        return ImageOps.exif_transpose(im)
    return im


def _from_pil(im) -> np.ndarray:
    """The pixels of one upright frame, any mode, as uint8 RGB (rules in the module docstring)."""
    mode = im.mode
    if mode == "RGB":
        return np.array(im, dtype=np.uint8)
    if mode in ("L", "1"):
        return _grey(np.asarray(im.convert("L")))
    if mode in _SIXTEEN_BIT:
        return _grey((np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8))
    if mode == "I":
        return _grey(_integer_to_8bit(np.asarray(im)))
    if mode == "F":
        return _grey(_float_to_8bit(np.asarray(im)))
    if mode == "P" and (
        "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")
    ):
        return _on_white(np.asarray(im.convert("RGBA")))
    if mode in _TRANSPARENT:
        return _on_white(
            np.asarray(im.convert("RGBA") if mode != "La" else im.convert("LA").convert("RGBA"))
        )
    return np.array(im.convert("RGB"), dtype=np.uint8)  # CMYK, YCbCr, LAB, HSV, RGBX, P


def array_image(arr: np.ndarray) -> np.ndarray:
    """A user's array as uint8 (H, W, 3) RGB: (H, W) or (H, W, 1) grey, (H, W, 3) RGB or (H, W, 4)
    RGBA
    (alpha composited onto white); uint8 in 0-255, other integers in 0-255, floats in [0, 1]."""
    if arr.size == 0:
        raise TextclfError(f"the array is empty (shape {arr.shape})")
    # (C, H, W), not a 2-channel image
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] > 4:
        raise TextclfError(
            f"shape {arr.shape} looks channels-first; give (H, W, 3): arr.transpose(1, 2, 0)"
        )
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise TextclfError(
            f"unusable image array of shape {arr.shape}: give (H, W), (H, W, 3) or (H, W, 4)"
        )
    values = _unit_range(arr)  # float64 in [0, 1]
    if values.shape[-1] == 4:  # RGBA onto white, as the image decoder does
        alpha = values[..., 3:]
        values = values[..., :3] * alpha + (1.0 - alpha)
    if values.shape[-1] == 1:
        values = np.repeat(values, 3, axis=-1)
    return np.ascontiguousarray(np.round(values * 255.0).astype(np.uint8))


def _unit_range(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise TextclfError("the array holds NaN or infinity")
        if arr.min() < 0 or arr.max() > 1:
            raise TextclfError(
                f"a float array must hold values in [0, 1] (got {arr.min():g}..{arr.max():g}); "
                "for 0-255 values pass uint8"
            )
        return arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise TextclfError(
                f"an integer array must hold values in 0-255 (got {arr.min()}..{arr.max()}); "
                "scale 16-bit images to 8 bit first"
            )
        return arr.astype(np.float64) / 255.0
    raise TextclfError(
        f"arrays of dtype {arr.dtype} are not images; give uint8 (0-255) or float (0-1)"
    )


def _grey(values: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(values, dtype=np.uint8)[..., None], 3, axis=-1)


def _integer_to_8bit(values: np.ndarray) -> np.ndarray:
    """Integers (negative clip to 0) shifted down from the smallest of 8, 16, 32 bits that holds
    the maximum."""
    v = np.clip(values.astype(np.int64), 0, None)
    top = int(v.max()) if v.size else 0
    bits = 8 if top < 1 << 8 else 16 if top < 1 << 16 else 32
    return (v >> (bits - 8)).astype(np.uint8)


def _float_to_8bit(values: np.ndarray) -> np.ndarray:
    """[0, 1] * 255, or the finite range stretched onto 0-255; NaN and inf read as 0."""
    v = values.astype(np.float64)
    finite = np.isfinite(v)
    v = np.where(finite, v, 0.0)
    if not finite.any():
        return np.zeros(v.shape, dtype=np.uint8)
    lo, hi = float(v[finite].min()), float(v[finite].max())
    if lo >= 0.0 and hi <= 1.0:
        out = v * 255.0
    elif hi > lo:
        out = (v - lo) * (255.0 / (hi - lo))
    else:
        out = np.zeros_like(v)
    # Half up, as alpha
    return np.where(finite, np.clip(np.floor(out + 0.5), 0, 255), 0).astype(np.uint8)


def _on_white(rgba: np.ndarray) -> np.ndarray:
    """Straight-alpha RGBA (or LA) composited onto white, rounded to the nearest integer."""
    rgba = np.asarray(rgba, dtype=np.uint8)
    if rgba.shape[-1] == 2:  # LA
        rgba = np.concatenate([np.repeat(rgba[..., :1], 3, axis=-1), rgba[..., 1:]], axis=-1)
    rgb = rgba[..., :3].astype(np.uint32)
    a = rgba[..., 3:].astype(np.uint32)
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)
