"""Run exported artefacts through one API that checks its input first.

    from export.runtime import load_predictor
    predictor = load_predictor("model.onnx")           # .onnx, .tflite, or a SavedModel directory
    outputs = predictor.predict(images)                  # {"logits": ..., "probabilities": ...}

ONNX Runtime, the LiteRT interpreter and TF each fail on bad input in their own words, often deep
inside the runtime, and none checks for NaN. `Predictor.predict` checks the batch first: a numpy
array of float32 with the model's per-example shape and only finite values, and names the problem
(expected vs received shape or dtype, how many values are not finite).
"""

from __future__ import annotations

import os

import numpy as np

from export.common import OUTPUT_NAMES

__all__ = ["Predictor", "OnnxPredictor", "LiteRTPredictor", "SavedModelPredictor", "load_predictor",
           "validate_batch"]


def validate_batch(x, shape, name="input"):
    """Check `x` is a float32 batch `(batch, *shape)` of finite values; returns it as an array."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as error:  # ragged lists and the like
            raise TypeError(f"{name}: expected a numpy array, got {type(x).__name__} ({error})") from None
    if x.dtype != np.float32:
        raise TypeError(
            f"{name}: expected dtype float32, got {x.dtype}; convert with x.astype('float32') "
            "(image models take raw pixel values 0..255)"
        )
    expected = (None, *shape)
    if x.ndim != len(expected) or tuple(x.shape[1:]) != tuple(shape):
        hint = " (a single example? add the batch axis: x[None])" if tuple(x.shape) == tuple(shape) else ""
        raise ValueError(f"{name}: expected shape (batch, {', '.join(map(str, shape))}), got {tuple(x.shape)}{hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: the batch is empty")
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise ValueError(f"{name}: {bad} value(s) are NaN or infinite; the model needs finite inputs")
    return x


class Predictor:
    """An exported artefact with a checked `predict`; subclasses implement `_run`."""

    kind = "artefact"

    def __init__(self, path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"No {self.kind} at {path}")
        self.path = path
        self.input_name, self.input_shape = None, None

    def predict(self, x):
        x = validate_batch(x, self.input_shape, self.input_name or "input")
        return self._run(x)

    def _run(self, x):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.path!r}, input={self.input_name} {self.input_shape})"


class OnnxPredictor(Predictor):
    kind = "ONNX model"

    def __init__(self, path, threads=None, memory_arena=True):
        super().__init__(path)
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.enable_cpu_mem_arena = bool(memory_arena)
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise ValueError(f"{path} is not a loadable ONNX model: {error}") from None
        (inp,) = self.session.get_inputs()
        self.input_name, self.input_shape = inp.name, tuple(inp.shape[1:])
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _run(self, x):
        return dict(zip(self.output_names, self.session.run(None, {self.input_name: x})))


class LiteRTPredictor(Predictor):
    kind = "LiteRT model"

    def __init__(self, path, threads=None):
        super().__init__(path)
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.interpreter = Interpreter(model_path=path, num_threads=threads)
        except Exception as error:
            raise ValueError(f"{path} is not a loadable LiteRT model: {error}") from None
        runner = self.interpreter.get_signature_runner("serving_default")
        (self.input_name,) = runner.get_input_details()
        detail = runner.get_input_details()[self.input_name]
        self.input_shape = tuple(int(d) for d in detail["shape"][1:])
        self._batch = None
        self._runner = runner

    def _run(self, x):
        # The signature runner resizes its input to each call's batch.
        outputs = self._runner(**{self.input_name: x})
        return {k: np.asarray(outputs[k]) for k in OUTPUT_NAMES if k in outputs}


class SavedModelPredictor(Predictor):
    kind = "SavedModel directory"

    def __init__(self, path):
        super().__init__(path)
        from export.saved_model import serving_signature

        self.signature = serving_signature(path)
        _, kwargs = self.signature.structured_input_signature
        ((self.input_name, spec),) = kwargs.items()
        self.input_shape = tuple(spec.shape[1:])

    def _run(self, x):
        outputs = self.signature(**{self.input_name: x})
        return {k: v.numpy() for k, v in outputs.items()}


def load_predictor(path, **kwargs):
    """A `Predictor` for `path`: `.onnx`, `.tflite`, or a SavedModel directory."""
    if os.path.isdir(path):
        return SavedModelPredictor(path)
    if path.endswith(".onnx"):
        return OnnxPredictor(path, **kwargs)
    if path.endswith(".tflite"):
        return LiteRTPredictor(path, **kwargs)
    raise ValueError(f"Unknown artefact {path!r}: expected a .onnx or .tflite file or a SavedModel directory")
