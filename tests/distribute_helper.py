"""Subprocess side of tests/test_distribute.py: a few training steps under one strategy.

    python tests/distribute_helper.py {default,mirrored,multi_worker} OUT.npz

`mirrored` first splits the CPU into two logical devices (`tf.config.set_logical_device_configuration`
must run before TensorFlow initialises its devices, hence a fresh process); `multi_worker` reads
`TF_CONFIG` (the test starts two such processes). Everything else is the recipes' code path:
`training.distribute.make_strategy`, the build and compile inside `strategy.scope()`, the global
batch from `batch_and_learning_rate`, `jit_compile_for`, `prepare_model`, the recipes'
`make_pipeline` (seeded shuffle), and `model.fit`. Writes the initial and final weights to OUT.npz (the chief only, for
`multi_worker`).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

GLOBAL_BATCH, EXAMPLES, EPOCHS, LEARNING_RATE = 64, 256, 2, 0.5  # 4 steps per epoch, 8 in all


def main(name, out):
    if name == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from training.distribute import (
        batch_and_learning_rate,
        is_chief,
        jit_compile_for,
        make_strategy,
        prepare_model,
        scope,
    )

    strategy = make_strategy(name, devices=["/cpu:0", "/cpu:1"] if name == "mirrored" else None)
    import keras

    import zoo
    from training.data.pipeline import make_pipeline
    from training.data.toy2d import load_toy

    keras.utils.set_random_seed(0)
    data = load_toy("double_moons", seed=0)
    pick = np.random.default_rng(0).permutation(len(data.x_train))[:EXAMPLES]
    x, y = data.x_train[pick], data.y_train[pick].astype("float32")[:, None]
    batch, lr = batch_and_learning_rate(GLOBAL_BATCH, LEARNING_RATE, strategy)
    with scope(strategy):
        model = zoo.create("hr17_antisymmetric", depth=8, T=2.0)
        model.compile(keras.optimizers.SGD(lr), keras.losses.BinaryCrossentropy(from_logits=True),
                      jit_compile=jit_compile_for(strategy, False))
    initial = [np.array(w) for w in model.get_weights()]
    train_ds = make_pipeline(x, y, batch, training=True, seed=0)
    prepare_model(model, train_ds)  # the same shuffles as on one device; Keras 3 multi-worker fix
    model.fit(train_ds, epochs=EPOCHS, verbose=0, shuffle=False,
              callbacks=[keras.callbacks.TerminateOnNaN()])
    final = [np.array(w) for w in model.get_weights()]
    if is_chief(strategy):
        np.savez(out, replicas=strategy.num_replicas_in_sync,
                 **{f"initial_{i}": w for i, w in enumerate(initial)},
                 **{f"final_{i}": w for i, w in enumerate(final)})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
