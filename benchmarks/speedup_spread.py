"""How far the dense speed-ups nearest 5x move on this shared machine: repeats, a trace, neighbours.

    python benchmarks/speedup_spread.py [--runs 10] [--trace-seconds 60] [--neighbour-rounds 2]
                                        [--width 8] [--depth 256] [--quick] [--report-only]

`benchmarks/vs_pytorch.py` measures each comparison once. On a shared machine one run is one
sample of its slow and quiet phases, and the width-8 dense networks at N = 256 sit near the 5x
target of issue 12. This script measures how far they move:

1. Repeats: `vs_pytorch.compare` (the same zoo step, PyTorch eager at each thread count, alternating
   rounds; no `torch.compile`) of the antisymmetric and the Verlet network, `--runs` times each,
   the two networks taking turns, with the 1-minute load average before and after each run.
2. Trace: for each network, one zoo model and its peer timed in alternating blocks of `BLOCK_S`
   seconds (zoo, PyTorch eager at each thread count, again and again) for `--trace-seconds`:
   the median step of each block, stamped with its start. A cycle's speed-up is the faster PyTorch
   block over the zoo's block of that cycle, so it shows when the machine's slow phases slow one
   framework more than the other.
3. Neighbours: the same steps in 1 s blocks while another process keeps the second core busy
   with pure Python arithmetic (`cpu`) or with copying a 256 MB array (`memory`: streams through
   the shared L3 cache and memory, as a memory-heavy neighbour on the host does), against no
   neighbour, in alternating rounds: which kind of neighbour slows which framework.

Writes benchmarks/results/speedup_spread.{json,md,png} (`--quick`: N = 16, width 2, one run, a
2-second trace, one neighbour round, to `speedup_spread_quick.*`; `--report-only` rewrites the
table and figure from the JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks import vs_pytorch  # noqa: E402
from training.atomic_files import write_text  # noqa: E402

OUT = vs_pytorch.OUT
NETWORKS = ("antisymmetric", "verlet")
TARGET = 5.0  # issue 12: dense N >= 256 at least 5x faster than PyTorch eager
BLOCK_S = 0.5  # one trace block: long enough for ~100 zoo steps, short against the machine's phases


def dense_spec(network, width, depth, mode):
    """The `vs_pytorch` comparison of `network` at `width` and `depth`."""
    template = next(s for s in vs_pytorch.specs(("dense",), mode) if s["model"] == f"hr17_{network}")
    overrides = dict(template["overrides"], width=width, depth=depth)
    series = f"{network} w={width}"
    return dict(template, series=series, depth=depth, overrides=overrides,
                label=f"{series} N={depth} {template['task']} b={template['batch']}")


def repeats(specs, runs, mode):
    """`runs` comparisons of every spec, the specs taking turns: one row per run."""
    rows = []
    for run in range(runs):
        for spec in specs:
            result = vs_pytorch.compare(spec, mode=mode, compile_torch=False)
            threads, torch_ms = vs_pytorch.best_eager(result)
            rows.append({"series": spec["series"], "run": run, "speedup": vs_pytorch.speedup(result),
                         "zoo_ms": result["zoo"]["median_ms"], "torch_ms": torch_ms, "torch_threads": threads,
                         "load_average_1min": result["load_average_1min"]})
            print(f"run {run + 1}/{runs} {spec['label']}: zoo {rows[-1]['zoo_ms']:.2f} ms, torch {torch_ms:.1f} ms, "
                  f"x{rows[-1]['speedup']:.2f}", file=sys.stderr, flush=True)
    return rows


def _block(step, seconds):
    """Median ms of `step()` timed for `seconds` (at least `MIN_REPEATS` calls, after one untimed
    call: the first call after the other framework's turn is slow), and the timed call count."""
    timing = vs_pytorch.time_calls(step, warmup=0, repeats=vs_pytorch.MIN_REPEATS, budget_s=seconds,
                                   min_seconds=seconds)
    return timing["median_ms"], timing["steps"]


def warm_variants(spec, warmup):
    """`{name: (step, torch threads)}`: the zoo step and PyTorch eager at each thread count of
    `spec`, each called `warmup` times (the first call compiles)."""
    sides = vs_pytorch.setup(spec)
    variants = {"zoo": (sides.zoo_step, None)} | {f"torch_{t}": (sides.eager_step, t) for t in vs_pytorch.THREADS}
    for step, threads in variants.values():
        with vs_pytorch.torch_threads(threads):
            for _ in range(warmup):
                step()
    return variants


def trace(spec, seconds, block_s=BLOCK_S, warmup=5):
    """Alternating blocks of the zoo step and PyTorch eager at each thread count: one row per cycle."""
    variants = warm_variants(spec, warmup)
    cycles, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds:
        cycle = {"t_s": time.perf_counter() - start}
        for name, (step, threads) in variants.items():
            with vs_pytorch.torch_threads(threads):
                cycle[f"{name}_ms"], cycle[f"{name}_steps"] = _block(step, block_s)
        cycle["torch_ms"] = min(cycle[f"torch_{t}_ms"] for t in vs_pytorch.THREADS)
        cycle["speedup"] = cycle["torch_ms"] / cycle["zoo_ms"]
        cycles.append(cycle)
    return {"series": spec["series"], "label": spec["label"], "block_s": block_s, "cycles": cycles}


# What the neighbour process runs (`python -c`): the second core busy with arithmetic only, or
# streaming 2 x 256 MB through the caches and memory.
NEIGHBOURS = {
    "none": None,
    "cpu": "while True: pass",
    "memory": "import numpy as np\na = np.ones(2**25); b = np.empty_like(a)\nwhile True: np.copyto(b, a)",
}


@contextlib.contextmanager
def neighbour(kind):
    """Another process running `NEIGHBOURS[kind]` for the duration of the block."""
    code = NEIGHBOURS[kind]
    process = None if code is None else subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.5)  # let it start (and the memory one fill its arrays)
        yield
    finally:
        if process is not None:
            process.kill()
            process.wait()


