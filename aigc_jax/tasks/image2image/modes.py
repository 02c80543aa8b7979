"""Repair and enhancement CLI modes: main.py calls MODES[mode](config, args); each returns the closing line."""

from aigc_jax.tasks.image2image import enhance, repair, train


def _train(config, args) -> str:
  result = train.train_and_evaluate(config, args.workdir)
  line = f"done: checkpoints and samples/ (damaged, restored, clean strips) in {args.workdir}"
  if "psnr" in result:
    line = (f"test PSNR {result['psnr']:.2f} dB (damaged input {result['input_psnr']:.2f} dB), SSIM "
            f"{result['ssim']:.4f} on {result['test_examples']} images; written to {args.workdir}/metrics.json")
  mode = "enhance" if config.task == "enhance" else "repair"
  extra = "" if mode == "enhance" else " --mask center"
  return (f"{line}; next: python main.py --mode={mode} --config {args.config_arg} --workdir {args.workdir} "
          f"--input IMAGES{extra} --output OUT")


def _repair(config, args) -> str:
  out = repair.run(config, args.workdir, args.input, args.mask, args.output, args.overwrite, args.sample_seed,
                   args.self_ensemble)
  return f"wrote the repaired images and before/after strips (NAME_strip.png) to {out}"


def _enhance(config, args) -> str:
  out = enhance.run(config, args.workdir, args.input, args.output, args.overwrite, args.degrade,
                    args.self_ensemble)
  return f"wrote the upscaled images and strips (NAME_strip.png) to {out}"


REPAIR_MODES = {"train": _train, "repair": _repair}
ENHANCE_MODES = {"train": _train, "enhance": _enhance}
