"""Footprint benchmark of a pretrained entry's deployment artefacts, and `docs/deployment.md`.

    python -m export.bench hr17_resnet_conv_fashion_mnist --limit 500   # quick run, one entry
    python -m export.bench --all                                         # every pretrained entry
    python -m export.bench --report                                      # docs/deployment.md + figures

Why: the export package promises that ONNX Runtime serves the models faster and in far less
memory than TensorFlow, and that int8 shrinks them without costing accuracy. This measures it on
the same data: per artefact (Keras reference, SavedModel, ONNX fp32/int8/fp16, LiteRT fp32/int8)
the file size, latency p50/p99 at batch 1 and 32 (after warm-up), top-1 accuracy on the entry's
evaluation split, max |logits - Keras logits| on 32 inputs, and the peak RSS of a fresh process
that only loads the artefact and runs one batch of 32. Those children import numpy and their
runtime only (no TensorFlow for ONNX/LiteRT), so the module imports nothing heavy at top level.
Results go to `<out>/<name>/bench.json` with the machine (CPU, cores, load average: it is shared).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ARTEFACTS = {  # name -> (file under <out>/<name>/, runtime kind)
    "keras": (None, "keras"),
    "saved_model": ("saved_model/1", "saved_model"),
    "onnx_fp32": ("model.onnx", "onnx"),
    "onnx_int8": ("model_int8.onnx", "onnx"),
    "onnx_fp16": ("model_fp16.onnx", "onnx"),
    "litert_fp32": ("model.tflite", "litert"),
    "litert_int8": ("model_int8.tflite", "litert"),
}
PDE_CNNS = ("rh18_hamiltonian_fashion_mnist", "rh18_parabolic_fashion_mnist", "rh18_second_order_fashion_mnist")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_atomic(path, data):
    """Write text or bytes to `path` through a temporary file and `os.replace`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=os.path.dirname(os.path.abspath(path)), delete=False) as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)


# ---- the memory child: numpy + one runtime, nothing else ----------------------------------------

def _run_one_batch(path, kind, batch=32):
    x = lambda shape: np.random.default_rng(0).uniform(0, 255, (batch, *shape)).astype("float32")  # noqa: E731
    if kind == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        inp = session.get_inputs()[0]
        session.run(None, {inp.name: x(inp.shape[1:])})
    elif kind == "litert":
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=path).get_signature_runner("serving_default")
        ((name, detail),) = runner.get_input_details().items()
        runner(**{name: x(detail["shape"][1:])})
    elif kind == "saved_model":
        import tensorflow as tf

        signature = tf.saved_model.load(path).signatures["serving_default"]
        ((name, spec),) = signature.structured_input_signature[1].items()
        signature(**{name: tf.constant(x(spec.shape[1:]))})
    elif kind == "keras":  # `path` is the entry name
        import tensorflow as tf

        import zoo

        model = zoo.load(path)
        model(tf.constant(x(model.inputs[0].shape[1:])), training=False)
    else:
        raise ValueError(f"Unknown kind {kind!r}; expected onnx, litert, saved_model or keras")


def measure_memory_child(path, kind):
    """In the child: load, run one batch, report peak RSS (KiB) and heavy imports.

    `peak_rss_kib` is `VmHWM` of /proc/self/status (this process image's own peak). `ru_maxrss`
    is reported too but not used where VmHWM exists: Linux carries the parent's peak across
    (v)fork + exec into it, so a child of the 1.3 GB benchmark process reads >= 1.3 GB.
    """
    import resource

    _run_one_batch(path, kind)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status = open("/proc/self/status").read().splitlines() if os.path.exists("/proc/self/status") else []
    hwm = next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), maxrss)
    return {"peak_rss_kib": hwm, "ru_maxrss_kib": maxrss,
            "imported_tensorflow": "tensorflow" in sys.modules, "imported_keras": "keras" in sys.modules}


def peak_rss(path, kind):
    """Spawn a fresh `python -m export.bench --measure-memory` process; its parsed JSON."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "export.bench", "--measure-memory", path, "--kind", kind],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"memory child for {path} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- measuring in the parent ---------------------------------------------------------------------

def machine_info():
    from importlib import metadata

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "unknown") if os.path.exists("/proc/cpuinfo") else "unknown"
    versions = {}
    for label, dists in {"tensorflow": ("tensorflow", "tensorflow-cpu"), "keras": ("keras",),
                         "onnxruntime": ("onnxruntime",), "ai-edge-litert": ("ai-edge-litert",)}.items():
        for dist in dists:
            try:
                versions[label] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                versions[label] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": sys.version.split()[0], "versions": versions}


def entry_data(card, limit=None, num_calibration=200):
    """`(x_eval, y_eval, x_calibration)`: the card's evaluation split and real training inputs."""
    from export.quantize import calibration_sample
    from training.evaluate import load_split

    dataset = card["dataset"]["name"]
    x, y = load_split(dataset, card["metrics"]["split"])
    x_train, _ = load_split(dataset, "train")
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return np.asarray(x, "float32"), np.asarray(y), calibration_sample(x_train, num_calibration)


