"""Resumable training (issue 13): a training process killed with SIGKILL mid-epoch and restarted
ends with bitwise the same weights as an uninterrupted run.

The acceptance tests run `tests/resume_helper.py` in subprocesses with deterministic ops
(`tf.config.experimental.enable_op_determinism()`, which also turns XLA off in Keras) and fixed
seeds (`keras.utils.set_random_seed`), and compare the final weights with `np.array_equal`.
Three things make the resumed run identical, all in `training.callbacks.ResumableBackup` (a
`keras.callbacks.BackupAndRestore`): the weights *and* optimiser state of the last finished
epoch, committed atomically; the best-weights selection state (multilevel training); and the
data order: the recipes' pipelines shuffle with a seed and reshuffle on every iterator, so the
restarted process replays the iterators the killed one had created (`replay_iterations`) before
it resumes. The fast tests below check the pieces in-process.
"""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from training.callbacks import KERAS_ITERATORS_PER_EPOCH, ResumableBackup, replay_iterations

HELPER = os.path.join(os.path.dirname(__file__), "resume_helper.py")
TIMEOUT = 300  # seconds for any one subprocess


# === Acceptance: SIGKILL mid-epoch, restart, same final weights ===


def _run(mode, out, sleep=0.0):
    result = subprocess.run([sys.executable, HELPER, mode, str(out), "--sleep", str(sleep)],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]


def _kill_mid_epoch(mode, out, level, epoch, sleep):
    """Start a run, SIGKILL it inside (`level`, `epoch`) a few batches in; return where it was."""
    process = subprocess.Popen([sys.executable, HELPER, mode, str(out), "--sleep", str(sleep)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    progress = out / "progress.json"
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "the run never reached the kill point"
            time.sleep(0.02)
            try:
                state = json.loads(progress.read_text())
            except (OSError, ValueError):
                continue
            if (state["level"], state["epoch"]) >= (level, epoch) and state["batch"] >= 3:
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (out / "final.npz").exists()
    return state


def _final(out):
    with np.load(out / "final.npz") as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def _assert_bitwise_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and np.array_equal(x, y), float(np.max(np.abs(x - y)))


@pytest.mark.slow
def test_fit_killed_mid_epoch_resumes_to_bitwise_identical_weights(tmp_path):
    """4 epochs x 32 batches; killed inside epoch 3 (0-based 2), restarted, finished."""
    _run("fit", tmp_path / "reference")
    killed = tmp_path / "killed"
    state = _kill_mid_epoch("fit", killed, level=0, epoch=2, sleep=0.05)
    assert 3 <= state["batch"] < 31  # mid-epoch: not at an epoch boundary
    meta = json.loads((killed / "backup" / "training_metadata.json").read_text())
    assert meta["epoch"] == state["epoch"]  # epochs 0..1 committed, the interrupted one not
    assert sorted(os.listdir(killed / "backup")) == ["state-2.weights.h5", "training_metadata.json"]
    _run("fit", killed)  # the same command again: resumes
    _assert_bitwise_equal(_final(tmp_path / "reference"), _final(killed))
    assert not (killed / "backup").exists()  # a finished fit removes its backup


@pytest.mark.slow
def test_multilevel_recipe_killed_in_level_2_resumes_to_bitwise_identical_weights(tmp_path):
    """hr17_toy (N = 4 then 8; 2 + 3 epochs of 16 batches), killed inside level 2, epoch 2."""
    _run("multilevel", tmp_path / "reference")
    killed = tmp_path / "killed"
    state = _kill_mid_epoch("multilevel", killed, level=1, epoch=1, sleep=0.1)
    backup = killed / "swiss_roll" / "antisymmetric" / "backup"
    marker = json.loads((backup / "levels.json").read_text())
    assert [entry["depth"] for entry in marker["finished"]] == [4]  # level 1 done, level 2 not
    assert json.loads((backup / "level_1" / "training_metadata.json").read_text())["epoch"] == state["epoch"]
    _run("multilevel", killed)
    _assert_bitwise_equal(_final(tmp_path / "reference"), _final(killed))
    reference = json.loads((tmp_path / "reference" / "swiss_roll" / "antisymmetric" / "results.json").read_text())
    resumed = json.loads((killed / "swiss_roll" / "antisymmetric" / "results.json").read_text())
    for a, b in zip(reference["levels"], resumed["levels"]):  # the records survive the restart
        assert (a["best_epoch"], a["val_accuracy"], a["train_accuracy"]) == (b["best_epoch"], b["val_accuracy"],
                                                                             b["train_accuracy"])
    assert not backup.exists()  # the recipe removes the backup once its results are written


# === The pieces, in-process ===


def _shuffled(seed=0):
    from training.data.pipeline import make_pipeline

    tf.random.set_seed(0)
    x = np.arange(64, dtype="float32")[:, None]
    return make_pipeline(x, np.zeros(64), 16, training=True, seed=seed)


def _order(dataset):
    return tuple(float(v) for batch in dataset for v in batch[0].numpy()[:, 0])


def test_replaying_iterators_reproduces_the_reshuffled_order():
    dataset = _shuffled()
    orders = [_order(dataset) for _ in range(4)]
    assert len(set(orders)) == 4  # a new order on every iterator
    fresh = _shuffled()
    replay_iterations(fresh, 3)
    assert _order(fresh) == orders[3]


def test_keras_fit_creates_the_counted_iterators_per_epoch():
    """The constant behind the replay: `fit` makes KERAS_ITERATORS_PER_EPOCH iterators per epoch."""
    orders = [_order(dataset) for dataset in [_shuffled()] for _ in range(6)]
    dataset = _shuffled()
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(dataset, epochs=2, verbose=0, shuffle=False)
    assert _order(dataset) == orders[2 * KERAS_ITERATORS_PER_EPOCH]


def _toy_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.05), keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")], jit_compile=False)
    return model


def _toy_data():
    from training.data.pipeline import make_pipeline

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 2)).astype("float32")
    y = (x[:, :1] * x[:, 1:] > 0).astype("float32")
    return make_pipeline(x[:64], y[:64], 16, training=True, seed=0), (x[64:], y[64:])


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch == self.epoch and batch == 1:
            raise KeyboardInterrupt  # what a kill looks like to the process: no on_train_end

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


