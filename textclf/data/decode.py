"""The one image decoder, re-exported from its home in the base, :mod:`textclf.files.image_decoder`.

It moved there so that a plugin's :class:`~textclf.datatypes.Split` (a base type) can read image
files without importing ``textclf.data``; imports of ``textclf.data.decode`` keep working.
"""

from textclf.files.image_decoder import (
    DECODER,
    DRAFT_MARGIN,
    array_image,
    decode_image,
    draft_size,
    to_rgb_array,
)

__all__ = ["DECODER", "DRAFT_MARGIN", "array_image", "decode_image", "draft_size", "to_rgb_array"]
