"""What every recipe shares: seeding, output directory, logs, results, plots."""

from __future__ import annotations

import json
import os
import tempfile

import keras

__all__ = ["seed_everything", "prepare_out_dir", "level_callbacks", "write_json", "save_figure"]


def seed_everything(seed):
    keras.utils.set_random_seed(seed)


def prepare_out_dir(path):
    os.makedirs(path, exist_ok=True)
    return path


def level_callbacks(out_dir, tag):
    """CSV and TensorBoard logs of one training level."""
    return [
        keras.callbacks.CSVLogger(os.path.join(out_dir, f"{tag}.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(out_dir, "tensorboard", tag), write_graph=False),
    ]


def write_json(obj, path):
    """Write atomically (temp file + rename), so an interrupted run leaves no half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
        json.dump(obj, f, indent=2, default=float)
    os.replace(f.name, path)


def save_figure(fig, path):
    import matplotlib.pyplot as plt

    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    plt.close(fig)
