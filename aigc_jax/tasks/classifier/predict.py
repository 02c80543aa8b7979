"""--mode=classify: label a folder of images, an .npz or one image with a trained classifier."""

import csv
import functools
import io
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax import data
from aigc_jax.core import files
from aigc_jax.core import images as image_utils
from aigc_jax.core.errors import UserError
from aigc_jax.tasks.classifier.steps import ClassifierState
from aigc_jax.tasks.classifier.train import load_state

OUTPUT_SUFFIXES = (".csv", ".json")


@functools.partial(jax.jit, static_argnums=0)
def _probabilities(model, variables, images_uint8):
  # The pipeline's uint8 -> [-1, 1] (data.to_unit_range), in the same float32 arithmetic.
  return jax.nn.softmax(model.apply(variables, images_uint8.astype(jnp.float32) / 127.5 - 1.0, train=False))


def predict_probabilities(state: ClassifierState, images_uint8: np.ndarray, batch_size: int = 256) -> np.ndarray:
  """Softmax probabilities [N, num_classes] for uint8 images at the model's resolution."""
  batch_size = min(batch_size, len(images_uint8))
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  return image_utils.map_batches(lambda b: _probabilities(state.model, variables, b), images_uint8, batch_size)


def predict(config, workdir, input_path: str, output: str | None = None, *, overwrite: bool = False) -> list[dict]:
  """Labels the images at `input_path`; prints them, or writes `output` as .csv or .json.

  Returns one record per image: name, label, probability of that label, and all probabilities.
  """
  if not input_path:
    raise UserError("--input is required: a folder of images, an .npz with an 'images' array, or one image file")
  if not Path(input_path).expanduser().exists():
    raise UserError(f"--input '{input_path}' does not exist")
  if output:
    files.check_output(output, overwrite, suffixes=OUTPUT_SUFFIXES)
  state = load_state(config, workdir)
  images, _, names = data.read_images(input_path, config.data.channels)
  images = data.fit_images(images, config.data.resolution, config.data.channels, config.data.resize)
  probs = predict_probabilities(state, images)
  labels = probs.argmax(-1)
  records = [{"name": n, "label": int(y), "probability": float(p[y]), "probabilities": [float(v) for v in p]}
             for n, y, p in zip(names, labels, probs)]
  if not output:
    for r in records:
      print(f"{r['name']}\t{r['label']}\t{r['probability']:.4f}")
    return records
  out = files.path(output)
  if out.suffix.lower() == ".json":
    text = json.dumps(records, indent=1) + "\n"
  else:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "label", "probability", *(f"p{k}" for k in range(probs.shape[1]))])
    for r in records:
      w.writerow([r["name"], r["label"], f"{r['probability']:.6f}", *(f"{v:.6f}" for v in r["probabilities"])])
    text = buf.getvalue()
  files.write_text(out, text)
  return records
