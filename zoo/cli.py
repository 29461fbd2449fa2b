"""`stable-zoo` command line: list, info, evaluate, fine-tune, export, bench, examples, demo."""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__all__ = ["main"]


def _pretrained_rows():
    import zoo
    from zoo.cards import weights_file

    rows = []
    for name in zoo.list_models(pretrained=True):
        card = zoo.card(name)
        m = card["metrics"]
        rows.append((name, card["family"], card["dataset"]["name"], card["trainable_params"],
                     weights_file(card).get("bytes", 0), m["split"], m["accuracy"]))
    return rows


def _cmd_list(args):
    import zoo

    if args.architectures:
        for name in zoo.list_models():
            print(name)
        return
    rows = _pretrained_rows()
    print(f"{'pretrained model':<40}{'family':<24}{'dataset':<15}{'params':>9}{'size':>10}  accuracy")
    for name, family, dataset, params, size, split, acc in rows:
        print(f"{name:<40}{family:<24}{dataset:<15}{params:>9,}{size / 1e6:>8.2f}MB  "
              f"{100 * acc:.2f}% ({split})")
    print(f"\n{len(rows)} pretrained entries; `stable-zoo list --architectures` lists all "
          f"{len(zoo.list_models())} architectures.")


def _cmd_info(args):
    import json

    import numpy as np

    import zoo
    from zoo.registry import builder

    if args.name in zoo.list_models(pretrained=True):
        print(json.dumps(zoo.card(args.name), indent=2))
        return
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


def _cmd_evaluate(args):
    import zoo
    from training.evaluate import evaluate_pretrained

    card = zoo.card(args.name)
    result = evaluate_pretrained(args.name, limit=args.limit)
    m = card["metrics"]
    reference = m if args.limit is None else m.get(f"first_{args.limit}", m)
    print(f"{args.name} on {result['num_examples']:,} {result['split']} examples: accuracy "
          f"{100 * result['accuracy']:.2f}% (card {100 * reference['accuracy']:.2f}%), "
          f"loss {result['loss']:.4f} (card {reference['loss']:.4f})")


def _cmd_fine_tune(args):
    from training.finetune import fine_tune

    backup_dir = args.backup_dir or os.path.join("runs", "fine-tune", f"{args.name}-{args.task}", "backup")
    r = fine_tune(args.name, task=args.task, epochs=args.epochs, train_size=args.train_size,
                  freeze_blocks=args.freeze_blocks, learning_rate=args.learning_rate,
                  backup_dir=backup_dir, fresh=args.fresh, strategy=args.strategy, scale_batch=args.scale_batch)
    print(f"{args.name} fine-tuned on '{args.task}' ({r['num_classes']} classes, "
          f"{r['train_size']:,} training images, {r['epochs']} epochs, {r['fit_seconds']:.0f} s): "
          f"test accuracy {100 * r['before']['accuracy']:.2f}% -> {100 * r['after']['accuracy']:.2f}%")
    if args.save:
        r["keras_model"].save(args.save)
        print(f"saved to {args.save}")


def _cmd_examples(args):
    from zoo.paper_examples import main as run_examples

    run_examples(args.out)


def _diagnostics_table(depth):
    """Build every architecture, push a batch through it and report its stability figures."""
    import tensorflow as tf

    # Every architecture here is a new model, so every predict is a new graph: TensorFlow's
    # retracing heuristic would warn about each one, though nothing is retraced in a loop.
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")
    try:
        return _diagnostics_rows(depth)
    finally:
        logger.setLevel(level)


def _diagnostics_rows(depth):
    """The rows of `_diagnostics_table`: one per single-block H&R 2017 architecture."""
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


def _demo_model():
    """The most accurate pretrained Fashion-MNIST entry, preferring the R&H PDE CNNs."""
    rows = [r for r in _pretrained_rows() if r[2] == "fashion_mnist"]
    if not rows:
        raise ValueError("No pretrained Fashion-MNIST model in saved_models/")
    return max(rows, key=lambda r: (r[0].startswith("rh18_"), r[6]))[0]


