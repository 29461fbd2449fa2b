"""Reversible (memory-free) backpropagation through Verlet and leapfrog blocks (issue 11).

Targets: gradients with `reversible=True` equal the stored-state gradients to a relative error
below 1e-10 in float64 and 1e-4 in float32, on random data and after training steps; a model
with reversible blocks trains, saves, loads and exports like the plain one.
"""

import numpy as np
import pytest
import tensorflow as tf

import keras
import zoo
from zoo.blocks import hamiltonian_cnn_block, leapfrog_block, ms1_block, ms3_block, resnet_block, verlet_block

BLOCKS = {  # every block whose integrator has an exact inverse: (builder, input shape)
    "verlet_dense": (lambda **kw: verlet_block(32, 4.0, bias_initializer="random_normal", **kw), (8, 4)),
    "verlet_conv": (lambda **kw: verlet_block(8, 2.0, operator="conv", **kw), (2, 6, 6, 3)),
    "leapfrog_dense": (lambda **kw: leapfrog_block(16, 2.0, **kw), (8, 4)),
    "hamiltonian_cnn_unit": (lambda **kw: hamiltonian_cnn_block(**kw), (2, 8, 8, 4)),
    "second_order_cnn_unit": (lambda **kw: zoo.blocks.second_order_cnn_block(**kw), (2, 8, 8, 4)),
    "ms1": (lambda **kw: ms1_block(16, 1.6, **kw), (8, 4)),
    "ms3": (lambda **kw: ms3_block(16, 0.8, **kw), (8, 4)),
}
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}


def _pair(name, dtype, seed=0):
    build, shape = BLOCKS[name]
    x = tf.constant(np.random.default_rng(seed).standard_normal(shape), dtype=dtype)
    plain, reversible = build(dtype=dtype), build(dtype=dtype, reversible=True)
    plain(x), reversible(x)
    reversible.set_weights(plain.get_weights() + [np.zeros((), "float32")])
    return plain, reversible, x


def _gradients(block, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.sin(block(x)))
    return tape.gradient(loss, [x, *block.trainable_weights])


def _relative_error(block_a, block_b, x):
    pairs = zip(_gradients(block_a, x), _gradients(block_b, x))
    return max(float(tf.norm(a - b) / tf.norm(a)) for a, b in pairs)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_reversible_gradients_equal_stored_state_gradients(name, dtype):
    plain, reversible, x = _pair(name, dtype)
    np.testing.assert_allclose(reversible(x), plain(x), rtol=0, atol=0)  # same forward pass
    assert _relative_error(plain, reversible, x) < TOLERANCE[dtype]
    # After training steps: weights no longer at their (time-constant) initialisation.
    optimizer = keras.optimizers.SGD(0.05)
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(plain(x)))
        optimizer.apply_gradients(zip(tape.gradient(loss, plain.trainable_weights), plain.trainable_weights))
    reversible.set_weights(plain.get_weights() + [np.zeros((), "float32")])
    assert _relative_error(plain, reversible, x) < TOLERANCE[dtype]
    assert 0.0 <= float(reversible.reconstruction_error) < TOLERANCE[dtype]  # exact is possible


def test_blocks_without_an_inverse_refuse_reversible():
    with pytest.raises(ValueError, match="exact inverse"):
        resnet_block(4, 1.0, reversible=True)
    with pytest.raises(ValueError, match="must be a bool"):
        verlet_block(4, 1.0, reversible="yes")


def test_reversible_model_trains_saves_loads_and_exports_like_the_plain_one(tmp_path):
    from export.onnx import export_onnx
    from export.runtime import load_predictor

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2)).astype("float32")
    y = (x[:, 0] * x[:, 1] > 0).astype("float32")[:, None]
    models = {}
    for reversible in (False, True):
        keras.utils.set_random_seed(0)
        model = zoo.create("hr17_verlet", depth=32, T=4.0, width=2, reversible=reversible)
        model.compile(keras.optimizers.Adam(1e-2), keras.losses.BinaryCrossentropy(from_logits=True),
                      jit_compile=True)
        history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
        models[reversible] = (model, history.history["loss"])
    (plain, plain_loss), (reversible, reversible_loss) = models[False], models[True]
    np.testing.assert_allclose(reversible_loss, plain_loss, rtol=1e-4)
    np.testing.assert_allclose(reversible.predict(x, verbose=0), plain.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    assert 0.0 < float(reversible.get_layer("block").reconstruction_error) < 1e-4

    path = str(tmp_path / "reversible.keras")
    reversible.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_layer("block").reversible
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), reversible.predict(x, verbose=0))

    onnx_path = export_onnx(reversible, str(tmp_path / "reversible.onnx"))
    got = load_predictor(onnx_path).predict(x)["logits"]
    np.testing.assert_allclose(got, reversible.predict(x, verbose=0), atol=1e-5)


def test_reconstruction_monitor_logs_and_warns():
    from training.callbacks import ReconstructionMonitor

    x = np.random.default_rng(0).standard_normal((32, 2)).astype("float32")
    model = zoo.create("hr17_verlet", depth=16, T=4.0, width=2, reversible=True)
    model.compile("sgd", keras.losses.BinaryCrossentropy(from_logits=True))
    history = model.fit(x, (x[:, :1] > 0).astype("float32"), epochs=1, verbose=0, shuffle=False,
                        callbacks=[ReconstructionMonitor()])
    assert 0.0 <= history.history["reconstruction_error/block"][0] < 1e-4
    with pytest.warns(UserWarning, match="reconstruction error"):
        model.fit(x, (x[:, :1] > 0).astype("float32"), epochs=1, verbose=0, shuffle=False,
                  callbacks=[ReconstructionMonitor(warn_above=-1.0)])
