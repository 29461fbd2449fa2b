"""Fashion-MNIST directories with one file replaced, for the corrupt-data tests.

Shared by `tests/bad_inputs.py` (the bad-input catalogue) and `tests/test_data.py`.
"""

import gzip
import os
import pathlib


def _source():
    from training.data import fashion_mnist as fm

    return fm, pathlib.Path(fm.fashion_mnist_dir())


def raw_file(name):
    """The decompressed bytes of the installed Fashion-MNIST file `name`."""
    _, source = _source()
    return gzip.decompress((source / name).read_bytes())


def directory_with(tmp, name, raw):
    """`tmp` holding the installed files as links, except `name` replaced by gzip(`raw`)."""
    fm, source = _source()
    tmp = pathlib.Path(tmp)
    for f in fm.FILES.values():
        if f != name:
            os.symlink(source / f, tmp / f)
    (tmp / name).write_bytes(gzip.compress(raw))
    return tmp