def _cmd_demo(args):
    from training.evaluate import evaluate_pretrained
    from training.finetune import fine_tune
    from zoo.paper_examples import main as run_examples

    print("== stable-zoo demo ==")
    print("\n-- 1. Pretrained models (saved_models/, checksum-verified) --")
    args.architectures = False
    _cmd_list(args)
    name = args.model or _demo_model()
    print(f"\n-- 2. Load {name} and evaluate it on the first 1,000 test images --")
    result = evaluate_pretrained(name, limit=1000, progress=False)
    print(f"accuracy {100 * result['accuracy']:.2f}%, loss {result['loss']:.4f}")
    print(f"\n-- 3. Fine-tune it with model.fit on rotated Fashion-MNIST "
          f"({args.train_size:,} images, 1 epoch) --")
    r = fine_tune(name, task="rotated", epochs=1, train_size=args.train_size, progress=False)
    print(f"rotated-test accuracy {100 * r['before']['accuracy']:.2f}% -> "
          f"{100 * r['after']['accuracy']:.2f}% ({r['fit_seconds']:.0f} s of training)")
    print(f"\n-- 4. Export {name} to ONNX (float32 and int8) and check it against Keras --")
    _demo_export(name)
    print("\n-- 5. Haber & Ruthotto 2017, Examples 1 and 2 --")
    run_examples(args.out)
    print(f"\n-- 6. Every H&R 2017 architecture at N = {args.depth}, default initialisation --")
    header = ("model", "weights", "N", "h", "Lemma 1 max|1+h lam|", "max ||Y_N||/||Y_0||",
              "antisym. residual", "predict s")
    print("{:<26}{:>9}{:>5}{:>8}{:>22}{:>21}{:>19}{:>11}".format(*header))
    for name, params, depth, h, lemma, growth, anti, elapsed in _diagnostics_table(args.depth):
        print(f"{name:<26}{params:>9,}{depth:>5}{h:>8.4g}{lemma:>22}{growth:>21.4f}{anti:>19}{elapsed:>11.2f}")
    print("\nLemma 1 is stated for forward Euler (ResNet, antisymmetric); conv rows use a 6x6 crop.")


def _cmd_export(args):
    """Export a pretrained entry (or an architecture with fresh weights) to one format."""
    import zoo

    model = zoo.load(args.name) if args.name in zoo.list_models(pretrained=True) else zoo.create(args.name)
    if args.quantize and args.format == "saved_model":
        raise ValueError("--quantize applies to onnx (int8, fp16) and litert (int8), not saved_model")
    if args.quantize == "fp16" and args.format == "litert":
        raise ValueError("--quantize fp16 is for onnx; LiteRT supports --quantize int8")
    os.makedirs(args.out, exist_ok=True)
    calibration = _calibration_inputs(args.name) if args.quantize == "int8" else None
    if args.format == "saved_model":
        from export.saved_model import export_saved_model

        path = export_saved_model(model, args.out, args.name, args.version, overwrite=args.overwrite)
    elif args.format == "litert":
        from export.litert import export_litert

        suffix = "_int8" if args.quantize else ""
        path = export_litert(model, os.path.join(args.out, f"{args.name}{suffix}.tflite"),
                             representative=calibration, overwrite=args.overwrite)
    else:
        import tempfile

        from export.onnx import export_onnx
        from export.quantize import convert_onnx_fp16, quantize_onnx_int8

        fp32 = os.path.join(args.out, f"{args.name}.onnx")
        if not args.quantize:
            path = export_onnx(model, fp32, overwrite=args.overwrite)
        else:
            path = os.path.join(args.out, f"{args.name}_{args.quantize}.onnx")
            with tempfile.TemporaryDirectory() as tmp:
                source = export_onnx(model, os.path.join(tmp, "fp32.onnx"))
                if args.quantize == "int8":
                    quantize_onnx_int8(source, path, calibration, overwrite=args.overwrite)
                else:
                    convert_onnx_fp16(source, path, overwrite=args.overwrite)
    print(path)


def _calibration_inputs(name):
    """Real training inputs of a pretrained entry's dataset (int8 calibration)."""
    import zoo
    from export.quantize import calibration_sample
    from training.evaluate import load_split

    if name not in zoo.list_models(pretrained=True):
        raise ValueError(f"int8 calibration needs real training data: {name!r} is not a pretrained entry")
    x, _ = load_split(zoo.card(name)["dataset"]["name"], "train")
    return calibration_sample(x)


def _cmd_bench(args):
    from export.bench import main as bench_main

    bench_main([*args.names, *(["--limit", str(args.limit)] if args.limit else []), "--out", args.out])


