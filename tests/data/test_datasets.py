"""Dataset plugins: digits, fashion-mnist (Debian files), cifar10 (python batches), imagefolder,
synthetic; and the shared Split/Dataset helpers."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from textclf.data.datasets import stratified_indices
from textclf.data.loading import load_dataset
from textclf.datatypes import Dataset, Split
from textclf.errors import TextclfError
from textclf.plugins.datasets import cifar10, fashion_mnist


def _same_split(a: Split, b: Split) -> bool:
    return (
        np.array_equal(a.labels, b.labels)
        and np.array_equal(a.images, b.images)
        and a.fingerprint() == b.fingerprint()
    )


# --- digits ----------------------------------------------------------------------------------


def test_digits_has_ten_classes_and_a_fixed_stratified_split():
    ds = load_dataset("digits")
    assert ds.name == "digits" and ds.num_classes == 10
    assert ds.class_names[0] == "zero" and ds.class_names[9] == "nine"
    assert len(ds.train) == 1347 and len(ds.test) == 450  # 1,797 images, 75/25
    for split in (ds.train, ds.test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (8, 8, 3)
        assert set(np.unique(split.labels)) == set(range(10))
        assert split.images.max() > 200  # scaled from 0..16 to 0..255
    counts = np.bincount(ds.test.labels)
    assert counts.min() >= 43 and counts.max() <= 47  # stratified
    assert ds.train.pil(0).mode == "RGB" and ds.train.pil(0).size == (8, 8)

    again = load_dataset("digits")
    assert _same_split(ds.train, again.train) and _same_split(ds.test, again.test)


def test_digits_stored_split_and_pixels_are_scikit_learns():
    """The plugin reads digits without importing scikit-learn; it must give what scikit-learn
    gives."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from textclf.plugins.datasets.digits import digits_table, split_mask

    bunch = load_digits()
    pixels, labels = digits_table()
    np.testing.assert_array_equal(pixels, bunch.data)
    np.testing.assert_array_equal(labels, bunch.target)
    _, test = train_test_split(
        np.arange(len(labels)), test_size=0.25, stratify=bunch.target, random_state=0
    )
    np.testing.assert_array_equal(np.flatnonzero(split_mask()), np.sort(test))


def test_digits_train_and_test_do_not_overlap():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    images = load_digits().images
    assert len(ds.train) + len(ds.test) == len(images)
    train_rows = {row.tobytes() for row in ds.train.images}
    test_rows = [row.tobytes() for row in ds.test.images]
    # A few digit images are duplicates in the source data; the split itself is a partition.
    assert sum(r in train_rows for r in test_rows) < 5


def test_subsets_are_stratified_and_seeded():
    a = load_dataset("digits", max_train=100, max_test=50, seed=3)
    b = load_dataset("digits", max_train=100, max_test=50, seed=3)
    c = load_dataset("digits", max_train=100, max_test=50, seed=4)
    assert len(a.train) == 100 and len(a.test) == 50
    assert set(np.unique(a.train.labels)) == set(range(10))
    assert _same_split(a.train, b.train) and _same_split(a.test, b.test)
    assert a.train.fingerprint() != c.train.fingerprint()


def test_stratified_indices_partition_every_class():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 1)
    keep, rest = stratified_indices(labels, 0.5, seed=0)
    assert sorted(np.concatenate([keep, rest]).tolist()) == list(range(len(labels)))
    assert set(labels[keep]) == {0, 1, 2}  # every class keeps at least one example


def test_split_by_name_and_unknown_split():
    ds = load_dataset("synthetic")
    assert ds.split("train") is ds.train and ds.split("test") is ds.test
    with pytest.raises(TextclfError, match="valid choices: test, train"):
        ds.split("val")


# --- synthetic -------------------------------------------------------------------------------


def test_synthetic_is_small_and_deterministic():
    a, b = load_dataset("synthetic"), load_dataset("synthetic")
    assert a.class_names == ["red", "green", "blue", "gray"]
    assert len(a.train) == 96 and len(a.test) == 32
    assert a.train.images.shape == (96, 16, 16, 3)
    assert _same_split(a.train, b.train) and _same_split(a.test, b.test)
    assert a.train.fingerprint() != a.test.fingerprint()
    red = a.train.images[a.train.labels == 0].reshape(-1, 3).mean(0)
    assert red[0] > red[1] + 50 and red[0] > red[2] + 50


