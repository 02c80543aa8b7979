"""torch.save files as numpy, without PyTorch: a restricted unpickler for both formats.

`read_torch_file(path)` reads the zip archive of PyTorch >= 1.6 and the older single-stream
format, builds numpy arrays, and refuses every pickled global other than tensors, storages and
OrderedDict, so a weight file cannot run code.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import tarfile
import zipfile

import ml_dtypes
import numpy as np

from aigc_jax.core.errors import UserError

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
