"""Peak memory and time of one training step against depth, with and without `reversible=True`.

    python benchmarks/reversible_memory.py [--quick]

Two networks (issue 11): a dense Verlet block (width 64, batch 512, XLA as the zoo's dense
policy) at N = 16 ... 1024, and a stack of Hamiltonian CNN steps (R&H 2018 unit: TV-normalised
symmetric layers on the two channel halves, 16 channels, batch 125 on 28x28, no XLA as for every
conv net on CPU) at N = 4 ... 64. Each configuration runs in a fresh process, so the figure is
that process's own peak resident memory (`VmHWM`; `ru_maxrss` would inherit the parent's) after
one compiled training step, minus its peak before the first step (the model, data and TF
runtime). Time is the median of the following steps. Writes benchmarks/results/reversible_memory.
{json,md,png} and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

OUT = os.path.join(os.path.dirname(__file__), "results")
NETWORKS = {
    "dense_verlet": dict(depths=(16, 64, 256, 1024), quick=(16, 64)),
    "hamiltonian_cnn": dict(depths=(4, 16, 64), quick=(4, 8)),
}


def _peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(network, depth, reversible, repeats=5):
    """One configuration, in this process: `{"peak_mib", "baseline_mib", "step_ms"}`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    from zoo.blocks import hamiltonian_cnn_block, verlet_block

    rng = np.random.default_rng(0)
    if network == "dense_verlet":
        block = verlet_block(depth, T=float(depth) / 16, reversible=reversible)
        x = rng.standard_normal((512, 64)).astype("float32")
        jit = True
    else:
        block = hamiltonian_cnn_block(depth=depth, T=float(depth), reversible=reversible)
        x = rng.standard_normal((125, 28, 28, 16)).astype("float32")
        jit = False
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, block(inputs))
    model.compile(keras.optimizers.SGD(1e-3), "mse", jit_compile=jit)
    y = np.zeros_like(x)
    data = tf.data.Dataset.from_tensors((x, y)).repeat(repeats + 1)
    baseline = _peak_rss_mib()
    times = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(1e3 * (time.perf_counter() - self.start))

    model.fit(data, epochs=1, verbose=0, callbacks=[Timer()])
    return {"network": network, "depth": depth, "reversible": reversible, "baseline_mib": baseline,
            "peak_mib": _peak_rss_mib(), "step_ms": statistics.median(times[1:]), "first_step_ms": times[0]}


def run_fresh(network, depth, reversible):
    out = subprocess.run(
        [sys.executable, __file__, "--child", network, str(depth), str(int(reversible))],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "load_1min": os.getloadavg()[0]}


def report(rows):
    lines = ["| network | N | reversible | step memory MiB (peak - before) | process peak MiB | step ms | load 1-min |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        load = f"{r['load_1min']:.1f}" if "load_1min" in r else "-"
        lines.append(f"| {r['network']} | {r['depth']} | {r['reversible']} | {r['peak_mib'] - r['baseline_mib']:.0f} "
                     f"| {r['peak_mib']:.0f} | {r['step_ms']:.1f} | {load} |")
    summary = []
    for network in NETWORKS:
        for reversible in (False, True):
            mine = {r["depth"]: r for r in rows if r["network"] == network and r["reversible"] == reversible}
            if len(mine) >= 2:
                lo, hi = min(mine), max(mine)
                growth = (mine[hi]["peak_mib"] - mine[hi]["baseline_mib"]) / max(
                    mine[lo]["peak_mib"] - mine[lo]["baseline_mib"], 1.0)
                summary.append(f"- {network}, reversible={reversible}: step memory x{growth:.2f} from N = {lo} to {hi}")
            if 64 in mine and 1024 in mine:
                step = {n: mine[n]["peak_mib"] - mine[n]["baseline_mib"] for n in (64, 1024)}
                summary.append(f"- {network}, reversible={reversible}: N = 1024 vs N = 64: x{step[1024] / step[64]:.2f}")
        both = [(r, next((s for s in rows if s["network"] == network and s["depth"] == r["depth"]
                          and not s["reversible"]), None)) for r in rows if r["network"] == network and r["reversible"]]
        ratios = [f"N={r['depth']}: x{r['step_ms'] / s['step_ms']:.2f}" for r, s in both if s]
        if ratios:
            summary.append(f"- {network}, time of the reversible step vs stored states: " + ", ".join(ratios))
    return "\n".join(lines + [""] + summary) + "\n"


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, network in zip(axes, NETWORKS):
        for reversible, style in ((False, "o-"), (True, "s--")):
            mine = sorted((r["depth"], r["peak_mib"] - r["baseline_mib"]) for r in rows
                          if r["network"] == network and r["reversible"] == reversible)
            if mine:
                ax.plot(*zip(*mine), style, label=f"reversible={reversible}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("steps N")
        ax.set_ylabel("training-step memory (MiB)")
        ax.set_title(network)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small depths per network")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--report-only", action="store_true", help="rewrite the table from the last results")
    parser.add_argument("--only", choices=NETWORKS, help="measure one network; keep the other's last rows")
    args = parser.parse_args(argv)
    if args.report_only:
        with open(os.path.join(OUT, "reversible_memory.json")) as f:
            saved = json.load(f)
        return _write(saved["rows"], saved["load_average"])
    if args.child:
        network, depth, reversible = args.child
        print(json.dumps(measure(network, int(depth), bool(int(reversible)))))
        return
    from tqdm import tqdm

    networks = [args.only] if args.only else list(NETWORKS)
    configs = [(n, d, r) for n in networks for d in NETWORKS[n]["quick" if args.quick else "depths"]
               for r in (False, True)]
    rows = [run_fresh(*c) for c in tqdm(configs, desc="reversible memory")]
    if args.only:  # keep the other network's rows, in the table's order
        with open(os.path.join(OUT, "reversible_memory.json")) as f:
            saved = json.load(f)
        kept = [{"load_1min": saved["load_average"][0], **r} for r in saved["rows"] if r["network"] != args.only]
        rows = sorted(kept + rows, key=lambda r: list(NETWORKS).index(r["network"]))
    _write(rows, os.getloadavg())


def _write(rows, load_average):
    os.makedirs(OUT, exist_ok=True)
    from training.atomic_files import write_json, write_text

    write_json(os.path.join(OUT, "reversible_memory.json"), {"rows": rows, "load_average": list(load_average)})
    text = report(rows) + (f"\nLoad average (1, 5, 15 min) when the last run ended: "
                           f"{', '.join(f'{v:.1f}' for v in load_average)}; the load column is per row (when a "
                           "row's network was measured). On 2 cores a load above 2 inflates step times; the memory "
                           "figures are not affected.\n")
    write_text(os.path.join(OUT, "reversible_memory.md"), text)
    plot(rows, os.path.join(OUT, "reversible_memory.png"))
    print(text)


if __name__ == "__main__":
    main()
