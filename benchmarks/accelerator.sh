#!/usr/bin/env bash
# The prepared accelerator run, on a GPU machine that has JAX with CUDA, Flax, Optax, Orbax,
# TensorBoard, scikit-image and PyTorch but no network, TensorFlow or ml-collections:
#
#   here:    make accelerator-bundle MNIST=DIR   # wheels the GPU image lacks, MNIST's IDX files, the commit
#   there:   OUT=DIR bash benchmarks/accelerator.sh [flags of benchmarks/accelerator.py]
#
# writes DIR/results.json, DIR/results.md and DIR/mnist_samples.png (default DIR: runs/accelerator).
# The missing wheels install into build/accelerator/site, not into the machine's Python.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=build/accelerator
PY=${PYTHON:-python3}
if [ ! -d "$BUNDLE/mnist" ]; then
  echo "error: $BUNDLE/mnist is missing; run 'make accelerator-bundle MNIST=DIR' first and carry build/accelerator" >&2
  exit 2
fi
if ! "$PY" -c "import ml_collections, pytest" 2>/dev/null; then
  "$PY" -m pip install --quiet --no-index --find-links "$BUNDLE/wheels" --target "$BUNDLE/site" ml-collections pytest
  export PYTHONPATH="$PWD/$BUNDLE/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # PyTorch's workers share the GPU with this process
AIGC_COMMIT="$(cat "$BUNDLE/COMMIT" 2>/dev/null || true)" \
  exec "$PY" -m benchmarks.accelerator --mnist "$BUNDLE/mnist" --out "${OUT:-runs/accelerator}" "$@"
