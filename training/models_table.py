"""`docs/models.md`: the table of pretrained entries, generated from their cards.

    python -m training.models_table      # rewrites docs/models.md (a test checks it is current)
"""

from __future__ import annotations

import pathlib

import zoo
from zoo.cards import weights_file

__all__ = ["render", "main"]

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "models.md"


def render():
    lines = [
        "# Pretrained models",
        "",
        "Generated from the cards in `saved_models/` by `python -m training.models_table`; do not edit.",
        "Every entry loads offline with `zoo.load(name)` (sha256-verified) and is re-evaluated by",
        "`stable-zoo evaluate NAME`. Fashion-MNIST figures are on the official 10,000-image test set;",
        "the 2-D sets report their validation split, as Haber & Ruthotto 2017 do.",
        "",
        "| name | family | architecture | dataset | split | accuracy | loss | trainable params | size | training |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in zoo.list_models(pretrained=True):
        card = zoo.card(name)
        m, w, t = card["metrics"], weights_file(card), card.get("training", {})
        minutes = f"{t['seconds'] / 60:.0f} min" if t.get("seconds") else "-"
        lines.append(
            f"| `{name}` | {card['family']} | `{card['architecture']}` | {card['dataset']['name']} | "
            f"{m['split']} ({m['num_examples']:,}) | {100 * m['accuracy']:.2f}% | {m['loss']:.4f} | "
            f"{card['trainable_params']:,} | {w['bytes'] / 1e6:.2f} MB | {minutes} |"
        )
    lines += ["", "Recipes (the command that trained each entry) are in each card and in "
              "`saved_models/<name>/README.md`.", ""]
    return "\n".join(lines)


def main():
    tmp = DOC.with_suffix(".md.tmp")
    tmp.write_text(render())
    tmp.replace(DOC)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
