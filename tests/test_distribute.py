"""Distributed training on tf.distribute (issue 13): `MirroredStrategy` over two logical CPUs and a
two-worker `MultiWorkerMirroredStrategy` on 127.0.0.1 match single-device training.

Every run is a subprocess of `tests/distribute_helper.py` (logical devices and `TF_CONFIG` must be
set before TensorFlow initialises), with a timeout so a hang fails instead of blocking CI. The
model is `hr17_antisymmetric` (depth 8, T = 2: h = 0.25, inside forward Euler's stable range),
trained for 8 SGD steps on 256 double-moons points with global batch 64 through the recipes'
seeded, reshuffling pipeline.

Tolerance: `rtol = 1e-5, atol = 1e-6` on every weight. The replicas compute their half-batch
gradients, which are then all-reduced, so the float32 sums run in another order than one
device's sum over the whole batch; the per-step difference is round-off (~1e-7 relative,
measured 7e-8 after 8 steps) and is not amplified by a stable network. (With the default T = 20,
h = 2.5 violates Lemma 1 and the same round-off grew to 1e-4 in 8 steps: a stability
property of the network, not of the distribution.)
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

HELPER = os.path.join(os.path.dirname(__file__), "distribute_helper.py")
TIMEOUT = 240  # seconds per subprocess (a few seconds of work, TF start-up on 2 busy cores)
RTOL, ATOL = 1e-5, 1e-6


def _run(strategy, out, env=None):
    return subprocess.Popen([sys.executable, HELPER, strategy, str(out)], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process):
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"distributed training timed out after {TIMEOUT} s:\n{output[-3000:]}")
    assert process.returncode == 0, output[-3000:]


def _weights(path):
    with np.load(path) as f:
        count = sum(1 for k in f.files if k.startswith("final_"))
        return (int(f["replicas"]), [f[f"initial_{i}"] for i in range(count)],
                [f[f"final_{i}"] for i in range(count)])


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "weights.npz"
    _finish(_run("default", out))
    return _weights(out)


def _assert_matches(single, distributed, replicas):
    assert distributed[0] == replicas
    for a, b in zip(single[1], distributed[1]):
        np.testing.assert_array_equal(a, b)  # same seeded initialisation
    trained = max(float(np.max(np.abs(f - i))) for f, i in zip(single[2], single[1]))
    assert trained > 1e-2  # the 8 steps moved the weights: the comparison means something
    for a, b in zip(single[2], distributed[2]):
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus_matches_single_device(single_device, tmp_path):
    out = tmp_path / "mirrored.npz"
    _finish(_run("mirrored", out))
    _assert_matches(single_device, _weights(out), replicas=2)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_worker_multi_worker_mirrored_strategy_matches_single_device(single_device, tmp_path):
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        out = tmp_path / f"worker{index}.npz"
        processes.append(_run("multi_worker", out, env={"TF_CONFIG": json.dumps(config)}))
    try:
        for process in processes:
            _finish(process)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert not (tmp_path / "worker1.npz").exists()  # only the chief writes
    _assert_matches(single_device, _weights(tmp_path / "worker0.npz"), replicas=2)


# === The rules themselves (fast, in-process) ===


def test_make_strategy_names_and_errors(monkeypatch):
    from training.distribute import STRATEGIES, make_strategy, strategy_name

    assert STRATEGIES == ("default", "mirrored", "multi_worker")
    assert strategy_name(make_strategy("default")) == "default"
    with pytest.raises(ValueError, match="Unknown distribution strategy 'tpu'"):
        make_strategy("tpu")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        make_strategy("multi_worker")
    config = {"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    with pytest.raises(ValueError, match="task.index 3"):
        make_strategy("multi_worker")


def test_global_batch_and_learning_rate_rule():
    from training.distribute import batch_and_learning_rate

    class Two:
        num_replicas_in_sync = 2

    # Default: the recipe's batch is the global batch, the learning rate is kept.
    assert batch_and_learning_rate(64, 0.1, Two()) == (64, 0.1)
    # --scale-batch: per-replica batch = the recipe's, learning rate x replicas (linear scaling).
    assert batch_and_learning_rate(64, 0.1, Two(), scale_batch=True) == (128, 0.2)
    assert batch_and_learning_rate(64, 0.1, None) == (64, 0.1)
    with pytest.warns(UserWarning, match="does not split evenly"):
        assert batch_and_learning_rate(125, 0.1, Two()) == (125, 0.1)
    with pytest.raises(ValueError, match="positive int"):
        batch_and_learning_rate(0, 0.1, Two())


def test_no_forced_xla_under_a_strategy():
    from training.distribute import jit_compile_for, make_strategy

    assert jit_compile_for(make_strategy("default"), True) is True
    assert jit_compile_for(make_strategy("mirrored"), True) == "auto"  # zoo.jit_policy: False


def test_every_recipe_has_a_strategy_option():
    import importlib

    for name in ("hr17_toy", "hr17_fashion_mnist", "rh18_fashion_mnist", "galimberti_toy",
                 "galimberti_fashion_mnist", "lm_width"):
        module = importlib.import_module(f"training.recipes.{name}")
        with pytest.raises(SystemExit):
            module.main(["--strategy", "nonsense"])  # argparse rejects it: the option exists
        source = open(module.__file__).read()
        assert "add_reliability_arguments(parser)" in source and "Reliability(strategy, scale_batch)" in source
