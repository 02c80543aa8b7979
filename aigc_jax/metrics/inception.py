"""Inception-v3 features for FID/KID/IS, from the weight file pytorch-fid publishes, without PyTorch.

`InceptionExtractor(weights_path)(uint8 images)` returns the 2048-d pool3 features and the 1008
logits of the FID Inception graph (aigc_jax/models/inception.py), computed under jit in batches of
a fixed size so the network compiles once per input image size.

Resizing follows pytorch-fid: images are scaled to [0, 1], resized to 299x299 with bilinear
interpolation at half-pixel centres (torch's F.interpolate(mode='bilinear', align_corners=False))
without an antialiasing filter, then mapped to [-1, 1]; grey images are repeated over 3 channels.
Scores are therefore comparable with pytorch-fid's, not bit-identical with the original TF graph,
whose own resize (TF1 ResizeBilinear) samples at corner-aligned positions.

The weight file is read by `read_torch_file`, a restricted unpickler for both torch.save formats
(the zip archive of PyTorch >= 1.6 and the older single-stream one) that builds numpy arrays and
refuses every pickled global other than tensors, storages and OrderedDict.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import os

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from aigc_jax.core.errors import UserError
from aigc_jax.metrics.torch_files import read_torch_file
from aigc_jax.models import inception as inception_model

WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth")

# --------------------------------------------------------------------------------------------
# pytorch-fid state dict -> Flax variables

# (collection, flax leaf name) -> torch key suffix; kernels go OIHW -> HWIO, Linear weights [out, in] -> [in, out].
_LEAF_TO_TORCH = {
    ("params", "kernel"): "weight",
    ("params", "scale"): "weight",
    ("params", "bias"): "bias",
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}


def _to_flax(array: np.ndarray) -> np.ndarray:
    if array.ndim == 4:
        return array.transpose(2, 3, 1, 0)
    if array.ndim == 2:
        return array.T
    return array


def torch_key(collection: str, path: tuple[str, ...]) -> str:
    """pytorch-fid's state-dict key for the Flax leaf `collection`/`path`, e.g. Mixed_5b.branch1x1.conv.weight."""
    return ".".join(path[:-1] + (_LEAF_TO_TORCH[(collection, path[-1])],))


def variable_shapes() -> dict[tuple[str, tuple[str, ...]], tuple[int, ...]]:
    """{(collection, path): shape} of the FID Inception's variables, without allocating them."""
    return dict(_variable_shapes())


@functools.cache
def _variable_shapes():
    model = inception_model.FIDInceptionV3()
    size = inception_model.INPUT_SIZE
    shapes = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
    out = {}
    for collection, tree in shapes.items():
        for key_path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            out[(collection, tuple(k.key for k in key_path))] = tuple(leaf.shape)
    return out


