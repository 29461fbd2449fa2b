"""training.data: toy sets (H&R 2017 §6.1-6.3, Galimberti 2021 §4.1), Fashion-MNIST (offline stand-in
for H&R §6.4), tfds-backed sets (R&H 2018 §5) and tf.data pipelines (DESIGN.md §5)."""

import gzip
import os
import pathlib

import numpy as np
import pytest

from training.data import fashion_mnist as fm
from training.data import toy2d
from training.data.toy2d import load_toy
from tests.fashion_mnist_files import directory_with, raw_file

# ---------------------------------------------------------------- toy sets

# name -> (train size, validation size, total per class)
TOY_SIZES = {
    "ellipses": (1000, 200, [600, 600]),  # H&R §6.1
    "swiss_roll": (513, 513, [513, 513]),  # H&R §6.2
    "peaks": (4000, 1000, [1000] * 5),  # H&R §6.3
    "double_moons": (4000, 4000, [4000, 4000]),  # Galimberti §4.1 / ref code
    "double_circles": (4000, 4000, [4000, 4000]),
}


@pytest.mark.parametrize("name", toy2d.TOY_NAMES)
def test_toy_sizes_dtypes_and_class_balance(name):
    n_train, n_val, per_class = TOY_SIZES[name]
    d = load_toy(name, seed=0)
    assert d.name == name and d.num_classes == len(per_class)
    assert d.x_train.shape == (n_train, 2) and d.x_val.shape == (n_val, 2)
    assert d.y_train.shape == (n_train,) and d.y_val.shape == (n_val,)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32
    assert d.x_val.dtype == np.float32 and d.y_val.dtype == np.int32
    counts = np.bincount(np.concatenate([d.y_train, d.y_val]), minlength=d.num_classes)
    assert counts.tolist() == per_class
    assert np.isfinite(d.x_train).all() and np.isfinite(d.x_val).all()
    lo1, hi1, lo2, hi2 = d.domain
    for x in (d.x_train, d.x_val):
        assert (x[:, 0] >= lo1).all() and (x[:, 0] <= hi1).all()
        assert (x[:, 1] >= lo2).all() and (x[:, 1] <= hi2).all()


@pytest.mark.parametrize("name", ["ellipses", "peaks", "double_moons", "double_circles"])
def test_toy_determinism_by_seed(name):
    a, b, c = load_toy(name, 3), load_toy(name, 3), load_toy(name, 4)
    for field in ("x_train", "y_train", "x_val", "y_val"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.x_train, c.x_train)


def test_toy_rejects_bad_name_and_seed():
    with pytest.raises(ValueError, match="spiral"):
        load_toy("spiral")
    with pytest.raises(ValueError, match="seed"):
        toy2d.ellipses(seed=None)
    with pytest.raises(ValueError, match="-1"):
        toy2d.peaks(seed=-1)


def test_ellipses_geometry():
    """H&R §6.1 sizes; geometry of Meganet setupCircle.m: class 0 inside the (1, 0.4) ellipse,
    class 1 in the annulus up to (2, 0.8), so class 1 encloses class 0."""
    d = load_toy("ellipses", 0)
    x = np.concatenate([d.x_train, d.x_val]).astype(np.float64)
    y = np.concatenate([d.y_train, d.y_val])
    rho = np.sqrt(x[:, 0] ** 2 + (x[:, 1] / 0.4) ** 2)  # elliptic radius
    assert (rho[y == 0] <= 1 + 1e-6).all()
    assert (rho[y == 1] >= 1 - 1e-6).all() and (rho[y == 1] <= 2 + 1e-6).all()
    # class 1 surrounds class 0 in every direction (not linearly separable)
    angle = np.arctan2(x[y == 1, 1] / 0.4, x[y == 1, 0])
    assert np.histogram(angle, bins=8, range=(-np.pi, np.pi))[0].min() > 0
    # the split is random: validation is not one class
    assert 0 < d.y_val.sum() < d.y_val.size