def export_artefact(artefact, model, out_dir, calibration):
    """Write one artefact under `out_dir` (ONNX fp32 must exist for int8/fp16); returns its path."""
    from export.litert import export_litert
    from export.onnx import export_onnx
    from export.quantize import convert_onnx_fp16, quantize_onnx_int8
    from export.saved_model import export_saved_model

    path = os.path.join(out_dir, ARTEFACTS[artefact][0])
    fp32 = os.path.join(out_dir, ARTEFACTS["onnx_fp32"][0])
    {"saved_model": lambda: export_saved_model(model, out_dir, "saved_model", 1, overwrite=True),
     "onnx_fp32": lambda: export_onnx(model, path, overwrite=True),
     "onnx_int8": lambda: quantize_onnx_int8(fp32, path, calibration, overwrite=True),
     "onnx_fp16": lambda: convert_onnx_fp16(fp32, path, overwrite=True),
     "litert_fp32": lambda: export_litert(model, path, overwrite=True),
     "litert_int8": lambda: export_litert(model, path, representative=calibration, overwrite=True)}[artefact]()
    return path


def size_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def logits_function(artefact, model, path):
    """`f(x: float32 array) -> logits array`; Keras is `model(x, training=False)` on a tf tensor."""
    if artefact == "keras":
        import tensorflow as tf

        return lambda x: model(tf.convert_to_tensor(x), training=False).numpy()
    from export.runtime import load_predictor

    predictor = load_predictor(path)  # timed through `predict`, whose input check costs microseconds
    return lambda x: predictor.predict(x)["logits"]


def latency_ms(fn, x, warmup, repeats):
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - start) * 1e3)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}


def measure(artefact, fn, x, y, reference, warmup, repeats):
    """Latency, accuracy and logit deviation of one artefact.

    `reference`: `{batch size: Keras logits of the first inputs}`; the deviation is measured at
    each of those batch sizes, since a runtime's summation order can depend on the batch.
    """
    from training.evaluate import evaluate_arrays

    batch32 = np.resize(x, (32, *x.shape[1:])).astype("float32")
    return {
        "latency_ms": {str(b): latency_ms(fn, xb, warmup, repeats[b]) for b, xb in ((1, x[:1]), (32, batch32))},
        "accuracy": evaluate_arrays(lambda xb, training=False: fn(xb), x, y, progress=False)["accuracy"],
        "max_abs_logit_diff": {str(b): float(np.max(np.abs(fn(x[:b]) - logits)))
                               for b, logits in reference.items()},
    }


def logit_diffs(row):
    """`{batch size: max |Δ logits|}` of a row (JSON keys are strings)."""
    return {int(b): v for b, v in row["max_abs_logit_diff"].items()}


def bench_model(name, out="runs/bench", limit=None, warmup=10, repeats=(100, 30)):
    """Export, measure and record every artefact of pretrained entry `name`; returns the record."""
    from tqdm.auto import tqdm

    import zoo
    from export.parity import BATCH_SIZES, float32_error
    from zoo.cards import weights_file

    record = {"name": name, "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": machine_info() | {"load_average_start": os.getloadavg()[0]},
              "settings": {"warmup": warmup, "repeats": {"1": repeats[0], "32": repeats[1]}, "limit": limit}}
    card, model, out_dir = zoo.card(name), zoo.load(name), os.path.join(out, name)
    x, y, calibration = entry_data(card, limit)
    record |= {"dataset": card["dataset"]["name"], "split": card["metrics"]["split"], "num_examples": len(x),
               "card_accuracy": card["metrics"]["accuracy"], "rows": [], "errors": {}}
    reference = None
    for artefact in (bar := tqdm(ARTEFACTS, desc=name, unit="artefact")):
        bar.set_postfix_str(artefact)
        kind = ARTEFACTS[artefact][1]
        try:
            path = name if artefact == "keras" else export_artefact(artefact, model, out_dir, calibration)
            fn = logits_function(artefact, model, path)
            reference = reference or {b: fn(x[:b]) for b in BATCH_SIZES}
            row = {"artefact": artefact, "kind": kind, "path": path,
                   "bytes": weights_file(card)["bytes"] if artefact == "keras" else size_bytes(path)}
            row |= measure(artefact, fn, x, y, reference, warmup, {1: repeats[0], 32: repeats[1]})
            row["memory"] = peak_rss(path, kind)
            record["rows"].append(row)
        except Exception as error:  # one failing export must not hide the others' figures
            record["errors"][artefact] = f"{type(error).__name__}: {error}"
    record["keras_float32_error"] = float32_error(model, card["architecture"], card["config"], x[:32])
    record["machine"]["load_average_end"] = os.getloadavg()[0]
    write_atomic(os.path.join(out_dir, "bench.json"), json.dumps(record, indent=1) + "\n")
    return record