# --- fashion-mnist ---------------------------------------------------------------------------

_FASHION_FILES = [f for pair in fashion_mnist.FILES.values() for f in pair]


@pytest.mark.skipif(
    not all((fashion_mnist.DEBIAN_DIR / f).exists() for f in _FASHION_FILES),
    reason="Debian package dataset-fashion-mnist is not installed",
)
def test_fashion_mnist_reads_the_debian_files():
    ds = load_dataset("fashion-mnist")
    assert ds.num_classes == 10 and ds.class_names[0] == "T-shirt/top"
    assert len(ds.train) == 60000 and len(ds.test) == 10000
    assert ds.train.images.shape[1:] == (28, 28, 3) and ds.train.images.dtype == np.uint8
    assert np.array_equal(np.bincount(ds.test.labels), np.full(10, 1000))


def test_read_idx_plain_and_gzipped(tmp_path):
    import gzip

    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    (tmp_path / "x-idx3-ubyte").write_bytes(header + arr.tobytes())
    with gzip.open(tmp_path / "x-idx3-ubyte.gz", "wb") as fh:
        fh.write(header + arr.tobytes())
    assert np.array_equal(fashion_mnist.read_idx(tmp_path / "x-idx3-ubyte"), arr)
    assert np.array_equal(fashion_mnist.read_idx(tmp_path / "x-idx3-ubyte.gz"), arr)
    (tmp_path / "bad").write_bytes(bytes([0, 0, 13, 1, 0, 0, 0, 1, 0, 0, 0, 0]))
    # A user's file: exit 2, not a crash
    with pytest.raises(TextclfError, match="not an unsigned-byte IDX file"):
        fashion_mnist.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(header + arr.tobytes()[:-1])
    with pytest.raises(TextclfError, match="truncated"):
        fashion_mnist.read_idx(tmp_path / "short")


# --- cifar10 (python-format batches) ---------------------------------------------------------


def _cifar_images(n: int, offset: int) -> np.ndarray:
    """n images (N, 32, 32, 3) whose pixel (0, 0) is (offset+i, 100, 200): checks the layout."""
    rng = np.random.default_rng(offset)
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    x[:, 0, 0] = [[offset + i, 100, 200] for i in range(n)]
    return x


def _batch(images: np.ndarray, labels: list[int], bytes_keys: bool) -> dict:
    # The python format: rows of 3072 bytes, the R plane, then G, then B (each 32x32, row-major).
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    d = {"data": data, "labels": labels, "batch_label": "fake"}
    return {k.encode(): v for k, v in d.items()} if bytes_keys else d


def write_fake_cifar(root: Path, per_batch: int = 4, bytes_keys: bool = False, protocol: int = 2):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    expected_x, expected_y = [], []
    for i in range(1, 6):
        x = _cifar_images(per_batch, 10 * i)
        y = [(i + j) % 10 for j in range(per_batch)]
        (folder / f"data_batch_{i}").write_bytes(
            pickle.dumps(_batch(x, y, bytes_keys), protocol=protocol)
        )
        expected_x.append(x)
        expected_y += y
    tx = _cifar_images(3, 200)
    (folder / "test_batch").write_bytes(
        pickle.dumps(_batch(tx, [7, 8, 9], bytes_keys), protocol=protocol)
    )
    return folder, np.concatenate(expected_x), np.array(expected_y), tx


@pytest.mark.parametrize("bytes_keys,protocol", [(False, 2), (True, 2), (True, 5), (False, 4)])
def test_cifar10_reads_a_python_batches_folder(tmp_path, bytes_keys, protocol):
    folder, x, y, tx = write_fake_cifar(tmp_path, bytes_keys=bytes_keys, protocol=protocol)
    ds = cifar10.load(str(folder))
    assert ds.name == "cifar10" and ds.class_names == cifar10.CLASS_NAMES
    assert ds.train.images.shape == (20, 32, 32, 3) and ds.train.images.dtype == np.uint8
    assert np.array_equal(ds.train.images, x) and np.array_equal(ds.train.labels, y)
    assert np.array_equal(ds.test.images, tx) and ds.test.labels.tolist() == [7, 8, 9]
    assert tuple(ds.train.images[1, 0, 0]) == (11, 100, 200)  # channel order kept
    # The folder above the batches works too.
    assert np.array_equal(cifar10.load(str(tmp_path)).test.images, tx)


