"""SavedModel for TF Serving: `<base>/<name>/<version>/`, signature `serving_default`.

    from export.saved_model import export_saved_model
    path = export_saved_model(model, "serving", "rh18_hamiltonian_fashion_mnist", version=1)

Through `keras.export.ExportArchive` (what `model.export` uses): one endpoint `serve` with a named,
batch-dynamic float32 input and dict outputs `{"logits", "probabilities"}`, which TF Serving
exposes under those names (a bare model would answer `output_0`; keras-team/keras#19771), and
`serving_default` aliased to it. The model is exported as trained (variables, scan loop): TF
runs it as Keras does; ONNX and LiteRT get the folded graph.
"""

from __future__ import annotations

import os

from export.common import atomic_output, input_name, input_shape, serving_outputs
from zoo.hub import validate_name

__all__ = ["export_saved_model", "serving_signature"]


def export_saved_model(model, base_dir, name, version=1, overwrite=False):
    """Write `model` to `base_dir/name/version/` (TF Serving's layout); returns that path."""
    import keras
    import tensorflow as tf

    validate_name(name)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"`version` must be an int >= 1 (TF Serving's numeric version directory); "
                         f"Received: version={version!r}")
    path = os.path.join(base_dir, name, str(version))
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda x: serving_outputs(model, x),
        input_signature=[tf.TensorSpec((None, *input_shape(model)), tf.float32, name=input_name(model))],
    )
    with atomic_output(path, overwrite=overwrite) as tmp:
        archive.write_out(tmp, verbose=False)
    return path


def serving_signature(path):
    """The loaded `serving_default` function of a SavedModel directory."""
    import tensorflow as tf

    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise FileNotFoundError(f"No saved_model.pb in {path}: not a SavedModel directory")
    return tf.saved_model.load(path).signatures["serving_default"]
