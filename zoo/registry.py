"""Names -> model builders. Filled at import by `@register_model`; duplicates fail."""

from __future__ import annotations

import difflib

__all__ = ["register_model", "list_models", "create", "builder"]

_BUILDERS = {}


def register_model(fn):
    """Register `fn(**overrides) -> keras.Model` under its function name."""
    name = fn.__name__
    if name in _BUILDERS:
        raise ValueError(f"Model {name!r} is already registered")
    _BUILDERS[name] = fn
    return fn


def _ensure_loaded():
    import zoo.models  # noqa: F401  (importing the families registers them)


def list_models(pretrained=False):
    """Sorted names of registered architectures (`pretrained=True`: of pretrained entries)."""
    _ensure_loaded()
    if pretrained:
        from zoo import hub

        return hub.list_pretrained()
    return sorted(_BUILDERS)


def builder(name):
    _ensure_loaded()
    if name not in _BUILDERS:
        close = difflib.get_close_matches(str(name), list(_BUILDERS), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(f"Unknown model {name!r}.{hint} Known models: {sorted(_BUILDERS)}")
    return _BUILDERS[name]


def create(name, **overrides):
    """An untrained `keras.Model`; `overrides` replace the builder's defaults (depth=, T=, ...)."""
    return builder(name)(**overrides)
