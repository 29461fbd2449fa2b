"""Distributed training on TensorFlow's own engine (`tf.distribute`), for every recipe.

    python -m training.recipes.hr17_toy --dataset swiss_roll --network verlet --strategy mirrored

Strategies (`--strategy`):

| name | what | devices |
|---|---|---|
| `default` | no distribution (TensorFlow's default strategy) | the one device TF picks |
| `mirrored` | `tf.distribute.MirroredStrategy`: one replica per local GPU (or CPU if none); weights mirrored, gradients all-reduced every step | one machine |
| `multi_worker` | `tf.distribute.MultiWorkerMirroredStrategy`: the same across processes/machines, configured by the `TF_CONFIG` environment variable | several machines |

How a recipe uses one (all in this module, so the rule is stated once):

1. `strategy = make_strategy(name)` before anything else touches TensorFlow devices.
2. Build and compile the model inside `strategy.scope()` (multilevel training builds and
   prolongates every level inside it: `train_multilevel(..., strategy=strategy)`).
3. **Batch and learning rate** (`batch_and_learning_rate`): a recipe's batch size is the
   **global** batch, the number of examples per optimiser step over all replicas. By default it
   stays the recipe's batch (each of the `R = num_replicas_in_sync` replicas gets `batch / R`),
   and the learning rate is unchanged: the optimiser sees the same mean gradient over the same
   examples as on one device, so the run reproduces single-device training up to the order of
   floating-point summation (tests/test_distribute.py). `--scale-batch` instead keeps the
   per-replica batch at the recipe's value (global batch `R x batch`, for throughput on several
   GPUs) and scales the learning rate linearly by `R` (Goyal et al. 2017, "Accurate, large
   minibatch SGD"); results then differ from the single-device recipe, and long runs may need
   a warm-up.
4. The `tf.data` pipelines stay as they are and are batched with the global batch; Keras'
   `fit` distributes them (`strategy.experimental_distribute_dataset`): every global batch is
   split across the replicas, and across workers by data sharding (each worker builds the same
   seeded pipeline and keeps its share of every batch). Keep the number of examples a multiple
   of the global batch (or `drop_remainder=True`) when the result must match one device
   exactly: a short last batch splits unevenly, and Keras averages the loss per replica.
5. Same batches as on one device: under a strategy Keras' `fit` and `evaluate` first draw one
   batch from the data to build the model symbolically, through an extra iterator; a pipeline
   that reshuffles on every iterator (ours: seeded `shuffle(reshuffle_each_iteration=True)`)
   would then train on a shifted sequence of shuffles. `skip_keras_peek(model, dataset)` builds
   from a zero batch of the dataset's `element_spec` instead, so the run sees exactly the
   batches of the single-device run. `prepare_model(model, dataset)` applies it, and under
   `multi_worker` the workaround for Keras 3's scalar-log reduction (below); `train_multilevel`
   and the recipes call it after `compile`.
6. XLA: the zoo compiles without XLA under a strategy (`zoo.jit_policy`, Keras' rule); recipes
   that ask for XLA on one device go through `jit_compile_for`.
7. Output files: with `multi_worker` every worker runs the same program; the chief (task 0)
   writes to `--out`, the others to `--out/.worker-<i>` (`worker_out_dir`), so checkpoints and
   logs never collide, and every worker resumes from its own backup.

Several machines: start the same command on each, with `--strategy multi_worker` and a
`TF_CONFIG` naming all workers and this one's index, e.g. on the second of two machines

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 1}}' python -m training.recipes.... --strategy multi_worker

(the ports must be reachable between the machines). On one machine with several GPUs use
`--strategy mirrored`.
"""

from __future__ import annotations

import contextlib
import json
import os

__all__ = [
    "STRATEGIES",
    "make_strategy",
    "strategy_name",
    "num_replicas",
    "batch_and_learning_rate",
    "jit_compile_for",
    "is_chief",
    "worker_out_dir",
    "add_strategy_arguments",
    "scope",
    "skip_keras_peek",
    "prepare_model",
]

