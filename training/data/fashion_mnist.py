"""Fashion-MNIST from the local IDX files of the Debian package ``dataset-fashion-mnist``.

Fashion-MNIST is the project's offline stand-in for the papers' MNIST experiments (DESIGN.md §5):
same size and format (70,000 grey 28 x 28 images, 10 classes), no network needed.

Why not ``tensorflow_datasets``: the Debian ``.gz`` files are recompressed, so tfds' download
checksums fail, and a tfds load without network hangs (DESIGN.md §3). The IDX format is a 4-byte
magic number and big-endian dimensions followed by raw values, so we parse it with numpy and verify
the sha256 of the *decompressed* bytes, which equal upstream's.

Splits (H&R §6.4): the official 60,000 training images are split by a seeded permutation into
50,000 train / 10,000 validation; the official 10,000 test images are the test split. Images are
uint8 ``(n, 28, 28, 1)`` (raw 0..255; models normalise inside, DESIGN.md §4), labels int32.

The parsed files are cached in-process per directory (``functools.lru_cache``); no cache file is
written.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import os
import pathlib
import zlib

import numpy as np

__all__ = [
    "DEFAULT_DIR",
    "ENV_VAR",
    "FILES",
    "SHA256",
    "CLASS_NAMES",
    "ChecksumError",
    "ImageSplits",
    "fashion_mnist_dir",
    "read_idx",
    "split_indices",
    "load_fashion_mnist",
]

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "STABLE_ZOO_FASHION_MNIST_DIR"

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# sha256 of the decompressed IDX bytes (equal to upstream zalandoresearch/fashion-mnist's content;
# the Debian gzip wrappers differ from upstream's).
SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

NUM_TRAIN_OFFICIAL = 60_000
VALIDATION_SIZE = 10_000

# IDX type byte -> numpy dtype (multi-byte types are big-endian).
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class ChecksumError(ValueError):
    """A file's decompressed content does not have the expected sha256."""


@dataclasses.dataclass(frozen=True)
class ImageSplits:
    """Train / validation / test arrays of an image set; indices refer to the official train set."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_indices: np.ndarray
    val_indices: np.ndarray
    num_classes: int
    class_names: tuple


def fashion_mnist_dir(data_dir=None):
    """The directory to read: ``data_dir``, else ``$STABLE_ZOO_FASHION_MNIST_DIR``, else Debian's."""
    if data_dir is None:
        data_dir = os.environ.get(ENV_VAR) or DEFAULT_DIR
    return pathlib.Path(data_dir).expanduser().resolve()


def read_idx(path, expected_sha256=None):
    """Parse one gzipped IDX file into a read-only numpy array.

    Raises ``ValueError`` naming ``path`` for a corrupt gzip stream, a bad magic number or a payload
    whose length disagrees with the header (truncated or padded), and ``ChecksumError`` (a
    ``ValueError``) naming the file and both digests when ``expected_sha256`` does not match the
    decompressed bytes.
    """
    path = pathlib.Path(path)
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise ValueError(f"{path}: not a readable gzip file ({err})") from err
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: bad IDX magic number {raw[:4].hex() or '(empty)'}")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header truncated ({len(raw)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path}: IDX payload is {len(raw)} bytes but its header {dims} needs {expected} "
            "(truncated or corrupt file)"
        )
    if expected_sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != expected_sha256:
            raise ChecksumError(
                f"{path}: sha256 of the decompressed content is {digest}, expected "
                f"{expected_sha256}; the file is corrupt or not Fashion-MNIST"
            )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _check_shape(path, array, shape):
    if array.shape != shape:
        raise ValueError(f"{path}: expected an IDX array of shape {shape}, got {array.shape}")


@functools.lru_cache(maxsize=2)
def _load_official(directory, verify):
    """(train_images, train_labels, test_images, test_labels) of one directory, read-only."""
    directory = pathlib.Path(directory)
    paths = {key: directory / filename for key, filename in FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST file(s) not found: {', '.join(missing)}. Install them with "
            f"`apt-get install dataset-fashion-mnist` (files in {DEFAULT_DIR}), or point "
            f"data_dir= or ${ENV_VAR} at a directory holding {sorted(SHA256)}."
        )
    out = []
    for key, count in (("train", NUM_TRAIN_OFFICIAL), ("test", 10_000)):
        images_path, labels_path = paths[f"{key}_images"], paths[f"{key}_labels"]
        images = read_idx(images_path, SHA256[images_path.name] if verify else None)
        labels = read_idx(labels_path, SHA256[labels_path.name] if verify else None)
        _check_shape(images_path, images, (count, 28, 28))
        _check_shape(labels_path, labels, (count,))
        labels = labels.astype(np.int32)
        labels.flags.writeable = False  # the cache must not be mutated by callers
        out += [images[..., None], labels]
    return tuple(out)


def split_indices(seed=0, num_examples=NUM_TRAIN_OFFICIAL, validation_size=VALIDATION_SIZE):
    """Sorted (train, validation) indices from a seeded permutation of ``range(num_examples)``."""
    if not 0 < validation_size < num_examples:
        raise ValueError(
            f"validation_size must be in (0, {num_examples}), got {validation_size!r}"
        )
    perm = np.random.default_rng(seed).permutation(num_examples)
    return np.sort(perm[validation_size:]), np.sort(perm[:validation_size])


def load_fashion_mnist(data_dir=None, seed=0, validation_size=VALIDATION_SIZE, verify=True):
    """Fashion-MNIST as ``ImageSplits``: 50,000 / 10,000 (seeded) / 10,000 official test.

    ``data_dir`` defaults to ``$STABLE_ZOO_FASHION_MNIST_DIR`` (read at call time), else
    ``/usr/share/datasets/fashion-mnist``. ``verify=False`` skips the sha256 check (for other
    copies of the files); the IDX structure is always checked. ``x_test``/``y_test`` are read-only
    views of the in-process cache; the other arrays are fresh copies.
    """
    directory = fashion_mnist_dir(data_dir)
    x_train_all, y_train_all, x_test, y_test = _load_official(str(directory), bool(verify))
    train_idx, val_idx = split_indices(seed, len(y_train_all), validation_size)
    return ImageSplits(
        name="fashion_mnist",
        x_train=x_train_all[train_idx],
        y_train=y_train_all[train_idx],
        x_val=x_train_all[val_idx],
        y_val=y_train_all[val_idx],
        x_test=x_test,
        y_test=y_test,
        train_indices=train_idx,
        val_indices=val_idx,
        num_classes=10,
        class_names=CLASS_NAMES,
    )