# ---- report --------------------------------------------------------------------------------------

def _rows(record):
    return {row["artefact"]: row for row in record["rows"]}


def model_table(record):
    rows = _rows(record)
    fp32 = rows.get("onnx_fp32", {}).get("bytes")
    lines = ["| artefact | size KB | vs ONNX fp32 | p50 / p99 ms (b=1) | p50 / p99 ms (b=32) | peak RSS MB "
             "| accuracy | max \\|Δ logits\\| (b=1 / 32) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for artefact, row in rows.items():
        lat, share = row["latency_ms"], f"{row['bytes'] / fp32:.0%}" if fp32 else "–"
        times = " | ".join(f"{lat[b]['p50']:.2f} / {lat[b]['p99']:.2f}" for b in ("1", "32"))
        lines.append(f"| {artefact} | {row['bytes'] / 1e3:,.1f} | {share} | {times} "
                     f"| {row['memory']['peak_rss_kib'] / 1024:,.0f} | {row['accuracy']:.2%} "
                     f"| {' / '.join(f'{v:.1e}' for _, v in sorted(logit_diffs(row).items()))} |")
    lines += [f"\nExport of `{a}` failed: {e}" for a, e in record.get("errors", {}).items()]
    return "\n".join(lines)


def _check(value, ok):
    return f"{value} ({'holds' if ok else '**does not hold**'})"


def summaries(records):
    """The three acceptance items, measured, per model."""
    by_name = {r["name"]: _rows(r) for r in records}
    speed = []
    for name in PDE_CNNS:
        rows = by_name.get(name, {})
        if "keras" in rows and "onnx_fp32" in rows:
            ratio = rows["keras"]["latency_ms"]["1"]["p50"] / rows["onnx_fp32"]["latency_ms"]["1"]["p50"]
            speed.append(f"`{name}`: " + _check(f"{ratio:.1f}x faster", ratio >= 3))
        else:
            speed.append(f"`{name}`: not measured yet")
    small, memory, graph_bound, less_accurate = [], [], [], []
    for name, rows in by_name.items():
        if "onnx_int8" in rows and "onnx_fp32" in rows:
            share = rows["onnx_int8"]["bytes"] / rows["onnx_fp32"]["bytes"]
            drop = round((rows["onnx_fp32"]["accuracy"] - rows["onnx_int8"]["accuracy"]) * 100, 6)
            small.append(f"`{name}`: size {_check(f'{share:.0%} of fp32', share <= 0.35)}, accuracy "
                         + _check(f"{-drop:+.2f} points", drop <= 1))
            if drop > 1:
                less_accurate.append(f"`{name}`")
            parts = [_weight_bytes(rows[a].get("path")) for a in ("onnx_fp32", "onnx_int8")]
            if share > 0.35 and None not in parts:
                (w32, g32), (w8, g8) = parts
                graph_bound.append(f"`{name}`: fp32 {w32 / 1024:.1f} KiB weights + {g32 / 1024:.1f} KiB graph, "
                                   f"int8 {w8 / 1024:.1f} KiB + {g8 / 1024:.1f} KiB")
        if "onnx_fp32" in rows and "saved_model" in rows:
            onnx_mb, tf_mb = (rows[a]["memory"]["peak_rss_kib"] / 1024 for a in ("onnx_fp32", "saved_model"))
            memory.append(f"`{name}`: " + _check(f"{onnx_mb:.0f} MB vs {tf_mb:.0f} MB ({onnx_mb / tf_mb:.0%})",
                                                 onnx_mb <= tf_mb / 4))
    parity = []
    for record in records:
        rows = _rows(record)
        diffs = [logit_diffs(rows[a]) for a in ("saved_model", "onnx_fp32", "litert_fp32") if a in rows]
        if diffs:
            worst = {b: max(d[b] for d in diffs if b in d) for b in sorted({b for d in diffs for b in d})}
            own = {int(b): v for b, v in record.get("keras_float32_error", {}).items()}
            over = [b for b, v in worst.items() if v > 1e-5]
            note = "".join(f"; Keras float32 itself is {own[b]:.1e} from the float64 result at batch {b}"
                           for b in over if b in own)
            figures = " / ".join(f"{v:.1e}" for v in worst.values())
            batches = " / ".join(str(b) for b in worst)
            parity.append(f"`{record['name']}`: " + _check(f"{figures} (batch {batches})", not over) + note)
    looped = [name for name, rows in by_name.items() if _has_loop(rows.get("onnx_fp32", {}).get("path"))]
    why = ("" if not looped else
           " Why it fails for " + ", ".join(f"`{n}`" for n in looped) + ": these blocks have 1,024 steps and "
           "are exported with an ONNX `Loop` (unrolling them took tf2onnx minutes and 10k nodes); ONNX Runtime's "
           "quantiser does not quantise ops inside a Loop body, so their weights stay float32 and the int8 file "
           "only adds the head's quantisation nodes; fp16 conversion is refused for Loop graphs "
           "(onnxconverter-common breaks the body's types), and LiteRT int8 accumulates quantisation error "
           "over 1,024 steps.")
    if graph_bound:
        why += (" Where the size target is missed, the bytes (from the files): " + "; ".join(graph_bound)
                + ". int8 stores the weights in a quarter of the bytes but adds QuantizeLinear/"
                "DequantizeLinear nodes with their scales and zero points for every quantised tensor: "
                "with weights this small (a few hundred per layer), the added graph outweighs the saving.")
    if less_accurate:
        why += (" Where accuracy is missed (" + ", ".join(less_accurate) + "): int8 rounds the state at every "
                "step, here 2 or 4 numbers per point, to one of 256 levels of its calibrated range, and over "
                "8 to 64 steps the rounding moves points across the thin margins between the interleaved "
                "classes. These networks are a few kB; their fp16 files keep the accuracy (table below).")
    return [
        "**(a) ONNX Runtime fp32 vs Keras `model(x)`, batch 1, p50** (target: ONNX at least 3x faster): "
        + "; ".join(speed) + ".",
        "**(b) int8 ONNX** (target: file at most 35% of fp32, accuracy within 1 point of fp32): "
        + ("; ".join(small) or "no model measured yet") + "." + why,
        "**(c) Peak RSS, ONNX Runtime process vs TensorFlow process serving the SavedModel** (target: ONNX "
        "at most 1/4 of TF): " + ("; ".join(memory) or "no model measured yet") + ".",
        "**(d) Parity, float32 SavedModel / ONNX / LiteRT vs Keras, max |Δ logits| on the first 1 and 32 "
        "real inputs** "
        "(target: 1e-5): " + ("; ".join(parity) or "no model measured yet") + ". Exported dense blocks "
        "round as TensorFlow does (`export.tf_numerics`): their `tanh` is TensorFlow's own [9/8] rational "
        "spelled out in basic ops, which ONNX Runtime and LiteRT compute bit for bit as TensorFlow does, "
        "and for LiteRT their bias stays a separate add instead of FULLY_CONNECTED's fused bias (XNNPack "
        "starts each dot product from it). Without that, the runtimes' own `tanh` (up to 6 ulps from "
        "TensorFlow's) put the 2-D ResNets 2.8e-5 to 4.3e-5 from Keras at batch 32: their deep narrow "
        "blocks amplify round-off, and Keras' own float32 logits are 1.0e-5 to 2.2e-5 from a float64 "
        "copy's (`export.parity.float32_error`). In ONNX each such `tanh` is one call of a model-local "
        "function (`TensorflowTanh`, 24 element-wise ops), which keeps the files small but costs these "
        "tiny networks latency (the 64-step antisymmetric one: 0.16 ms before, 0.74 ms now, at batch 1); "
        "float16 files get the standard `Tanh` back, and LiteRT int8 keeps its own. Conv blocks keep the "
        "runtimes' native `Tanh`, which is within the target there and twice as fast as the spelled-out "
        "one. The H&R MNIST networks' 4,704-input heads are "
        "`zoo.layers.ChunkedDense`: summed in 12 chunks, their logits no longer depend on the batch size "
        "(TensorFlow's batch-1 matmul, one running sum, had put Keras' own batch-1 logits 2e-5 from exact)."
    ]


def _weight_bytes(path):
    """`(weight bytes, other bytes)` of an ONNX file (initializers vs the rest), if it is on disk."""
    if not path or not os.path.exists(path):
        return None
    import onnx
    from onnx import numpy_helper

    from export.onnx import iter_graphs

    weights = sum(numpy_helper.to_array(i).nbytes for graph in iter_graphs(onnx.load(path).graph)
                  for i in graph.initializer)
    return weights, os.path.getsize(path) - weights


def _has_loop(path):
    """Whether an ONNX file (if it is still on disk) contains a `Loop`."""
    if not path or not os.path.exists(path):
        return False
    from export.onnx import onnx_op_counts

    return "Loop" in onnx_op_counts(path)


def plot(records, key, ylabel, path):
    """Grouped bars per model and artefact, log scale; written atomically as PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(records) + 2), 4))
    width = 0.8 / len(ARTEFACTS)
    for i, artefact in enumerate(ARTEFACTS):
        values = [_rows(r).get(artefact) for r in records]
        ax.bar([j + i * width for j in range(len(records))], [key(v) if v else np.nan for v in values], width,
               label=artefact)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(records))])
    ax.set_xticklabels([r["name"] for r in records], rotation=25, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def write_report(out="runs/bench", docs="docs"):
    """Regenerate `docs/deployment.md` and its two figures from every `<out>/*/bench.json`."""
    paths = sorted(os.path.join(out, d, "bench.json") for d in os.listdir(out)) if os.path.isdir(out) else []
    records = [json.load(open(p)) for p in paths if os.path.exists(p)]
    if not records:
        raise FileNotFoundError(f"No bench.json under {out}/; run `python -m export.bench NAME` first")
    machines = {(r["machine"]["cpu"], r["machine"]["cores"]) for r in records}
    loads = [r["machine"][k] for r in records for k in ("load_average_start", "load_average_end")]
    text = ["# Deployment footprint", "",
            f"Generated by `python -m export.bench --report` from `{out}/*/bench.json` "
            "(`python -m export.bench NAME`); do not edit.", "",
            f"Machine: {'; '.join(f'{cpu}, {cores} cores' for cpu, cores in sorted(machines))}. It is shared: "
            f"1-minute load average {min(loads):.1f} to {max(loads):.1f} during the runs, so latencies are "
            "upper bounds. Versions: " + ", ".join(f"{k} {v}" for k, v in records[-1]["machine"]["versions"].items())
            + ". Runtimes use their default thread settings. Latency: after warm-up runs, percentiles over "
            "repeated single calls. Peak RSS: a fresh process that loads the artefact and runs one batch of 32 "
            "(the ONNX and LiteRT processes import neither TensorFlow nor Keras).", "",
            "## Acceptance", "", *(s + "\n" for s in summaries(records)),
            "![latency](figures/deployment_latency.png)", "", "![size](figures/deployment_size.png)", ""]
    for r in records:
        limited = " (first examples only: a quick run)" if r["settings"]["limit"] else ""
        text += [f"## `{r['name']}`", "", f"Accuracy on {r['num_examples']:,} examples of the {r['dataset']} "
                 f"{r['split']} split{limited}; card: {r['card_accuracy']:.2%}. Measured {r['date']}, load "
                 f"{r['machine']['load_average_start']:.1f} → {r['machine']['load_average_end']:.1f}.", "",
                 model_table(r), ""]
    write_atomic(os.path.join(docs, "deployment.md"), "\n".join(text))
    figures = os.path.join(docs, "figures")
    plot(records, lambda row: row["latency_ms"]["1"]["p50"], "p50 latency, batch 1 (ms)",
         os.path.join(figures, "deployment_latency.png"))
    plot(records, lambda row: row["bytes"] / 1e3, "size (KB)", os.path.join(figures, "deployment_size.png"))
    return os.path.join(docs, "deployment.md")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m export.bench", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="pretrained entries")
    parser.add_argument("--all", action="store_true", help="every pretrained entry")
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--limit", type=int, help="evaluate on the first K examples only (quick runs)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, nargs=2, default=(100, 30), metavar=("B1", "B32"),
                        help="timed repeats at batch 1 and batch 32")
    parser.add_argument("--report", action="store_true", help="regenerate docs/deployment.md")
    parser.add_argument("--docs", default="docs")
    parser.add_argument("--measure-memory", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_memory:
        print(json.dumps(measure_memory_child(args.measure_memory, args.kind)))
        return
    names = args.names
    if args.all:
        import zoo

        names = zoo.list_models(pretrained=True)
    if not names and not args.report:
        parser.error("give NAME..., --all or --report")
    for name in names:
        bench_model(name, args.out, args.limit, args.warmup, tuple(args.repeats))
    if args.report:
        print(write_report(args.out, args.docs))


if __name__ == "__main__":
    main()
