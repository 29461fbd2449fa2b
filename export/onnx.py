"""ONNX (opset 17) for ONNX Runtime, from the folded inference graph, through tf2onnx.

    from export.onnx import export_onnx
    export_onnx(model, "model.onnx")    # input "image"/"features", outputs "logits", "probabilities"

Why tf2onnx directly instead of `model.export(format="onnx")`: Keras' ONNX export traces the
model as it is, with the weight parametrisations and the depth scan inside; we convert the folded
clone (`export.fold`), whose unrolled steps on frozen weights the converter constant-folds, so the
graph has no run-time Transpose/Sub on weights and no `Loop`. The conversion itself is the call
Keras makes (`tf2onnx.convert.from_function` with a named, batch-dynamic input signature).
"""

from __future__ import annotations

import numpy as np

from export.common import OUTPUT_NAMES, atomic_output, input_name, input_shape, serving_outputs
from export.fold import fold_model
from export.tf_numerics import collapse_tanh_scopes

__all__ = ["OPSET", "export_onnx", "weight_computing_ops", "check_onnx", "onnx_op_counts", "unsupported_ops", "UnsupportedOpError"]

OPSET = 17


def export_onnx(model, path, opset=OPSET, overwrite=False, fold=True):
    """Write `model` as an ONNX file at `path`; returns `path`.

    Args:
        model: a built single-input `keras.Model` (float32).
        path: output `.onnx` file; written to a temporary name and renamed when complete.
        opset: ONNX opset (17: what Keras tests and ONNX Runtime quantisation supports).
        overwrite: replace an existing file.
        fold: export the folded inference graph (default); False converts the model as is.
    """
    import tensorflow as tf
    import tf2onnx

    from keras.src.export.tf2onnx_lib import patch_tf2onnx  # numpy-2 fix Keras applies too

    patch_tf2onnx()
    graph_model = fold_model(model) if fold else model
    name = input_name(model)
    spec = tf.TensorSpec((None, *input_shape(model)), tf.float32, name=name)

    @tf.function(input_signature=[spec], autograph=False)
    def serve(x):
        outputs = serving_outputs(graph_model, x)
        return [tf.identity(outputs[k], name=k) for k in OUTPUT_NAMES]

    with atomic_output(path, overwrite=overwrite) as tmp:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=[spec], opset=opset)
        unsupported = unsupported_ops(proto)
        if unsupported:  # tf2onnx only logs these and emits nodes no runtime can execute
            raise UnsupportedOpError(
                f"cannot export {model.name!r} to ONNX opset {opset}: no ONNX equivalent for the "
                f"TensorFlow op(s) {', '.join(unsupported)}"
            )
        _name_outputs(proto, OUTPUT_NAMES)
        collapse_tanh_scopes(proto)  # before the scope names are shortened away
        shorten_names(proto)
        drop_default_attributes(proto)
        import onnx

        onnx.save(proto, tmp)
        check_onnx(tmp)
    return path


class UnsupportedOpError(ValueError):
    """The model uses an op that ONNX (at the requested opset) cannot express."""


def iter_graphs(graph):
    """`graph` and every subgraph under it (`Loop` and `If` bodies), outer before inner."""
    import onnx

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_graphs(attr.g)


def unsupported_ops(proto):
    """Sorted op types in the default ONNX domain that ONNX does not define (tf2onnx leftovers)."""
    import onnx

    return sorted({node.op_type for graph in iter_graphs(proto.graph) for node in graph.node
                   if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type)})


def _name_outputs(proto, names):
    """Rename the graph outputs (tf2onnx names them after TF tensors, e.g. `Identity:0`)."""
    renames = {out.name: new for out, new in zip(proto.graph.output, names)}
    for node in proto.graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.input[:] = [renames.get(i, i) for i in node.input]
    for out in proto.graph.output:
        out.name = renames[out.name]


def shorten_names(proto):
    """Short tensor and node names (`t12`, `n12`): tf2onnx's are TF scopes of 50+ characters,
    and a quantised graph repeats each several times (QDQ pairs), a third of its file size."""
    keep = {i.name for i in proto.graph.input} | {o.name for o in proto.graph.output} | {""}
    names = {}

    def short(name):
        if name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for graph in iter_graphs(proto.graph):
        for init in graph.initializer:
            init.name = short(init.name)
        for info in list(graph.value_info) + [i for i in graph.input] + [o for o in graph.output]:
            info.name = short(info.name)
        for index, node in enumerate(graph.node):
            node.name = f"n{index}" if graph is proto.graph else node.name
            node.input[:] = [short(i) for i in node.input]
            node.output[:] = [short(o) for o in node.output]


