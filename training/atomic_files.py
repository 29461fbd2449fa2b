"""Write text and JSON files atomically: a temporary file in the same directory, then `os.replace`.

An interrupted run or benchmark leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile

__all__ = ["write_json", "write_text"]


def write_text(path, text, durable=False):
    """Write `text` to `path` atomically; `durable` also fsyncs it (checkpoint metadata)."""
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
        f.write(text)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.chmod(f.name, 0o644)  # NamedTemporaryFile creates 0600; results are meant to be read
    os.replace(f.name, path)


def write_json(path, obj, indent=2, durable=False):
    """`obj` as JSON (numpy scalars as floats) to `path`, atomically."""
    write_text(path, json.dumps(obj, indent=indent, default=float), durable=durable)
