"""The GAN's CLI modes: main.py calls MODES[mode](config, args); each returns the closing line, or None
where stdout is the result itself (a JSON line).

`args` carries main.py's flags (workdir, output, overwrite, ...) and `config_arg`, the --config
value, so the closing line can say which command to run next.
"""

from aigc_jax.tasks.gan import evaluation, explore, inpaint, probe, sample, train


def _train(config, args) -> str:
  train.train_and_evaluate(config, args.workdir)
  return (f"done: checkpoints, samples/ and tensorboard/ in {args.workdir}; next: python main.py --mode=sample "
          f"--config {args.config_arg} --workdir {args.workdir} --output samples.npz "
          f"(or --mode=eval / --mode=explore; tensorboard --logdir {args.workdir})")


def _sample(config, args) -> str:
  path = sample.run(config, args.workdir, args.num_samples, args.output, args.overwrite, args.sample_seed,
                    args.labels)
  return f"wrote {args.num_samples} samples to {path}"


def _eval(config, args) -> None:  # stdout is the JSON line alone; where it was written goes to stderr
  evaluation.run(config, args.workdir, checkpoint=args.checkpoint, samples=args.samples, output=args.output,
                 overwrite=args.overwrite)


def _probe(config, args) -> None:  # the table and the JSON line are the result
  probe.run(config, args.workdir, checkpoint=args.checkpoint, output=args.output, overwrite=args.overwrite)


def _explore(config, args) -> str:
  path = explore.run(config, args.workdir, args.output, args.overwrite, args.sample_seed,
                     args.classifier_workdir or config.eval.classifier_workdir or None)
  return f"wrote {', '.join(sorted(p.name for p in path.iterdir()))} to {path}"


def _repair(config, args) -> str:
  out = inpaint.run(config, args.workdir, args.input, args.mask, args.output, args.overwrite, args.sample_seed)
  return f"wrote the repaired images and before/after strips (NAME_strip.png) to {out}"


MODES = {"train": _train, "sample": _sample, "eval": _eval, "probe": _probe, "explore": _explore,
         "repair": _repair}
