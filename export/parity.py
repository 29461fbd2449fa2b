"""Proofs that an artefact computes what the Keras model does, and keeps its structure.

    from export.parity import logits_parity, folded_antisymmetry
    logits_parity(model, {"onnx": "m.onnx", "litert": "m.tflite"}, images)   # max |dlogits| per batch size
    folded_antisymmetry(model, "m.onnx")                                      # per antisymmetric kernel

`logits_parity` runs each artefact through `export.runtime` at batch 1 and 32 (the batch axis is
dynamic) against `model(x)`. `folded_antisymmetry` finds, in an ONNX file, the constant kernels
folding produced for every antisymmetric step (float32 initializers, or int8 weights through
their DequantizeLinear) and measures `K + K^T + gamma I` on the stored values: zero for float32
(`(W - W^T)/2` and its transpose cancel exactly), at most one int8 step `max|K| / 127` after
per-channel quantisation (each entry rounds by half its channel's step `<= max|K| / 254`).
"""

from __future__ import annotations

import numpy as np

from export.runtime import load_predictor
from zoo.blocks import ODEBlock
from zoo.operators import Antisymmetric, Conv2DOperator

__all__ = ["BATCH_SIZES", "PARITY_ATOL", "float32_error", "logits_parity", "folded_antisymmetry", "INT8_ANTISYMMETRY_TOLERANCE"]

BATCH_SIZES = (1, 32)
# What every pretrained model's SavedModel, ONNX and LiteRT artefact must meet on real inputs.
PARITY_ATOL = 1e-5
INT8_ANTISYMMETRY_TOLERANCE = 1.0 / 127


def logits_parity(model, artefacts, inputs, batch_sizes=BATCH_SIZES):
    """`{kind: {batch size: max |logits - Keras logits|}}` on the first inputs of each size."""
    inputs = np.asarray(inputs, dtype="float32")
    result = {}
    for kind, path in artefacts.items():
        predictor = load_predictor(path)
        result[kind] = {}
        for batch in batch_sizes:
            if len(inputs) < batch:
                raise ValueError(f"Parity at batch {batch} needs at least {batch} inputs; got {len(inputs)}")
            x = inputs[:batch]
            expected = np.asarray(model(x, training=False))
            got = predictor.predict(x)["logits"]
            result[kind][batch] = float(np.max(np.abs(got - expected)))
    return result


def float32_error(model, architecture, config, inputs, batch_sizes=BATCH_SIZES):
    """`{batch: max |Keras float32 logits - exact logits|}` on the first inputs of each size.

    Exact means a float64 copy of the model. This is the floor under any parity figure: two
    float32 implementations can only be expected to agree as well as each agrees with the exact
    result, and Keras' own error can depend on the batch (TensorFlow's batch-1 matmul sums in one
    running sum, which is why wide heads are `zoo.layers.ChunkedDense`). Trained networks with
    large logits or expansive steps amplify round-off: TensorFlow's and ONNX Runtime's float32
    `tanh` differ by up to 6 ulps, which a 2-D ResNet at h = 2.5 turned into 3.5e-5 on logits
    whose float32 error in Keras is 1.0e-5. Exported dense blocks therefore round as TensorFlow
    does (`export.tf_numerics`), and agree with Keras more closely than this floor.
    """
    import keras

    import zoo

    inputs = np.asarray(inputs, dtype="float32")
    previous = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("float64")
        exact = zoo.create(architecture, **config)
        exact(inputs[:1].astype("float64"))
        exact.set_weights([w.astype("float64") for w in model.get_weights()])
        truth = np.asarray(exact(inputs[: max(batch_sizes)].astype("float64"), training=False))
    finally:
        keras.config.set_dtype_policy(previous)
    return {batch: float(np.max(np.abs(np.asarray(model(inputs[:batch], training=False), "float64")
                                       - truth[:batch])))
            for batch in batch_sizes}


def _onnx_weights(path):
    """Every constant weight array in the graph (and subgraphs), int8 ones dequantised."""
    import onnx
    from onnx import numpy_helper

    from export.onnx import iter_graphs

    arrays, found = {}, []
    for graph in iter_graphs(onnx.load(path).graph):  # outer initializers are known before inner nodes
        arrays.update({i.name: numpy_helper.to_array(i) for i in graph.initializer})
        for node in graph.node:
            if node.op_type != "DequantizeLinear" or not all(i in arrays for i in node.input[:2]):
                continue
            q = arrays[node.input[0]].astype("float64")
            scale = arrays[node.input[1]].astype("float64")
            zero = arrays[node.input[2]].astype("float64") if len(node.input) > 2 and node.input[2] else 0.0
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            if np.ndim(scale) and np.size(scale) > 1:
                if axis >= q.ndim:
                    continue
                shape[axis] = -1
            found.append(((q - np.reshape(zero, shape)) * np.reshape(scale, shape), True))
    found += [(a.astype("float64"), False) for a in arrays.values() if a.dtype.kind == "f" and a.size > 1]
    return found


def _match(candidates, target):
    """The candidate array closest to `target` (same shape), or None."""
    best, error = None, np.inf
    for array, quantized in candidates:
        if array.shape == target.shape:
            e = float(np.max(np.abs(array - target)))
            if e < error:
                best, error = (array, quantized), e
    scale = float(np.max(np.abs(target))) or 1.0
    if best is None or error > (INT8_ANTISYMMETRY_TOLERANCE if best[1] else 1e-6) * scale:
        return None
    return best


def folded_antisymmetry(model, onnx_path):
    """Antisymmetry residual of every exported antisymmetric kernel; a list of dicts.

    Each: `{"layer", "step", "quantized", "relative_residual"}` with the residual
    `max|K + K^T + gamma I| / max|K|` computed on the values stored in `onnx_path`.
    Raises ValueError when a kernel of the model is not found in the file.
    """
    candidates = _onnx_weights(onnx_path)
    rows = []
    for layer in model.layers:
        if not (isinstance(layer, ODEBlock) and isinstance(layer.dynamics.parametrization, Antisymmetric)):
            continue
        gamma = layer.dynamics.parametrization.gamma
        kernels = np.asarray(layer.effective_weights()["kernel"], dtype="float64")
        conv = isinstance(layer.operator, Conv2DOperator)
        stacked = None if conv else _match(candidates, kernels)  # a Loop keeps the (N, n, n) stack
        for step, kernel in enumerate(kernels):
            if conv:  # ONNX Conv weights are (out, in, kh, kw)
                hit = _match(candidates, kernel.transpose(3, 2, 0, 1))
                if hit is None:
                    raise ValueError(f"{layer.name} step {step}: kernel not found in {onnx_path}")
                w, quantized = hit
                adjoint = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
                eye = np.zeros_like(w)
                centre = w.shape[2] // 2
                eye[np.arange(w.shape[0]), np.arange(w.shape[0]), centre, centre] = 1.0
            else:
                hit = (stacked[0][step], stacked[1]) if stacked else _match(candidates, kernel)
                if hit is None:
                    raise ValueError(f"{layer.name} step {step}: kernel not found in {onnx_path}")
                w, quantized = hit
                adjoint, eye = w.T, np.eye(w.shape[0])
            residual = np.max(np.abs(w + adjoint + gamma * eye)) / (np.max(np.abs(w)) or 1.0)
            rows.append({"layer": layer.name, "step": step, "quantized": bool(quantized),
                         "relative_residual": float(residual)})
    return rows
