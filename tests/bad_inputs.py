"""Every bad input a user can give the zoo, with the error they must see (issue 13).

One catalogue feeds both `tests/test_bad_inputs.py` (each case must raise the named exception
with a message matching `match`, or exit the command line with `exit_code`) and
`scripts/reliability_report.py`, which runs the cases and writes the table in
`docs/reliability.md` with the message each one really produced.

A case's `run(tmp)` gets a fresh temporary directory (a `pathlib.Path`) and must fail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from tests.fashion_mnist_files import directory_with, raw_file

__all__ = ["Case", "CASES", "run_case"]


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    area: str
    given: str  # the bad input, in words
    run: Callable[[Path], object]
    raises: tuple = (ValueError,)
    match: str = ""
    exit_code: int | None = None  # command-line cases: the expected exit status instead


def run_case(case, tmp):
    """Run `case` in `tmp`; returns (exception type name or exit code, message)."""
    if case.exit_code is not None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = case.run(tmp)
            except SystemExit as stop:  # argparse usage errors
                code = stop.code
        return code, err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ""
    try:
        case.run(tmp)
    except Exception as error:  # noqa: BLE001 - the catalogue records whatever was raised
        return error, str(error)
    return None, "no error"


# === Builders ===


def _create(name, **overrides):
    import zoo

    return lambda tmp: zoo.create(name, **overrides)


def _block(builder, *args, **kwargs):
    def run(tmp):
        import zoo

        return getattr(zoo, builder)(*args, **kwargs)
    return run


# === Data ===


def _fm_truncated(tmp):
    from training.data.fashion_mnist import load_fashion_mnist

    name = "train-labels-idx1-ubyte.gz"
    return load_fashion_mnist(directory_with(tmp, name, raw_file(name)[:-100]), verify=False)


def _fm_wrong_checksum(tmp):
    from training.data.fashion_mnist import load_fashion_mnist

    name = "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(raw_file(name))
    raw[-1] = (raw[-1] + 1) % 10
    return load_fashion_mnist(directory_with(tmp, name, bytes(raw)))


def _fm_bad_magic(tmp):
    from training.data.fashion_mnist import read_idx

    path = tmp / "bad.gz"
    path.write_bytes(gzip.compress(bytes([1, 0, 8, 1]) + np.array([3], ">u4").tobytes() + bytes(3)))
    return read_idx(path)


def _fm_not_gzip(tmp):
    from training.data.fashion_mnist import read_idx

    path = tmp / "plain.gz"
    path.write_bytes(b"this is not gzip")
    return read_idx(path)


def _pipeline(**kwargs):
    def run(tmp):
        from training.data.pipeline import make_pipeline

        args = dict(x=np.zeros((4, 2), "float32"), y=np.zeros(4, "int32"), batch_size=2, training=False, seed=0)
        args.update(kwargs)
        return make_pipeline(**args)
    return run


# === Registry and hub ===


def _smallest_entry():
    import zoo
    from zoo.cards import weights_file

    return min(zoo.list_models(pretrained=True), key=lambda n: weights_file(zoo.card(n))["bytes"])


def _tampered_hub(tmp, mutate):
    """Serve a copy of the smallest entry from a file:// URL after `mutate(weights_path)`."""
    from zoo import hub

    name = _smallest_entry()
    shutil.copytree(hub.LOCAL_ROOT / name, tmp / "remote" / name)
    mutate(tmp / "remote" / name / "model.weights.h5")
    env = {hub.BASE_URL_ENV: (tmp / "remote").as_uri(), hub.CACHE_DIR_ENV: str(tmp / "cache")}
    with _environ(env):
        import zoo

        return zoo.load(name)


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:1000])


