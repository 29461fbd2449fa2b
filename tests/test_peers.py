"""The PyTorch peers of benchmarks/vs_pytorch.py are the zoo's networks: equal parameter counts, and
equal logits once the zoo model's weights are copied in (`load_from_keras`)."""

import os
import sys

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `benchmarks` is a directory of scripts, not an installed package
    sys.path.insert(0, ROOT)

import zoo  # noqa: E402
from benchmarks import vs_pytorch  # noqa: E402
from benchmarks.peers import torch_models as peers  # noqa: E402


def _dense(depth, width, T=20.0):
    return dict(depth=depth, T=T, width=width, num_classes=2, lifting="pad")


COUNTS = [
    ("hr17_antisymmetric", _dense(16, 2)),
    ("hr17_antisymmetric", _dense(1024, 8)),
    ("hr17_verlet", _dense(16, 2)),
    ("hr17_verlet", _dense(1024, 8)),
    ("hr17_antisymmetric_conv", {}),
    ("rh18_parabolic_fashion_mnist", {}),
]
LOGITS = [  # (model, overrides, input shape in Keras' layout); h = T / N = 0.25: round-off not amplified
    ("hr17_antisymmetric", _dense(8, 4, T=2.0), (6, 2)),
    ("hr17_verlet", _dense(8, 4, T=2.0), (6, 2)),
    ("hr17_antisymmetric_conv", {}, (3, 28, 28, 1)),
    ("rh18_parabolic_fashion_mnist", {}, (3, 28, 28, 1)),
]


@pytest.mark.parametrize("name, overrides", COUNTS)
def test_parameter_counts_match(name, overrides):
    module, model = peers.peer(name, **overrides), zoo.create(name, **overrides)
    assert peers.count_params(module) == peers.keras_count_params(model) > 0
    peers.assert_same_param_count(module, model)


def test_parameter_count_mismatch_raises():
    with pytest.raises(AssertionError, match="parameters"):
        peers.assert_same_param_count(peers.peer("hr17_verlet", **_dense(8, 2)),
                                      zoo.create("hr17_verlet", **_dense(9, 2)))


def _randomize(model, rng):
    """Perturb every weight (biases, TV-norm scales, BN statistics too) so that each one matters."""
    for weight in model.weights:
        value = np.asarray(weight)
        if "moving_variance" in weight.path:
            value = rng.uniform(0.5, 1.5, weight.shape)
        else:
            value = value + 0.1 * rng.standard_normal(weight.shape)
        weight.assign(value.astype("float32"))


@pytest.mark.parametrize("name, overrides, shape", LOGITS)
def test_logits_match_with_copied_weights(name, overrides, shape, rng):
    keras.utils.set_random_seed(0)
    model = zoo.create(name, **overrides)
    _randomize(model, rng)
    module = peers.load_from_keras(peers.peer(name, **overrides), model).eval()
    images = len(shape) == 4
    x = (rng.uniform(0, 255, shape) if images else rng.standard_normal(shape)).astype("float32")
    expected = np.asarray(model(x, training=False))
    with torch.no_grad():
        got = module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy() if images else x)).numpy()
    assert np.abs(expected).max() > 0.1  # the comparison is not of near-zero logits
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_load_from_keras_rejects_another_model():
    with pytest.raises(Exception):
        peers.load_from_keras(peers.peer("hr17_verlet", **_dense(8, 2)), zoo.create("hr17_verlet", **_dense(8, 4)))


def test_quick_comparison_runs_and_reports(tmp_path):
    spec = vs_pytorch.specs(("dense",), "quick")[0]
    result = vs_pytorch.compare(spec, mode="quick")
    assert result["params"] == 16 * (2 * 2 + 1) + 3
    assert result["zoo"]["median_ms"] > 0 and isinstance(result["zoo"]["jit_compile"], bool)
    assert result["torch_eager"]["1"]["median_ms"] > 0 and result["torch_eager"]["1"]["steps"] >= 3
    assert result["torch_compile"] == {"skipped": "not run (--quick)"}
    assert result["zoo"]["rounds"] == result["torch_eager"]["1"]["rounds"] == vs_pytorch.ROUNDS
    assert vs_pytorch.speedup(result) > 0
    record = {"mode": "quick", "date": "today", "seconds": 60.0, "machine": vs_pytorch.machine(),
              "results": [result]}
    text = vs_pytorch.render(record)
    assert f"| {spec['label']} | 83 |" in text and "torch eager 1 thr ms" in text
    vs_pytorch.plot([result], str(tmp_path / "vs.png"))
    assert (tmp_path / "vs.png").stat().st_size > 1000


def test_operator_profiles_find_each_frameworks_convolutions():
    import torch

    from benchmarks.op_profiles import tensorflow_profile, torch_profile

    model = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = np.ones((8, 12, 12, 1), "float32"), np.zeros(8, "int32")
    model.train_on_batch(x, y)
    tf_ops = tensorflow_profile(lambda: model.train_on_batch(x, y), steps=2)
    conv = torch.nn.Conv2d(1, 4, 3)
    torch_ops = torch_profile(lambda: conv(torch.ones(8, 1, 12, 12)).sum().backward(), steps=2)
    for ops in (tf_ops, torch_ops):
        assert 0 < ops.conv_ms_per_step < ops.ms_per_step
        assert "IDLE" not in ops.top and len(ops.top) <= 8
    assert any("Conv2D" in k for k in tf_ops.top) and any("conv" in k for k in torch_ops.top)
    result = {"label": "c", "task": "train", "zoo": {"median_ms": 10.0, "jit_compile": False},
              "torch_eager": {"1": {"median_ms": 5.0}, "2": {"median_ms": 6.0}},
              "op_profile": {"zoo": tf_ops._asdict(), "torch_eager": torch_ops._asdict()}}
    assert "at most x" in vs_pytorch._conv_bound(result)


def test_the_zoo_and_pytorch_take_turns_in_timed_rounds():
    """A slow phase of the machine must fall on every variant alike (`time_alternating`)."""
    calls = []
    out = vs_pytorch.time_alternating({"zoo": (lambda: calls.append("zoo"), None),
                                       1: (lambda: calls.append("torch"), 1)},
                                      warmup=1, repeats=6, budget_s=5.0, rounds=3)
    assert calls[:4] == ["zoo", "zoo", "torch", "torch"]  # first call and warm-up, untimed
    assert calls[4:] == ["zoo", "zoo", "torch", "torch"] * 3
    assert out["zoo"]["steps"] == out[1]["steps"] == 6 and out["zoo"]["rounds"] == 3


def test_a_merged_record_says_which_run_measured_each_group():
    """After `--only`, the kept groups came from an earlier run: the header must not claim one run."""
    record = {"date": "2026-01-02", "seconds": 120.0,
              "results": [{"group": "dense", "run_date": "2026-01-01"}, {"group": "pde", "run_date": "2026-01-02"}]}
    assert vs_pytorch._when(record) == "groups from separate runs (`--only`): dense run 2026-01-01, pde run 2026-01-02"
    record["results"][0]["run_date"] = "2026-01-02"
    assert vs_pytorch._when(record) == "run 2026-01-02, 2 min"