def test_swiss_roll_interleave():
    """H&R §6.2 / Meganet setupSwissRoll.m: theta = linspace(0, 4 pi, 513), r = linspace(0, 1, 513)
    (class 1: r + 0.2); arms concatenated, even 0-based positions train, odd validation."""
    (xt, yt), (xv, yv) = toy2d.swiss_roll(seed=0)
    theta = np.linspace(0, 4 * np.pi, 513)
    r = np.linspace(0, 1, 513)
    arm = np.stack([np.cos(theta), np.sin(theta)], 1)
    curve = np.concatenate([r[:, None] * arm, (r + 0.2)[:, None] * arm])
    labels = np.repeat([0, 1], 513)
    np.testing.assert_allclose(xt, curve[0::2], atol=1e-6)
    np.testing.assert_allclose(xv, curve[1::2], atol=1e-6)
    np.testing.assert_array_equal(yt, labels[0::2])
    np.testing.assert_array_equal(yv, labels[1::2])
    assert np.bincount(yt).tolist() == [257, 256] and np.bincount(yv).tolist() == [256, 257]
    # consecutive curve points alternate between the splits: no point is in both
    assert not (xt[:, None, :] == xv[None, :, :]).all(-1).any()
    # deterministic: the seed is accepted but not used
    np.testing.assert_array_equal(toy2d.swiss_roll(seed=7)[0][0], xt)


def test_peaks_labels_are_level_set_bins():
    """H&R §6.3 / Meganet setupPeaks.m: 256x256 grid on [-3, 3]^2, 5 equal-width bins of f,
    1,000 grid points per class (with replacement), 20% random validation."""
    d = load_toy("peaks", 0)
    x = np.concatenate([d.x_train, d.x_val]).astype(np.float64)
    y = np.concatenate([d.y_train, d.y_val])
    assert np.bincount(y).tolist() == [1000] * 5
    grid = np.linspace(-3, 3, 256)
    # every point is a grid node
    for k in range(2):
        assert np.abs(x[:, k][:, None] - grid[None, :]).min(axis=1).max() < 1e-5
    g1, g2 = np.meshgrid(grid, grid)
    f_grid = toy2d.peaks_function(g1, g2)
    f_min, f_max = f_grid.min(), f_grid.max()
    edges = f_min + (f_max - f_min) * np.arange(6) / 5
    f = toy2d.peaks_function(x[:, 0], x[:, 1])
    assert (f >= edges[y] - 1e-4).all() and (f <= edges[y + 1] + 1e-4).all()
    assert 150 < np.bincount(d.y_val).min()  # random split keeps every class in validation


def test_double_moons_and_circles_geometry():
    """Galimberti 2021 §4.1 ref code: moons (cos, sin) / (1 - cos, 0.5 - sin), second pair +2 in x,
    noise U(-0.15, 0.15); circles radii 1..4 labelled 0, 1, 0, 1, noise U(-0.3, 0.3)."""
    c = load_toy("double_circles", 0)
    x = np.concatenate([c.x_train, c.x_val]).astype(np.float64)
    y = np.concatenate([c.y_train, c.y_val])
    radius = np.linalg.norm(x, axis=1)
    nearest = np.clip(np.round(radius), 1, 4)
    assert (np.abs(radius - nearest) <= 0.3 * np.sqrt(2) + 1e-6).all()
    np.testing.assert_array_equal(y, (nearest.astype(int) + 1) % 2)

    m = load_toy("double_moons", 0)
    x = np.concatenate([m.x_train, m.x_val]).astype(np.float64)
    y = np.concatenate([m.y_train, m.y_val])
    # distance to the noiseless arcs is at most the noise box diagonal
    theta = np.pi * np.arange(2000) / 2000
    arcs = {
        0: np.concatenate([np.stack([np.cos(theta) + s, np.sin(theta)], 1) for s in (0, 2)]),
        1: np.concatenate([np.stack([1 - np.cos(theta) + s, 0.5 - np.sin(theta)], 1) for s in (0, 2)]),
    }
    for label, arc in arcs.items():
        pts = x[y == label]
        dist = np.sqrt(((pts[:, None, :] - arc[None, ::4, :]) ** 2).sum(-1)).min(1)
        assert dist.max() <= 0.15 * np.sqrt(2) + 0.01  # 0.01: arc subsampled every 4th point
    # the train/validation split is a random half, not a class split
    assert 1800 < np.bincount(m.y_train)[0] < 2200


# ---------------------------------------------------------------- Fashion-MNIST

FM_DIR = pathlib.Path(fm.DEFAULT_DIR)
needs_fm = pytest.mark.skipif(
    not all((FM_DIR / f).is_file() for f in fm.FILES.values()),
    reason=f"Fashion-MNIST files absent from {FM_DIR} (apt-get install dataset-fashion-mnist)",
)


