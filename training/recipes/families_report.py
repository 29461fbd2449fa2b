"""The Galimberti et al. and Liu & Markowich sections of docs/reproduction.md.

Called by `python -m training.recipes.hr17_report`; reads `runs/galimberti_toy/` (written by
`python -m training.recipes.galimberti_toy`) and `runs/lm_width/` (`python -m training.recipes.lm_width`).
"""

from __future__ import annotations

import json
import os
import shutil

__all__ = ["galimberti_section", "liu_markowich_section"]


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
    from training.recipes.galimberti_toy import table_markdown

    results = _copy_results(os.path.join(runs, "galimberti_toy"), docs, "galimberti",
                            ("table1.png", "figure1.png", "figure2.png"))
    head = ["## Galimberti, Xu & Ferrari Trecate: Hamiltonian DNNs (Table 1, Figure 2)", ""]
    if results is None:
        return head + ["(no run yet: `python -m training.recipes.galimberti_toy`)", ""]
    body = [("#" * 2 + line) if line.startswith("# ") else line
            for line in table_markdown(results).splitlines()]
    return head + body + ["", "![Table 1](figures/galimberti_table1.png)",
                          "![Figure 2](figures/galimberti_figure2.png)",
                          "![H1 decision maps](figures/galimberti_figure1.png)", ""]


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
