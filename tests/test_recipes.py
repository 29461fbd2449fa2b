"""Reduced versions of the H&R 2017 recipes (each under a minute) and the gradient-norm check."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from training.callbacks import StepGradientNorms
from training.data.toy2d import load_toy
from markers import needs_fashion_mnist

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("dataset,network", [
    ("ellipses", "resnet"), ("swiss_roll", "verlet"), ("peaks", "antisymmetric"),
])
def test_hr17_toy_recipe_quick(dataset, network, tmp_path):
    from training.recipes.hr17_toy import main

    main(["--dataset", dataset, "--network", network, "--quick", "--out", str(tmp_path)])
    out = tmp_path / dataset / network
    summary = json.loads((out / "results.json").read_text())
    assert [r["depth"] for r in summary["levels"]] == [4, 8]
    assert all(0.0 <= r["val_accuracy"] <= 1.0 for r in summary["levels"])
    assert summary["levels"][1]["val_accuracy_after_prolongation"] is not None
    assert (out / "decision.png").stat().st_size > 10_000
    assert (out / "training.csv").read_text().count("\n") == 1 + 2 * 3  # header + 3 epochs x 2 levels
    assert any((out / "tensorboard").rglob("events.out.tfevents.*"))


@needs_fashion_mnist
def test_hr17_fashion_mnist_recipe_quick(tmp_path):
    from training.recipes.hr17_fashion_mnist import main

    main(["--network", "antisymmetric", "--quick", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "antisymmetric" / "results.json").read_text())
    assert [r["depth"] for r in summary["levels"]] == [2, 4]
    assert summary["test_accuracy_final"] > 0.3  # far above chance (0.1) after 8 steps


def _gradient_ratio(model, x, y):
    callback = StepGradientNorms(x, y, keras.losses.BinaryCrossentropy(from_logits=True))
    callback.set_model(model)
    norms = callback.measure()
    assert norms.shape == (model.get_layer("block").depth + 1,) and np.all(np.isfinite(norms))
    return norms[0] / norms[-1]


@pytest.mark.parametrize("network,width", [("antisymmetric", 4), ("verlet", 2)])
def test_hr17_gradients_neither_vanish_nor_explode_at_depth_1024(network, width):
    """||dL/dY_0|| / ||dL/dY_N|| in [1e-2, 1e2] at N = 1024, T = 20: at init and after training."""
    keras.utils.set_random_seed(0)
    data = load_toy("swiss_roll", seed=0)
    x, y = data.x_train, data.y_train.astype("float32")[:, None]
    model = zoo.create(f"hr17_{network}", depth=1024, T=20.0, width=width)
    assert 1e-2 <= _gradient_ratio(model, x[:256], y[:256]) <= 1e2
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.BinaryCrossentropy(from_logits=True),
                  jit_compile=True)
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).shuffle(600, seed=0).batch(64),
              epochs=3, verbose=0)
    assert 1e-2 <= _gradient_ratio(model, x[:256], y[:256]) <= 1e2


def test_hr17_sec5_3_prolongated_trained_network_is_a_good_start_for_the_finer_level():
    """Multilevel training's premise on trained networks (H&R 2017, Sec. 5.3 and 6.4): the
    prolongated weights of a trained coarse net (Verlet, width 2, N = 64 -> 128, T = 20, with
    the time-smoothness penalty) start the finer level close to the coarse accuracy, and 3
    epochs there recover it. Averaged over 3 seeds because single runs scatter: on the swiss
    roll, right after prolongation single seeds measured drops of 0.2 to 9.0 points (and the
    single-seed 0.5-point check this replaces passed by luck of seed 0). Measured means over
    seeds 0-2: -4.3 points right after prolongation, +0.3 after 3 epochs. The control, the same
    trained weights shuffled along depth (not smooth in time), measured -28 to -55 points right
    after prolongation and -24 to -34 after 3 epochs."""
    from training.multilevel import prolongate_model
    from training.regularizers import TimeSmoothness

    def accuracy(model, data):
        y_val = data.y_val.astype("float32")[:, None]
        return 100 * model.evaluate(data.x_val, y_val, verbose=0, return_dict=True)["accuracy"]

    def compiled(model, learning_rate):
        model.compile(keras.optimizers.Adam(learning_rate), jit_compile=True,
                      loss=keras.losses.BinaryCrossentropy(from_logits=True),
                      metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")])
        return model

    right_after, after_3_epochs = [], []
    for seed in range(3):
        keras.utils.set_random_seed(seed)
        data = load_toy("swiss_roll", seed=seed)
        y_train = data.y_train.astype("float32")[:, None]
        reg = TimeSmoothness(5e-3, T=20.0)
        coarse = compiled(zoo.create("hr17_verlet", depth=64, T=20.0, width=2,
                                     kernel_regularizer=reg, bias_regularizer=reg), 1e-2)
        coarse.fit(data.x_train, y_train, batch_size=32, epochs=40, verbose=0)
        acc_coarse = accuracy(coarse, data)
        assert acc_coarse > 80  # a trained network: the premise is about trained, smooth weights
        fine = compiled(prolongate_model(coarse), 1e-3)
        assert fine.get_layer("block").depth == 128
        right_after.append(accuracy(fine, data) - acc_coarse)
        fine.fit(data.x_train, y_train, batch_size=32, epochs=3, verbose=0)
        after_3_epochs.append(accuracy(fine, data) - acc_coarse)
    assert np.mean(right_after) > -12, right_after
    assert np.mean(after_3_epochs) > -2, after_3_epochs


@needs_fashion_mnist
def test_rh18_fashion_mnist_recipe_quick(tmp_path):
    from training.recipes.rh18_fashion_mnist import main

    main(["--unit", "parabolic", "--quick", "--out", str(tmp_path)])
    out = tmp_path / "parabolic"
    summary = json.loads((out / "results.json").read_text())
    assert summary["trainable_weights"] == 153_626  # widths 16/32/64, DESIGN.md section 3
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["epochs"] == 2
    assert (out / "curves.png").stat().st_size > 10_000 and (out / "best.weights.h5").exists()


@needs_fashion_mnist
def test_galimberti_table2_recipe_quick(tmp_path):
    """Galimberti et al. 2021, Table 2 on Fashion-MNIST, reduced: depths 0 and 2, 1 epoch."""
    from training.recipes.galimberti_fashion_mnist import main

    main(["--quick", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    cells = {(r["network"], r["depth"]): r for r in results["table"]}
    assert set(cells) == {("ms1", 0), ("h2", 0), ("ms1", 2), ("h2", 2)}
    assert all(0.3 < r["test_accuracy"] <= 1.0 for r in cells.values())  # above chance (0.1)
    # Depth 0 is the conv straight into the head: 8 * 28 * 28 * 10 + 10 head + 80 conv weights.
    assert cells[("ms1", 0)]["trainable_params"] == 62_730 + 80
    assert (tmp_path / "table2.md").read_text().count("\n") == 2 + 5
    assert (tmp_path / "table2.png").stat().st_size > 10_000