def neighbours(spec, rounds=2, block_s=1.0, blocks=2, warmup=5):
    """Median ms of the zoo step and of PyTorch eager at each thread count under each neighbour,
    the neighbours taking turns for `rounds` rounds of `blocks` blocks per variant."""
    variants = warm_variants(spec, warmup)
    samples = {kind: {name: [] for name in variants} for kind in NEIGHBOURS}
    for _ in range(rounds):
        for kind in NEIGHBOURS:
            with neighbour(kind):
                for _ in range(blocks):
                    for name, (step, threads) in variants.items():
                        with vs_pytorch.torch_threads(threads):
                            samples[kind][name].append(_block(step, block_s)[0])
    rows = []
    for kind, by_variant in samples.items():
        row = {"series": spec["series"], "label": spec["label"], "neighbour": kind}
        row |= {f"{name}_ms": float(np.median(values)) for name, values in by_variant.items()}
        row["torch_ms"] = min(row[f"torch_{t}_ms"] for t in vs_pytorch.THREADS)
        row["speedup"] = row["torch_ms"] / row["zoo_ms"]
        rows.append(row)
    return rows


def _spread(values):
    values = np.asarray(values, float)
    return f"{np.median(values):.2f} ({values.min():.2f}-{values.max():.2f})"


def render(record):
    """Markdown: the repeats per network, the trace per network, and the verdict on 5x."""
    machine = record["machine"]
    lines = ["# Spread of the dense speed-ups nearest 5x (`benchmarks/speedup_spread.py`)", "",
             f"{machine['cpu']}, {machine['cores']} cores; TensorFlow {machine['tensorflow']}, PyTorch "
             f"{machine['torch']}; run {record['date']}, {record['seconds'] / 60:.0f} min. Speed-up: the faster "
             "PyTorch eager thread count's median step over the zoo's (> 1: the zoo is faster).", "",
             f"## {record['runs']} runs of each comparison (`vs_pytorch.compare`, no torch.compile)", "",
             "| comparison | runs | speed-up median (min-max) | runs under 5x | zoo ms median (min-max) | "
             "torch eager ms median (min-max) | load 1-min |", "|---|---|---|---|---|---|---|"]
    for series in dict.fromkeys(r["series"] for r in record["repeats"]):
        rows = [r for r in record["repeats"] if r["series"] == series]
        loads = [v for r in rows for v in r["load_average_1min"]]
        lines.append(f"| {series} N={record['depth']} | {len(rows)} | {_spread([r['speedup'] for r in rows])} | "
                     f"{sum(r['speedup'] < TARGET for r in rows)} | {_spread([r['zoo_ms'] for r in rows])} | "
                     f"{_spread([r['torch_ms'] for r in rows])} | {min(loads):.1f}-{max(loads):.1f} |")
    lines += ["", f"## Trace: {record['traces'][0]['block_s']} s blocks, zoo and PyTorch eager taking turns", "",
              "| comparison | cycles | speed-up median (min-max) | cycles under 5x | zoo ms p10 / p50 / p90 | "
              "torch eager ms p10 / p50 / p90 | zoo slowest / median | torch slowest / median |",
              "|---|---|---|---|---|---|---|---|"]
    for t in record["traces"]:
        cycles = t["cycles"]

        def pct(key):
            return " / ".join(f"{v:.2f}" for v in np.percentile([c[key] for c in cycles], [10, 50, 90]))

        def slowest(key):
            values = [c[key] for c in cycles]
            return f"x{max(values) / np.median(values):.2f}"

        lines.append(f"| {t['label']} | {len(cycles)} | {_spread([c['speedup'] for c in cycles])} | "
                     f"{sum(c['speedup'] < TARGET for c in cycles)} | {pct('zoo_ms')} | {pct('torch_ms')} | "
                     f"{slowest('zoo_ms')} | {slowest('torch_ms')} |")
    if record.get("neighbours"):
        threads = vs_pytorch.THREADS
        lines += ["", "## Neighbours: another process on the second core", "",
                  "Medians of 1 s blocks; `cpu`: pure Python arithmetic, `memory`: copying a 256 MB array "
                  "again and again. The same process, the neighbours taking turns.", "",
                  "| comparison | neighbour | zoo ms | " + " | ".join(f"torch eager {t} thr ms" for t in threads)
                  + " | speed-up |", "|---|---|---|" + "---|" * len(threads) + "---|"]
        for row in record["neighbours"]:
            lines.append(f"| {row['label']} | {row['neighbour']} | {row['zoo_ms']:.2f} | "
                         + " | ".join(f"{row[f'torch_{t}_ms']:.1f}" for t in threads) + f" | x{row['speedup']:.2f} |")
        lines += [""] + neighbour_effects(record["neighbours"])
    lines += ["", "## Verdict", "", verdict(record), ""]
    return "\n".join(lines)


