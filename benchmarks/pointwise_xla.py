"""Would XLA on the element-wise part alone speed up a PDE CNN's training step on CPU?

The R&H parabolic CNN's step spends about a quarter of its operator time outside the (oneDNN)
convolutions, in element-wise ops that each stream the activation through memory: the TV
normalisation and the ReLU between `K` and `K^T`. XLA would fuse them, but XLA's own CPU
convolutions are far slower, so the jit policy keeps conv nets off XLA. The middle way measured
here: the convolutions stay in TensorFlow (oneDNN) and only `sigma(N_tv(K Y))`'s element-wise
chain is a `tf.function(jit_compile=True)`, in forward and backward.

The fused variant is built by giving the model's symmetric dynamics objects their own `symmetric`
method (this script only; the zoo does not ship it, see the result). Both models are timed with
`train_on_batch` in alternating rounds (`vs_pytorch.time_alternating`) on the same random batch
as `vs_pytorch.py`'s comparison. Writes `benchmarks/results/pointwise_xla.{json,md}`.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import vs_pytorch as vp  # noqa: E402  (sets TF's log level before importing it)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from training.atomic_files import write_text  # noqa: E402
from training.regularizers import ode_blocks  # noqa: E402
from zoo.normalization import tv_norm  # noqa: E402

MODEL = "rh18_parabolic_fashion_mnist"
BATCH = 125


def _fused_symmetric(dynamics):
    """`symmetric(kernel, y, scale, bias)` of `dynamics` with `sigma(N_tv(.))` compiled by XLA."""
    @tf.function(jit_compile=True)
    def pointwise(z, scale, bias):
        return dynamics._sigma(tv_norm(z, scale, bias, dynamics.epsilon))

    def symmetric(self, kernel, y, scale=None, bias=None, offset=None):
        return -self.operator.adjoint(kernel, pointwise(self.operator.apply(kernel, y), scale, bias))

    return symmetric


def fuse_pointwise(model):
    """Make every TV-normalised symmetric layer of `model` run `sigma(N_tv(.))` under XLA."""
    fused = 0
    for block in ode_blocks(model):
        dynamics = block.dynamics
        if getattr(dynamics, "normalization", None) != "tv":
            continue

        dynamics.symmetric = types.MethodType(_fused_symmetric(dynamics), dynamics)
        fused += 1
    if not fused:
        raise ValueError(f"{model.name} has no TV-normalised symmetric layer to fuse")
    return model


def main():
    spec = dict(group="pde", model=MODEL, task="train", batch=BATCH)
    x, y, _, _ = vp.make_data(spec)
    variants = {}
    for name, prepare in (("as shipped (no XLA)", lambda m: m), ("element-wise part under XLA", fuse_pointwise)):
        model = prepare(zoo.create(MODEL))
        model.compile(*vp.keras_training(spec))
        variants[name] = (vp.zoo_fn(model, spec, x, y), None)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    timings = vp.time_alternating(variants, **vp.SETTINGS["full"]["image"])
    record = {"model": MODEL, "batch": BATCH, "tensorflow": tf.__version__, "keras": keras.__version__,
              "load_average_1min": [load, os.getloadavg()[0]], "seconds": time.perf_counter() - start,
              "timings": timings}
    base, fused = (timings[name]["median_ms"] for name in variants)
    lines = [f"{MODEL}, training step at batch {BATCH} (SGD with momentum), TF {tf.__version__}, "
             f"{os.cpu_count()} cores, load {load:.1f}; medians over {vp.ROUNDS} alternating rounds.", "",
             "| variant | step ms (p10-p90) | first step s |", "|---|---|---|"]
    lines += [f"| {name} | {t['median_ms']:.1f} ({t['p10_ms']:.1f}-{t['p90_ms']:.1f}) | {t['first_s']:.2f} |"
              for name, t in timings.items()]
    lines += ["", f"The element-wise part under XLA takes the step from {base:.1f} ms to {fused:.1f} ms "
              f"(x{base / fused:.2f} speed-up; below 1 means slower)."]
    table = "\n".join(lines)
    print(table)
    os.makedirs(vp.OUT, exist_ok=True)
    write_text(os.path.join(vp.OUT, "pointwise_xla.json"), json.dumps(record, indent=1))
    write_text(os.path.join(vp.OUT, "pointwise_xla.md"), table + "\n")


if __name__ == "__main__":
    main()
