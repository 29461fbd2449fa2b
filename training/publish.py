"""Turn a finished training run into a pretrained entry `saved_models/<name>/`.

    python -m training.publish --run runs/rh18_fmnist_12ep/parabolic --name rh18_parabolic_fashion_mnist

Reads the run's `results.json` (its `model` spec, recipe settings, timings) and best weights,
rebuilds the model from the registry, evaluates it with `training.evaluate` on the full split
(Fashion-MNIST: the official 10,000-image test set; 2-D sets: the validation split, which is
what the paper reports), and writes the weights, `card.json` and `README.md`. Files are written
to temporary names and renamed, so an interrupted publish leaves no half-written entry.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import tempfile

import keras
import numpy as np

import zoo
from training.evaluate import evaluate_arrays, load_split
from zoo import hub
from zoo.cards import write_card

__all__ = ["publish", "publish_all", "standard_entries"]

WEIGHTS_FILE = "model.weights.h5"
SUBSET = 1000
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot"]


def _hardware():
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, {platform.system()}"


def _versions():
    import tensorflow as tf

    return {"stable_zoo": zoo.__version__, "keras": keras.__version__, "tensorflow": tf.__version__,
            "python": platform.python_version()}


def publish(run_dir, name, family, recipe, description="", notes="", weights=None, root=None,
            spec=None):
    run_dir = pathlib.Path(run_dir)
    root = pathlib.Path(root) if root is not None else hub.LOCAL_ROOT
    hub.validate_name(name)
    results = json.loads((run_dir / "results.json").read_text())
    spec = spec or results.get("model")
    if spec is None:
        raise ValueError(f"{run_dir}/results.json has no 'model' spec; pass spec=")
    weights = pathlib.Path(weights) if weights else next(
        p for p in (run_dir / "best.weights.h5", run_dir / "final.weights.h5") if p.exists())
    model = zoo.create(spec["architecture"], **spec["config"])
    model.load_weights(str(weights))
    dataset = results.get("dataset", "fashion_mnist")
    split = "test" if dataset == "fashion_mnist" else "validation"
    x, y = load_split(dataset, split)
    metrics = evaluate_arrays(model, x, y)
    # The figure a quick re-check (tests, `stable-zoo evaluate --limit 1000`) compares against.
    subset = evaluate_arrays(model, x[:SUBSET], y[:SUBSET], progress=False)
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))

    root.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        shutil.copyfile(weights, staging / WEIGHTS_FILE)
        # Multilevel runs: the published weights are the best-validation ones of the last level.
        levels = results.get("levels") or [{}]
        best_val = results.get("best_val_accuracy") or levels[-1].get("val_accuracy")
        card = {
            "name": name,
            "architecture": spec["architecture"],
            "config": spec["config"],
            "family": family,
            "description": description,
            "dataset": {
                "name": dataset,
                "split": ("Fashion-MNIST official 60k training set split by seed 0 (see recipe); "
                          "metrics on the official 10,000-image test set") if dataset == "fashion_mnist"
                else ("training.data.toy2d, seed 0; metrics on its validation split, which also "
                      "selected the weights (the paper reports validation accuracy)"),
                "input": ("float32 (batch, 28, 28, 1), raw pixel values 0..255 (normalised inside)"
                          if dataset == "fashion_mnist" else f"float32 (batch, {x.shape[1]}) points"),
                **({"classes": FASHION_MNIST_CLASSES} if dataset == "fashion_mnist" else {}),
            },
            "metrics": {**metrics, "split": split, "best_val_accuracy": best_val,
                        f"first_{SUBSET}": {k: subset[k] for k in ("accuracy", "loss")}},
            "trainable_params": trainable,
            "total_params": int(model.count_params()),
            "weights": WEIGHTS_FILE,
            "files": {WEIGHTS_FILE: {"sha256": hub.sha256_of(staging / WEIGHTS_FILE),
                                  "bytes": (staging / WEIGHTS_FILE).stat().st_size}},
            "recipe": recipe,
            "training": {"seconds": results.get("seconds") or results.get("seconds_this_run"),
                         "epochs": results.get("epochs") or results.get("epochs_per_level"),
                         "hardware": _hardware(),  # the day the run finished, not the day it was published
                         "date": datetime.date.fromtimestamp((run_dir / "results.json").stat().st_mtime).isoformat()},
            "versions": _versions(),
            "notes": notes,
        }
        write_card(card, staging)
        os.chmod(staging, 0o755)  # mkdtemp creates 0700
        os.chmod(staging / WEIGHTS_FILE, 0o644)
        target = root / name
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return card


HR17 = "Haber & Ruthotto 2017"
RH18 = "Ruthotto & Haber 2018"
_HR17_NETS = {"resnet": "forward-Euler ResNet", "antisymmetric": "antisymmetric ResNet",
              "verlet": "Hamiltonian network, Verlet"}
_RH18_UNITS = {"parabolic": "parabolic (forward Euler)", "hamiltonian": "Hamiltonian (Verlet)",
               "second_order": "second-order (leapfrog)"}


# unit -> (run directory, epochs) of the published R&H 2018 runs. The epoch budgets differ
# because 2 shared cores bounded what one session could train (docs/reproduction.md).
RH18_RUNS = {"parabolic": ("runs/rh18_fmnist_16ep/parabolic", 16),
             "hamiltonian": ("runs/rh18_fmnist_12ep/hamiltonian", 12),
             "second_order": ("runs/rh18_fmnist_s4/second_order", 16)}


# unit -> (run directory, epochs) of longer runs of the same recipe, published as their own
# entries: the table in docs/reproduction.md keeps the runs within the paper-scaled budgets above.
RH18_LONG_RUNS = {"parabolic": ("runs/rh18_fmnist_30ep/parabolic", 30)}


def _rh18_entry(unit, run_dir, epochs, description):
    """(run dir, publish() arguments) of an R&H 2018 Fashion-MNIST run of the recipe."""
    return run_dir, dict(
        family=RH18, recipe=f"python -m training.recipes.rh18_fashion_mnist --unit {unit} --epochs {epochs}",
        spec={"architecture": f"rh18_{unit}_fashion_mnist", "config": {}}, description=description)


def standard_entries():
    """Every pretrained entry the repository ships: name -> (run dir, publish() arguments)."""
    entries = {}
    for unit, what in _RH18_UNITS.items():
        entries[f"rh18_{unit}_fashion_mnist"] = _rh18_entry(
            unit, *RH18_RUNS[unit],
            f"Ruthotto & Haber 2018 {what} PDE CNN (widths 16/32/64, 3 units x 3 steps, TV normalisation) "
            "trained on Fashion-MNIST with the paper's recipe; best-validation weights.")
    for unit, (run_dir, epochs) in RH18_LONG_RUNS.items():
        entries[f"rh18_{unit}_fashion_mnist_{epochs}ep"] = _rh18_entry(
            unit, run_dir, epochs,
            f"Ruthotto & Haber 2018 {_RH18_UNITS[unit]} PDE CNN, the same network and recipe as "
            f"`rh18_{unit}_fashion_mnist` with a {epochs}-epoch budget (learning-rate drops at 60% and 80% "
            "of it); best-validation weights.")
    for net, what in _HR17_NETS.items():
        out, epochs, schedule = HR17_CONV_RUNS[net]
        entries[f"hr17_{net}_conv_fashion_mnist"] = (f"{out}/{net}", dict(
            family=HR17, recipe=(f"python -m training.recipes.hr17_fashion_mnist --network {net} --epochs {epochs} "
                                 f"--schedule {schedule} --out {out}"),
            description=f"Haber & Ruthotto 2017 MNIST-experiment network ({what}; 3x3 convolutions, "
                        "width 6, T = 6, 16 layers) trained on Fashion-MNIST by multilevel training "
                        "4 -> 8 -> 16 layers.",
            spec={"architecture": f"hr17_{net}_conv", "config": {"depth": 16, "T": 6.0, "width": 6}}))
    for (ds, net), (first, last, epochs) in TOY_ENTRIES.items():
        entries[f"hr17_{net}_{ds}"] = (f"{TOY_DEPLOY}/{ds}/{net}", dict(
            family=HR17,
            recipe=(f"python -m training.recipes.hr17_toy --dataset {ds} --network {net} "
                    f"--min-depth {first} --max-depth {last} --epochs {epochs} --out {TOY_DEPLOY}"),
            description=f"Haber & Ruthotto 2017 {_HR17_NETS[net]} on the 2-D {ds.replace('_', ' ')} set "
                        f"(Sec. 6, T = 20), " + (f"multilevel training {first} -> {last} layers."
                                                 if first < last else f"trained at {last} layers.")))
    return entries


# network -> (recipe --out, epochs per level, Adam schedule) of the published H&R MNIST-network runs.
# The recipe's default schedule became the per-level cosine after the first runs, so the recipe
# line names it. The Verlet needs more epochs at the finer levels (docs/reproduction.md).
HR17_CONV_RUNS = {"resnet": ("runs/hr17_fashion_mnist", "2 2 2", "constant"),
                  "antisymmetric": ("runs/hr17_fashion_mnist", "2 2 2", "constant"),
                  "verlet": ("runs/hr17_fashion_mnist4", "2 6 6", "cosine")}


# The 2-D entries are the deployable depths: each reaches the accuracy its 1,024-layer run does
# (docs/reproduction.md has those runs), and at most `export.fold.UNROLL_MAX_STEPS` steps its
# exports are unrolled graphs: within 1e-5 of Keras, quantisable by ONNX Runtime and convertible
# to fp16, none of which held for the 1,024-step `Loop` graphs.
TOY_DEPLOY = "runs/hr17_toy_deploy"
TOY_ENTRIES = {  # (dataset, network) -> (first depth, last depth, epochs per level)
    ("ellipses", "resnet"): (4, 8, "300 300"),
    ("ellipses", "antisymmetric"): (32, 64, "600 300"),
    ("swiss_roll", "verlet"): (32, 32, "600"),
    ("swiss_roll", "resnet"): (32, 64, "600 300"),
}


def publish_all(root=None, only_missing=False):
    """Publish every standard entry whose run has finished; returns the published names."""
    done = []
    for name, (run_dir, kwargs) in standard_entries().items():
        run = pathlib.Path(run_dir)
        has_weights = any((run / f).exists() for f in ("best.weights.h5", "final.weights.h5"))
        if not (run / "results.json").exists() or not has_weights:
            continue
        if only_missing and (pathlib.Path(root or hub.LOCAL_ROOT) / name / "card.json").exists():
            continue
        card = publish(run, name, root=root, **kwargs)
        m = card["metrics"]
        print(f"{name}: {m['split']} accuracy {100 * m['accuracy']:.2f}% on {m['num_examples']}")
        done.append(name)
    if root is None:  # keep docs/models.md in step with the cards
        from training.models_table import main as write_models_table

        write_models_table()
    return done


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="publish every finished standard run")
    parser.add_argument("--only-missing", action="store_true")
    parser.add_argument("--run", help="run directory with results.json and weights")
    parser.add_argument("--name")
    parser.add_argument("--family")
    parser.add_argument("--recipe", help="the command that trained it")
    parser.add_argument("--description", default="")
    parser.add_argument("--notes", default="")
    parser.add_argument("--weights")
    parser.add_argument("--root")
    args = parser.parse_args(argv)
    if args.all:
        publish_all(args.root, args.only_missing)
        return
    if not (args.run and args.name and args.family and args.recipe):
        parser.error("--run, --name, --family and --recipe are required without --all")
    card = publish(args.run, args.name, args.family, args.recipe, args.description, args.notes,
                   args.weights, args.root)
    m = card["metrics"]
    print(f"{card['name']}: {m['split']} accuracy {100 * m['accuracy']:.2f}% "
          f"loss {m['loss']:.4f} on {m['num_examples']} examples")


if __name__ == "__main__":
    main()
