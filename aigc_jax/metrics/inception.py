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
import io
import os
import pickle
import tarfile
import zipfile

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from aigc_jax.core.errors import UserError
from aigc_jax.models import inception as inception_model

WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth")

# --------------------------------------------------------------------------------------------
# torch.save files as numpy


_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _StorageType:
    """Stands in for a pickled `torch.FloatStorage` etc.: only its element type is needed."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A flat typed buffer; the legacy format fills `array` only after the pickle is read."""

    def __init__(self, dtype: np.dtype, numel: int, array: np.ndarray | None = None):
        self.dtype, self.numel, self._array = dtype, numel, array

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            raise UserError("torch file is truncated: a tensor's data was never stored")
        return self._array


class _StorageView(_Storage):
    """A slice of another storage (files written by PyTorch < 0.4)."""

    def __init__(self, base: _Storage, offset: int, numel: int):
        super().__init__(base.dtype, numel)
        self.base, self.offset = base, offset

    @property
    def array(self) -> np.ndarray:
        return self.base.array[self.offset:self.offset + self.numel]


class _Tensor:
    """What `torch._utils._rebuild_tensor_v2` would build; turned into an ndarray once storages are read."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise UserError(f"torch file: a tensor refers to {type(storage).__name__}, not to a storage")
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def numpy(self) -> np.ndarray:
        data = self.storage.array
        if len(self.size) != len(self.stride):
            raise UserError(f"torch file: tensor with size {self.size} and stride {self.stride}")
        if 0 in self.size:
            return np.zeros(self.size, data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if self.offset < 0 or min(self.stride, default=0) < 0 or last >= data.size:
            raise UserError(f"torch file is corrupt: a tensor of size {self.size} reaches past its storage "
                            f"of {data.size} elements")
        view = np.lib.stride_tricks.as_strided(data[self.offset:], self.size,
                                               [s * data.itemsize for s in self.stride], writeable=False)
        return np.array(view)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return _Tensor(storage, offset, size, stride)


def _rebuild_tensor(storage, offset, size, stride):
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    """Resolves only the globals a state dict of dense tensors needs; anything else is refused."""

    def __init__(self, file, path: str, load_storage=None):
        super().__init__(file)
        self._path, self._load_storage = path, load_storage

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)  # a fresh one: a pickle may BUILD (set attributes on) what it loads
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise UserError(f"{self._path}: refusing to load '{module}.{name}' from the pickle; only state dicts "
                            "of dense tensors are read") from None

    def persistent_load(self, pid):
        if self._load_storage is None or not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UserError(f"{self._path}: unexpected persistent id {str(pid)[:80]} in the pickle")
        if not isinstance(pid[1], _StorageType):
            raise UserError(f"{self._path}: unsupported storage type {pid[1]!r}")
        return self._load_storage(*pid[1:])


def _materialize(obj):
    if isinstance(obj, _Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialize(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def _read_zip(path: str, zf: zipfile.ZipFile):
    names = set(zf.namelist())
    pickles = sorted(n for n in names if n == "data.pkl" or n.endswith("/data.pkl"))
    if not pickles:
        raise UserError(f"{path}: zip archive without data.pkl; not a file written by torch.save")
    prefix = pickles[0][:-len("data.pkl")]
    byteorder = zf.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
    if byteorder not in ("little", "big"):
        raise UserError(f"{path}: unknown byteorder record {byteorder!r}")

    def load_storage(storage_type, key, location, numel, *_):
        record = f"{prefix}data/{key}"
        if record not in names:
            raise UserError(f"{path}: the pickle refers to storage {record!r}, which the archive lacks")
        dtype = storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">")
        raw = zf.read(record)
        if len(raw) < numel * dtype.itemsize:
            raise UserError(f"{path}: storage {record!r} holds {len(raw)} bytes, needs {numel * dtype.itemsize}")
        return _Storage(storage_type.dtype, numel, np.frombuffer(raw, dtype, count=numel).astype(storage_type.dtype))

    return _Unpickler(io.BytesIO(zf.read(pickles[0])), path, load_storage).load()


def _read_legacy(path: str, f: io.BytesIO):
    header = _Unpickler(f, path)
    if header.load() != _LEGACY_MAGIC:
        raise UserError(f"{path}: not a PyTorch checkpoint (no torch.save magic number)")
    if _Unpickler(f, path).load() != _LEGACY_PROTOCOL:
        raise UserError(f"{path}: unsupported legacy torch.save protocol version")
    sys_info = _Unpickler(f, path).load()
    little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
    storages: dict[str, _Storage] = {}

    def load_storage(storage_type, key, location, numel, view_metadata=None):
        if key not in storages:
            storages[key] = _Storage(storage_type.dtype, int(numel))
        if view_metadata is None:
            return storages[key]
        _, offset, view_numel = view_metadata
        return _StorageView(storages[key], int(offset), int(view_numel))

    obj = _Unpickler(f, path, load_storage).load()
    keys = _Unpickler(f, path).load()
    order = "<" if little else ">"
    for key in keys:
        storage = storages.get(key)
        head = f.read(8)
        if storage is None or len(head) != 8:
            raise UserError(f"{path}: legacy torch file is truncated or inconsistent at storage {key!r}")
        numel = int(np.frombuffer(head, order + "i8")[0])
        nbytes = numel * storage.dtype.itemsize
        raw = f.read(nbytes)
        if numel != storage.numel or len(raw) != nbytes:
            raise UserError(f"{path}: legacy torch file is truncated or inconsistent at storage {key!r}")
        storage._array = np.frombuffer(raw, storage.dtype.newbyteorder(order)).astype(storage.dtype)
    return obj


def read_torch_file(path: str):
    """The object torch.save wrote to `path`, with tensors as numpy arrays (no PyTorch needed)."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                obj = _read_zip(path, zf)
        elif tarfile.is_tarfile(path):
            raise UserError(f"{path}: tar-format torch files (PyTorch before 0.1.10) are not supported; re-save "
                            "it with a current PyTorch")
        else:
            with open(path, "rb") as f:
                obj = _read_legacy(path, io.BytesIO(f.read()))
        return _materialize(obj)
    except UserError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError, IndexError,
            AttributeError, KeyError, UnicodeDecodeError, OverflowError, RecursionError) as e:
        raise UserError(f"{path}: not a readable torch.save file ({type(e).__name__}: {e})") from None


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
