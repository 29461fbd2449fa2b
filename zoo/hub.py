"""Where pretrained entries come from: the repository's `saved_models/` or a base URL.

An entry is a directory `<base>/<name>/` holding `card.json` (see `zoo.cards`) and the files the
card lists with their sha256. The base is, in order:

1. the environment variable `STABLE_ZOO_BASE_URL` (any `file://` or `https://` URL laid out like
   `saved_models/`): files are fetched with `keras.utils.get_file` into the cache directory
   (`STABLE_ZOO_CACHE_DIR`, default `~/.keras/stable_zoo`);
2. otherwise the `saved_models/` directory of this repository (offline default; nothing is copied).

Every weights file is checked against the card's sha256 before it is handed to Keras. A file
that fails is never loaded: the error names the file and both hashes, and a downloaded copy is
deleted. Downloads land in a temporary name and are renamed only once verified, so the cache
never holds a partial or unverified file (Keras' `get_file` itself leaves a file that fails its
hash check in place, which is why it is wrapped here).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import uuid

__all__ = [
    "BASE_URL_ENV",
    "CACHE_DIR_ENV",
    "ChecksumError",
    "list_pretrained",
    "fetch_card",
    "fetch_file",
    "sha256_of",
    "validate_name",
]

BASE_URL_ENV = "STABLE_ZOO_BASE_URL"
CACHE_DIR_ENV = "STABLE_ZOO_CACHE_DIR"
CARD_FILE = "card.json"
LOCAL_ROOT = pathlib.Path(__file__).resolve().parent.parent / "saved_models"
_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class ChecksumError(ValueError):
    """A file's sha256 differs from the one its card records."""


def validate_name(name, what="model"):
    """Entry and file names are plain lowercase names: no path separators, no `..`."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise ValueError(
            f"Unsafe or malformed {what} name {name!r}: use lowercase letters, digits, '_', '-' "
            "and '.', without path separators or '..'."
        )
    return name


def sha256_of(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


_URL_SCHEMES = ("file", "https", "http")


def _base_url():
    url = os.environ.get(BASE_URL_ENV, "").strip().rstrip("/")
    if not url:
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in _URL_SCHEMES:  # refuse before any connection is tried
        raise ValueError(
            f"{BASE_URL_ENV}={url!r}: the base URL must start with one of "
            f"{', '.join(s + '://' for s in _URL_SCHEMES)}"
        )
    return url


def _cache_dir():
    return pathlib.Path(
        os.environ.get(CACHE_DIR_ENV, pathlib.Path("~/.keras/stable_zoo"))
    ).expanduser()


def list_pretrained(root=None):
    """Sorted names of the pretrained entries in the local `saved_models/` (or `root`)."""
    root = pathlib.Path(root) if root is not None else LOCAL_ROOT
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CARD_FILE).is_file())


def _download(name, filename, expected_sha256=None):
    """Fetch `<base>/<name>/<filename>` into the cache, verified, via a temporary name."""
    import keras

    target_dir = _cache_dir() / name
    target = target_dir / filename
    if expected_sha256 is not None and target.is_file():
        if sha256_of(target) == expected_sha256:
            return target
        target.unlink()  # a stale or tampered cached copy: fetch it again
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = f".{filename}.{uuid.uuid4().hex}.partial"
    origin = f"{_base_url()}/{name}/{filename}"
    try:
        path = keras.utils.get_file(
            fname=partial, origin=origin, cache_dir=str(_cache_dir()), cache_subdir=name,
            file_hash=expected_sha256, hash_algorithm="sha256", force_download=True,
        )
    except ValueError as error:
        partial_path = target_dir / partial
        actual = sha256_of(partial_path) if partial_path.is_file() else "unavailable"
        if partial_path.is_file():
            partial_path.unlink()
        raise ChecksumError(
            f"Checksum mismatch for {origin}: the card says sha256 {expected_sha256}, the file "
            f"has {actual}. The file was not loaded and was removed from the cache."
        ) from error
    except BaseException:
        partial_path = target_dir / partial
        if partial_path.is_file():
            partial_path.unlink()
        raise
    os.replace(path, target)
    return target


def fetch_card(name):
    """The entry's card as a dict, from the base URL if set, else from `saved_models/`."""
    validate_name(name)
    if _base_url() is None:
        path = LOCAL_ROOT / name / CARD_FILE
        if not path.is_file():
            import difflib

            known = list_pretrained()
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise ValueError(
                f"Unknown pretrained model {name!r}.{hint} Pretrained models: {known}"
            )
    else:
        path = _download(name, CARD_FILE)
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"The card {path} is not valid JSON: {error}") from error


def fetch_file(name, filename, expected_sha256):
    """Local path of an entry's file, verified against `expected_sha256`."""
    validate_name(name)
    validate_name(filename, what="file")
    if _base_url() is not None:
        return _download(name, filename, expected_sha256)
    path = LOCAL_ROOT / name / filename
    if not path.is_file():
        raise FileNotFoundError(f"Pretrained file {path} is missing (listed in the card of {name!r}).")
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise ChecksumError(
            f"Checksum mismatch for {path}: the card says sha256 {expected_sha256}, the file has "
            f"{actual}. The file was not loaded."
        )
    return path
