"""Benchmarks; run them from the repository root as modules, e.g. `python -m benchmarks.speed.conv_forms`."""