def drop_default_attributes(proto):
    """Remove node attributes equal to the default their operator schema declares (`group = 1`,
    `auto_pad = "NOTSET"` of a convolution, ...): tf2onnx and ONNX Runtime's
    quantiser spell them out on every node, a visible share of a quantised file, whose weights
    take a quarter of the bytes."""
    import onnx
    from onnx import defs, helper

    opset = {o.domain: o.version for o in proto.opset_import}
    for graph in iter_graphs(proto.graph):
        for node in graph.node:
            try:
                schema = defs.get_schema(node.op_type, opset.get(node.domain, 1), node.domain)
            except defs.SchemaError:
                continue
            kept = []
            for attr in node.attribute:
                default = schema.attributes.get(attr.name)
                default = default.default_value if default is not None else None
                if (default is None or not default.name or attr.type == onnx.AttributeProto.GRAPH
                        or helper.get_attribute_value(attr) != helper.get_attribute_value(default)):
                    kept.append(attr)
            if len(kept) < len(node.attribute):
                del node.attribute[:]
                node.attribute.extend(kept)


def check_onnx(path):
    """`onnx.checker` full check (strict shape inference included); raises on a bad graph."""
    import onnx

    onnx.checker.check_model(path, full_check=True)


# Ops that only pick a step's weights out of a stack (or reshape them) compute nothing.
_SELECTION_OPS = {"Gather", "GatherElements", "Squeeze", "Unsqueeze", "Identity", "Reshape", "Cast",
                  "Shape", "Slice", "Concat", "Loop"}


def weight_computing_ops(path):
    """Nodes that compute from weights and not from the input: run-time parametrisations.

    Taint analysis over the graph and its `Loop` bodies: a value depends on the data if the
    graph input reaches it; a node whose inputs do not depend on the data but include a weight
    (an initializer or `Constant` of more than one element, or a value computed from one) and
    that does more than select (`Gather` of a step's slice, `Reshape`, ...) is reported, e.g. the
    Transpose and Sub building `(W - W^T)/2` from `W` or the flipped kernel of an adjoint
    convolution inside a loop. A `Slice` with a negative step (a flip) counts as computing.
    Returns `[(op_type, node name)]`; empty for a fully folded graph.
    """
    import onnx
    from onnx import numpy_helper

    def visit(graph, data, weights, arrays, found, inputs_data=(), inputs_weight=()):
        data, weights = set(data), set(weights)
        for init in graph.initializer:
            arrays[init.name] = numpy_helper.to_array(init)
            if arrays[init.name].size > 1:
                weights.add(init.name)
        for info, is_data, is_weight in zip(graph.input, inputs_data, inputs_weight):
            (data if is_data else set()).add(info.name)
            (weights if is_weight else set()).add(info.name)
        for node in graph.node:
            inputs = [i for i in node.input if i]
            if node.op_type == "Constant":
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    arrays[node.output[0]] = numpy_helper.to_array(value)
                    if arrays[node.output[0]].size > 1:
                        weights.update(node.output)
                continue
            depends_on_data = any(i in data for i in inputs)
            from_weights = any(i in weights for i in inputs)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:  # Loop body: inputs (iter, cond, carried...)
                    carried = list(node.input[2:])
                    visit(attr.g, data, weights, arrays, found,
                          [False, False] + [i in data for i in carried],
                          [False, False] + [i in weights for i in carried])
            if depends_on_data:
                data.update(node.output)
            elif from_weights:
                weights.update(node.output)
                flip = node.op_type == "Slice" and len(inputs) > 4 and np.any(
                    np.asarray(arrays.get(inputs[4], 1)) < 0)
                if node.op_type not in _SELECTION_OPS or flip:
                    found.append((node.op_type, node.name))
        return found

    graph = onnx.load(path).graph
    return visit(graph, {i.name for i in graph.input}, set(), {}, [])


def onnx_op_counts(path):
    """`{op_type: count}` over the graph and its subgraphs."""
    import collections

    import onnx

    counts = collections.Counter(node.op_type for graph in iter_graphs(onnx.load(path).graph) for node in graph.node)
    return dict(sorted(counts.items()))
