"""The classifier's CLI modes: main.py calls MODES[mode](config, args); each returns the closing line (None: stdout is the result)."""

from aigc_jax.tasks.classifier import predict, train


def _train(config, args) -> str:
  result = train.train_and_evaluate(config, args.workdir)
  return (f"test accuracy {result['test_accuracy']:.4f} on {result['test_examples']} images "
          f"({config.data.test_split}) at step {result['step']}; written to {args.workdir}/metrics.json; next: "
          f"python main.py --mode=classify --config {args.config_arg} --workdir {args.workdir} --input IMAGES "
          f"(or use it for FID: --config.eval.classifier_workdir={args.workdir})")


def _classify(config, args) -> str | None:
  records = predict.predict(config, args.workdir, args.input, args.output, overwrite=args.overwrite)
  return f"labelled {len(records)} image(s); wrote {args.output}" if args.output else None  # else stdout is the labels


MODES = {"train": _train, "classify": _classify}
