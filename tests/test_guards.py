"""Numerical guards (issue 13): the pre-training stability warning (`zoo.diagnostics.check_stability`,
H&R 2017 Lemma 1 / Eq. 3.9 for forward Euler; `h sqrt(rho) <= 2` for leapfrog and Verlet) and
`TerminateOnNaN` + `BackupAndRestore` in every recipe's and fine-tuning's `fit`."""

import os
import warnings

import keras
import numpy as np
import pytest

import zoo
from markers import needs_fashion_mnist
from zoo.diagnostics import StabilityWarning, check_stability, lemma1_amplification


def _features(n=64, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 2)).astype("float32")


def _stability_warnings(model, x):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = check_stability(model, x)
    return results, [w for w in caught if issubclass(w.category, StabilityWarning)]


@pytest.mark.parametrize("name,overrides", [
    ("hr17_antisymmetric", dict(depth=256)),  # T = 20, h = 0.078: |1 + i h omega| - 1 ~ 1e-3
    ("hr17_verlet", {}),  # default N = 16, T = 20
    ("hr17_leapfrog", {}),
    ("galimberti_ms1", {}),
])
def test_stable_default_configurations_do_not_warn(name, overrides):
    keras.utils.set_random_seed(0)
    results, caught = _stability_warnings(zoo.create(name, **overrides), _features())
    assert not caught, [str(w.message) for w in caught]
    assert results and all(r["stable"] and r["value"] <= r["limit"] for r in results)


@pytest.mark.parametrize("name,integrator,quantity", [
    ("hr17_antisymmetric", "ForwardEuler", "Lemma 1"),
    ("hr17_verlet", "Verlet", "Verlet"),
    ("hr17_leapfrog", "Leapfrog", "leapfrog"),
])
def test_a_huge_step_warns_naming_block_integrator_h_and_the_measured_value(name, integrator, quantity):
    keras.utils.set_random_seed(0)
    model = zoo.create(name, depth=4, T=200.0)  # h = 50
    results, caught = _stability_warnings(model, _features())
    assert len(caught) == 1 and not results[0]["stable"]
    message = str(caught[0].message)
    for part in ("Block 'block'", integrator, "h = 50", quantity, f"{results[0]['value']:.4g}"):
        assert part in message, message


def test_forward_euler_value_is_the_lemma1_diagnostic(monkeypatch):
    """The warning's quantity is `lemma1_amplification`'s max (exact eigenvalues), and the
    Arnoldi estimate used for large states agrees with it."""
    import zoo.diagnostics as diagnostics

    keras.utils.set_random_seed(1)
    model = zoo.create("hr17_antisymmetric", depth=8)
    x = _features()
    block = model.get_layer("block")
    block_inputs = keras.Model(model.input, block.input).predict(x, verbose=0)
    reference = float(np.max(lemma1_amplification(block, block_inputs)))
    assert check_stability(model, x, warn=False)[0]["value"] == pytest.approx(reference, rel=1e-12)
    monkeypatch.setattr(diagnostics, "DENSE_EIG_LIMIT", 0)  # force the Jacobian-vector path
    assert check_stability(model, x, warn=False)[0]["value"] == pytest.approx(reference, rel=1e-5)


def test_convolution_blocks_are_checked_on_whole_images():
    keras.utils.set_random_seed(0)
    model = zoo.create("hr17_verlet_conv", depth=4)  # 28 x 28 x 6 states: Arnoldi estimates
    x = np.random.default_rng(0).uniform(0, 255, (2, 28, 28, 1)).astype("float32")
    (result,) = check_stability(model, x, warn=False)
    assert result["integrator"] == "Verlet" and np.isfinite(result["value"]) and result["value"] > 0


def test_models_without_ode_blocks_have_nothing_to_check():
    assert check_stability(zoo.create("lm_selection"), _features(), warn=False) == []


# === TerminateOnNaN, BackupAndRestore and the check in every recipe ===


class _Stop(Exception):
    pass


@pytest.fixture
def captured_fits(monkeypatch):
    """Replace `fit` and the stability check by recorders; the first `fit` stops the recipe."""
    import zoo.diagnostics as diagnostics

    calls = []

    def fit(self, *args, callbacks=None, **kwargs):
        calls.append(("fit", list(callbacks or [])))
        raise _Stop

    def check(model, inputs=None, **kwargs):
        calls.append(("check", model))
        return []

    monkeypatch.setattr(keras.Model, "fit", fit)
    monkeypatch.setattr(diagnostics, "check_stability", check)
    return calls


def _assert_guarded(calls):
    kinds = [kind for kind, _ in calls]
    assert "fit" in kinds and "check" in kinds[: kinds.index("fit")], kinds  # checked before fit
    callbacks = dict(calls)["fit"]
    assert any(isinstance(c, keras.callbacks.TerminateOnNaN) for c in callbacks)
    assert isinstance(callbacks[0], keras.callbacks.BackupAndRestore)  # first: restores first


TOY_RECIPES = {
    "hr17_toy": ["--dataset", "ellipses", "--network", "resnet", "--quick"],
    "galimberti_toy": ["--quick"],
    "lm_width": ["--quick"],
}
IMAGE_RECIPES = {
    "hr17_fashion_mnist": ["--network", "antisymmetric", "--quick"],
    "rh18_fashion_mnist": ["--unit", "parabolic", "--quick"],
    "galimberti_fashion_mnist": ["--quick"],
}


def _run_recipe(name, args, out):
    import importlib

    module = importlib.import_module(f"training.recipes.{name}")
    with pytest.raises(_Stop):
        module.main([*args, "--out", str(out)])


@pytest.mark.parametrize("name", sorted(TOY_RECIPES))
def test_toy_recipes_fit_with_terminate_on_nan_and_backup(name, captured_fits, tmp_path):
    _run_recipe(name, TOY_RECIPES[name], tmp_path)
    _assert_guarded(captured_fits)


@needs_fashion_mnist
@pytest.mark.parametrize("name", sorted(IMAGE_RECIPES))
def test_image_recipes_fit_with_terminate_on_nan_and_backup(name, captured_fits, tmp_path):
    _run_recipe(name, IMAGE_RECIPES[name], tmp_path)
    _assert_guarded(captured_fits)


@needs_fashion_mnist
def test_fine_tune_fits_with_terminate_on_nan_and_backup(captured_fits, tmp_path, monkeypatch):
    import training.evaluate
    from training.finetune import fine_tune

    name = zoo.list_models(pretrained=True)[0]
    monkeypatch.setattr(training.evaluate, "evaluate_arrays", lambda *a, **k: {"accuracy": 0.0})
    with pytest.raises(_Stop):
        fine_tune(name, epochs=1, train_size=100, progress=False, backup_dir=str(tmp_path / "backup"))
    callbacks = dict(captured_fits)["fit"]
    assert any(isinstance(c, keras.callbacks.TerminateOnNaN) for c in callbacks)
    assert isinstance(callbacks[0], keras.callbacks.BackupAndRestore)


def test_cli_fine_tune_has_resume_options():
    from zoo.cli import main

    with pytest.raises(SystemExit):
        main(["fine-tune", "x", "--fresh", "--backup-dir", os.devnull, "--strategy", "nope"])
