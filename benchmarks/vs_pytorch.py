"""The zoo against hand-written PyTorch: time of one training step (and inference) of the same network.

    python benchmarks/vs_pytorch.py [--quick] [--only dense|conv|pde] [--report-only]

Every comparison runs in this one process, on the same data shape and batch, starting from the
same weights (the zoo model's initial weights are copied into its PyTorch peer,
`benchmarks/peers/torch_models.py`, whose parameter count is checked equal):

- the zoo as a user gets it: `model.compile(optimizer=..., loss=...)` without `jit_compile`, so
  the zoo's own policy picks XLA or not (the resolved `model.jit_compile` is recorded), then
  `model.train_on_batch(x, y)` (`predict_on_batch(x)` for inference);
- PyTorch eager: `zero_grad`, forward, loss, `backward`, optimiser `step`, `loss.item()`
  (inference: `eval()` under `torch.inference_mode()`);
- `torch.compile` of the module (default mode, static shapes), skipped with the reason recorded
  when it fails, when its compile and first step pass 60 s (it is then aborted), or when that is
  predicted, linearly in `N` from the same model at a smaller depth: dynamo unrolls the depth
  loop, so compile time grows with `N`.

Dense networks (Adam; batch 256 of random 2-D points, 2 classes, T = 20): H&R 2017 antisymmetric
ResNet and Hamiltonian Verlet at N = 16, 64, 256, 1024 and width 2 and 8. Conv networks (SGD with
momentum; random 28x28x1 images of raw pixels): the H&R 2017 MNIST network (batch 128, training)
and the R&H 2018 Fashion-MNIST parabolic CNN (training at batch 125, inference at 1 and 125).

Threads: PyTorch runs with `torch.set_num_threads(os.cpu_count())`, the usual setting, and every
PyTorch figure is measured again with 1 thread as a control: on a machine loaded by other jobs,
OpenMP's barrier in every PyTorch op waits for a descheduled thread, which can make tiny ops
orders of magnitude slower. Speed-ups are against the faster of the two (the conservative figure).
TensorFlow keeps its default thread pools. `torch.compile` works in a fresh, empty inductor cache
(so its first step is a cold compile, as a new user sees it), after a one-off compile of a trivial
function that pays inductor's start-up once (recorded apart).

Each figure is the median and the 10th-90th percentiles of timed steps after untimed warm-up
steps, with the first step (tracing, compiling) timed on its own. The zoo and PyTorch eager (both
thread counts) take turns in 3 rounds (`time_alternating`), so that a slow phase of the shared
machine falls on both sides; a slow variant takes fewer
steps (at least 3) so that the whole run takes 10-15 minutes on 2 shared cores (a quarter to a
half of it in torch.compile attempts). The 1-minute load average
is recorded before and after each comparison. Writes benchmarks/results/vs_pytorch.{json,md,png}
(`--quick`: tiny repeats, fewer depths, no `torch.compile`, written to `vs_pytorch_quick.*`);
`--only` reruns one group and keeps the others' last results; `--report-only` rewrites the table
and figure from the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
import time
from typing import Callable, NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if __package__ in (None, ""):  # run as a script: make `benchmarks.peers` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402

import zoo  # noqa: E402
from training.atomic_files import write_text  # noqa: E402
from benchmarks.op_profiles import is_conv, tensorflow_profile, torch_profile  # noqa: E402
from benchmarks.peers import torch_models as peers  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
GROUPS = ("dense", "conv", "pde")
THREADS = sorted({os.cpu_count() or 1, 1}, reverse=True)  # the usual setting first, then the control
COMPILE_BUDGET_S = 60.0  # torch.compile: not started when predicted longer, aborted when it takes longer
MEASURE_BUDGET_S = 12.0  # skip a variant whose predicted first step + 3 steps take longer
MIN_REPEATS = 3
ROUNDS = 3  # the zoo and PyTorch eager take turns (`time_alternating`)

# warm-up steps, timed steps, and the seconds after which a variant stops at MIN_REPEATS steps
# (`min_seconds`: fast steps are timed for at least that long. The zoo's first few calls after
# PyTorch's turn are slower, likely its thread pool waking up: 4.5-5.8 ms against 2.8 ms for the
# PDE CNN at batch 1, which 10 calls in 3 rounds had put into the median.)
SETTINGS = {
    "full": {"dense": dict(warmup=3, repeats=20, budget_s=6.0, min_seconds=1.5),
             "image": dict(warmup=2, repeats=10, budget_s=10.0, min_seconds=1.5),
             "depths": (16, 64, 256, 1024), "widths": (2, 8), "compile": True},
    "quick": {"dense": dict(warmup=1, repeats=3, budget_s=2.0),
              "image": dict(warmup=1, repeats=3, budget_s=5.0),
              "depths": (16, 64), "widths": (2,), "compile": False},
}


# === What is compared ===


def specs(groups, mode):
    """The comparisons of `groups`, each a dict naming the zoo model, its overrides, batch and task."""
    s = SETTINGS[mode]
    out = []
    if "dense" in groups:
        for network in ("antisymmetric", "verlet"):
            for width in s["widths"]:
                for depth in s["depths"]:
                    out.append(dict(group="dense", model=f"hr17_{network}", task="train", batch=256,
                                    series=f"{network} w={width}", depth=depth,
                                    overrides=dict(depth=depth, T=20.0, width=width, num_classes=2, lifting="pad")))
    if "conv" in groups:
        out.append(dict(group="conv", model="hr17_antisymmetric_conv", task="train", batch=128,
                        series="H&R MNIST conv (N=16, w=6)", overrides={}))
    if "pde" in groups:
        for task, batch in (("train", 125), ("infer", 1), ("infer", 125)):
            out.append(dict(group="pde", model="rh18_parabolic_fashion_mnist", task=task, batch=batch,
                            series="R&H parabolic CNN", overrides={}))
    for spec in out:
        depth = f" N={spec['depth']}" if "depth" in spec else ""
        spec["label"] = f"{spec['series']}{depth} {spec['task']} b={spec['batch']}"
    return out


def make_data(spec, seed=0):
    """Random inputs and labels: `(keras x, keras y, torch x, torch y)` holding the same values."""
    rng = np.random.default_rng(seed)
    if spec["group"] == "dense":
        x = rng.standard_normal((spec["batch"], 2)).astype("float32")
        y = (rng.random((spec["batch"], 1)) > 0.5).astype("float32")
        return x, y, torch.from_numpy(x), torch.from_numpy(y)
    x = rng.uniform(0, 255, (spec["batch"], 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, spec["batch"]).astype("int32")
    return x, y, torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y.astype("int64"))


def keras_training(spec):
    """Optimiser and loss of the zoo side: Adam for the dense nets, SGD with momentum for convs."""
    if spec["group"] == "dense":
        return keras.optimizers.Adam(1e-3), keras.losses.BinaryCrossentropy(from_logits=True)
    return keras.optimizers.SGD(0.01, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def torch_training(spec, parameters):
    """The same optimiser (Keras' Adam epsilon) and loss on the PyTorch side."""
    if spec["group"] == "dense":
        return torch.optim.Adam(parameters, lr=1e-3, eps=1e-7), torch.nn.BCEWithLogitsLoss()
    return torch.optim.SGD(parameters, lr=0.01, momentum=0.9), torch.nn.CrossEntropyLoss()


# === Timing ===


class TimeLimitExceeded(BaseException):
    """Raised by `time_limit`; a BaseException so that no compiler's `except Exception` swallows it."""


@contextlib.contextmanager
def time_limit(seconds):
    """Interrupt the block after `seconds` (SIGALRM, main thread; None: no limit)."""
    if seconds is None:
        yield
        return

    def expire(signum, frame):
        raise TimeLimitExceeded(f"over {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def time_calls(fn, warmup, repeats, budget_s, min_repeats=MIN_REPEATS, first_limit_s=None, min_seconds=0.0):
    """Wall-clock times of `fn()`: the first call alone (tracing, compiling; interrupted after
    `first_limit_s`), then untimed warm-up calls and timed calls. So that a pathologically slow
    variant cannot eat the run, warm-up stops after `budget_s / 4` and the timed calls after
    `budget_s` (both counted from the end of the first call), but at least `min_repeats` are timed.
    Fast steps are timed for at least `min_seconds` (more than `repeats` calls): 20 steps of a
    few milliseconds sample the shared machine for a tenth of a second, and its speed drifts.
    """
    first_s, first_end = first_and_warmup(fn, warmup, budget_s, first_limit_s)
    deadline = first_end + budget_s
    times, timed_from = [], time.perf_counter()
    while ((len(times) < repeats or time.perf_counter() - timed_from < min_seconds)
           and (len(times) < min_repeats or time.perf_counter() < deadline)):
        start = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - start))
    p10, p50, p90 = np.percentile(times, [10, 50, 90])
    return {"first_s": first_s, "median_ms": float(p50), "p10_ms": float(p10), "p90_ms": float(p90),
            "steps": len(times)}