def neighbour_effects(rows):
    """Per network: each side's step time with each neighbour over its time with none."""
    lines = []
    for series in dict.fromkeys(r["series"] for r in rows):
        by_kind = {r["neighbour"]: r for r in rows if r["series"] == series}
        alone = by_kind["none"]
        effects = [f"with the `{kind}` neighbour the zoo's step took x{by_kind[kind]['zoo_ms'] / alone['zoo_ms']:.2f} "
                   f"its time alone and PyTorch eager's (faster thread count) "
                   f"x{by_kind[kind]['torch_ms'] / alone['torch_ms']:.2f}"
                   for kind in NEIGHBOURS if kind != "none"]
        lines.append(f"- {series}: " + "; ".join(effects) + ".")
    return lines


def verdict(record):
    """Whether every run and trace cycle reached 5x, and how often each fell short."""
    speedups = [r["speedup"] for r in record["repeats"]] + [c["speedup"] for t in record["traces"] for c in t["cycles"]]
    short = sum(s < TARGET for s in speedups)
    runs = len(record["repeats"])
    cycles = len(speedups) - runs
    if not short:
        return f"- At least 5x in all {runs} runs and all {cycles} trace cycles."
    under_runs = sum(r["speedup"] < TARGET for r in record["repeats"])
    return (f"- **Not at least 5x in every sample**: under 5x in {under_runs} of {runs} runs and "
            f"{short - under_runs} of {cycles} trace cycles; lowest x{min(speedups):.2f}, median "
            f"x{np.median(speedups):.2f}.")


