"""The Ruthotto & Haber 2018 section of docs/reproduction.md: our Fashion-MNIST runs beside Table 1.

Called by `python -m training.recipes.hr17_report`; reads the runs named in `training.publish.RH18_RUNS`.
"""

from __future__ import annotations

import csv
import json
import os
import shutil

from training.recipes.common import save_figure

__all__ = ["rh18_section", "PAPER_CIFAR10"]

UNITS = ("parabolic", "hamiltonian", "second_order")
# R&H 2018 Table 1, CIFAR-10: trainable weights, test accuracy % (loss)
PAPER_CIFAR10 = {"parabolic": (502_570, 88.5, 0.333), "hamiltonian": (264_106, 89.3, 0.349),
                 "second_order": (502_570, 89.2, 0.333)}


def _history(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in rows[0]} if rows else {}


def rh18_section(runs, docs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.publish import RH18_RUNS
    from zoo import hub

    found, run_dirs = {}, {}
    for unit in UNITS:
        run_dirs[unit] = os.path.join(runs, os.path.relpath(RH18_RUNS[unit][0], "runs"))
        path = os.path.join(run_dirs[unit], "results.json")
        if os.path.exists(path):
            with open(path) as f:
                found[unit] = json.load(f)
            shutil.copyfile(path, os.path.join(docs, "results", f"rh18_fashion_mnist_{unit}.json"))
            card_path = hub.LOCAL_ROOT / f"rh18_{unit}_fashion_mnist" / "card.json"
            if card_path.exists():  # test figures as the shipped evaluation computes them
                metrics = json.loads(card_path.read_text())["metrics"]
                found[unit].update(test_accuracy=metrics["accuracy"], test_loss=metrics["loss"])
    lines = ["## Ruthotto & Haber 2018: PDE CNNs (Table 1)", "",
             "Paper: CIFAR-10 (Table 1; 100 epochs, SGD + momentum, Eq. 13 regulariser). Ours: the same "
             "units and recipe on Fashion-MNIST (28x28x1, widths 16/32/64; CIFAR needs the network), "
             "with the learning-rate drops at 60% / 80% of each run's epoch budget, best-validation weights "
             "on the official 10,000-image test set. Loss is the cross-entropy alone. Epoch times were measured "
             "while other jobs shared the 2 cores (the parabolic train step alone: 341 ms per batch of 125, "
             "about 131 s per 48,000-image epoch), and a run paused for another (SIGSTOP) counts the pause in that "
             "epoch; the epoch budgets (12 to 16) are what a session allowed.", "",
             "| network | paper CIFAR-10 weights | paper CIFAR-10 test acc. (loss) | ours Fashion-MNIST weights "
             "| epochs | ours best val acc. (epoch) | ours test acc. (loss) | s / epoch |",
             "|---|---|---|---|---|---|---|---|"]
    if not found:
        return lines + ["", "(no runs yet: `python -m training.recipes.rh18_fashion_mnist --unit parabolic --epochs 12`)", ""]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4))
    for unit in UNITS:
        weights, acc, loss = PAPER_CIFAR10[unit]
        if unit not in found:
            lines.append(f"| {unit} | {weights:,} | {acc}% ({loss}) | not run | | | | |")
            continue
        r = found[unit]
        lines.append(f"| {unit} | {weights:,} | {acc}% ({loss}) | {r['trainable_weights']:,} | {r['epochs']} | "
                     f"{100 * r['best_val_accuracy']:.2f}% ({r['best_epoch'] + 1}) | "
                     f"{100 * r['test_accuracy']:.2f}% ({r['test_loss']:.3f}) | {r['seconds_per_epoch']:.0f} |")
        hist = _history(os.path.join(run_dirs[unit], "training.csv"))
        epochs = range(1, len(hist.get("accuracy", [])) + 1)
        # Runs before the `cross_entropy` metric logged only the regularised loss.
        loss_key = "cross_entropy" if "cross_entropy" in hist else "loss"
        for ax, key in ((ax_loss, loss_key), (ax_acc, "accuracy")):
            line, = ax.plot(epochs, hist[key], label=f"{unit} train")
            ax.plot(epochs, hist[f"val_{key}"], "--", color=line.get_color(), label=f"{unit} validation")
    for ax, title in ((ax_loss, "cross-entropy (parabolic 8-epoch run: incl. regulariser)"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch"), ax.set_title(title), ax.legend(fontsize=7)
    fig.suptitle("R&H 2018 PDE CNNs on Fashion-MNIST")
    save_figure(fig, os.path.join(docs, "figures", "rh18_fashion_mnist_curves.png"))
    return lines + ["", "![training curves](figures/rh18_fashion_mnist_curves.png)", ""]
