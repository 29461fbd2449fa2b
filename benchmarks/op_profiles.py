"""Where a step's time goes, per operator type, in TensorFlow and in PyTorch (wall-clock self time).

`vs_pytorch.py` uses it to say what bounds the conv networks: how long each framework's own
convolution kernels take inside one training step, measured by each framework's profiler.
"""

from __future__ import annotations

import collections
import glob
import json
import tempfile

__all__ = ["OpProfile", "is_conv", "tensorflow_profile", "torch_profile"]


def is_conv(op_type):
    """TensorFlow's oneDNN (`_MklNativeConv2D*`) and Eigen (`Conv2D*`) convolutions, PyTorch's
    (`aten::mkldnn_convolution`, `aten::convolution_backward`, ...)."""
    return "conv" in op_type.lower()


OpProfile = collections.namedtuple("OpProfile", "ms_per_step conv_ms_per_step top")


def _summarise(ms_by_type, steps):
    per_step = {k: v / steps for k, v in ms_by_type.items()}
    top = dict(sorted(per_step.items(), key=lambda kv: -kv[1])[:8])
    return OpProfile(sum(per_step.values()), sum(v for k, v in per_step.items() if is_conv(k)), top)


def tensorflow_profile(fn, steps=3):
    """Operator self time of `steps` calls of `fn` (already warm), from TensorFlow's profiler.

    The public API (`tf.profiler.experimental`) writes the trace but has no reader; TensorBoard's
    profile plugin reads it with TensorFlow's own `xspace_to_tools_data`, which is called here
    directly, so that the benchmark needs no extra package. Idle time is left out.
    """
    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as profiler_plugin

    with tempfile.TemporaryDirectory(prefix="tf_profile_") as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            for _ in range(steps):
                fn()
        finally:
            tf.profiler.experimental.stop()
        paths = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
        raw, ok = profiler_plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    if not ok:
        raise RuntimeError(f"TensorFlow's profiler could not summarise the trace: {raw[:200]!r}")
    table = json.loads(raw)[0]
    columns = [c["id"] for c in table["cols"]]
    ms_by_type = collections.Counter()
    for row in table["rows"]:
        cells = dict(zip(columns, [cell.get("v") if cell else None for cell in row["c"]]))
        if cells["type"] != "IDLE":
            ms_by_type[cells["type"]] += cells["total_self_time"] / 1e3
    return _summarise(ms_by_type, steps)


def torch_profile(fn, steps=3):
    """Operator self time of `steps` calls of `fn` (already warm), from PyTorch's profiler."""
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        for _ in range(steps):
            fn()
    ms_by_type = collections.Counter()
    for event in profile.key_averages():
        ms_by_type[event.key] += event.self_cpu_time_total / 1e3
    return _summarise(ms_by_type, steps)