def _demo_export(name, count=1000):
    import tempfile

    import numpy as np

    import zoo
    from export.onnx import export_onnx, weight_computing_ops
    from export.parity import logits_parity
    from export.quantize import quantize_onnx_int8
    from export.runtime import load_predictor
    from training.evaluate import load_split

    model = zoo.load(name)
    card = zoo.card(name)
    x, y = load_split(card["dataset"]["name"], card["metrics"]["split"])
    x, y = np.asarray(x[:count], dtype="float32"), np.asarray(y[:count]).ravel()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, os.path.join(tmp, f"{name}.onnx"))
        int8 = quantize_onnx_int8(fp32, os.path.join(tmp, f"{name}_int8.onnx"), _calibration_inputs(name))
        parity = logits_parity(model, {"onnx": fp32}, x)["onnx"]
        print(f"ONNX float32: {os.path.getsize(fp32) / 1e3:.0f} KB, weight ops left at run time: "
              f"{len(weight_computing_ops(fp32))}, max |logits - Keras| "
              + ", ".join(f"{e:.1e} (batch {b})" for b, e in parity.items()))
        for label, path in (("float32", fp32), ("int8", int8)):
            predictor = load_predictor(path)
            accuracy = float(np.mean(predictor.predict(x)["logits"].argmax(-1) == y))
            start = time.perf_counter()
            for i in range(50):
                predictor.predict(x[i:i + 1])
            ms = 1e3 * (time.perf_counter() - start) / 50
            print(f"ONNX Runtime {label:>7}: {os.path.getsize(path) / 1e3:6.0f} KB, accuracy {100 * accuracy:.2f}% "
                  f"on {count:,} test images, {ms:.2f} ms per image (batch 1)")
    start = time.perf_counter()
    for i in range(20):
        model(x[i:i + 1], training=False)
    print(f"Keras model(x)        : {1e3 * (time.perf_counter() - start) / 20:.2f} ms per image (batch 1)")


def _positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="stable-zoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    lister = sub.add_parser("list", help="pretrained models (a table); --architectures: all")
    lister.add_argument("--architectures", action="store_true")
    lister.set_defaults(fn=_cmd_list)
    info = sub.add_parser("info", help="a pretrained model's card, or an architecture")
    info.add_argument("name")
    info.set_defaults(fn=_cmd_info)
    evaluate = sub.add_parser("evaluate", help="re-evaluate a pretrained model on its card's split")
    evaluate.add_argument("name")
    evaluate.add_argument("--limit", type=_positive_int, help="only the first LIMIT examples")
    evaluate.set_defaults(fn=_cmd_evaluate)
    tune = sub.add_parser("fine-tune", help="fine-tune a pretrained model with model.fit")
    tune.add_argument("name")
    tune.add_argument("--task", choices=["rotated", "coarse"], default="rotated")
    tune.add_argument("--epochs", type=_positive_int, default=3)
    tune.add_argument("--train-size", type=_positive_int, default=5000)
    tune.add_argument("--learning-rate", type=float, default=1e-3)
    tune.add_argument("--freeze-blocks", action="store_true", help="train the head only")
    tune.add_argument("--save", help="write the fine-tuned model to this .keras file")
    tune.add_argument("--backup-dir", help="BackupAndRestore directory; rerunning the same command resumes an "
                                           "interrupted run (default runs/fine-tune/NAME-TASK/backup)")
    tune.add_argument("--fresh", action="store_true", help="discard an interrupted run's backup and start over")
    tune.add_argument("--strategy", choices=["default", "mirrored", "multi_worker"], default="default",
                      help="tf.distribute strategy (multi_worker reads TF_CONFIG)")
    tune.add_argument("--scale-batch", action="store_true",
                      help="per-replica batch 100 and learning rate x replicas (default: global batch 100)")
    tune.set_defaults(fn=_cmd_fine_tune)
    export = sub.add_parser("export", help="export a model to SavedModel, ONNX or LiteRT")
    export.add_argument("name")
    export.add_argument("--format", choices=["saved_model", "onnx", "litert"], required=True)
    export.add_argument("--quantize", choices=["int8", "fp16"],
                        help="int8: static, calibrated on 200 real training inputs; fp16: ONNX only")
    export.add_argument("--out", required=True, help="output directory")
    export.add_argument("--version", type=_positive_int, default=1, help="SavedModel version directory")
    export.add_argument("--overwrite", action="store_true", help="replace an existing artefact")
    export.set_defaults(fn=_cmd_export)
    bench = sub.add_parser("bench", help="size, latency, memory and accuracy of every export of a model")
    bench.add_argument("names", nargs="+", metavar="NAME")
    bench.add_argument("--limit", type=_positive_int, help="accuracy on the first LIMIT examples only")
    bench.add_argument("--out", default="runs/bench")
    bench.set_defaults(fn=_cmd_bench)
    examples = sub.add_parser("examples", help="H&R 2017 Examples 1-2: figures and ratios")
    examples.add_argument("--out", default="docs/figures")
    examples.set_defaults(fn=_cmd_examples)
    demo = sub.add_parser("demo", help="the main job: examples plus a diagnostics table")
    demo.add_argument("--out", default="docs/figures")
    demo.add_argument("--depth", type=int, default=16)
    demo.add_argument("--model", help="a pretrained Fashion-MNIST model (default: the best PDE CNN)")
    demo.add_argument("--train-size", type=_positive_int, default=2000)
    demo.set_defaults(fn=_cmd_demo)
    args = parser.parse_args(argv)
    try:
        args.fn(args)
    except (ValueError, FileNotFoundError, FileExistsError, TypeError) as err:  # one clear line
        print(f"stable-zoo: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
