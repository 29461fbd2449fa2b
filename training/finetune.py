"""Fine-tune a pretrained entry on a new task with `model.fit` (what `stable-zoo fine-tune` runs).

Two tasks are built from the Fashion-MNIST files on this machine, so the example runs offline:

- `rotated`: every image turned by 90 degrees, the same 10 classes. The pretrained network has
  never seen this orientation (a domain shift); its own head is kept and the whole model adapts.
- `coarse`: 5 super-classes (tops, trousers, dresses, footwear, bags). The 10-class head is
  replaced by a fresh 5-class head (`zoo.load(name, num_classes=5)`); with `--freeze-blocks`
  only the head trains (a linear probe of the pretrained features).

Training uses the first `train_size` images of the training split (a small labelled set, as
in most fine-tuning), evaluation the full official test set.

`fit` runs with `keras.callbacks.TerminateOnNaN` and, given a `backup_dir`, with
`training.callbacks.ResumableBackup` (a `BackupAndRestore`): an interrupted fine-tuning called
again with the same arguments resumes at its last finished epoch and ends with the same weights
(`stable-zoo fine-tune` always passes one; `--fresh` starts over).
"""

from __future__ import annotations

import os
import time

import keras
import numpy as np

__all__ = ["TASKS", "make_task", "fine_tune"]

# Fashion-MNIST label -> super-class: tops (T-shirt, pullover, coat, shirt), trousers, dresses,
# footwear (sandal, sneaker, ankle boot), bags.
COARSE_OF = np.array([0, 1, 0, 2, 0, 3, 0, 3, 4, 3])
TASKS = {"rotated": 10, "coarse": 5}


def make_task(task, train_size=5000):
    """`(x_train, y_train, x_test, y_test, num_classes)` of a fine-tuning task."""
    from training.data.fashion_mnist import load_fashion_mnist

    if task not in TASKS:
        raise ValueError(f"Unknown fine-tuning task {task!r}; known: {sorted(TASKS)}")
    if not 0 < int(train_size) <= 50_000:
        raise ValueError(f"`train_size` must be in 1..50000; Received: {train_size!r}")
    data = load_fashion_mnist()
    x_tr, y_tr = data.x_train[:train_size], data.y_train[:train_size]
    x_te, y_te = data.x_test, data.y_test
    if task == "rotated":
        x_tr, x_te = np.rot90(x_tr, 1, axes=(1, 2)), np.rot90(x_te, 1, axes=(1, 2))
    else:
        y_tr, y_te = COARSE_OF[y_tr], COARSE_OF[y_te]
    return np.ascontiguousarray(x_tr), y_tr, np.ascontiguousarray(x_te), y_te, TASKS[task]


def fine_tune(name, task="rotated", epochs=3, train_size=5000, freeze_blocks=False,
              learning_rate=1e-3, batch_size=100, seed=0, progress=True, backup_dir=None, fresh=False,
              strategy="default", scale_batch=False):
    """Load `name`, measure it on the task, fine-tune with `model.fit`, measure again.

    `backup_dir`: resumable training (see the module docstring); removed when `fit` completes,
    `fresh=True` discards an earlier backup first. `strategy`, `scale_batch`: `tf.distribute`
    (`training.distribute`; `batch_size` is the global batch).
    """
    import shutil

    import zoo
    from training.callbacks import ResumableBackup
    from training.data.pipeline import make_pipeline
    from training.distribute import batch_and_learning_rate, make_strategy, prepare_model, scope
    from training.evaluate import evaluate_arrays

    strategy = make_strategy(strategy) if isinstance(strategy, str) else strategy  # first
    batch_size, learning_rate = batch_and_learning_rate(batch_size, learning_rate, strategy, scale_batch)
    keras.utils.set_random_seed(seed)
    x_tr, y_tr, x_te, y_te, num_classes = make_task(task, train_size)
    with scope(strategy):
        model = zoo.load(name, num_classes=num_classes, trainable_blocks=not freeze_blocks)
    if fresh and backup_dir and os.path.isdir(backup_dir):  # after `load` has vetted `name`
        shutil.rmtree(backup_dir)
    before = evaluate_arrays(model, x_te, y_te, progress=progress)
    train_ds = make_pipeline(x_tr, y_tr, batch_size, training=True, seed=seed)
    with scope(strategy):
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=False,  # conv models on CPU: XLA is slower (DESIGN.md section 3)
        )
    prepare_model(model, train_ds)  # under a strategy: same batches as on one device
    callbacks = [keras.callbacks.TerminateOnNaN()]
    if backup_dir:
        callbacks.insert(0, ResumableBackup(backup_dir, data=train_ds, fingerprint=dict(
            command="fine-tune", model=name, task=task, epochs=epochs, train_size=int(train_size),
            freeze_blocks=bool(freeze_blocks), learning_rate=learning_rate, batch_size=batch_size, seed=seed)))
    start = time.perf_counter()
    # shuffle=False: the tf.data pipeline shuffles (Keras warns that it cannot)
    model.fit(train_ds, epochs=epochs, shuffle=False, verbose=2 if progress else 0, callbacks=callbacks)
    seconds = time.perf_counter() - start
    after = evaluate_arrays(model, x_te, y_te, progress=progress)
    return {"model": name, "task": task, "num_classes": num_classes, "train_size": int(train_size),
            "epochs": epochs, "freeze_blocks": bool(freeze_blocks),
            "before": before, "after": after, "fit_seconds": seconds, "keras_model": model}
