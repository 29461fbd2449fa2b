"""`zoo.load` and `zoo.card`: pretrained entries as ready Keras models.

The architecture is rebuilt from the registry with the card's config and the weights are
loaded from a `.weights.h5` file that has passed its sha256 check, so loading never executes
code from a file (no pickle, no saved Python lambdas).

Fine-tuning follows keras.applications: `zoo.load(name, num_classes=k)` keeps the pretrained
body and puts a fresh affine head (`predictions`) for `k` classes on it;
`trainable_blocks=False` freezes everything but the head.
"""

from __future__ import annotations

import keras

from zoo import hub
from zoo.cards import validate_card, weights_file
from zoo.registry import create

__all__ = ["load", "card", "replace_head", "set_body_trainable"]

HEAD_NAME = "predictions"


def card(name):
    """The pretrained entry's card (a dict), validated."""
    return validate_card(hub.fetch_card(name), source=f"card of {name!r}")


def load(name, num_classes=None, trainable_blocks=True):
    """A `keras.Model` with the pretrained weights of entry `name`, checksum verified.

    Args:
        name: a pretrained entry (`zoo.list_models(pretrained=True)`).
        num_classes: None keeps the trained head; an int `k` replaces it by a fresh affine head
            for `k` classes (for fine-tuning on a new task).
        trainable_blocks: False freezes every layer except the head.
    """
    entry = card(name)
    weights = weights_file(entry)
    path = hub.fetch_file(name, weights["path"], weights["sha256"])
    model = create(entry["architecture"], **entry["config"])
    model.load_weights(str(path))
    if num_classes is not None and int(num_classes) != _classes_of(model):
        model = replace_head(model, int(num_classes))
    set_body_trainable(model, trainable_blocks)
    return model


def _classes_of(model):
    units = model.get_layer(HEAD_NAME).units
    return 2 if units == 1 else units


def replace_head(model, num_classes):
    """The same body with a new `predictions` head for `num_classes` (1 logit for 2 classes)."""
    from zoo.models.base import ZooModel
    from zoo.models.heads import classifier_head

    features = model.get_layer(HEAD_NAME).input
    logits = classifier_head(features, num_classes)
    return ZooModel(model.inputs, logits, name=f"{model.name}_{num_classes}_classes")


def set_body_trainable(model, trainable):
    """Freeze (or unfreeze) every layer but the head; frozen BN layers run in inference mode."""
    for layer in model.layers:
        if layer.name != HEAD_NAME:
            layer.trainable = bool(trainable)
    return model
