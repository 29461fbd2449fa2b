"""The Galimberti et al. and Liu & Markowich sections of docs/reproduction.md.

Called by `python -m training.recipes.hr17_report`; reads `runs/galimberti_toy/` (written by
`python -m training.recipes.galimberti_toy`) and `runs/lm_width/` (`python -m training.recipes.lm_width`).
"""

from __future__ import annotations

import json
import os
import shutil

__all__ = ["galimberti_section", "galimberti_table2_section", "liu_markowich_section"]


def _copy_results(run_dir, docs, tag, figures):
    """Keep a run's raw figures and PNGs with the docs; returns its results dict or None."""
    path = os.path.join(run_dir, "results.json")
    if not os.path.exists(path):
        return None
    shutil.copyfile(path, os.path.join(docs, "results", f"{tag}.json"))
    for name in figures:
        src = os.path.join(run_dir, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(docs, "figures", f"{tag}_{name}"))
    with open(path) as f:
        return json.load(f)


def galimberti_section(runs, docs):
    from training.recipes.galimberti_toy import plot_table, table_markdown

    results = _copy_results(os.path.join(runs, "galimberti_toy"), docs, "galimberti",
                            ("table1.png", "figure1.png", "figure2.png"))
    head = ["## Galimberti, Xu & Ferrari Trecate: Hamiltonian DNNs (Table 1, Figure 2)", ""]
    if results is None:
        return head + ["(no run yet: `python -m training.recipes.galimberti_toy`)", ""]
    # Rows re-run with a longer budget (`--epochs 100 --swiss-roll-depths 32 64`) replace those cells.
    # H2 with the common lr 0.05 oscillated over 100 epochs (32 layers: 90.0%), so its rows ran again at 0.01.
    for run_name in ("galimberti_toy100", "galimberti_toy100_h2lr"):
        longer = _copy_results(os.path.join(runs, run_name), docs, run_name, ())
        if not longer:
            continue
        for row in longer["table"]:
            row["epochs"] = longer["settings"]["epochs"]
            if longer["settings"]["lr"] != results["settings"]["lr"]:
                row["lr"] = longer["settings"]["lr"]
        replaced = {(r["dataset"], r["depth"], r["network"]) for r in longer["table"]}
        results["table"] = [r for r in results["table"]
                            if (r["dataset"], r["depth"], r["network"]) not in replaced] + longer["table"]
    plot_table(results, os.path.join(docs, "figures", "galimberti_table1.png"))  # the merged cells
    body = [("#" * 2 + line) if line.startswith("# ") else line
            for line in table_markdown(results).splitlines()]
    return head + body + ["", "![Table 1](figures/galimberti_table1.png)",
                          "![Figure 2](figures/galimberti_figure2.png)",
                          "![H1 decision maps](figures/galimberti_figure1.png)", ""]


def galimberti_table2_section(runs, docs):
    from training.recipes.galimberti_fashion_mnist import table_markdown

    results = _copy_results(os.path.join(runs, "galimberti_fashion_mnist"), docs, "galimberti_table2",
                            ("table2.png",))
    head = ["### Galimberti et al. 2021, Table 2 on Fashion-MNIST (train / test accuracy %, ours / paper's MNIST)", ""]
    if results is None:
        return head + ["(no run yet: `python -m training.recipes.galimberti_fashion_mnist`)", ""]
    s = results["settings"]
    rows = sorted(results["table"], key=lambda r: (r["network"], r["depth"]))
    times = ", ".join(f"{r['network'].upper()}-{r['depth']} {r['seconds']:.0f} s" for r in rows)
    return head + [
        "Conv 1 -> 8 channels, per-pixel H-DNN block (MS1 h = 0.4, H2 h = 0.05), flat head; "
        f"Adam from {s['lr']} (x{s['lr_decay_per_epoch']} per epoch), batch {s['batch_size']}, {s['epochs']} "
        "epochs, best-validation epoch; train accuracy on the 50,000 training images, test on the "
        "official 10,000. The paper's figures are MNIST (an easier task): compare the trend with depth.", "",
        table_markdown(results), f"Training time (shared 2-core machine): {times}.", "",
        "![Table 2](figures/galimberti_table2_table2.png)", ""]


def liu_markowich_section(runs, docs):
    results = _copy_results(os.path.join(runs, "lm_width"), docs, "lm_width", ("accuracy_vs_width.png",))
    head = ["## Liu & Markowich: width continuum (continuous-kernel selection dynamics)", ""]
    if results is None:
        return head + ["(no run yet: `python -m training.recipes.lm_width`)", ""]
    lines = head + [
        f"`{results['architecture']}` trained at width M = {results['trained_width']} on "
        f"{results['dataset']} (N = {results['depth']}, T = {results['T']}, {results['modes']} cosine "
        f"modes, {results['trainable_weights']} weights, {results['epochs']} epochs), then sampled on "
        "other grids with the same weights. The paper has no experiments; the acceptance bar is that "
        "2M stays within 1 point of M.", "",
        "| width | validation accuracy | validation cross-entropy |", "|---|---|---|"]
    for width, row in sorted(results["by_width"].items(), key=lambda kv: int(kv[0])):
        lines.append(f"| {width} | {100 * row['val_accuracy']:.3f}% | {row['val_loss']:.5f} |")
    return lines + ["", f"Accuracy change at 2M: {results['accuracy_drop_2M_points']:.2f} points.", "",
                    "![accuracy vs width](figures/lm_width_accuracy_vs_width.png)", ""]