@contextlib.contextmanager
def _environ(values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _card_missing(tmp):
    import zoo
    from zoo.cards import validate_card

    card = dict(zoo.card(_smallest_entry()))
    card.pop("recipe")
    return validate_card(card)


def _base_url(url):
    def run(tmp):
        import zoo
        from zoo import hub

        with _environ({hub.BASE_URL_ENV: url, hub.CACHE_DIR_ENV: str(tmp / "cache")}):
            return zoo.load(_smallest_entry())
    return run


# === Export and exported artefacts ===


@functools.lru_cache(maxsize=None)
def _tiny_model():
    import zoo

    return zoo.create("hr17_antisymmetric", depth=4, T=20.0, width=2)


@functools.lru_cache(maxsize=None)
def _tiny_onnx():
    from export.onnx import export_onnx

    return export_onnx(_tiny_model(), os.path.join(tempfile.mkdtemp(prefix="bad_inputs_"), "m.onnx"))


def _predict(x):
    def run(tmp):
        from export.runtime import load_predictor

        return load_predictor(_tiny_onnx()).predict(x)
    return run


def _export_existing(tmp):
    from export.onnx import export_onnx

    (tmp / "m.onnx").write_bytes(b"keep me")
    return export_onnx(_tiny_model(), str(tmp / "m.onnx"))


def _export_disk_failure(tmp):
    """The writer fails half-way (a full disk): the error surfaces and nothing is left behind."""
    from unittest import mock

    import onnx

    from export.onnx import export_onnx

    def full_disk(proto, path, *args, **kwargs):
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    with mock.patch.object(onnx, "save", full_disk):
        try:
            return export_onnx(_tiny_model(), str(tmp / "out.onnx"))
        finally:
            if os.listdir(tmp):
                raise AssertionError(f"export left files behind: {os.listdir(tmp)}")


def _export_unsupported_op(tmp):
    """A model with an op outside ONNX (a string op) fails with a conversion error, no file."""
    import keras
    import tensorflow as tf

    from export.onnx import export_onnx

    class StringHash(keras.layers.Layer):
        def call(self, x):
            strings = tf.strings.as_string(x)
            return tf.cast(tf.strings.to_hash_bucket_fast(strings, 7), "float32")

    inputs = keras.Input((2,), name="features")
    model = keras.Model(inputs, StringHash()(inputs))
    try:
        return export_onnx(model, str(tmp / "m.onnx"), fold=False)
    finally:
        if os.listdir(tmp):
            raise AssertionError(f"export left files behind: {os.listdir(tmp)}")


def _load_predictor_of(content, suffix):
    def run(tmp):
        from export.runtime import load_predictor

        path = tmp / f"m{suffix}"
        if content is not None:
            path.write_bytes(content)
        return load_predictor(str(path))
    return run


def _fp16_of_loop(tmp):
    import zoo
    from export.onnx import export_onnx
    from export.quantize import convert_onnx_fp16

    deep = zoo.create("hr17_antisymmetric", depth=128, T=20.0, width=2)
    fp32 = export_onnx(deep, str(tmp / "deep.onnx"))
    return convert_onnx_fp16(fp32, str(tmp / "deep_fp16.onnx"))


# === Command line ===


def _cli(*argv):
    def run(tmp):
        from zoo.cli import main

        return main([a.replace("{tmp}", str(tmp)) for a in argv])
    return run


_X = np.zeros((4, 2), "float32")
_NAN = _X.copy()
_NAN[1, 0] = np.nan

CASES = (
    # builders
    Case("depth-zero", "builders", "`depth=0`", _create("hr17_antisymmetric", depth=0), match=r"`depth` \(N\) must be an integer >= 1"),
    Case("depth-float", "builders", "`depth=2.5`", _create("hr17_verlet", depth=2.5), match=r"`depth` \(N\) must be an integer"),
    Case("final-time-negative", "builders", "`T=-1`", _create("hr17_antisymmetric", T=-1.0), match=r"`T` \(final time\) must be finite and > 0"),
    Case("final-time-nan", "builders", "`T=nan`", _create("hr17_resnet", T=float("nan")), match=r"`T` \(final time\) must be finite and > 0"),
    Case("final-time-inf", "builders", "`T=inf`", _create("galimberti_h1", T=float("inf")), match=r"`T` \(final time\) must be finite and > 0"),
    Case("width-zero", "builders", "`width=0`", _create("hr17_antisymmetric", width=0), match="`width` must be >= 1"),
    Case("activation-unknown", "builders", "`activation=\"tanhh\"`", _create("hr17_antisymmetric", activation="tanhh"), match="tanhh"),
    Case("classes-one", "builders", "`num_classes=1`", _create("hr17_antisymmetric", num_classes=1), match="`num_classes` must be >= 2"),
    Case("override-misspelt", "builders", "misspelt keyword `dept=4`", _create("hr17_antisymmetric", dept=4), match="dept"),
    Case("hamiltonian-odd-width", "builders", "Hamiltonian CNN with an odd width", _create("rh18_hamiltonian_fashion_mnist", widths=(15, 32, 64)), match="halves"),
    Case("image-shape-rank", "builders", "`image_shape=(28, 28)` (no channel axis)", _create("hr17_antisymmetric_conv", image_shape=(28, 28)), match=r"`image_shape` must be \(height, width, channels\)"),
    Case("lifting-unknown", "builders", "`lifting=\"wrap\"`", _create("hr17_antisymmetric", width=4, lifting="wrap"), match="wrap"),
    Case("momentum-channels-zero", "builders", "Verlet `momentum_channels=0`", _create("hr17_verlet", momentum_channels=0), match="momentum_channels"),
    Case("reversible-euler", "builders", "`reversible=True` on forward Euler", _create("hr17_resnet", reversible=True), match="(?i)revers"),
    Case("block-depth-string", "builders", "`resnet_block(\"16\", 1.0)`", _block("resnet_block", "16", 1.0), match="depth"),
    Case("model-input-shape", "builders", "a `(3, 3)` batch into a 2-feature model", lambda tmp: _tiny_model()(np.zeros((3, 3), "float32")), match=r"expected shape=\(None, 2\)"),
    # data
    Case("fmnist-missing", "data", "Fashion-MNIST directory missing", lambda tmp: __import__("training.data.fashion_mnist", fromlist=["x"]).load_fashion_mnist(tmp / "nowhere"), (FileNotFoundError,), "apt-get install dataset-fashion-mnist"),
    Case("fmnist-truncated", "data", "truncated IDX file", _fm_truncated, match="train-labels-idx1-ubyte.gz"),
    Case("fmnist-checksum", "data", "IDX file with one byte changed (sha256 mismatch)", _fm_wrong_checksum, match="t10k-labels-idx1-ubyte.gz.*sha256"),
    Case("idx-magic", "data", "IDX file with a wrong magic number", _fm_bad_magic, match="(?i)magic"),
    Case("idx-not-gzip", "data", "a `.gz` file that is not gzip", _fm_not_gzip, match="plain.gz"),
    Case("pipeline-batch-zero", "data", "`batch_size=0`", _pipeline(batch_size=0), match="batch_size must be a positive int"),
    Case("pipeline-length-mismatch", "data", "`x` and `y` of different lengths", _pipeline(y=np.zeros(3, "int32")), match="same length"),
    Case("pipeline-augment-eval", "data", "augmentation on an evaluation pipeline", _pipeline(augment=lambda x, s: x), match="augment is only for training"),
    Case("toy-unknown", "data", "unknown 2-D data set", lambda tmp: __import__("training.data.toy2d", fromlist=["x"]).load_toy("spiral"), match="spiral"),
    Case("tfds-unknown", "data", "unknown tfds data set", lambda tmp: __import__("training.data.tfds_sets", fromlist=["x"]).load_tfds("imagenet", "train"), match="imagenet"),
    # registry and hub
    Case("model-unknown", "registry", "misspelt architecture name", _create("hr17_antisymetric"), match="Did you mean"),
    Case("pretrained-unknown", "registry", "unknown pretrained name", lambda tmp: __import__("zoo").card("nope"), match="Unknown pretrained model 'nope'"),
    Case("name-traversal", "hub", "unsafe name `../x`", lambda tmp: __import__("zoo").load("../x"), match="Unsafe or malformed"),
    Case("weights-tampered", "hub", "weights file with a flipped byte (file:// hub)", lambda tmp: _tampered_hub(tmp, _flip_byte), match=r"Checksum mismatch.*model.weights.h5: the card says sha256 [0-9a-f]{64}, the file has [0-9a-f]{64}"),
    Case("weights-truncated", "hub", "weights file cut to 1,000 bytes", lambda tmp: _tampered_hub(tmp, _truncate), match="Checksum mismatch.*model.weights.h5"),
    Case("card-missing-field", "hub", "card without `recipe`", _card_missing, match="missing field 'recipe'"),
    Case("base-url-scheme", "hub", "hub base URL with an unsupported scheme", _base_url("ftp://example.com/models"), match="must start with one of file://"),
    # export
    Case("export-exists", "export", "output file already exists", _export_existing, (FileExistsError,), "already exists"),
    Case("export-disk-full", "export", "disk full while writing", _export_disk_failure, (OSError,), "No space left"),
    Case("export-unsupported-op", "export", "a model with an op ONNX lacks", _export_unsupported_op, match="no ONNX equivalent for the TensorFlow op.*StringToHashBucketFast"),
    Case("fp16-loop", "export", "fp16 conversion of a graph with an ONNX Loop", _fp16_of_loop, match="Loop"),
    # exported artefacts through our API
    Case("artefact-shape", "artefacts", "batch of shape (4, 3) for a 2-feature model", _predict(np.zeros((4, 3), "float32")), match=r"expected shape \(batch, 2\), got \(4, 3\)"),
    Case("artefact-no-batch", "artefacts", "a single example without the batch axis", _predict(np.zeros(2, "float32")), match="add the batch axis"),
    Case("artefact-dtype", "artefacts", "float64 input", _predict(_X.astype("float64")), (TypeError,), "expected dtype float32, got float64"),
    Case("artefact-nan", "artefacts", "input with NaN", _predict(_NAN), match="(?i)nan"),
    Case("artefact-empty", "artefacts", "empty batch", _predict(np.zeros((0, 2), "float32")), match="empty"),
    Case("artefact-missing", "artefacts", "artefact path that does not exist", _load_predictor_of(None, ".onnx"), (FileNotFoundError,), "m.onnx"),
    Case("artefact-corrupt", "artefacts", "corrupt `.onnx` file", _load_predictor_of(b"not a model", ".onnx"), match="not a loadable ONNX model"),
    # command line
    Case("cli-unknown-command", "command line", "`stable-zoo frobnicate`", _cli("frobnicate"), exit_code=2, match="invalid choice"),
    Case("cli-unknown-model", "command line", "`stable-zoo info hr17_verlett`", _cli("info", "hr17_verlett"), exit_code=2, match="Unknown model 'hr17_verlett'"),
    Case("cli-bad-limit", "command line", "`stable-zoo evaluate x --limit 0`", _cli("evaluate", "x", "--limit", "0"), exit_code=2, match="limit"),
    Case("cli-bad-format", "command line", "`stable-zoo export ... --format pickle`", _cli("export", "hr17_antisymmetric", "--format", "pickle", "--out", "{tmp}"), exit_code=2, match="pickle"),
    Case("cli-int8-saved-model", "command line", "`--quantize int8` with `--format saved_model`", _cli("export", "hr17_antisymmetric", "--format", "saved_model", "--quantize", "int8", "--out", "{tmp}"), exit_code=2, match="not saved_model"),
)