@needs_fm
def test_fashion_mnist_shapes_splits_and_labels():
    """Offline stand-in for H&R §6.4: 50,000 / 10,000 seeded split of the official 60,000, plus
    the official 10,000 test images."""
    d = fm.load_fashion_mnist(FM_DIR, seed=0)
    assert d.x_train.shape == (50000, 28, 28, 1) and d.x_train.dtype == np.uint8
    assert d.x_val.shape == (10000, 28, 28, 1) and d.x_test.shape == (10000, 28, 28, 1)
    assert d.y_train.shape == (50000,) and d.y_train.dtype == np.int32
    assert d.y_val.dtype == np.int32 and d.y_test.dtype == np.int32
    for labels in (d.y_train, d.y_val, d.y_test):
        assert labels.min() == 0 and labels.max() == 9
    assert np.bincount(d.y_test).tolist() == [1000] * 10  # the official test set is balanced
    assert np.bincount(np.concatenate([d.y_train, d.y_val])).tolist() == [6000] * 10
    assert np.intersect1d(d.train_indices, d.val_indices).size == 0
    np.testing.assert_array_equal(
        np.union1d(d.train_indices, d.val_indices), np.arange(60000)
    )
    assert d.x_train.max() == 255 and d.x_train.min() == 0
    # the split arrays are the official examples at those indices
    official_labels = fm.read_idx(FM_DIR / "train-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(d.y_val, official_labels[d.val_indices])
    np.testing.assert_array_equal(d.y_train, official_labels[d.train_indices])


@needs_fm
def test_fashion_mnist_split_depends_on_seed_only():
    a = fm.load_fashion_mnist(FM_DIR, seed=0)
    b = fm.load_fashion_mnist(FM_DIR, seed=0)
    c = fm.load_fashion_mnist(FM_DIR, seed=1)
    np.testing.assert_array_equal(a.val_indices, b.val_indices)
    assert not np.array_equal(a.val_indices, c.val_indices)


@needs_fm
def test_fashion_mnist_env_var_is_read_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setenv(fm.ENV_VAR, str(FM_DIR))
    assert fm.fashion_mnist_dir() == FM_DIR.resolve()
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        fm.load_fashion_mnist()


def test_fashion_mnist_missing_dir_names_file_and_package(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        fm.load_fashion_mnist(tmp_path / "nowhere")
    assert "apt-get install dataset-fashion-mnist" in str(err.value)
    assert "train-images-idx3-ubyte.gz" in str(err.value)


def _write_idx_gz(path, raw):
    path.write_bytes(gzip.compress(raw))


@needs_fm
def test_fashion_mnist_checksum_mismatch_names_file_and_digests(tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(raw_file(name))
    raw[-1] = (raw[-1] + 1) % 10  # a valid IDX file with one label changed
    directory_with(tmp_path, name, bytes(raw))
    with pytest.raises(fm.ChecksumError) as err:
        fm.load_fashion_mnist(tmp_path)
    message = str(err.value)
    assert name in message and fm.SHA256[name] in message
    import hashlib

    assert hashlib.sha256(bytes(raw)).hexdigest() in message
    assert isinstance(err.value, ValueError)
    # the same files load when verification is off
    assert fm.load_fashion_mnist(tmp_path, verify=False).y_test.shape == (10000,)


@needs_fm
def test_fashion_mnist_truncated_idx_raises_value_error(tmp_path):
    name = "train-labels-idx1-ubyte.gz"
    raw = raw_file(name)
    directory_with(tmp_path, name, raw[:-100])
    with pytest.raises(ValueError, match=name) as err:
        fm.load_fashion_mnist(tmp_path, verify=False)
    assert not isinstance(err.value, fm.ChecksumError)


def test_read_idx_parses_header_and_rejects_corruption(tmp_path):
    good = tmp_path / "good.gz"
    header = bytes([0, 0, 0x08, 3]) + np.array([2, 3, 4], ">u4").tobytes()
    _write_idx_gz(good, header + bytes(range(24)))
    arr = fm.read_idx(good)
    assert arr.shape == (2, 3, 4) and arr.dtype == np.uint8 and arr[1, 2, 3] == 23

    be = tmp_path / "int32.gz"  # big-endian int32 payload
    _write_idx_gz(be, bytes([0, 0, 0x0C, 1]) + np.array([2], ">u4").tobytes()
                  + np.array([7, -1], ">i4").tobytes())
    assert fm.read_idx(be).tolist() == [7, -1]

    cases = {
        "truncated.gz": header + bytes(range(23)),
        "magic.gz": bytes([1, 0, 0x08, 3]) + header[4:] + bytes(24),
        "dtype.gz": bytes([0, 0, 0x07, 3]) + header[4:] + bytes(24),
        "short.gz": bytes([0, 0, 0x08]),
    }
    for fname, raw in cases.items():
        _write_idx_gz(tmp_path / fname, raw)
        with pytest.raises(ValueError, match=fname):
            fm.read_idx(tmp_path / fname)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good.read_bytes()[:-10])  # a truncated gzip stream
    with pytest.raises(ValueError, match="cut.gz"):
        fm.read_idx(cut)
    with pytest.raises(fm.ChecksumError, match="0" * 64):
        fm.read_idx(good, expected_sha256="0" * 64)


# ---------------------------------------------------------------- tfds-backed sets


def test_tfds_split_strings_give_the_papers_sizes():
    """H&R §6.4 (MNIST 50,000/10,000) and R&H 2018 §5 (80/20 of the official train split),
    resolved against the official split sizes with tfds' own slicing rules."""
    tfds = pytest.importorskip("tensorflow_datasets")
    from types import SimpleNamespace

    from training.data.tfds_sets import TFDS_SPECS

    expected = {
        "mnist": (50000, 10000, 10000),
        "cifar10": (40000, 10000, 10000),
        "cifar100": (40000, 10000, 10000),
        "stl10": (4000, 1000, 8000),
    }
    for name, spec in TFDS_SPECS.items():
        infos = {k: SimpleNamespace(num_examples=v) for k, v in spec.official_sizes.items()}
        sizes = []
        for split in ("train", "validation", "test"):
            (instr,) = tfds.core.ReadInstruction.from_spec(spec.splits[split]).to_absolute(infos)
            n = infos[instr.splitname].num_examples
            start = instr.from_ or 0
            stop = n if instr.to is None else instr.to
            sizes.append(stop - start)
        assert tuple(sizes) == expected[name] == tuple(spec.sizes.values()), name


@pytest.mark.parametrize(
    "name,shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))]
)
def test_tfds_mock_load(name, shape):
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    from training.data import load_tfds

    with tfds.testing.mock_data(num_examples=6):
        for split in ("train", "validation", "test"):
            ds = load_tfds(name, split)
            assert ds.element_spec[0].shape == shape and ds.element_spec[0].dtype == tf.uint8
            assert ds.element_spec[1].dtype == tf.int32
            assert sum(1 for _ in ds) == 6  # mock_data yields num_examples per split


def test_tfds_mock_pipeline_with_default_augment():
    tfds = pytest.importorskip("tensorflow_datasets")
    from training.data import dataset_for

    with tfds.testing.mock_data(num_examples=10):
        ds = dataset_for("cifar10", "train", batch_size=4, seed=0, augment="default")
        shapes = [tuple(x.shape) for x, _ in ds]
    assert shapes == [(4, 32, 32, 3), (4, 32, 32, 3), (2, 32, 32, 3)]
    assert ds.element_spec[0].dtype.name == "float32"


def test_tfds_rejects_unknown_names():
    from training.data.tfds_sets import tfds_split

    with pytest.raises(ValueError, match="imagenet"):
        tfds_split("imagenet", "train")
    with pytest.raises(ValueError, match="val"):
        tfds_split("mnist", "val")


# ---------------------------------------------------------------- pipelines


def _epoch(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def test_pipeline_batches_and_dtypes():
    from training.data import make_pipeline

    d = load_toy("ellipses", 0)
    ds = make_pipeline(d.x_train, d.y_train, 128, training=True, seed=0)
    shapes = [tuple(x.shape) for x, _ in ds]
    assert shapes == [(128, 2)] * 7 + [(104, 2)]
    assert ds.element_spec[0].dtype.name == "float32" and ds.element_spec[1].dtype.name == "int32"
    ds = make_pipeline(d.x_train, d.y_train, 128, True, 0, drop_remainder=True)
    assert [tuple(x.shape) for x, _ in ds] == [(128, 2)] * 7
    # evaluation keeps the order
    x, y = _epoch(make_pipeline(d.x_val, d.y_val, 64, training=False, seed=None))
    np.testing.assert_array_equal(x, d.x_val)
    np.testing.assert_array_equal(y, d.y_val)


def test_pipeline_shuffle_is_seeded_and_reshuffles_each_epoch():
    from training.data import make_pipeline

    d = load_toy("peaks", 0)
    a = make_pipeline(d.x_train, d.y_train, 256, True, seed=5)
    b = make_pipeline(d.x_train, d.y_train, 256, True, seed=5)
    c = make_pipeline(d.x_train, d.y_train, 256, True, seed=6)
    a1, a2 = _epoch(a), _epoch(a)
    b1, b2 = _epoch(b), _epoch(b)
    np.testing.assert_array_equal(a1[0], b1[0])
    np.testing.assert_array_equal(a2[0], b2[0])
    assert not np.array_equal(a1[0], a2[0])  # new order each epoch
    assert not np.array_equal(a1[0], _epoch(c)[0])
    # same examples, pairs kept together
    order = np.lexsort(a1[0].T)
    ref = np.lexsort(d.x_train.T)
    np.testing.assert_array_equal(a1[0][order], d.x_train[ref])


def test_pipeline_accepts_a_dataset_and_validates_arguments():
    import tensorflow as tf

    from training.data import make_pipeline, random_flip_and_shift

    images = np.arange(10 * 4 * 4, dtype=np.uint8).reshape(10, 4, 4, 1)
    labels = np.arange(10, dtype=np.int64)
    ds = make_pipeline(tf.data.Dataset.from_tensor_slices((images, labels)), None, 4, True, 0)
    x, y = _epoch(ds)
    assert x.shape == (10, 4, 4, 1) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(x.astype(np.uint8), images[y])
    with pytest.raises(ValueError, match="batch_size"):
        make_pipeline(images, labels, 0, True, 0)
    with pytest.raises(ValueError, match="same length"):
        make_pipeline(images, labels[:3], 4, True, 0)
    with pytest.raises(ValueError, match="augment"):
        make_pipeline(images, labels, 4, False, 0, augment=random_flip_and_shift())
    with pytest.raises(ValueError, match="pad"):
        random_flip_and_shift(pad=-1)


def test_augmentation_shifts_and_flips_per_image():
    """R&H 2018 §5 augmentation: flip, zero-pad by `pad`, random crop; per image, on batches."""
    from training.data import make_pipeline, random_flip_and_shift

    n, size, pad = 64, 8, 2
    images = np.zeros((n, size, size, 1), np.uint8)
    images[:, 4, 5, 0] = 200  # one bright pixel, away from the border
    labels = np.arange(n)
    ds = make_pipeline(images, labels, 32, True, 1, augment=random_flip_and_shift(pad=pad))
    x, y = _epoch(ds)
    assert x.shape == images.shape and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 255
    positions = set()
    for img in x[..., 0]:
        (r, c), = np.argwhere(img > 0)  # the pixel survives (it is within pad of the border)
        assert img[r, c] == 200 and abs(r - 4) <= pad
        assert abs(c - 5) <= pad or abs(c - (size - 1 - 5)) <= pad  # shifted, maybe mirrored
        positions.add((r, c))
    assert len(positions) > 10  # offsets differ between images of one batch
    assert any(c <= 2 for _, c in positions) and any(c >= 5 for _, c in positions)  # flips

    # deterministic for a seed, different next epoch and for another seed
    again = _epoch(make_pipeline(images, labels, 32, True, 1, augment=random_flip_and_shift(pad)))
    np.testing.assert_array_equal(x, again[0])
    assert not np.array_equal(x, _epoch(ds)[0])
    other = _epoch(make_pipeline(images, labels, 32, True, 2, augment=random_flip_and_shift(pad)))
    assert not np.array_equal(x, other[0])


def test_augmentation_identity_and_no_flip():
    import tensorflow as tf

    from training.data import random_flip_and_shift

    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, (16, 6, 6, 3)), tf.float32)
    seed = tf.constant([3, 4], tf.int64)
    np.testing.assert_array_equal(random_flip_and_shift(0, flip=False)(images, seed), images)
    out = random_flip_and_shift(0, flip=True)(images, seed).numpy()
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images.numpy())]
    kept = [np.array_equal(o, i) for o, i in zip(out, images.numpy())]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    shifted = random_flip_and_shift(1, flip=False)(images, seed).numpy()
    assert not np.array_equal(shifted, images.numpy())


@needs_fm
def test_dataset_for_fashion_mnist_and_toys():
    from training.data import dataset_for, default_augment

    ds = dataset_for("fashion_mnist", "validation", batch_size=1000, seed=0)
    x, y = next(iter(ds))
    assert tuple(x.shape) == (1000, 28, 28, 1) and x.dtype.name == "float32"
    assert float(x.numpy().max()) == 255.0  # raw pixel values (DESIGN.md §4)
    assert ds.cardinality() == 10
    ds = dataset_for("double_moons", "validation", batch_size=500)
    assert sum(int(x.shape[0]) for x, _ in ds) == 4000
    with pytest.raises(ValueError, match="test"):
        dataset_for("peaks", "test")
    with pytest.raises(ValueError, match="imagenet"):
        dataset_for("imagenet", "train")
    assert default_augment("mnist") is None and default_augment("stl10") is not None