def plot(record, path):
    """Speed-up per run, and each trace's step times and speed-up against time, with the 5x line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traces = record["traces"]
    fig, axes = plt.subplots(2, 1 + len(traces), figsize=(5 * (1 + len(traces)), 7), squeeze=False)
    ax = axes[0, 0]
    for k, series in enumerate(dict.fromkeys(r["series"] for r in record["repeats"])):
        rows = [r for r in record["repeats"] if r["series"] == series]
        ax.plot([r["run"] + 1 for r in rows], [r["speedup"] for r in rows], "o-", color=vs_pytorch.COLOURS[k],
                label=f"{series} N={record['depth']}")
    ax.axhline(TARGET, color="k", ls=":", label="5x")
    ax.set(xlabel="run", ylabel="speed-up vs best PyTorch eager", title="repeated comparisons")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    for k, series in enumerate(dict.fromkeys(r["series"] for r in record["repeats"])):
        rows = [r for r in record["repeats"] if r["series"] == series]
        ax.scatter([r["zoo_ms"] for r in rows], [r["torch_ms"] for r in rows], color=vs_pytorch.COLOURS[k],
                   label=series)
    hi = max(r["zoo_ms"] for r in record["repeats"]) * 1.2
    ax.plot([0, hi], [0, TARGET * hi], "k:", label="5x (above the line: faster than 5x)")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, None)
    ax.set(xlabel="zoo ms per step", ylabel="torch eager ms per step", title="each run: zoo against PyTorch")
    ax.legend(fontsize=8)
    for k, t in enumerate(traces, start=1):
        times = [c["t_s"] for c in t["cycles"]]
        ax = axes[0, k]
        ax.plot(times, [c["zoo_ms"] for c in t["cycles"]], ".-", color=vs_pytorch.COLOURS[0], label="zoo")
        ax.plot(times, [c["torch_ms"] / TARGET for c in t["cycles"]], ".-", color=vs_pytorch.COLOURS[1],
                label="best torch eager / 5")
        ax.set(xlabel="s", ylabel="ms per step", title=f"trace: {t['label']}")
        ax.legend(fontsize=8)
        ax = axes[1, k]
        ax.plot(times, [c["speedup"] for c in t["cycles"]], ".-", color=vs_pytorch.COLOURS[2])
        ax.axhline(TARGET, color="k", ls=":")
        ax.set(xlabel="s", ylabel="speed-up per cycle", title=f"trace: {t['series']}, {t['block_s']} s blocks")
    loads = [v for r in record["repeats"] for v in r["load_average_1min"]]
    fig.suptitle(f"Dense speed-ups nearest 5x, {record['machine']['cores']} cores, 1-min load "
                 f"{min(loads):.1f}-{max(loads):.1f}")
    fig.tight_layout()
    tmp = path + ".tmp"
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def run(width, depth, runs, trace_seconds, mode, neighbour_rounds=2):
    """The record written to JSON: repeats of both networks, a trace of each, then each under the
    neighbours (`neighbour_rounds` rounds; 0: not measured)."""
    torch.set_num_threads(vs_pytorch.THREADS[0])
    specs = [dense_spec(network, width, depth, mode) for network in NETWORKS]
    record = {"mode": mode, "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": vs_pytorch.machine(),
              "width": width, "depth": depth, "runs": runs}
    start = time.perf_counter()
    record["repeats"] = repeats(specs, runs, mode)
    block_s = BLOCK_S if mode == "full" else 0.1
    record["traces"] = [trace(spec, trace_seconds, block_s) for spec in specs]
    if neighbour_rounds:
        record["neighbours"] = [row for spec in specs
                                for row in neighbours(spec, neighbour_rounds, block_s=2 * block_s)]
    record["seconds"] = time.perf_counter() - start
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="comparisons of each network")
    parser.add_argument("--trace-seconds", type=float, default=60.0, help="length of each network's trace")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--depth", type=int, default=256)
    parser.add_argument("--neighbour-rounds", type=int, default=2,
                        help="rounds of the neighbour comparison (0: skip it)")
    parser.add_argument("--quick", action="store_true", help="N = 16, width 2, one run, a 2 s trace, one round")
    parser.add_argument("--report-only", action="store_true", help="rewrite the table and figure from the JSON")
    args = parser.parse_args(argv)
    for name in ("runs", "width", "depth"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.trace_seconds <= 0:
        parser.error("--trace-seconds must be positive")
    if args.quick:
        args.width, args.depth, args.runs, args.trace_seconds, args.neighbour_rounds = 2, 16, 1, 2.0, 1
    if args.neighbour_rounds < 0:
        parser.error("--neighbour-rounds must be at least 0")
    stem = os.path.join(OUT, "speedup_spread" + ("_quick" if args.quick else ""))
    if args.report_only:
        with open(stem + ".json") as f:
            record = json.load(f)
    else:
        record = run(args.width, args.depth, args.runs, args.trace_seconds, "quick" if args.quick else "full",
                     args.neighbour_rounds)
        os.makedirs(OUT, exist_ok=True)
        write_text(stem + ".json", json.dumps(record, indent=1))
    text = render(record)
    write_text(stem + ".md", text)
    plot(record, stem + ".png")
    print(text)


if __name__ == "__main__":
    main()
