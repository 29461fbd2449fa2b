"""Model cards: the machine-readable record of a pretrained entry (DESIGN.md section 6).

`card.json` holds what is needed to rebuild, verify and judge the model::

    name, architecture, config          # zoo.create(architecture, **config) rebuilds it
    family, paper, dataset{name, split, input, classes}
    metrics{accuracy, loss, split, num_examples, best_val_accuracy}
    trainable_params, total_params
    weights                             # the name of the weights file (a key of `files`)
    files{<file name>: {sha256, bytes}} # every file of the entry, keyed by its name
    recipe, training{seconds, epochs, hardware, date}, versions{...}

`README.md` beside it is the human card, generated from the same dict.
"""

from __future__ import annotations

import json
import os
import tempfile

__all__ = ["REQUIRED_FIELDS", "validate_card", "weights_file", "write_card", "card_markdown"]

REQUIRED_FIELDS = {
    "name": str,
    "architecture": str,
    "config": dict,
    "family": str,
    "dataset": dict,
    "metrics": dict,
    "trainable_params": int,
    "weights": str,
    "files": dict,
    "recipe": str,
}
REQUIRED_METRICS = ("accuracy", "loss", "split", "num_examples")


def validate_card(card, source="card"):
    """Raise a `ValueError` naming every missing or mistyped field; return the card."""
    if not isinstance(card, dict):
        raise ValueError(f"{source}: a card must be a JSON object; got {type(card).__name__}")
    problems = []
    for field, kind in REQUIRED_FIELDS.items():
        if field not in card:
            problems.append(f"missing field {field!r}")
        elif not isinstance(card[field], kind):
            problems.append(f"field {field!r} must be {kind.__name__}, got {type(card[field]).__name__}")
    if isinstance(card.get("metrics"), dict):
        problems += [f"missing metrics.{m}" for m in REQUIRED_METRICS if m not in card["metrics"]]
    files = card.get("files") if isinstance(card.get("files"), dict) else {}
    for name, entry in files.items():
        if not isinstance(entry, dict) or "sha256" not in entry:
            problems.append(f"files[{name!r}] must give its 'sha256'")
    if isinstance(card.get("weights"), str) and card["weights"] not in files:
        problems.append(f"the weights file {card['weights']!r} is not listed in 'files'")
    if problems:
        raise ValueError(f"{source} is invalid: " + "; ".join(problems))
    return card


def weights_file(card):
    """`{"path", "sha256", "bytes"}` of the entry's weights file."""
    return {"path": card["weights"], **card["files"][card["weights"]]}


def _atomic_write(text, path):
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
        f.write(text)
    os.chmod(f.name, 0o644)  # NamedTemporaryFile creates 0600; cards are meant to be read
    os.replace(f.name, path)


def write_card(card, directory):
    """Write `card.json` and `README.md` into `directory` (atomically, after validation)."""
    validate_card(card)
    _atomic_write(json.dumps(card, indent=2, sort_keys=False) + "\n", os.path.join(directory, "card.json"))
    _atomic_write(card_markdown(card), os.path.join(directory, "README.md"))


def card_markdown(card):
    m = card["metrics"]
    w = weights_file(card)
    lines = [
        f"# {card['name']}",
        "",
        f"{card.get('description', card['family'])}",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `zoo.create({card['architecture']!r}, **{card['config']})` |",
        f"| family | {card['family']} |",
        f"| dataset | {card['dataset'].get('name')} ({card['dataset'].get('split', '')}) |",
        f"| input | {card['dataset'].get('input', '')} |",
        f"| {m['split']} accuracy | {100 * m['accuracy']:.2f}% on {m['num_examples']:,} examples |",
        f"| {m['split']} loss | {m['loss']:.4f} (cross-entropy) |",
        f"| trainable parameters | {card['trainable_params']:,} |",
        f"| weights | `{w['path']}`, {w.get('bytes', 0):,} bytes, sha256 `{w['sha256']}` |",
        f"| recipe | `{card['recipe']}` |",
    ]
    training = card.get("training", {})
    if training:
        lines.append(f"| training | {training.get('epochs', '?')} epochs, "
                     f"{training.get('seconds', 0) / 60:.1f} min on {training.get('hardware', '?')} |")
    if card.get("notes"):
        lines += ["", card["notes"]]
    lines += ["", "```python", "import zoo", f"model = zoo.load({card['name']!r})", "```", ""]
    return "\n".join(lines)
