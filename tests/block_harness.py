"""Shared harness: build, symbolic and eager call, one fit step, config and .keras round-trips."""

import json

import keras
import numpy as np


def run_block_test(block_factory, input_shape, tmp_path, batch=4):
    rng = np.random.default_rng(1)
    block = block_factory()
    inputs = keras.Input(input_shape)
    outputs = block(inputs)
    assert tuple(outputs.shape) == (None, *input_shape)
    model = keras.Model(inputs, outputs)

    x = rng.standard_normal((batch, *input_shape)).astype("float32")
    eager = keras.ops.convert_to_numpy(block(x))
    assert eager.shape == x.shape and np.all(np.isfinite(eager))

    # get_config -> from_config -> get_config gives identical JSON.
    config = block.get_config()
    clone = type(block).from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)

    # One training step changes the weights and keeps them finite.
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, np.zeros_like(x), epochs=1, batch_size=batch, verbose=0)
    after = model.get_weights()
    assert any(not np.allclose(b, a) for b, a in zip(before, after))
    assert all(np.all(np.isfinite(a)) for a in after)

    # .keras save / load gives identical outputs.
    path = tmp_path / "block.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    return model
