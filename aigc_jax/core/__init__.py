"""Task-free machinery: the trainer loop, state, parallelism, checkpoints, files, logs, runtime setup."""
