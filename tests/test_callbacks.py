"""Training callbacks: per-step gradient norms and Lemma 1 over training."""

import keras
import numpy as np

import zoo
from training.callbacks import Lemma1Monitor, StepGradientNorms, TqdmEpochs


def _data(rng):
    x = rng.standard_normal((64, 2)).astype("float32")
    return x, (x[:, :1] * x[:, 1:] > 0).astype("float32")


def test_callbacks_log_per_step_gradients_and_lemma1(rng):
    keras.utils.set_random_seed(0)
    x, y = _data(rng)
    model = zoo.create("hr17_antisymmetric", depth=8, T=2.0, width=2)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.BinaryCrossentropy(from_logits=True))
    grads = StepGradientNorms(x[:16], y[:16], keras.losses.BinaryCrossentropy(from_logits=True))
    lemma = Lemma1Monitor(x[:8])
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[grads, lemma, TqdmEpochs()])
    assert [epoch for epoch, _ in grads.norms] == [-1, 0, 1]
    assert all(n.shape == (9,) and np.all(n > 0) for _, n in grads.norms)
    assert len(history.history["grad_ratio"]) == 2
    assert len(lemma.values) == 2 and lemma.values[0].shape == (8,)
    assert np.allclose(history.history["lemma1_max"], [v.max() for v in lemma.values])


def test_step_gradient_norms_match_autodiff_of_the_unrolled_block(rng):
    """dL/dY_0 from the zero-probe method equals the plain gradient at the block input."""
    import tensorflow as tf

    from zoo.diagnostics import state_gradients

    model = zoo.create("hr17_verlet", depth=4, T=1.0, width=2)
    block, head = model.get_layer("block"), model.get_layer("predictions")
    x, y = _data(rng)
    loss = lambda out: tf.reduce_mean(keras.losses.binary_crossentropy(y, head(out), from_logits=True))  # noqa: E731
    grads, _ = state_gradients(block, x, loss)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        value = loss(block(xt))
    np.testing.assert_allclose(grads[0], tape.gradient(value, xt).numpy(), rtol=1e-5, atol=1e-7)
