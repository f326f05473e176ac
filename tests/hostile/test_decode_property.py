"""The one image decoder (issue 21): every Pillow mode and bit depth, every EXIF orientation,
animations,
transparency and broken files, through every path that reads images (training's ``Split.read``,
predict's
``read_image``, the Python API's arrays, export samples).

Each image is built from known pixels, saved in a mode and format, decoded, and compared with the
pixels the documented rule gives (computed here independently of :mod:`textclf.data.decode`). The
tests named ``..._old_decoder_...`` failed before the decoder existed: a 16-bit PNG read as white,
EXIF orientation ignored, RGBA arrays kept four channels.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from textclf.data.decode import decode_image, to_rgb_array
from textclf.errors import TextclfError

sizes = st.tuples(st.integers(1, 24), st.integers(1, 24))
seeds = st.integers(0, 2**32 - 1)


def _saved(im: Image.Image, fmt: str, **kw) -> io.BytesIO:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    buf.seek(0)
    return buf


def _grey3(v: np.ndarray) -> np.ndarray:
    return np.repeat(v.astype(np.uint8)[..., None], 3, axis=-1)


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight alpha over white, rounded half up: computed in floats, independently of the
    decoder."""
    c, a = rgb.astype(np.float64), alpha.astype(np.float64)[..., None] / 255.0
    return np.floor(c * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)


# ---- lossless formats: exact pixels for every mode --------------------------------------------

LOSSLESS = {  # mode -> formats Pillow writes it to and reads it back in the same mode
    "1": ("PNG", "TIFF", "BMP"),
    "L": ("PNG", "TIFF", "BMP"),
    "LA": ("PNG", "TIFF"),
    "RGB": ("PNG", "TIFF", "BMP"),
    "RGBA": ("PNG", "TIFF"),
    "I;16": ("PNG", "TIFF"),
    "I": ("TIFF",),
    "F": ("TIFF",),
}


def _image(mode: str, h: int, w: int, rng) -> tuple[Image.Image, np.ndarray]:
    """An image of ``mode`` with random pixels, and the uint8 RGB the documented rule gives for
    it."""
    if mode == "1":
        bits = rng.random((h, w)) > 0.5
        return Image.fromarray(bits), _grey3(bits * 255)
    if mode == "L":
        v = rng.integers(0, 256, (h, w), dtype=np.uint8)
        return Image.fromarray(v), _grey3(v)
    if mode == "LA":
        v, a = rng.integers(0, 256, (h, w, 2), dtype=np.uint8).transpose(2, 0, 1)
        return Image.fromarray(np.stack([v, a], -1), "LA"), _over_white(_grey3(v), a)
    if mode == "RGB":
        v = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        return Image.fromarray(v), v
    if mode == "RGBA":
        v = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        return Image.fromarray(v, "RGBA"), _over_white(v[..., :3], v[..., 3])
    if mode == "I;16":
        v = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        return Image.fromarray(v), _grey3(v // 256)
    if mode == "I":  # values up to 2^16: read as 16-bit (the smallest depth that holds the maximum)
        v = rng.integers(0, 65536, (h, w)).astype(np.int32)
        v.flat[0] = 65535
        return Image.fromarray(v), _grey3(v // 256)
    v = rng.random((h, w)).astype(np.float32)  # F: in [0, 1], scaled by 255
    return Image.fromarray(v), _grey3(np.floor(v.astype(np.float64) * 255.0 + 0.5))


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(sorted(LOSSLESS)), sizes, seeds, st.data())
def test_every_mode_and_depth_decodes_to_the_documented_pixels(mode, size, seed, data):
    fmt = data.draw(st.sampled_from(LOSSLESS[mode]))
    im, want = _image(mode, *size, np.random.default_rng(seed))
    got = decode_image(_saved(im, fmt))
    assert got.dtype == np.uint8 and got.shape == (*size, 3)
    np.testing.assert_array_equal(got, want, err_msg=f"{mode} as {fmt}")
    # The same image handed over as a PIL image
    np.testing.assert_array_equal(to_rgb_array(im), want)


def test_old_decoder_read_a_16_bit_png_as_white(tmp_path):
    from textclf.serving.predict import read_image

    ramp = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1024).astype(np.uint16)  # 0 .. 64512
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        # Convert("RGB") clips
        assert im.mode == "I;16" and (np.asarray(im.convert("RGB"))[ramp > 255] == 255).all()
    got = read_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(got, _grey3(ramp >> 8))
    assert got.min() == 0 and got.max() == 252


