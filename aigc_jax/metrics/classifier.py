"""A trained in-domain classifier as a frozen feature function, for metrics and feature losses.

`load(workdir, key)` restores the latest checkpoint of a run of configs/classifier.py with the
config saved beside it, so nobody needs to pass the classifier's config; only the network's
variables are kept. Evaluation (classifier-FID), the image-to-image feature loss and the GAN's
nearest-neighbour pictures all load classifiers through here, and none of them imports the
classifier task.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import struct

from aigc_jax.core import checkpoint, files
from aigc_jax.core.errors import UserError
from aigc_jax.models import classifier as classifier_model


class TrainedClassifier(struct.PyTreeNode):
  """A classifier's variables (arrays), its network, and the images it takes."""

  variables: Any
  model: nn.Module = struct.field(pytree_node=False)
  resolution: int = struct.field(pytree_node=False, default=32)
  channels: int = struct.field(pytree_node=False, default=1)
  num_classes: int = struct.field(pytree_node=False, default=10)
  feature_dim: int = struct.field(pytree_node=False, default=0)
  step: int = struct.field(pytree_node=False, default=0)

  def features_and_logits(self, images_uint8):
    """Penultimate (pooled) features and float32 logits of uint8 images, scaled as the pipeline does."""
    x = images_uint8.astype(jnp.float32) / 127.5 - 1.0  # data.to_unit_range, as the classifier was trained

    def both(m, x):
      f = m.backbone(x, False)
      return f, m.head(f).astype(jnp.float32)
    return self.model.apply(self.variables, x, method=both)


def load(workdir: str, key: str) -> TrainedClassifier:
  """The latest classifier of `workdir`, which a config key such as config.eval.classifier_workdir named.

  UserError, naming `key`, when the workdir holds no finished checkpoint or a run of another task.
  """
  directory = files.path(workdir or "") / "checkpoints"
  if not workdir or not directory.is_dir():
    raise UserError(f"{key}='{workdir}' holds no classifier checkpoints; train one "
                    "(python main.py --config configs/classifier.py:PRESET --workdir DIR) and pass that DIR")
  ckpt = checkpoint.Checkpoints(directory, read_only=True)
  try:
    step = ckpt.latest_step()
    if step is None:
      raise UserError(f"{key}='{workdir}' has no finished checkpoint in {directory}")
    config = ckpt.saved_config(step)
    if config.get("task") != "classifier":
      raise UserError(f"{key}='{workdir}' holds a '{config.get('task', 'gan')}' run, not a classifier; "
                      "train one with configs/classifier.py")
    arrays = ckpt.restore(step)  # no template: only the network's variables are used
  finally:
    ckpt.close()
  m, d = config["model"], config["data"]
  model = classifier_model.create(ml_collections.ConfigDict(m), d["channels"])
  variables = jax.tree.map(np.asarray, {"params": arrays["params"], "batch_stats": arrays.get("batch_stats", {})})
  return TrainedClassifier(variables=variables, model=model, resolution=int(d["resolution"]),
                           channels=int(d["channels"]), num_classes=int(m["num_classes"]),
                           feature_dim=int(m["width"] * 2 ** (m["stages"] - 1)), step=int(step))
