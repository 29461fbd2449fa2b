"""MNIST, CIFAR-10, CIFAR-100 and STL-10 through ``tensorflow_datasets`` (needs the network once).

Train / validation / test follow the papers, with the validation set carved from the official
training split by tfds split slicing (contiguous ranges of tfds' fixed, already shuffled example
order, so the split is the same on every machine and does not depend on a seed):

| name     | train            | validation       | test          | source                       |
|----------|------------------|------------------|---------------|------------------------------|
| mnist    | train[:50000]    | train[50000:]    | test (10,000) | H&R 2017 §6.4: 50,000/10,000 |
| cifar10  | train[:40000]    | train[40000:]    | test (10,000) | R&H 2018 §5: 80% / 20%       |
| cifar100 | train[:40000]    | train[40000:]    | test (10,000) | R&H 2018 §5: 80% / 20%       |
| stl10    | train[:4000]     | train[4000:]     | test (8,000)  | R&H 2018 §5: 80% / 20%       |

CIFAR's official training split has 50,000 images, so the MNIST-style ``train[:50000]`` would
leave no validation data; R&H's 80/20 split gives 40,000 / 10,000. STL-10's 100,000 unlabelled
images are not used (the papers do not use them).

``tensorflow_datasets`` is imported inside the functions so that ``training.data`` stays importable
without it. Tests use ``tfds.testing.mock_data`` and never download.
"""

from __future__ import annotations

import dataclasses

__all__ = ["TfdsSpec", "TFDS_SPECS", "TFDS_NAMES", "tfds_split", "load_tfds"]

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
    """How one of our data sets maps onto a tfds builder and its split strings."""

    tfds_name: str
    splits: dict  # our split name -> tfds split string
    sizes: dict  # our split name -> number of examples (for the real data)
    official_sizes: dict  # tfds split name -> number of examples in the official split
    num_classes: int
    image_shape: tuple


def _spec(tfds_name, n_train, n_val, n_test, num_classes, image_shape):
    return TfdsSpec(
        tfds_name=tfds_name,
        splits={"train": f"train[:{n_train}]", "validation": f"train[{n_train}:]", "test": "test"},
        sizes={"train": n_train, "validation": n_val, "test": n_test},
        official_sizes={"train": n_train + n_val, "test": n_test},
        num_classes=num_classes,
        image_shape=image_shape,
    )


TFDS_SPECS = {
    "mnist": _spec("mnist", 50_000, 10_000, 10_000, 10, (28, 28, 1)),
    "cifar10": _spec("cifar10", 40_000, 10_000, 10_000, 10, (32, 32, 3)),
    "cifar100": _spec("cifar100", 40_000, 10_000, 10_000, 100, (32, 32, 3)),
    "stl10": _spec("stl10", 4_000, 1_000, 8_000, 10, (96, 96, 3)),
}
TFDS_NAMES = tuple(TFDS_SPECS)


def tfds_split(name, split):
    """The tfds split string for data set ``name`` and our ``split`` (train/validation/test)."""
    if name not in TFDS_SPECS:
        raise ValueError(f"Unknown tfds-backed data set name={name!r}; expected one of {TFDS_NAMES}")
    if split not in SPLITS:
        raise ValueError(f"Unknown split={split!r}; expected one of {SPLITS}")
    return TFDS_SPECS[name].splits[split]


def load_tfds(name, split, data_dir=None, download=True):
    """An unbatched ``tf.data.Dataset`` of ``(image uint8 (H, W, C), label int32)``.

    ``data_dir`` is tfds' data directory (default: tfds' own, ``$TFDS_DATA_DIR`` or
    ``~/tensorflow_datasets``). ``download=False`` fails fast when the set is not prepared instead
    of reaching for the network.
    """
    tfds_split_string = tfds_split(name, split)  # validates name and split first
    import tensorflow as tf
    import tensorflow_datasets as tfds

    ds = tfds.load(
        TFDS_SPECS[name].tfds_name,
        split=tfds_split_string,
        as_supervised=True,
        data_dir=data_dir,
        download=download,
        shuffle_files=False,
    )
    return ds.map(lambda image, label: (image, tf.cast(label, tf.int32)))