def _summary(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def params_from_state_dict(state_dict, source: str = "state dict") -> dict:
    """Flax variables {'params', 'batch_stats'} from pytorch-fid's Inception state dict (numpy arrays)."""
    if not isinstance(state_dict, dict) or not all(isinstance(k, str) for k in state_dict):
        raise UserError(f"{source}: expected a state dict (name -> tensor), got {type(state_dict).__name__}")
    state_dict = {k: v for k, v in state_dict.items() if not k.endswith(".num_batches_tracked")}
    wanted = {torch_key(c, p): (c, p, shape) for (c, p), shape in variable_shapes().items()}
    missing, unexpected = set(wanted) - set(state_dict), set(state_dict) - set(wanted)
    if missing:
        raise UserError(f"{source}: missing {len(missing)} of pytorch-fid's Inception weights: {_summary(missing)}; "
                        f"expected the FID weight file {WEIGHTS_URL}")
    if unexpected:
        raise UserError(f"{source}: unexpected keys {_summary(unexpected)}; expected exactly the FID Inception "
                        f"weights ({WEIGHTS_URL})")
    variables: dict = {"params": {}, "batch_stats": {}}
    for key, (collection, path, shape) in wanted.items():
        value = state_dict[key]
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f" and value.dtype != ml_dtypes.bfloat16:
            raise UserError(f"{source}: {key} must be a floating-point tensor, got {getattr(value, 'dtype', value)!r}")
        value = _to_flax(value)
        if value.shape != shape:
            raise UserError(f"{source}: {key} has shape {tuple(state_dict[key].shape)}, the FID Inception needs "
                            f"{_torch_shape(shape)}")
        value = value.astype(np.float32)
        if not np.all(np.isfinite(value)):
            raise UserError(f"{source}: {key} contains NaN or inf")
        node = variables[collection]
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value
    return variables


def _torch_shape(flax_shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(flax_shape) == 4:
        return (flax_shape[3], flax_shape[2], flax_shape[0], flax_shape[1])
    return tuple(flax_shape[::-1])


def load_fid_inception(path: str) -> dict:
    """Flax variables of the FID Inception from pytorch-fid's pt_inception-2015-12-05-*.pth at `path`."""
    if not path:
        raise UserError(f"no Inception weight file given: set config.eval.inception_weights to the path of "
                        f"{os.path.basename(WEIGHTS_URL)}, downloaded from {WEIGHTS_URL}")
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise UserError(f"Inception weight file {path} does not exist; download it from {WEIGHTS_URL} and set "
                        "config.eval.inception_weights to its path")
    return params_from_state_dict(read_torch_file(path), source=path)


# --------------------------------------------------------------------------------------------
# The extractor


def resize_bilinear(images: jax.Array, height: int, width: int) -> jax.Array:
    """[N, H, W, C] -> [N, height, width, C] like torch's F.interpolate(bilinear, align_corners=False).

    Half-pixel centres, edge pixels repeated, and no antialiasing when shrinking (jax.image.resize's
    default would low-pass filter first, which pytorch-fid does not).
    """
    n, h, w, c = images.shape
    if (h, w) == (height, width):
        return images
    return jax.image.resize(images, (n, height, width, c), method="bilinear", antialias=False)


def preprocess(images: jax.Array) -> jax.Array:
    """uint8 [N, H, W, 1 or 3] -> float32 [N, 299, 299, 3] in [-1, 1], as pytorch-fid feeds its network."""
    x = images.astype(jnp.float32) / 255.0
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    size = inception_model.INPUT_SIZE
    return resize_bilinear(x, size, size) * 2.0 - 1.0


class InceptionExtractor:
    """uint8 images -> (pool3 features [N, 2048], logits [N, 1008]) of the FID Inception-v3.

    Each batch is split over this process's devices (`devices`, default all local ones) when
    `batch_size` divides by their number, else it runs on the first of them.
    """

    name = "inception_fid_2015-12-05"
    feature_dim = inception_model.FEATURE_DIM
    num_classes = inception_model.NUM_CLASSES

    def __init__(self, weights_path: str, batch_size: int = 50, *, devices=None):
        self._setup(lambda: load_fid_inception(weights_path), batch_size, devices)

    @classmethod
    def from_variables(cls, variables, batch_size: int = 50, *, devices=None) -> "InceptionExtractor":
        """An extractor with the given Flax variables instead of a weight file (benchmarks, tests)."""
        extractor = cls.__new__(cls)
        extractor._setup(lambda: variables, batch_size, devices)
        return extractor

    def _setup(self, get_variables, batch_size, devices):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise UserError(f"Inception batch size must be a positive integer, got {batch_size!r}")
        self.batch_size = int(batch_size)
        devices = list(devices) if devices is not None else jax.local_devices()
        if self.batch_size % len(devices):
            devices = devices[:1]
        self.devices = devices
        mesh = Mesh(np.array(devices), ("data",))
        replicated, split = NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("data"))
        variables = get_variables()
        # The real-statistics cache is keyed by this name: other weights must never reuse those statistics.
        digest = hashlib.sha256()
        for leaf in jax.tree.leaves(variables):
            digest.update(np.ascontiguousarray(leaf).tobytes())
        self.name = f"{InceptionExtractor.name}-{digest.hexdigest()[:12]}"
        self._variables = jax.device_put(variables, replicated)
        # HIGHEST keeps float32 convolutions on GPUs (TF32) and TPUs (bf16 passes): FID is sensitive to them.
        self._model = inception_model.FIDInceptionV3(precision=jax.lax.Precision.HIGHEST)
        self._forward = jax.jit(lambda variables, images: self._model.apply(variables, preprocess(images)),
                                in_shardings=(replicated, split), out_shardings=split)

    def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise UserError(f"Inception extractor needs uint8 images in [0, 255], got dtype {images.dtype}")
        if images.ndim != 4 or images.shape[-1] not in (1, 3) or 0 in images.shape[1:3]:
            raise UserError(f"Inception extractor needs images shaped [N, H, W, C] with C = 1 or 3, got shape "
                            f"{images.shape}")
        n = images.shape[0]
        if n == 0:
            return np.zeros((0, self.feature_dim), np.float32), np.zeros((0, self.num_classes), np.float32)
        features = np.empty((n, self.feature_dim), np.float32)
        logits = np.empty((n, self.num_classes), np.float32)
        in_flight = collections.deque()  # two batches queued: the device stays busy, memory stays bounded

        def collect():
            start, (f, l) = in_flight.popleft()
            stop = min(start + self.batch_size, n)
            features[start:stop] = np.asarray(f)[:stop - start]
            logits[start:stop] = np.asarray(l)[:stop - start]

        for start in range(0, n, self.batch_size):
            batch = images[start:start + self.batch_size]
            if len(batch) < self.batch_size:
                pad = np.zeros((self.batch_size - len(batch),) + batch.shape[1:], np.uint8)
                batch = np.concatenate([batch, pad])
            in_flight.append((start, self._forward(self._variables, batch)))
            if len(in_flight) > 2:
                collect()
        while in_flight:
            collect()
        return features, logits
