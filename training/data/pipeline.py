"""``tf.data`` input pipelines and seeded batch augmentation (DESIGN.md §5).

Order: ``from_tensor_slices -> cache -> shuffle -> batch -> map(cast + augment) -> prefetch``.
Caching before shuffling keeps the (uint8) examples once in memory and reshuffles them every
epoch; casting after batching keeps the cache small. Images stay raw float32 in 0..255 (models
normalise inside, DESIGN.md §4); labels become int32.

Determinism: with an integer ``seed`` the shuffle order and the augmentation of every batch are a
function of (seed, epoch), different from epoch to epoch and the same on every run of the same
program (TensorFlow combines op seeds with the global seed, so ``tf.random.set_seed`` also matters).
Augmentation functions are *stateless*: ``augment(images, seed) -> images`` with ``seed`` an int64
``[2]`` tensor taken from ``tf.data.Dataset.random(seed, rerandomize_each_iteration=True)``, one per
batch, so parallel ``map`` calls cannot race on a shared random state.
"""

from __future__ import annotations

import numbers

import tensorflow as tf

from training.data.fashion_mnist import load_fashion_mnist
from training.data.tfds_sets import TFDS_NAMES, SPLITS, load_tfds
from training.data.toy2d import TOY_NAMES, load_toy

__all__ = [
    "DATASET_NAMES",
    "make_pipeline",
    "random_flip_and_shift",
    "default_augment",
    "dataset_for",
]

DATASET_NAMES = TOY_NAMES + ("fashion_mnist",) + TFDS_NAMES
_DEFAULT_SHUFFLE_BUFFER = 10_000  # only when the number of examples is unknown