@contextlib.contextmanager
def torch_threads(threads):
    """PyTorch on `threads` threads inside the block (None: unchanged), THREADS[0] after it."""
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(THREADS[0])


def first_and_warmup(fn, warmup, budget_s, first_limit_s=None):
    """`(seconds, end time)` of the first call of `fn` (interrupted after `first_limit_s`), after
    which up to `warmup` untimed calls run within `budget_s / 4`."""
    start = time.perf_counter()
    with time_limit(first_limit_s):
        fn()
    first_end = time.perf_counter()
    for _ in range(warmup):
        if time.perf_counter() > first_end + budget_s / 4:
            break
        fn()
    return first_end - start, first_end


def time_alternating(variants, warmup, repeats, budget_s, min_repeats=MIN_REPEATS, min_seconds=0.0,
                     rounds=ROUNDS):
    """`{name: timing}` of `variants` (`name -> (fn, threads)`), timed in alternating rounds.

    Each variant first gets its first call and warm-up alone, as in `time_calls`; then every
    round times each variant in turn for a `1/rounds` share of its calls, seconds and budget.
    The shared machine has slow phases of tens of seconds: measured one after the other, a
    phase that falls on one side only moved a speed-up by 1.5x between runs; alternating, it
    falls on all of them alike. `threads`: PyTorch's thread count for that variant, or None.
    Medians and percentiles over all timed calls of a variant.
    """
    calls, least = -(-repeats // rounds), -(-min_repeats // rounds)
    seconds, budget = min_seconds / rounds, budget_s / rounds

    def one_round(fn, samples):
        count, start = 0, time.perf_counter()
        while True:
            elapsed = time.perf_counter() - start
            if not ((count < calls or elapsed < seconds) and (count < least or elapsed < budget)):
                return
            call_start = time.perf_counter()
            fn()
            samples.append(1e3 * (time.perf_counter() - call_start))
            count += 1

    first = {}
    for name, (fn, threads) in variants.items():
        with torch_threads(threads):
            first[name] = first_and_warmup(fn, warmup, budget_s)[0]
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (fn, threads) in variants.items():
            with torch_threads(threads):
                one_round(fn, times[name])
    out = {}
    for name, samples in times.items():
        p10, p50, p90 = np.percentile(samples, [10, 50, 90])
        out[name] = {"first_s": first[name], "median_ms": float(p50), "p10_ms": float(p10), "p90_ms": float(p90),
                     "steps": len(samples), "rounds": rounds}
    return out


def predicted(history, key, depth, field):
    """`field` of the last measured depth of variant `key`, scaled linearly to `depth` (or None)."""
    last = history.get(key, {})
    return None if field not in last else last[field] * depth / last["depth"]


def zoo_fn(model, spec, x, y):
    """One zoo step as a user runs it: `train_on_batch` or `predict_on_batch` of the compiled model."""
    if spec["task"] == "train":
        return lambda: model.train_on_batch(x, y)
    return lambda: model.predict_on_batch(x)


def torch_fn(forward, module, spec, x, y):
    """One PyTorch step: a training step with the peer's optimiser, or inference in eval mode."""
    if spec["task"] == "infer":
        module.eval()

        def infer():
            with torch.inference_mode():
                return forward(x)

        return infer
    module.train()
    optimizer, loss_fn = torch_training(spec, module.parameters())

    def train():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(forward(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return train


def too_slow(history, variant, depth):
    """`{"skipped": reason}` when `variant` is predicted to take over MEASURE_BUDGET_S, else None."""
    step_ms = predicted(history, variant, depth, "median_ms") if depth else None
    if step_ms is None or (1 + MIN_REPEATS) * step_ms / 1e3 <= MEASURE_BUDGET_S:
        return None
    return {"skipped": f"predicted {step_ms / 1e3:.0f} s a step (from {history[variant]['label']})"}


def time_torch(fn, timing, key, label, depth, history, first_limit_s=None):
    """`{threads: timing}` of `fn` at every thread count, or a skip reason where predicted too slow.

    The first thread count (os.cpu_count()) runs first, so a compiling `fn` compiles with it,
    within `first_limit_s`.
    """
    out = {}
    for threads in THREADS:
        variant = f"{key}/{threads}"
        skip = too_slow(history, variant, depth)
        if skip:
            out[str(threads)] = skip
            continue
        with torch_threads(threads):
            limit = first_limit_s if threads == THREADS[0] else None
            out[str(threads)] = time_calls(fn, **timing, first_limit_s=limit)
        if depth:
            history[variant] = {"depth": depth, "label": label, **out[str(threads)]}
    return out


def compile_key(spec):
    """History key of `spec`'s torch.compile variant: per model, not width, since the compiled
    graph (its op count, which grows with N) is the same for every width."""
    return f"{spec['model']}/{spec['task']}/compile"


def compile_reason_to_skip(spec, history, enabled):
    """Why `torch.compile` is not tried for `spec` (None: try it)."""
    if not enabled:
        return "not run (--quick)"
    key = f"{compile_key(spec)}/{THREADS[0]}"
    first_s = predicted(history, key, spec.get("depth", 0), "first_s")
    if first_s is None or first_s < COMPILE_BUDGET_S:
        return None
    source = history[key]["label"]
    if history[key].get("aborted"):
        return f"not tried: compiling {source} took over {COMPILE_BUDGET_S:.0f} s"
    return f"predicted compile {first_s:.0f} s > {COMPILE_BUDGET_S:.0f} s (linear in N from {source})"



class Sides(NamedTuple):
    """Both sides of a comparison: the compiled zoo model, its PyTorch peer, one step of each, and
    the peer's input batch (for `torch.compile`)."""

    model: keras.Model
    module: torch.nn.Module
    zoo_step: Callable
    eager_step: Callable
    torch_x: torch.Tensor
    torch_y: torch.Tensor


def setup(spec):
    """`Sides` of `spec`: the zoo model compiled as a user compiles it, and its PyTorch peer holding
    the same weights, each with one step on `make_data(spec)`."""
    keras.backend.clear_session()
    model = zoo.create(spec["model"], **spec["overrides"])
    module = peers.peer(spec["model"], **spec["overrides"])
    peers.assert_same_param_count(module, model)
    peers.load_from_keras(module, model)  # both sides start from the same weights
    x, y, tx, ty = make_data(spec)
    model.compile(*keras_training(spec))  # no jit_compile: the zoo's default policy decides
    return Sides(model, module, zoo_fn(model, spec, x, y), torch_fn(module, module, spec, tx, ty), tx, ty)


def compare(spec, mode="full", history=None, compile_torch=None):
    """Time `spec` in the zoo, PyTorch eager and `torch.compile`; returns the result record."""
    settings = SETTINGS[mode]
    timing = settings["dense" if spec["group"] == "dense" else "image"]
    history = {} if history is None else history
    compile_torch = settings["compile"] if compile_torch is None else compile_torch
    load_before = os.getloadavg()[0]
    model, module, zoo_step, eager_fn, tx, ty = setup(spec)
    depth = spec.get("depth", 0)
    eager_key = f"{spec['series']}/{spec['task']}/eager"
    skipped = {t: too_slow(history, f"{eager_key}/{t}", depth) for t in THREADS}
    variants = {"zoo": (zoo_step, None)} | {t: (eager_fn, t) for t in THREADS if not skipped[t]}
    timings = time_alternating(variants, **timing)
    zoo_result = timings.pop("zoo") | {"jit_compile": bool(model.jit_compile)}
    if depth:
        for t, timing_result in timings.items():
            history[f"{eager_key}/{t}"] = {"depth": depth, "label": spec["label"], **timing_result}
    eager = {str(t): skipped[t] or timings[t] for t in THREADS}
    result = dict(spec, params=peers.count_params(module), zoo=zoo_result, torch_eager=eager)
    if spec["group"] != "dense":
        # What bounds a conv network: each framework's own convolution kernels inside the step.
        result["op_profile"] = {"zoo": tensorflow_profile(zoo_step)._asdict(),
                                "torch_eager": torch_profile(eager_fn)._asdict(), "torch_threads": THREADS[0]}

    reason = compile_reason_to_skip(spec, history, compile_torch)
    if reason is None:
        torch._dynamo.reset()  # a fresh cache for this module: no recompile limit, no reuse
        forward = torch.compile(module, dynamic=False)
        try:
            result["torch_compile"] = time_torch(torch_fn(forward, module, spec, tx, ty), timing,
                                                 compile_key(spec), spec["label"], depth, history,
                                                 first_limit_s=COMPILE_BUDGET_S)
        except TimeLimitExceeded:
            reason = f"aborted: compile + first step over {COMPILE_BUDGET_S:.0f} s"
            if depth:  # a lower bound, so that deeper nets are not tried
                history[f"{compile_key(spec)}/{THREADS[0]}"] = {"depth": depth, "label": spec["label"],
                                                               "first_s": COMPILE_BUDGET_S, "aborted": True}
        except Exception as error:  # noqa: BLE001  (any compiler failure is a result to report)
            reason = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
        finally:
            torch._dynamo.reset()
    if reason is not None:
        result["torch_compile"] = {"skipped": reason}
    result["load_average_1min"] = [load_before, os.getloadavg()[0]]
    return result


def torch_compile_startup():
    """Seconds of inductor's one-off start-up (imports, first forward and backward compile), paid
    here on a trivial function, not by the first network."""
    start = time.perf_counter()
    torch.compile(lambda t: (torch.sin(t) + 1).sum())(torch.ones(8, requires_grad=True)).backward()
    return time.perf_counter() - start


# === Summaries ===


def best_eager(result):
    """`(threads, median_ms)` of the fastest measured PyTorch eager thread count."""
    measured = [(int(t), r["median_ms"]) for t, r in result["torch_eager"].items() if "median_ms" in r]
    return min(measured, key=lambda item: item[1], default=(None, float("nan")))


def speedup(result):
    """Best PyTorch eager median over the zoo median (> 1: the zoo is faster)."""
    return best_eager(result)[1] / result["zoo"]["median_ms"]


def _ms(r):
    if "median_ms" not in r:
        return r["skipped"]
    return f"{r['median_ms']:.1f} ({r['p10_ms']:.1f}-{r['p90_ms']:.1f})"


def _compile_cells(result):
    tc = result["torch_compile"]
    if "skipped" in tc:
        return tc["skipped"], "-"
    cells = [f"{t} thr: {_ms(r)}" for t, r in tc.items()]
    first = tc[str(THREADS[0])]
    return "<br>".join(cells), f"{first['first_s']:.1f}" if "first_s" in first else "-"


def table(results):
    head = ["comparison", "params", "zoo ms (p10-p90)", "zoo first step s", "jit_compile"]
    head += [f"torch eager {t} thr ms" for t in THREADS]
    head += ["torch.compile ms", "torch.compile first step s", "zoo vs best eager", "load 1-min"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        compiled, compile_first = _compile_cells(r)
        z = r["zoo"]
        row = [r["label"], f"{r['params']:,}", _ms(z), f"{z['first_s']:.2f}", str(z["jit_compile"])]
        row += [_ms(r["torch_eager"].get(str(t), {"skipped": "-"})) for t in THREADS]
        row += [compiled, compile_first, f"x{speedup(r):.2f}",
                "{:.1f} -> {:.1f}".format(*r["load_average_1min"])]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def acceptance(results):
    """One line per acceptance criterion of issue 12: holds or not, with the figures."""
    lines = []
    deep = [r for r in results if r["group"] == "dense" and r["depth"] >= 256]
    if deep:
        worst = min(deep, key=speedup)
        verdict = "holds in this run" if speedup(worst) >= 5 else "**does not hold** in this run"
        lines.append(f"- Dense N >= 256 at least 5x faster than PyTorch eager: {verdict} (one sample of a shared "
                     "machine; `benchmarks/speedup_spread.py` repeats the rows nearest 5x); speed-ups "
                     + ", ".join(f"{r['series']} N={r['depth']}: x{speedup(r):.1f}" for r in deep)
                     + f" (vs the faster PyTorch thread count; zoo jit_compile "
                     f"{sorted({r['zoo']['jit_compile'] for r in deep})}).")
    deepest = [r for r in results if r["group"] == "dense" and r["depth"] == 1024]
    if deepest:
        slowest = max(r["zoo"]["first_s"] for r in deepest)
        verdict = "holds" if slowest < 5 else "**does not hold**"
        lines.append(f"- Compile (first step) under 5 s at N = 1024: {verdict}; "
                     + ", ".join(f"{r['series']}: {r['zoo']['first_s']:.2f} s" for r in deepest) + ".")
    convs = [r for r in results if r["group"] != "dense"]
    if convs:
        slow = [r for r in convs if speedup(r) < 1.5]
        verdict = "holds" if not slow else "**does not hold**"
        lines.append(f"- Conv networks at least 1.5x faster than PyTorch eager: {verdict}; "
                     + ", ".join(f"{r['label']}: x{speedup(r):.2f}" for r in convs) + ".")
        for r in slow:
            lines.append(f"  - {r['label']}: " + _conv_bound(r))
    return lines


def _conv_bound(r):
    """What bounds a conv network, from both frameworks' operator profiles of the same step.

    TensorFlow runs independent ops side by side, so its operator self times add up to more than
    the step's wall time; each framework's convolution share of its own operator time, applied to
    its step time, estimates the wall time its convolution kernels take.
    """
    zoo_ops, torch_ops = r["op_profile"]["zoo"], r["op_profile"]["torch_eager"]
    zoo_share = zoo_ops["conv_ms_per_step"] / zoo_ops["ms_per_step"]
    torch_share = torch_ops["conv_ms_per_step"] / torch_ops["ms_per_step"]
    torch_ms, zoo_ms = best_eager(r)[1], r["zoo"]["median_ms"]
    zoo_conv, torch_conv = zoo_share * zoo_ms, torch_share * torch_ms
    bound = torch_ms / zoo_conv
    text = (f"convolutions are {100 * zoo_share:.0f}% of the zoo's operator time (TensorFlow's profiler) and "
            f"{100 * torch_share:.0f}% of PyTorch's (its profiler): about {zoo_conv:.0f} ms of the zoo's "
            f"{zoo_ms:.0f} ms step and {torch_conv:.0f} ms of PyTorch's {torch_ms:.0f} ms (both call oneDNN). "
            f"With every other operator free the zoo would be at most x{bound:.2f} faster than PyTorch eager")
    if bound < 1.5:
        return text + ", so 1.5x is out of reach with these convolution kernels."
    others = ", ".join(f"`{k}` {v:.1f}" for k, v in zoo_ops["top"].items() if not is_conv(k))
    target = torch_ms / 1.5
    if zoo_ms <= target:
        return text + "."
    if r["task"] != "train":
        return (text + f". Its other operators take about {zoo_ms - zoo_conv:.0f} ms (PyTorch's "
                f"{torch_ms - torch_conv:.0f} ms); the largest, in ms of operator time per call: {others}.")
    return (text + f". 1.5x needs a {target:.0f} ms step: the other operators in {target - zoo_conv:.0f} ms instead "
            f"of {zoo_ms - zoo_conv:.0f} ms (PyTorch eager spends {torch_ms - torch_conv:.0f} ms on its own). Run op by "
            f"op, each of those streams the whole activation through memory; the largest, in ms of operator time per "
            f"step: {others}. Fusing them is what XLA does, and XLA's CPU convolutions are far slower (see the "
            f"depth-scaling table below), which is why the jit policy keeps conv nets off XLA on CPU; XLA on the "
            f"element-wise part alone, with the convolutions left to oneDNN, did not speed the step up either "
            f"(`benchmarks/pointwise_xla.py`, section below).")


def notes(results):
    """Observations the numbers support: the thread-count effect on PyTorch eager."""
    if len(THREADS) < 2:
        return []
    ratios = [(r["label"], r["torch_eager"][str(THREADS[0])]["median_ms"] / r["torch_eager"]["1"]["median_ms"])
              for r in results if all("median_ms" in r["torch_eager"].get(str(t), {}) for t in THREADS)]
    if not ratios:
        return []
    low, high = min(ratios, key=lambda x: x[1]), max(ratios, key=lambda x: x[1])
    return [f"- PyTorch eager with {THREADS[0]} threads vs 1 thread (median ratio, > 1: more threads is slower): "
            f"from x{low[1]:.2f} ({low[0]}) to x{high[1]:.2f} ({high[0]}). Large ratios come with other jobs on "
            "the cores (see the load column): every multi-threaded op then waits at OpenMP's barrier for a "
            "descheduled thread, which costs tiny ops (the dense nets) far more than their work."]


def _method(record):
    """The paragraph saying how every figure was taken."""
    text = (f"PyTorch: `torch.set_num_threads(os.cpu_count())` = {THREADS[0]} threads, the usual setting; every "
            "PyTorch figure is repeated with 1 thread as a control, and speed-ups are against the faster of the "
            "two. TensorFlow keeps its default thread pools. The zoo is compiled as a user gets it "
            "(`model.compile(optimizer, loss)`, no `jit_compile`): the jit_compile column is what it resolved to. ")
    if "torch_compile_startup_s" in record:
        text += (f"`torch.compile` starts from an empty inductor cache (cold compile) after inductor's one-off "
                 f"start-up ({record['torch_compile_startup_s']:.1f} s, not counted in any row), compiled with "
                 f"{THREADS[0]} threads, g++ run from the main thread (`compile_threads = 1`, so that a compile "
                 f"aborted after {COMPILE_BUDGET_S:.0f} s leaves nothing running behind the next measurement). ")
    else:
        text += "`torch.compile` was not run. "
    return text + ("Times are per step (training: forward, loss, backward, optimiser update); medians with the "
                   "10th-90th percentiles; the first step (tracing, compiling) apart. The zoo and PyTorch eager "
                   f"are timed in {ROUNDS} alternating rounds, so that the shared machine's slow phases (tens of "
                   "seconds) fall on both. The load column is the "
                   "1-minute load average before -> after the comparison, on a machine shared with training jobs.")


def _when(record):
    """When the rows were measured: one run, or (after `--only`) each group's own run."""
    runs = {}
    for r in record["results"]:
        runs.setdefault(r["group"], r.get("run_date", record["date"]))
    if set(runs.values()) == {record["date"]}:
        return f"run {record['date']}, {record['seconds'] / 60:.0f} min"
    return "groups from separate runs (`--only`): " + ", ".join(f"{group} run {date}" for group, date in runs.items())


def render(record):
    machine = record["machine"]
    quick = " --quick" if record["mode"] == "quick" else ""
    lines = [f"# The zoo vs PyTorch (`benchmarks/vs_pytorch.py{quick}`)", "",
             f"{machine['cpu']}, {machine['cores']} cores; TensorFlow {machine['tensorflow']}, "
             f"Keras {machine['keras']}, PyTorch {machine['torch']}; {_when(record)}.", "", _method(record), ""]
    titles = {"dense": "Dense networks (Adam, batch 256, 2 classes, T = 20)",
              "conv": "H&R 2017 MNIST conv network (SGD momentum, batch 128)",
              "pde": "R&H 2018 Fashion-MNIST parabolic CNN (SGD momentum)"}
    results = record["results"]
    for group in GROUPS:
        mine = [r for r in results if r["group"] == group]
        if mine:
            lines += [f"## {titles[group]}", "", table(mine), ""]
    lines += ["## Acceptance", ""] + acceptance(results) + [""] + ["## Notes", ""] + notes(results)
    return "\n".join(lines) + "\n"


def plot(results, path):
    """Time per step against N (log-log, one panel per dense network/width) and images per second.

    Colours are per variant in every panel: zoo, PyTorch eager per thread count, torch.compile.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = list(dict.fromkeys(r["series"] for r in results if r["group"] == "dense"))
    images = [r for r in results if r["group"] != "dense"]
    fig = plt.figure(figsize=(16, 8))
    grid = fig.add_gridspec(2, 3)
    for k, name in enumerate(series[:4]):
        ax = fig.add_subplot(grid[k // 2, k % 2])
        mine = sorted((r for r in results if r["series"] == name), key=lambda r: r["depth"])
        jit = "XLA" if all(r["zoo"]["jit_compile"] for r in mine) else "no XLA"
        for (label, get), colour in zip(_variants(f"zoo ({jit})"), COLOURS):
            points = [(r["depth"], get(r)["median_ms"]) for r in mine if "median_ms" in get(r)]
            if points:
                ax.plot(*zip(*points), "o-" if label.startswith("zoo") else "s--", color=colour, label=label)
        depths = [r["depth"] for r in mine]
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.set(xlabel="steps N", ylabel="ms per training step (median)", title=f"{name}, batch 256")
        ax.legend(fontsize=8)
    if images:
        ax = fig.add_subplot(grid[:, 2])
        variants = _variants("zoo")
        width = 0.8 / len(variants)
        for k, ((label, get), colour) in enumerate(zip(variants, COLOURS)):
            rates = [r["batch"] / get(r)["median_ms"] * 1e3 if "median_ms" in get(r) else 0.0 for r in images]
            ax.bar(np.arange(len(images)) + k * width, rates, width, label=label, color=colour)
        ax.set_xticks(np.arange(len(images)) + 0.4 - width / 2, [r["label"] for r in images], rotation=25, ha="right",
                      fontsize=8)
        ax.set(ylabel="images per second (median step)", title="conv networks (no bar: not measured)")
        ax.legend(fontsize=8)
    loads = [v for r in results for v in r["load_average_1min"]]
    fig.suptitle(f"The zoo vs PyTorch, {os.cpu_count()} cores, 1-min load average {min(loads):.1f}-{max(loads):.1f}")
    fig.tight_layout()
    tmp = path + ".tmp"
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    os.replace(tmp, path)


COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def _variants(zoo_label):
    """`(label, result -> timing)` for the zoo, then PyTorch eager and torch.compile per thread count."""
    out = [(zoo_label, lambda r: r["zoo"])]
    out += [(f"torch eager {t} thr", lambda r, t=t: r["torch_eager"].get(str(t), {})) for t in THREADS]
    out += [(f"torch.compile {t} thr", lambda r, t=t: r["torch_compile"].get(str(t), {})) for t in THREADS]
    return out


# === Running ===


def machine():
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    return {"cpu": cpu, "cores": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "torch": torch.__version__, "torch_threads": THREADS, "python": platform.python_version()}


def _merge(path, results, groups):
    """Results of the groups not rerun, from the last record at `path` (for `--only`)."""
    if not os.path.exists(path):
        return results
    with open(path) as f:
        kept = [r for r in json.load(f)["results"] if r["group"] not in groups]
    return sorted(kept + results, key=lambda r: GROUPS.index(r["group"]))  # stable: specs() order within a group


def run(groups, mode):
    """All comparisons of `groups`; returns the record written to JSON."""
    settings = SETTINGS[mode]
    torch.set_num_threads(THREADS[0])
    record = {"mode": mode, "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine()}
    history, results = {}, []
    with tempfile.TemporaryDirectory(prefix="vs_pytorch_inductor_") as cache:
        if settings["compile"]:
            # A cold compile for every network: an empty cache directory of this run's own.
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
            # Compile in this thread: a compile aborted at COMPILE_BUDGET_S then leaves no worker
            # compiling behind the next measurement (measured: the default 2 compile threads were no
            # faster on these 2 shared cores).
            torch._inductor.config.compile_threads = 1
            record["torch_compile_startup_s"] = torch_compile_startup()
        start = time.perf_counter()
        for spec in specs(groups, mode):
            results.append(compare(spec, mode, history))
            _progress(results[-1], time.perf_counter() - start)
    for result in results:  # `--only` keeps other groups' rows: each row says which run measured it
        result["run_date"] = record["date"]
    record["results"] = results
    record["seconds"] = time.perf_counter() - start
    return record


def _progress(result, seconds):
    compiled, _ = _compile_cells(result)
    print(f"[{seconds:6.0f} s] {result['label']}: zoo {result['zoo']['median_ms']:.1f} ms "
          f"(jit={result['zoo']['jit_compile']}), best torch eager {best_eager(result)[1]:.1f} ms, "
          f"x{speedup(result):.2f}; torch.compile {compiled}", file=sys.stderr, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny repeats, fewer depths, no torch.compile")
    parser.add_argument("--only", choices=GROUPS, help="run one group; keep the other groups' last results")
    parser.add_argument("--report-only", action="store_true", help="rewrite the table and figure from the JSON")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    groups = (args.only,) if args.only else GROUPS
    stem = os.path.join(OUT, "vs_pytorch" + ("_quick" if args.quick else ""))
    if args.report_only:
        with open(stem + ".json") as f:
            record = json.load(f)
    else:
        record = run(groups, mode)
        os.makedirs(OUT, exist_ok=True)
        record["results"] = _merge(stem + ".json", record["results"], groups)
        write_text(stem + ".json", json.dumps(record, indent=1))
    text = render(record)
    write_text(stem + ".md", text)
    plot(record["results"], stem + ".png")
    print(text)


if __name__ == "__main__":
    main()