def test_integer_and_float_images_scale_by_their_range():
    # Mode I whose values fit 8 bits: as they are
    eight_bit = np.array([[0, 7, 255]], dtype=np.int32)
    np.testing.assert_array_equal(to_rgb_array(Image.fromarray(eight_bit))[..., 0], [[0, 7, 255]])
    # 32-bit values: >> 24, negatives to 0
    wide = np.array([[-5, 1 << 20, (1 << 31) - 1]], dtype=np.int32)
    np.testing.assert_array_equal(to_rgb_array(Image.fromarray(wide))[..., 0], [[0, 0, 127]])
    # Outside [0, 1]: min..max -> 0..255
    ranged = np.array([[-1.0, 0.0, 1.0, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(to_rgb_array(Image.fromarray(ranged))[..., 0], [[0, 128, 255, 0]])


@pytest.mark.parametrize(
    "mode, colour, rgb",
    [
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
        ("YCbCr", (76, 85, 255), (254, 0, 0)),
        ("HSV", (85, 255, 255), (0, 255, 0)),
        ("LAB", (255, 128, 128), (254, 255, 254)),
    ],
)
@pytest.mark.parametrize("fmt", ["TIFF", "JPEG"])
def test_colour_spaces_convert_to_rgb(mode, colour, rgb, fmt):
    im = Image.new(mode, (16, 16), colour)
    assert np.abs(to_rgb_array(im).astype(int) - rgb).max() <= 1
    try:
        buf = _saved(im, fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    except (OSError, KeyError, ValueError):
        pytest.skip(f"Pillow does not write {mode} as {fmt}")
    got = decode_image(buf)
    assert got.shape == (16, 16, 3)
    assert np.abs(got.astype(int) - rgb).max() <= (3 if fmt == "JPEG" else 1), (
        mode,
        fmt,
        got[0, 0],
    )


@settings(max_examples=40, deadline=None)
@given(sizes, seeds, st.integers(2, 16), st.sampled_from(["PNG", "GIF"]))
def test_palette_images_with_a_transparent_index_show_white_there(size, seed, colours, fmt):
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (colours, 3), dtype=np.uint8)
    index = rng.integers(0, colours, size, dtype=np.uint8)
    im = Image.fromarray(index, "P")
    im.putpalette(palette.flatten().tolist())
    im.info["transparency"] = 0
    want = palette[index]
    want[index == 0] = 255
    np.testing.assert_array_equal(decode_image(_saved(im, fmt, transparency=0)), want)


# ---- EXIF orientation -------------------------------------------------------------------------

# exif_transpose applies these to the stored pixels; a camera stores the inverse of the upright
# image.
_APPLIED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_INVERSE = {**_APPLIED, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def _with_orientation(upright: Image.Image, orientation: int, fmt: str, **kw) -> io.BytesIO:
    stored = upright if orientation == 1 else upright.transpose(_INVERSE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _saved(stored, fmt, exif=exif.tobytes(), **kw)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 8),
    st.tuples(st.integers(2, 20), st.integers(2, 20)),
    seeds,
    st.sampled_from(["PNG", "WEBP"]),
)
def test_every_exif_orientation_gives_the_upright_image(orientation, size, seed, fmt):
    upright = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    buf = _with_orientation(
        Image.fromarray(upright), orientation, fmt, **({"lossless": True} if fmt == "WEBP" else {})
    )
    np.testing.assert_array_equal(decode_image(buf), upright)  # lossless formats: exact pixels


def _marked(h: int = 48, w: int = 80) -> np.ndarray:
    """A grey image with a red block in its top-left corner and a blue one in its top-right: any
    turn shows."""
    im = np.full((h, w, 3), 128, dtype=np.uint8)
    im[:16, :16] = (230, 20, 20)
    im[:16, -16:] = (20, 20, 230)
    return im


@pytest.mark.parametrize("orientation", range(1, 9))
def test_old_decoder_ignored_exif_orientation_in_training_and_predict(tmp_path, orientation):
    from textclf.data.loading import load_dataset
    from textclf.serving.predict import read_image

    upright = _marked()
    for split in ("train", "test"):
        (tmp_path / split / "a").mkdir(parents=True)
        (tmp_path / split / "b").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / split / "b" / "x.png")
        (tmp_path / split / "a" / "photo.jpg").write_bytes(
            _with_orientation(Image.fromarray(upright), orientation, "JPEG", quality=95).getvalue()
        )
    ds = load_dataset(f"imagefolder:{tmp_path}")
    for got in (
        ds.train.read([0])[0],
        np.asarray(ds.train.pil(0)),
        read_image(tmp_path / "test" / "a" / "photo.jpg"),
    ):
        assert got.shape == upright.shape  # 48 x 80, not 80 x 48
        assert np.abs(got.astype(int) - upright).mean() < 4, orientation  # JPEG: close, not exact


# ---- animations, arrays, drafts, errors ------------------------------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animated_images_read_their_first_frame(fmt):
    frames = [Image.new("RGB", (12, 10), c) for c in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    buf = _saved(
        frames[0],
        fmt,
        save_all=True,
        append_images=frames[1:],
        duration=50,
        loop=0,
        **({"lossless": True} if fmt == "WEBP" else {}),
    )
    with Image.open(buf) as im:
        assert getattr(im, "n_frames", 1) == 3
        im.seek(2)  # a file object left at another frame still decodes its first one
    buf.seek(0)
    got = decode_image(buf)
    assert got.shape == (10, 12, 3) and np.abs(got.astype(int) - (250, 0, 0)).max() <= 4


def test_old_decoder_kept_rgba_arrays_as_four_channels_in_the_api():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # opaque
    rgba[1, 1] = (10, 20, 30, 0)  # invisible: white
    got = to_rgb_array(rgba)
    assert got.shape == (2, 2, 3)
    assert got[0, 0].tolist() == [10, 20, 30] and got[1, 1].tolist() == [255, 255, 255]
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(to_rgb_array(rgb), rgb)  # uint8 RGB: as given (a copy)
    np.testing.assert_array_equal(to_rgb_array(rgb[..., 0]), _grey3(rgb[..., 0]))
    with pytest.raises(TextclfError, match="unusable image array of shape"):
        to_rgb_array(np.zeros((4, 4, 2), dtype=np.uint8))


def test_jpeg_draft_keeps_both_sides_at_least_the_requested_size():
    photo = Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)
    )
    buf = _saved(photo, "JPEG")
    assert decode_image(buf).shape == (375, 500, 3)
    for size, shape in ((96, (188, 250, 3)), (224, (375, 500, 3)), (40, (47, 63, 3))):
        buf.seek(0)
        assert decode_image(buf, draft_size=size).shape == shape
    png = _saved(photo, "PNG")
    assert decode_image(png, draft_size=40).shape == (375, 500, 3)  # only JPEG drafts


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not an image PIL can read"),
        (b"not an image at all", "not an image PIL can read"),
        ("truncated-jpeg", "corrupt or truncated image"),
        ("truncated-png", "corrupt or truncated image"),
    ],
)
def test_broken_files_are_one_line_errors(tmp_path, content, message):
    if isinstance(content, str):
        fmt = content.split("-")[1].upper()
        whole = _saved(
            Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)),
            fmt,
        ).getvalue()
        content = whole[: len(whole) // 2]
    path = tmp_path / "broken.img"
    path.write_bytes(content)
    with pytest.raises(TextclfError, match=message) as err:
        decode_image(path)
    assert "\n" not in str(err.value)
    with pytest.raises(TextclfError, match="no such file"):
        decode_image(tmp_path / "missing.png")
    with pytest.raises(TextclfError, match="is a directory"):
        decode_image(tmp_path)


def test_model_paths_draft_only_jpegs_many_times_the_model_size():
    """draft_size(prep) leaves a 4x margin: a 500 x 375 photo at 96 px decodes in full (exact
    pixels);
    a 1600 x 1200 one decodes at 1/2 and is still >= 4 x 96 on both sides."""
    from textclf.data.decode import DRAFT_MARGIN, draft_size
    from textclf.data.preprocessing import Preprocessing

    prep = Preprocessing(96, (0.5,) * 3, (0.5,) * 3)
    assert draft_size(prep) == DRAFT_MARGIN * 96 == 384
    rng = np.random.default_rng(2)
    medium = _saved(Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)), "JPEG")
    np.testing.assert_array_equal(
        decode_image(medium, draft_size(prep)), decode_image(_rewound(medium))
    )
    large = _saved(Image.fromarray(rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8)), "JPEG")
    assert decode_image(large, draft_size(prep)).shape == (600, 800, 3)


def _rewound(buf: io.BytesIO) -> io.BytesIO:
    buf.seek(0)
    return buf