STRATEGIES = ("default", "mirrored", "multi_worker")


def _check_tf_config():
    """The parsed `TF_CONFIG`, with a clear error if it is malformed (None if unset)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}); Received: {raw!r}") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object; Received: {raw!r}")
    workers = (config.get("cluster") or {}).get("worker")
    task = config.get("task") or {}
    if not isinstance(workers, list) or not workers:
        raise ValueError(f"TF_CONFIG needs cluster.worker, a list of 'host:port'; Received: {raw!r}")
    if task.get("type") not in ("worker", "chief") or not isinstance(task.get("index"), int):
        raise ValueError(f"TF_CONFIG needs task.type 'worker' and an integer task.index; Received: {raw!r}")
    if task["type"] == "worker" and not 0 <= task["index"] < len(workers):
        raise ValueError(f"TF_CONFIG task.index {task['index']} is not in 0..{len(workers) - 1}")
    return config


def make_strategy(name="default", devices=None):
    """A `tf.distribute.Strategy` by name: `"default"`, `"mirrored"` or `"multi_worker"`.

    `devices` (mirrored only): device names, e.g. `["/cpu:0", "/cpu:1"]`; default all local
    GPUs, or the CPU. `"multi_worker"` reads the cluster from `TF_CONFIG` (without it, a single
    worker); call it first in the program, before TensorFlow has run any op.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown distribution strategy {name!r}; expected one of {STRATEGIES}")
    import tensorflow as tf

    if name == "default":
        if devices is not None:
            raise ValueError("`devices` applies to the 'mirrored' strategy only")
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if devices is not None:
        raise ValueError("`devices` applies to the 'mirrored' strategy only")
    _check_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()


def strategy_name(strategy):
    """`"default"`, `"mirrored"` or `"multi_worker"` for a strategy made by `make_strategy`."""
    import tensorflow as tf

    if strategy is None or type(strategy).__name__ == "_DefaultDistributionStrategy":
        return "default"
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return type(strategy).__name__


def num_replicas(strategy):
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def batch_and_learning_rate(batch_size, learning_rate, strategy, scale_batch=False):
    """`(global_batch, learning_rate)` for a recipe's `batch_size` and `learning_rate`.

    Default: the global batch is `batch_size` (split over the replicas; a warning if it is not a
    multiple of their number) and the learning rate is unchanged: single-device results. With
    `scale_batch`, every replica takes `batch_size` (global `R * batch_size`) and the learning
    rate is multiplied by `R` (linear scaling rule). `learning_rate` may be None (left as is).
    """
    replicas = num_replicas(strategy)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int; Received: {batch_size!r}")
    if scale_batch:
        return batch_size * replicas, None if learning_rate is None else learning_rate * replicas
    if batch_size % replicas:
        import warnings

        warnings.warn(
            f"The global batch {batch_size} does not split evenly over {replicas} replicas: tf.distribute "
            f"gives them {-(-batch_size // replicas)} and {batch_size // replicas} examples, and Keras averages the "
            "loss per replica, so a step weighs the examples slightly unequally (not the single-device step). "
            f"For identical steps choose a multiple of {replicas}, or --scale-batch.",
            stacklevel=2,
        )
    return batch_size, learning_rate


def jit_compile_for(strategy, preferred):
    """`preferred` on one device; `"auto"` (no XLA, `zoo.jit_policy`) under a real strategy."""
    return preferred if strategy_name(strategy) == "default" else "auto"


def _task():
    config = _check_tf_config() or {}
    task = config.get("task") or {}
    return task.get("type", "worker"), int(task.get("index", 0))


def is_chief(strategy):
    """True except on the non-chief workers of a multi-worker run."""
    if strategy_name(strategy) != "multi_worker":
        return True
    kind, index = _task()
    return kind == "chief" or (kind == "worker" and index == 0)


