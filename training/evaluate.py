"""Evaluate a model on a named dataset split: the one code path behind cards and `stable-zoo evaluate`.

Accuracy and mean cross-entropy of the logits (sigmoid for one logit, softmax otherwise), over
the whole split or its first `limit` examples, batch by batch with a progress bar.
"""

from __future__ import annotations

import numpy as np

__all__ = ["load_split", "evaluate_arrays", "evaluate_pretrained", "TOY_DATASETS"]

TOY_DATASETS = ("ellipses", "swiss_roll", "peaks", "double_moons", "double_circles")


def load_split(dataset, split):
    """`(x, y)` numpy arrays of `split` ("train", "validation", "test") of a known dataset."""
    if dataset == "fashion_mnist":
        from training.data.fashion_mnist import load_fashion_mnist

        data = load_fashion_mnist()
        pick = {"train": (data.x_train, data.y_train), "validation": (data.x_val, data.y_val),
                "test": (data.x_test, data.y_test)}
    elif dataset in TOY_DATASETS:
        from training.data.toy2d import load_toy

        data = load_toy(dataset, seed=0)
        pick = {"train": (data.x_train, data.y_train), "validation": (data.x_val, data.y_val)}
    else:
        raise ValueError(f"Unknown dataset {dataset!r}; known: ['fashion_mnist', *{list(TOY_DATASETS)}]")
    if split not in pick:
        raise ValueError(f"Dataset {dataset!r} has no split {split!r}; it has {sorted(pick)}")
    return pick[split]


def evaluate_arrays(model, x, y, batch_size=500, progress=True):
    """`{"accuracy", "loss", "num_examples"}` of `model` (which returns logits) on `(x, y)`."""
    from tqdm.auto import tqdm

    y = np.asarray(y).astype("int64").ravel()
    correct, loss_sum = 0, 0.0
    starts = range(0, len(x), batch_size)
    for start in tqdm(starts, desc="evaluate", disable=not progress, leave=False):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        logits = np.asarray(model(np.asarray(xb, dtype="float32"), training=False), dtype="float64")
        if logits.shape[-1] == 1:  # logistic regression on one logit (two classes)
            z = logits[:, 0]
            predicted = (z > 0).astype("int64")
            loss_sum += float(np.sum(np.logaddexp(0.0, z) - yb * z))
        else:
            predicted = logits.argmax(-1)
            shifted = logits - logits.max(-1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
            loss_sum += float(-log_probs[np.arange(len(yb)), yb].sum())
        correct += int((predicted == yb).sum())
    n = len(y)
    return {"accuracy": correct / n, "loss": loss_sum / n, "num_examples": n}


def evaluate_pretrained(name, limit=None, progress=True):
    """Evaluate pretrained entry `name` on the split its card reports (first `limit` examples)."""
    import zoo

    card = zoo.card(name)
    model = zoo.load(name)
    x, y = load_split(card["dataset"]["name"], card["metrics"]["split"])
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return evaluate_arrays(model, x, y, progress=progress) | {"split": card["metrics"]["split"]}
