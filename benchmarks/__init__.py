"""Benchmarks, grouped by what they measure. Run them from the repository root as modules:

  python -m benchmarks.speed.train_step --out runs/train_step

  speed/         how fast: the train step, against PyTorch, XLA options, the input pipeline, FID's Inception
  quality/       how good: sample quality at a fixed CPU budget, what each GAN technique buys
  applications/  repair and enhancement networks beside the classical tools

Each script writes OUT/results.json (its numbers, the command, the machine, the date) and
OUT/results.md (its markdown table under a header that says how to regenerate it); see report.py.
"""
