"""Writes numpy state dicts in torch.save's two file formats, byte-compatible with torch.load, without torch.

Used to test the Inception weight loader on synthetic files of the real format. The pickle names
torch's globals (torch._utils._rebuild_tensor_v2, torch.FloatStorage, ...) with hand-written GLOBAL
opcodes, so torch need not (and must not) be importable.
"""

import collections
import io
import pickle
import zipfile

import numpy as np

_STORAGE_NAMES = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class Global:
  """A reference to `module.name` that is pickled as a GLOBAL opcode without importing the module."""

  def __init__(self, module, name):
    self.module, self.name = module, name

  def __call__(self, *args):
    raise TypeError("only for pickling")


class Tensor:
  """A tensor as torch pickles it: a (shared) storage, an element offset, a size and strides in elements."""

  def __init__(self, storage: np.ndarray, offset=0, size=None, stride=None):
    """Tensors given the same 1-D `storage` array share one storage in the file."""
    self.storage = storage if storage.ndim == 1 and storage.flags.c_contiguous else storage.reshape(-1).copy()
    self.offset = offset
    self.size = tuple(size if size is not None else storage.shape)
    self.stride = tuple(stride if stride is not None else _contiguous_strides(self.size))

  def __reduce__(self):
    return (Global("torch._utils", "_rebuild_tensor_v2"),
            (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


def _contiguous_strides(size):
  strides, acc = [], 1
  for n in reversed(size):
    strides.append(acc)
    acc *= n
  return tuple(reversed(strides))


class _Pickler(pickle._Pickler):  # the pure-Python pickler, whose dispatch table can be extended
  dispatch = pickle._Pickler.dispatch.copy()

  def __init__(self, file, legacy):
    super().__init__(file, protocol=2)
    self.legacy = legacy
    self.storages = {}  # id(array) -> (key, array)

  def save_fake_global(self, obj):
    self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
    self.memoize(obj)

  dispatch[Global] = save_fake_global

  def persistent_id(self, obj):
    if not isinstance(obj, np.ndarray):
      return None
    if id(obj) not in self.storages:
      key = str(len(self.storages) + (140000000 if self.legacy else 0))
      self.storages[id(obj)] = (key, obj)
    key, _ = self.storages[id(obj)]
    pid = ("storage", Global("torch", _STORAGE_NAMES[obj.dtype]), key, "cpu", obj.size)
    return pid + (None,) if self.legacy else pid


def _as_state_dict(arrays):
  """OrderedDict of Tensor, with the `_metadata` attribute a module's state_dict() carries."""
  state = collections.OrderedDict()
  for name, value in arrays.items():
    state[name] = value if isinstance(value, Tensor) else Tensor(np.asarray(value))
  state._metadata = collections.OrderedDict([("", {"version": 1})])
  return state


def save_zip(path, arrays, archive_name="archive"):
  """What torch.save(state_dict, path) writes since PyTorch 1.6: a zip of data.pkl and raw storages."""
  buf = io.BytesIO()
  pickler = _Pickler(buf, legacy=False)
  pickler.dump(_as_state_dict(arrays))
  with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
    zf.writestr(f"{archive_name}/data.pkl", buf.getvalue())
    zf.writestr(f"{archive_name}/byteorder", "little")
    for key, array in pickler.storages.values():
      zf.writestr(f"{archive_name}/data/{key}", array.astype(array.dtype.newbyteorder("<")).tobytes())
    zf.writestr(f"{archive_name}/version", "3\n")


def save_legacy(path, arrays):
  """What torch.save wrote before PyTorch 1.6 (and with _use_new_zipfile_serialization=False)."""
  buf = io.BytesIO()
  for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                      "type_sizes": {"short": 2, "int": 4, "long": 4}}):
    pickle.dump(header, buf, protocol=2)
  pickler = _Pickler(buf, legacy=True)
  pickler.dump(_as_state_dict(arrays))
  keys = sorted(key for key, _ in pickler.storages.values())
  pickle.dump(keys, buf, protocol=2)
  by_key = dict(pickler.storages.values())
  for key in keys:
    array = by_key[key]
    buf.write(np.int64(array.size).astype("<i8").tobytes())
    buf.write(array.astype(array.dtype.newbyteorder("<")).tobytes())
  with open(path, "wb") as f:
    f.write(buf.getvalue())