def worker_out_dir(out_dir, strategy):
    """`out_dir` on the chief; `out_dir/.worker-<i>` on the other workers of a multi-worker run."""
    if is_chief(strategy):
        return out_dir
    return os.path.join(out_dir, f".worker-{_task()[1]}")


def scope(strategy):
    """`strategy.scope()`, or a no-op context for the default strategy / None."""
    if strategy is None or strategy_name(strategy) == "default":
        return contextlib.nullcontext()
    return strategy.scope()


def add_strategy_arguments(parser):
    """`--strategy {default,mirrored,multi_worker}` and `--scale-batch` on an argparse parser."""
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="tf.distribute strategy (multi_worker reads TF_CONFIG); see training/distribute.py")
    parser.add_argument("--scale-batch", action="store_true",
                        help="per-replica batch = the recipe's batch (global batch x replicas) and learning "
                             "rate x replicas; default: global batch = the recipe's batch, same learning rate")
    return parser


def skip_keras_peek(model, dataset):
    """Build `model` under its strategy from a zero batch, not from a batch of `dataset`.

    Keras 3.15 (`TensorFlowTrainer._maybe_symbolic_build`) takes one batch from the training
    (and evaluation) data through an extra iterator before a distributed `fit`/`evaluate`, which
    advances a reshuffling `tf.data` pipeline by one shuffle. This replaces that method on this
    model instance by one that passes a batch of zeros shaped like `dataset.element_spec` (the
    build only needs shapes and dtypes). No effect without a strategy; if Keras no longer has
    the method, nothing is changed.
    """
    import tensorflow as tf

    original = getattr(model, "_maybe_symbolic_build", None)
    if original is None or getattr(original, "_zoo_no_peek", False) or not hasattr(dataset, "element_spec"):
        return model

    def zeros(spec):
        shape = [1 if d is None else d for d in spec.shape]
        return tf.zeros(shape, spec.dtype)

    zero_batch = tf.nest.map_structure(zeros, dataset.element_spec)

    def build_without_peek(iterator=None, data_batch=None):
        return original(data_batch=zero_batch if data_batch is None else data_batch)

    build_without_peek._zoo_no_peek = True
    model._maybe_symbolic_build = build_without_peek
    return model


def _scalar_logs_as_vectors(step):
    """Wrap a Keras `train_step`/`test_step` so its scalar logs have shape `(1,)`.

    Keras 3 (through 3.15) reduces the per-replica logs of a multi-worker step with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars ("Invalid reduction dimension
    0 for input with 0 dimensions", tensorflow/tensorflow#72388: Keras 3 `fit` under
    `MultiWorkerMirroredStrategy` fails at its first step). A `(1,)` vector reduces to the same
    scalar, so the logs and the training are unchanged.
    """
    import tensorflow as tf

    def wrapped(*args, **kwargs):
        logs = step(*args, **kwargs)
        return tf.nest.map_structure(
            lambda t: tf.reshape(t, [1]) if isinstance(t, tf.Tensor) and t.shape.rank == 0 else t, logs)

    return wrapped


def prepare_model(model, dataset=None):
    """Make a compiled `model` ready for `fit` under its strategy (a no-op on one device).

    `skip_keras_peek(model, dataset)` (same batches as on one device), and under
    `MultiWorkerMirroredStrategy` the scalar-log workaround for Keras 3 (`train_step` and
    `test_step` return `(1,)` logs; see `_scalar_logs_as_vectors`). Call it after `compile`.
    """
    strategy = getattr(model, "_distribute_strategy", None)
    if strategy is None:
        return model
    if dataset is not None:
        skip_keras_peek(model, dataset)
    if strategy_name(strategy) == "multi_worker" and not getattr(model, "_zoo_vector_logs", False):
        model.train_step = _scalar_logs_as_vectors(model.train_step)
        model.test_step = _scalar_logs_as_vectors(model.test_step)
        model._zoo_vector_logs = True
    return model
