"""`stable-zoo` command line: list, info, examples, demo."""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__all__ = ["main"]


def _cmd_list(args):
    import zoo

    for name in zoo.list_models():
        print(name)


def _cmd_info(args):
    import numpy as np

    import zoo
    from zoo.registry import builder

    fn = builder(args.name)
    model = zoo.create(args.name)
    print(f"{args.name}: {fn.__doc__.strip()}")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(f"  input {model.input_shape}, output {model.output_shape}, {model.count_params():,} "
          f"weights ({trainable:,} trainable)")
    for layer in model.layers:
        if hasattr(layer, "depth"):
            print(f"  block {layer.name}: {type(layer.integrator).__name__} x "
                  f"{type(layer.dynamics).__name__}({type(layer.operator).__name__}, "
                  f"{type(layer.dynamics.parametrization).__name__}), N = {layer.depth}, "
                  f"T = {layer.T}, h = {layer.h:g}")


def _cmd_examples(args):
    from zoo.paper_examples import main as run_examples

    run_examples(args.out)


def _diagnostics_table(depth):
    """Build every architecture, push a batch through it and report its stability figures."""
    import keras
    import numpy as np

    import zoo
    from zoo.diagnostics import antisymmetry_residual, lemma1_amplification, state_norms
    from zoo.operators import Antisymmetric

    rng = np.random.default_rng(0)
    rows = []
    # The single-block H&R 2017 networks (a layer named "block"); the multi-unit R&H 2018 CNNs
    # (`rh18_*`) are not in this table.
    for name in (n for n in zoo.list_models() if n.startswith("hr17_")):
        conv = name.endswith("_conv")
        model = zoo.create(name, depth=depth)
        block = model.get_layer("block")
        shape = model.input_shape[1:]
        x = rng.uniform(0, 255, (8, *shape)) if conv else rng.standard_normal((64, *shape))
        start = time.perf_counter()
        model.predict(x.astype("float32"), verbose=0)
        elapsed = time.perf_counter() - start
        block_in = keras.Model(model.input, block.input).predict(x.astype("float32"), verbose=0)
        norms = state_norms(block, block_in)
        growth = float(np.max(norms[-1] / np.maximum(norms[0], 1e-12)))
        lemma = "-"
        if type(block.integrator).__name__ == "ForwardEuler":
            sample = block_in[:2, :6, :6] if conv else block_in
            if conv:  # Lemma 1 on a 6x6 crop keeps the eigenproblem small
                lemma_block = type(block).from_config(block.get_config())
                lemma_block.build((None, *sample.shape[1:]))
                lemma_block.set_weights(block.get_weights())
                lemma = f"{lemma1_amplification(lemma_block, sample).max():.4f}"
            else:
                lemma = f"{lemma1_amplification(block, sample).max():.4f}"
        param = block.dynamics.parametrization
        anti = "-"
        if isinstance(param, Antisymmetric):
            anti = f"{antisymmetry_residual(block.operator, block.effective_weights()['kernel'], param.gamma):.1e}"
        rows.append((name, model.count_params(), block.depth, block.h, lemma, growth, anti, elapsed))
    return rows


def _cmd_demo(args):
    from zoo.paper_examples import main as run_examples

    print("== stable-zoo demo ==")
    print("\n-- Haber & Ruthotto 2017, Examples 1 and 2 --")
    run_examples(args.out)
    print(f"\n-- Every architecture at N = {args.depth}, default initialisation --")
    header = ("model", "weights", "N", "h", "Lemma 1 max|1+h lam|", "max ||Y_N||/||Y_0||",
              "antisym. residual", "predict s")
    print("{:<26}{:>9}{:>5}{:>8}{:>22}{:>21}{:>19}{:>11}".format(*header))
    for name, params, depth, h, lemma, growth, anti, elapsed in _diagnostics_table(args.depth):
        print(f"{name:<26}{params:>9,}{depth:>5}{h:>8.4g}{lemma:>22}{growth:>21.4f}{anti:>19}{elapsed:>11.2f}")
    print("\nLemma 1 is stated for forward Euler (ResNet, antisymmetric); conv rows use a 6x6 crop.")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="stable-zoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered architectures").set_defaults(fn=_cmd_list)
    info = sub.add_parser("info", help="describe one architecture")
    info.add_argument("name")
    info.set_defaults(fn=_cmd_info)
    examples = sub.add_parser("examples", help="H&R 2017 Examples 1-2: figures and ratios")
    examples.add_argument("--out", default="docs/figures")
    examples.set_defaults(fn=_cmd_examples)
    demo = sub.add_parser("demo", help="the main job: examples plus a diagnostics table")
    demo.add_argument("--out", default="docs/figures")
    demo.add_argument("--depth", type=int, default=16)
    demo.set_defaults(fn=_cmd_demo)
    args = parser.parse_args(argv)
    try:
        args.fn(args)
    except ValueError as err:  # bad names or arguments: one clear line, no traceback
        print(f"stable-zoo: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