def random_flip_and_shift(pad=4, flip=True):
    """Batch augmentation: optional random horizontal flip, then a random shift by up to ``pad``.

    The shift is "zero-pad by ``pad`` pixels per side, then crop the original size at a random
    offset" (R&H 2018 §5: CIFAR pad 2, STL-10 pad 6), drawn independently for every image of the
    batch. Flip is off for digit-like data, where mirrored digits are other glyphs.

    Returns ``augment(images, seed)`` for ``images`` of shape ``(batch, H, W, C)``; the output has
    the same shape and dtype.
    """
    if isinstance(pad, bool) or not isinstance(pad, numbers.Integral) or pad < 0:
        raise ValueError(f"pad must be a non-negative int, got {pad!r}")
    pad = int(pad)
    flip = bool(flip)

    def augment(images, seed):
        flip_seed, shift_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        out = images
        if flip:
            # Per-image flip for a 4-D batch.
            out = tf.image.stateless_random_flip_left_right(out, flip_seed)
        if pad:
            # Hand-written because tf.image.stateless_random_crop takes one window for the whole
            # batch, and keras.layers.RandomTranslation interpolates and draws from a stateful
            # generator; a per-image integer crop is two batched gathers.
            shape = tf.shape(out)
            batch, height, width = shape[0], shape[1], shape[2]
            padded = tf.pad(out, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
            offsets = tf.random.stateless_uniform(
                [batch, 2], seed=shift_seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32
            )
            rows = offsets[:, :1] + tf.range(height)[None, :]
            cols = offsets[:, 1:] + tf.range(width)[None, :]
            out = tf.gather(padded, rows, axis=1, batch_dims=1)
            out = tf.gather(out, cols, axis=2, batch_dims=1)
        out.set_shape(images.shape)
        return out

    return augment


def default_augment(name):
    """The papers' augmentation for data set ``name``, or None where they use none.

    CIFAR-10/100: flip + pad 2; STL-10: flip + pad 6 (R&H 2018 §5). MNIST, Fashion-MNIST and the
    toy sets: none (H&R 2017, Galimberti 2021).
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"Unknown data set name={name!r}; expected one of {DATASET_NAMES}")
    if name in ("cifar10", "cifar100"):
        return random_flip_and_shift(pad=2, flip=True)
    if name == "stl10":
        return random_flip_and_shift(pad=6, flip=True)
    return None


def _cast(x, y):
    return tf.cast(x, tf.float32), tf.cast(y, tf.int32)


def make_pipeline(
    x,
    y,
    batch_size,
    training,
    seed,
    augment=None,
    cache=True,
    *,
    shuffle_buffer=None,
    drop_remainder=False,
):
    """A batched ``tf.data.Dataset`` of ``(float32 x, int32 y)``.

    ``x, y`` are arrays with the same first dimension, or ``x`` is an unbatched
    ``tf.data.Dataset`` of ``(x, y)`` pairs and ``y`` is None. ``training=True`` shuffles (buffer
    ``shuffle_buffer``, default: all examples) and applies ``augment(images, seed)`` to every batch;
    evaluation pipelines keep the order and refuse ``augment``. ``seed`` (int or None) fixes
    shuffling and augmentation. ``drop_remainder=True`` gives every batch the same static shape
    (useful for XLA-compiled models).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if augment is not None and not training:
        raise ValueError("augment is only for training pipelines; got training=False with augment")
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError("y must be None when x is a tf.data.Dataset of (x, y) pairs")
        ds = x
        num_examples = int(ds.cardinality())  # negative when unknown or infinite
    else:
        if y is None or len(x) != len(y):
            raise ValueError(
                f"x and y must have the same length, got {len(x)} and "
                f"{'None' if y is None else len(y)}"
            )
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        num_examples = len(y)

    if cache:
        ds = ds.cache()
    if training:
        buffer = shuffle_buffer or (num_examples if num_examples > 0 else _DEFAULT_SHUFFLE_BUFFER)
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    deterministic = True if seed is not None else None
    if training and augment is not None:
        # One stateless seed per batch, new values each epoch (rerandomize_each_iteration).
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

        def cast_and_augment(batch, batch_seed):
            xb, yb = _cast(*batch)
            return augment(xb, batch_seed), yb

        ds = tf.data.Dataset.zip((ds, seeds)).map(
            cast_and_augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
        )
    else:
        ds = ds.map(_cast, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return ds.prefetch(tf.data.AUTOTUNE)


def dataset_for(
    name,
    split,
    batch_size=128,
    seed=0,
    augment=None,
    *,
    data_seed=0,
    data_dir=None,
    drop_remainder=False,
):
    """The pipeline for ``split`` ("train", "validation", "test") of data set ``name``.

    ``name`` is one of ``DATASET_NAMES``. Toy sets have only train and validation. ``seed`` drives
    shuffling and augmentation; ``data_seed`` the data itself (toy sampling, the Fashion-MNIST
    train/validation permutation), so changing the training seed keeps the validation set.
    ``augment`` is a callable, ``"default"`` (``default_augment(name)``) or None, and is applied to
    the train split only. ``data_dir`` goes to the Fashion-MNIST or tfds loader.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"Unknown data set name={name!r}; expected one of {DATASET_NAMES}")
    if split not in SPLITS:
        raise ValueError(f"Unknown split={split!r}; expected one of {SPLITS}")
    if isinstance(augment, str):
        if augment != "default":
            raise ValueError(f"augment must be a callable, 'default' or None, got {augment!r}")
        augment = default_augment(name)
    training = split == "train"
    augment = augment if training else None

    if name in TOY_NAMES:
        if split == "test":
            raise ValueError(
                f"Toy data set {name!r} has no split={split!r}; it has 'train' and 'validation'"
            )
        data = load_toy(name, data_seed)
        x, y = (data.x_train, data.y_train) if training else (data.x_val, data.y_val)
    elif name == "fashion_mnist":
        data = load_fashion_mnist(data_dir=data_dir, seed=data_seed)
        x, y = {
            "train": (data.x_train, data.y_train),
            "validation": (data.x_val, data.y_val),
            "test": (data.x_test, data.y_test),
        }[split]
    else:
        x, y = load_tfds(name, split, data_dir=data_dir), None
    return make_pipeline(
        x, y, batch_size, training, seed, augment, drop_remainder=drop_remainder
    )