def test_cifar10_by_name_from_env_folder(tmp_path, monkeypatch):
    folder, _, y, _ = write_fake_cifar(tmp_path)
    monkeypatch.setenv("TEXTCLF_CIFAR10", str(folder))
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    ds = load_dataset("cifar10")
    assert np.array_equal(ds.train.labels, y) and len(ds.test) == 3


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_refuses_a_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / "pwned"
    folder, _, _, _ = write_fake_cifar(tmp_path)
    payload = {"data": _Evil(marker), "labels": [0]}
    (folder / "data_batch_3").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(TextclfError) as exc_info:
        cifar10.load(str(folder))
    assert "refusing" in str(exc_info.value) and "system" in str(exc_info.value)
    assert "data_batch_3" in str(exc_info.value)
    assert not marker.exists()


def test_cifar10_unpickler_refuses_builtins_too():
    evil = pickle.dumps({"data": eval}, protocol=2)  # a reference to builtins.eval
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        cifar10._SafeUnpickler(io.BytesIO(evil), encoding="latin1").load()


# --- imagefolder -----------------------------------------------------------------------------


def _png(path: Path, colour, size=(12, 10)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def image_folder(tmp_path) -> Path:
    from PIL import Image

    root = tmp_path / "pets"
    for split, n in (("train", 3), ("test", 2)):
        for cls, colour in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))):
            for i in range(n):
                _png(root / split / cls / f"{i}.png", colour)
    (root / "train" / "cat" / "notes.txt").write_text("not an image, ignored")
    (root / "train" / "dog" / "garbage.jpg").write_bytes(os.urandom(300))
    # A truncated JPEG: Image.open() and verify() accept it, decoding fails.
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, "JPEG")
    (root / "train" / "cat" / "truncated.jpg").write_bytes(
        buf.getvalue()[: len(buf.getvalue()) // 2]
    )
    (root / "train" / "empty-class").mkdir()
    return root


def test_imagefolder_skips_and_reports_corrupt_files(image_folder):
    ds = load_dataset(f"imagefolder:{image_folder}")
    assert isinstance(ds, Dataset)
    assert ds.class_names == ["cat", "dog", "empty-class"]
    assert len(ds.train) == 6 and len(ds.test) == 4
    assert sorted(np.bincount(ds.train.labels).tolist()) == [3, 3]
    assert len(ds.warnings) == 3
    assert any("garbage.jpg" in w for w in ds.warnings)
    assert any("truncated.jpg" in w for w in ds.warnings)
    assert any("'empty-class' has no readable images" in w for w in ds.warnings)
    # Every listed image decodes; the labels follow the folders.
    for split in (ds.train, ds.test):
        for i in range(len(split)):
            im = split.pil(i)
            assert im.mode == "RGB" and im.size == (12, 10)
            assert (im.getpixel((0, 0))[0] > 100) == (split.labels[i] == 0)
    assert ds.train.fingerprint() == load_dataset(f"imagefolder:{image_folder}").train.fingerprint()


def test_imagefolder_accepts_val_and_rejects_bad_layouts(tmp_path):
    root = tmp_path / "v"
    _png(root / "train" / "a" / "0.png", (1, 2, 3))
    with pytest.raises(TextclfError, match="needs 'train/' and 'test/'"):
        load_dataset(f"imagefolder:{root}")
    _png(root / "val" / "a" / "0.png", (1, 2, 3))
    ds = load_dataset(f"imagefolder:{root}")
    assert len(ds.test) == 1 and ds.class_names == ["a"]

    with pytest.raises(TextclfError, match="needs 'train/'"):
        load_dataset(f"imagefolder:{tmp_path / 'missing'}")
    empty = tmp_path / "e"
    (empty / "train").mkdir(parents=True)
    (empty / "test").mkdir()
    with pytest.raises(TextclfError, match="no class folders"):
        load_dataset(f"imagefolder:{empty}")
