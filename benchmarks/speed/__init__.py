"""Speed: train-step, PyTorch, XLA-option, input-pipeline and Inception timings; timing.py: shared helpers."""