def test_selection_equals_early_stopping_and_survives_an_interruption(tmp_path):
    """`ResumableBackup(monitor=...)` = `EarlyStopping(restore_best_weights=True)`, also resumed."""
    train, val = _toy_data()
    model = _toy_model()
    early = keras.callbacks.EarlyStopping("val_accuracy", mode="max", patience=6, restore_best_weights=True)
    model.fit(train, validation_data=val, epochs=6, verbose=0, callbacks=[early])
    expected = model.get_weights()

    backup_dir = str(tmp_path / "backup")
    train, val = _toy_data()
    model = _toy_model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(train, validation_data=val, epochs=6, verbose=0, callbacks=[
            ResumableBackup(backup_dir, data=train, monitor="val_accuracy", mode="max", patience=6),
            _Interrupt(epoch=4)])
    assert sorted(os.listdir(backup_dir))[-1] == "training_metadata.json"
    assert not [name for name in os.listdir(backup_dir) if "tmp" in name]

    train, val = _toy_data()  # a new "process": same seeds, fresh pipeline and model
    model = _toy_model()
    backup = ResumableBackup(backup_dir, data=train, monitor="val_accuracy", mode="max", patience=6)
    history = model.fit(train, validation_data=val, epochs=6, verbose=0, callbacks=[backup]).history
    assert backup.restored_epoch == 4 and len(history["loss"]) == 2 and len(backup.history["loss"]) == 6
    assert backup.best_epoch == early.best_epoch
    for a, b in zip(expected, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not os.path.exists(backup_dir)


def test_a_backup_of_another_configuration_is_refused(tmp_path):
    train, _ = _toy_data()
    model = _toy_model()
    model.fit(train, epochs=1, verbose=0, callbacks=[
        ResumableBackup(str(tmp_path), fingerprint={"lr": 0.05}, delete_checkpoint=False)])
    with pytest.raises(ValueError, match="another configuration.*--fresh"):
        _toy_model().fit(train, epochs=2, verbose=0,
                         callbacks=[ResumableBackup(str(tmp_path), fingerprint={"lr": 0.1})])


def test_multilevel_rerun_skips_finished_levels_and_refuses_other_levels(tmp_path):
    from training.multilevel import train_multilevel
    from zoo import create

    def build(depth):
        keras.utils.set_random_seed(0)
        return create("hr17_antisymmetric", depth=depth, T=2.0)

    train, val = _toy_data()
    kwargs = dict(compile_kwargs=dict(optimizer=lambda: keras.optimizers.Adam(1e-2),
                                      loss=keras.losses.BinaryCrossentropy(from_logits=True),
                                      metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")]),
                  jit_compile=False, backup_dir=str(tmp_path), fingerprint={"test": 1})
    model, records = train_multilevel(build, (2, 4), train, val, 1, **kwargs)
    marker = json.loads((tmp_path / "levels.json").read_text())
    assert [e["depth"] for e in marker["finished"]] == [2, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["level_0.best.npz", "level_1.best.npz", "levels.json"]
    again, records_again = train_multilevel(build, (2, 4), train, val, 1, **kwargs)  # nothing left to train
    assert [r.as_dict() for r in records] == [r.as_dict() for r in records_again]
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="belongs to another run"):
        train_multilevel(build, (2, 8), train, val, 1, **kwargs)
