"""Subprocess side of tests/test_resume.py: a small training that the test SIGKILLs and restarts.

    python tests/resume_helper.py {fit,multilevel} OUT [--sleep SECONDS]

Both modes run with deterministic ops (`tf.config.experimental.enable_op_determinism`) and
fixed seeds, and write `OUT/final.npz` (the final weights) when they finish. A `Throttle`
callback sleeps after every batch (so an epoch lasts long enough for the kill to land inside
it; sleeping changes no number) and writes `OUT/progress.json` (`level`, `epoch`, `batch`) so
the test knows where the run is.

- `fit`: one `model.fit` of `hr17_antisymmetric` on 512 swiss-roll points through the recipes'
  pipeline (`make_pipeline`: seeded shuffle, reshuffled every epoch) with
  `training.callbacks.ResumableBackup` and `TerminateOnNaN`, as `lm_width` and fine-tuning do.
- `multilevel`: the `hr17_toy` recipe itself (`training.recipes.hr17_toy.run`, levels N = 4, 8,
  `train_multilevel` with its backup), with the throttle added next to the recipe's guards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.experimental.enable_op_determinism()


class Throttle(keras.callbacks.Callback):
    def __init__(self, path, seconds):
        super().__init__()
        self.path, self.seconds = path, seconds
        self.level, self.epoch = -1, 0

    def on_train_begin(self, logs=None):
        self.level += 1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(self.seconds)
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"level": self.level, "epoch": self.epoch, "batch": batch}, f)
        os.replace(tmp, self.path)


def save_final(model, out):
    tmp = os.path.join(out, "final.tmp.npz")
    np.savez(tmp, *model.get_weights())
    os.replace(tmp, os.path.join(out, "final.npz"))


def run_fit(out, sleep):
    import zoo
    from training.callbacks import ResumableBackup
    from training.data.pipeline import make_pipeline
    from training.data.toy2d import load_toy

    keras.utils.set_random_seed(0)
    data = load_toy("swiss_roll", seed=0)
    x, y = data.x_train[:512], data.y_train[:512].astype("float32")[:, None]
    train_ds = make_pipeline(x, y, 16, training=True, seed=0)  # 32 steps per epoch
    model = zoo.create("hr17_antisymmetric", depth=16, width=4)
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-2, 4 * 32)),
                  keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=False)
    model.fit(train_ds, epochs=4, verbose=0, callbacks=[
        ResumableBackup(os.path.join(out, "backup"), data=train_ds, fingerprint={"test": "fit"}),
        keras.callbacks.TerminateOnNaN(), Throttle(os.path.join(out, "progress.json"), sleep),
    ])
    save_final(model, out)


def run_multilevel(out, sleep):
    import training.recipes.hr17_toy as recipe

    guards = recipe.guard_callbacks
    recipe.guard_callbacks = lambda: guards() + [Throttle(os.path.join(out, "progress.json"), sleep)]
    recipe.plot_decision = lambda *args, **kwargs: None  # figures are not what this checks
    captured = {}
    train_multilevel = recipe.train_multilevel

    def capture(*args, **kwargs):
        model, records = train_multilevel(*args, **kwargs)
        captured["model"] = model
        return model, records

    recipe.train_multilevel = capture
    recipe.run("swiss_roll", "antisymmetric", out, levels=(4, 8), epochs=(2, 3), subsample=512, seed=0)
    save_final(captured["model"], out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["fit", "multilevel"])
    parser.add_argument("out")
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    (run_fit if args.mode == "fit" else run_multilevel)(args.out, args.sleep)


if __name__ == "__main__":
    main()
